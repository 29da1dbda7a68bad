"""Wide residual networks WRN-d-k (Zagoruyko & Komodakis 2016)."""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from glojax.models.resnet import batch_norm, conv3x3, conv_init


class WideBlock(nn.Module):
  """Pre-activation wide block: BN-ReLU-conv3×3-dropout-BN-ReLU-conv3×3 + shortcut.

  The shortcut is a 1×1 convolution of the pre-activated input when the shape changes
  (the paper's reference code), identity otherwise.
  """
  features: int
  stride: int = 1
  dropout_rate: float = 0.0

  @nn.compact
  def __call__(self, x, train: bool):
    pre = nn.relu(batch_norm(train)(x))
    y = conv3x3(self.features, self.stride)(pre)
    y = nn.relu(batch_norm(train)(y))
    y = nn.Dropout(self.dropout_rate, deterministic=not train)(y)
    y = conv3x3(self.features)(y)
    if self.stride == 1 and x.shape[-1] == self.features:
      short = x
    else:
      short = nn.Conv(self.features, (1, 1), strides=(self.stride, self.stride),
                      use_bias=False, kernel_init=conv_init)(pre)
    return y + short


class WideResNet(nn.Module):
  """WRN-``depth``-``widen`` for 32×32 images.

  conv 3×3·16 → 3 groups of n = (depth − 4)/6 wide blocks with 16k, 32k, 64k channels
  (stride 2 at the start of groups 2 and 3) → BN-ReLU → global average pool → fc.

  Attributes:
    num_classes: output size.
    depth: total depth, 6n + 4 (16, 22, 28, 40).
    widen: width multiplier k.
    dropout_rate: dropout between the two convs of each block (paper: 0.3 on CIFAR,
      0.4 on SVHN; 0 disables it).

  Parameter counts (10 classes): WRN-16-8 10,961,370 (paper Table 1: 11.0 M), WRN-28-10
  36,479,194 (36.5 M), WRN-28-5 9,132,634 (not in the paper).

  References: Zagoruyko & Komodakis, "Wide Residual Networks", BMVC 2016; dissertation §3.2.6.
  """
  num_classes: int = 10
  depth: int = 16
  widen: int = 8
  dropout_rate: float = 0.3

  @nn.compact
  def __call__(self, x, train: bool = False):
    if (self.depth - 4) % 6 != 0 or self.depth < 10:
      raise ValueError(f"WideResNet: depth must be 6n + 4 (16, 22, 28, 40), got {self.depth}")
    if self.widen < 1:
      raise ValueError(f"WideResNet: widen must be >= 1, got {self.widen}")
    n = (self.depth - 4) // 6
    x = conv3x3(16)(x)
    for group, base in enumerate((16, 32, 64)):
      for i in range(n):
        stride = 2 if group > 0 and i == 0 else 1
        x = WideBlock(base * self.widen, stride, self.dropout_rate)(x, train)
    x = nn.relu(batch_norm(train)(x))
    x = jnp.mean(x, axis=(1, 2))
    return nn.Dense(self.num_classes)(x)


class WRN16_8(WideResNet):
  """WRN-16-8 (11.0 M parameters); see :class:`WideResNet`."""
  depth: int = 16
  widen: int = 8


class WRN28_5(WideResNet):
  """WRN-28-5 (9.1 M parameters); see :class:`WideResNet`."""
  depth: int = 28
  widen: int = 5


class WRN28_10(WideResNet):
  """WRN-28-10 (36.5 M parameters); see :class:`WideResNet`."""
  depth: int = 28
  widen: int = 10
