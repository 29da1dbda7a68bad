"""Deep pyramidal residual networks (Han, Kim & Kim, CVPR 2017), additive, basic blocks."""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from glojax.models.resnet import batch_norm, conv3x3


class PyramidBlock(nn.Module):
  """BN-conv3×3-BN-ReLU-conv3×3-BN + shortcut (Han et al. 2017, Fig. 6d).

  The shortcut is 2×2 average pooling when downsampling, then zero-padding of the
  channels (their Fig. 5b): no parameters.
  """
  features: int
  stride: int = 1

  @nn.compact
  def __call__(self, x, train: bool):
    y = batch_norm(train)(x)
    y = conv3x3(self.features, self.stride)(y)
    y = nn.relu(batch_norm(train)(y))
    y = conv3x3(self.features)(y)
    y = batch_norm(train)(y)
    short = x
    if self.stride > 1:
      short = nn.avg_pool(short, (2, 2), strides=(2, 2))
    extra = self.features - short.shape[-1]
    if extra > 0:
      short = jnp.pad(short, ((0, 0), (0, 0), (0, 0), (0, extra)))
    return y + short


class PyramidNet(nn.Module):
  """Additive PyramidNet-``depth`` with widening factor ``alpha`` (basic blocks).

  conv 3×3·16 + BN → 3 stages of n = (depth − 2)/6 blocks whose width grows by
  ``alpha / (3n)`` per block (rounded), stride 2 at the start of stages 2 and 3 →
  BN-ReLU → global average pool → fc. Final width 16 + alpha.

  Attributes:
    num_classes: output size.
    depth: 6n + 2 (110 in the dissertation).
    alpha: total widening (48 in the dissertation).

  Parameter count: PyramidNet-110 α=48, 100 classes: 1,778,556 (paper Table 4: "1.7 M",
  i.e. 1.78 M truncated to one decimal).

  References: Han, Kim & Kim, "Deep Pyramidal Residual Networks", CVPR 2017;
  dissertation §3.2.7.
  """
  num_classes: int = 100
  depth: int = 110
  alpha: float = 48.0

  @nn.compact
  def __call__(self, x, train: bool = False):
    if (self.depth - 2) % 6 != 0 or self.depth < 8:
      raise ValueError(f"PyramidNet: depth must be 6n + 2 (e.g. 110), got {self.depth}")
    n = (self.depth - 2) // 6
    step = self.alpha / (3 * n)
    x = batch_norm(train)(conv3x3(16)(x))
    width = 16.0
    for stage in range(3):
      for i in range(n):
        width += step
        stride = 2 if stage > 0 and i == 0 else 1
        x = PyramidBlock(int(round(width)), stride)(x, train)
    x = nn.relu(batch_norm(train)(x))
    x = jnp.mean(x, axis=(1, 2))
    return nn.Dense(self.num_classes)(x)


class PyramidNet110A48(PyramidNet):
  """PyramidNet-110, α = 48 (1.7 M parameters); see :class:`PyramidNet`."""
  depth: int = 110
  alpha: float = 48.0
