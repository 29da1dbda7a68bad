"""CIFAR ResNets (He et al. 2016) and pre-activation ResNets (He et al. 2016b).

Batch norm statistics live in the ``"batch_stats"`` collection: call
``model.apply({"params": p, "batch_stats": s}, x, train=True, mutable=["batch_stats"])``
while training and ``train=False`` (running averages) to evaluate; the
:class:`~glojax.train.trainer.Trainer` does this. BN momentum 0.9 and ε 1e-5 are
PyTorch's defaults (momentum 0.1 there counts the other way).
"""

from __future__ import annotations


import flax.linen as nn
import jax.numpy as jnp

# He-normal (fan_out) for convolutions, as the reference CIFAR implementations use.
conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def batch_norm(train: bool, **kw):
  """A BatchNorm layer in train (batch statistics) or eval (running averages) mode."""
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5, **kw)


def conv3x3(features: int, stride: int = 1):
  """3×3 convolution, padding 1, no bias, He-normal init (He et al. 2016's CIFAR ResNets)."""
  return nn.Conv(features, (3, 3), strides=(stride, stride), padding=1, use_bias=False,
                 kernel_init=conv_init)


def pad_shortcut(x, features: int, stride: int):
  """Option-A shortcut: subsample by ``stride`` and zero-pad the channels."""
  if stride > 1:
    x = x[:, ::stride, ::stride, :]
  extra = features - x.shape[-1]
  if extra > 0:
    x = jnp.pad(x, ((0, 0), (0, 0), (0, 0), (0, extra)))
  return x


class BasicBlock(nn.Module):
  """conv-BN-ReLU-conv-BN + shortcut, ReLU (He et al. 2016, Fig. 2 left)."""
  features: int
  stride: int = 1
  shortcut: str = "A"

  @nn.compact
  def __call__(self, x, train: bool):
    y = nn.relu(batch_norm(train)(conv3x3(self.features, self.stride)(x)))
    y = batch_norm(train)(conv3x3(self.features)(y))
    if self.stride == 1 and x.shape[-1] == self.features:
      short = x
    elif self.shortcut == "A":
      short = pad_shortcut(x, self.features, self.stride)
    else:
      short = nn.Conv(self.features, (1, 1), strides=(self.stride, self.stride),
                      use_bias=False, kernel_init=conv_init)(x)
      short = batch_norm(train)(short)
    return nn.relu(y + short)


class PreActBlock(nn.Module):
  """BN-ReLU-conv-BN-ReLU-conv + shortcut (He et al. 2016b, Fig. 1b)."""
  features: int
  stride: int = 1
  shortcut: str = "A"

  @nn.compact
  def __call__(self, x, train: bool):
    pre = nn.relu(batch_norm(train)(x))
    y = conv3x3(self.features, self.stride)(pre)
    y = conv3x3(self.features)(nn.relu(batch_norm(train)(y)))
    if self.stride == 1 and x.shape[-1] == self.features:
      short = x
    elif self.shortcut == "A":
      short = pad_shortcut(x, self.features, self.stride)
    else:
      short = nn.Conv(self.features, (1, 1), strides=(self.stride, self.stride),
                      use_bias=False, kernel_init=conv_init)(pre)
    return y + short


def _check_depth(depth: int, name: str) -> int:
  if (depth - 2) % 6 != 0 or depth < 8:
    raise ValueError(f"{name}: depth must be 6n + 2 (20, 32, 44, 56, 110, ...), got {depth}")
  return (depth - 2) // 6


class ResNet(nn.Module):
  """CIFAR ResNet-``depth`` (depth = 6n + 2) with basic blocks.

  conv 3×3·16 + BN + ReLU → 3 stages of n blocks (16, 32, 64 channels; stride 2 at the
  start of stages 2 and 3) → global average pool → fc ``num_classes``.

  Attributes:
    num_classes: output size.
    depth: 6n + 2 layers (20, 32, 56, 110).
    shortcut: ``"A"`` (parameter-free zero-padding, the paper's CIFAR choice) or
      ``"B"`` (1×1 projection + BN when the shape changes).
    preact: use pre-activation blocks (He et al. 2016b) and a final BN-ReLU.

  Parameter counts (10 classes, option A): ResNet-20 269,722 (paper Table 6: 0.27 M),
  ResNet-32 464,154 (0.46 M), ResNet-56 853,018 (0.85 M).

  References: He et al., "Deep Residual Learning for Image Recognition", CVPR 2016, §4.2;
  He et al., "Identity Mappings in Deep Residual Networks", ECCV 2016; dissertation §3.2.4-5.
  """
  num_classes: int = 10
  depth: int = 20
  shortcut: str = "A"
  preact: bool = False

  @nn.compact
  def __call__(self, x, train: bool = False):
    n = _check_depth(self.depth, type(self).__name__)
    if self.shortcut not in ("A", "B"):
      raise ValueError(f"shortcut must be 'A' or 'B', got {self.shortcut!r}")
    block = PreActBlock if self.preact else BasicBlock
    x = conv3x3(16)(x)
    if not self.preact:
      x = nn.relu(batch_norm(train)(x))
    for stage, features in enumerate((16, 32, 64)):
      for i in range(n):
        stride = 2 if stage > 0 and i == 0 else 1
        x = block(features, stride, self.shortcut)(x, train)
    if self.preact:
      x = nn.relu(batch_norm(train)(x))
    x = jnp.mean(x, axis=(1, 2))
    return nn.Dense(self.num_classes)(x)


class ResNet20(ResNet):
  """ResNet-20 (0.27 M parameters); see :class:`ResNet`."""
  depth: int = 20


class ResNet32(ResNet):
  """ResNet-32 (0.46 M parameters); see :class:`ResNet`."""
  depth: int = 32


class ResNet56(ResNet):
  """ResNet-56 (0.85 M parameters); see :class:`ResNet`."""
  depth: int = 56


class PreActResNet20(ResNet):
  """Pre-activation ResNet-20 (dissertation's "Pre ResNet-20"); see :class:`ResNet`."""
  depth: int = 20
  preact: bool = True
