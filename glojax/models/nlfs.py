"""The NLFS paper's cheap surrogate models: a three-layer ConvNet and ResNet9V2.

NLFS §3.5.1 names "a three-layer ConvNet, containing 14,000 parameters" and "a ResNet9
version two (ResNet9V2) with nine layers, containing 30,000 parameters" and gives no
layer details. Our assumptions, chosen to match those sizes on CIFAR-10 (32×32×3, 10
classes):

* :class:`NLFSConvNet` — three conv 3×3 layers (16, 32, 32 filters, ReLU, 2×2 max-pool
  after the first two), global average pooling, fc 10: **14,666** parameters on CIFAR-10
  (14,378 on 28×28×1 images).
* :class:`ResNet9V2` — pre-activation ResNet (He et al. 2016b): a conv 3×3·16 stem, four
  pre-activation basic blocks of two conv 3×3 layers each (widths 16, 16, 16, 32;
  stride 2 in blocks 2 and 4; a 1×1 projection where the shape changes), final BN-ReLU,
  global average pooling, fc 10: nine conv layers, **29,530** parameters on CIFAR-10
  (plus 352 batch-norm statistics).

The counts are pinned in ``tests/test_nlfs_models.py``.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from glojax.models.resnet import PreActBlock, batch_norm, conv3x3


class NLFSConvNet(nn.Module):
  """NLFS's three-layer ConvNet surrogate (≈14 k parameters; module docstring).

  Attributes:
    num_classes: output size.
    features: filters of the three conv layers.
  """
  num_classes: int = 10
  features: Sequence[int] = (16, 32, 32)

  @nn.compact
  def __call__(self, x, train: bool = False):
    for i, f in enumerate(self.features):
      x = nn.relu(nn.Conv(f, (3, 3))(x))
      if i < len(self.features) - 1:
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
    x = jnp.mean(x, axis=(1, 2))
    return nn.Dense(self.num_classes)(x)


class ResNet9V2(nn.Module):
  """NLFS's ResNet9V2 surrogate (≈30 k parameters; module docstring).

  Attributes:
    num_classes: output size.
    widths: channels of the four pre-activation blocks.
    strides: their strides.
  """
  num_classes: int = 10
  widths: Sequence[int] = (16, 16, 16, 32)
  strides: Sequence[int] = (1, 2, 1, 2)

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = conv3x3(self.widths[0])(x)
    for width, stride in zip(self.widths, self.strides):
      x = PreActBlock(width, stride, shortcut="B")(x, train)
    x = nn.relu(batch_norm(train)(x))
    x = jnp.mean(x, axis=(1, 2))
    return nn.Dense(self.num_classes)(x)
