"""EfficientNetV2-S (Tan & Le 2021), the NLFS paper's surrogate and evaluation model.

NLFS (Morgan & Hougen 2024, §3.5; appendix C) trains EfficientNetV2-S, built from the
Keras implementation (Li 2022), with 20.3 M parameters for CIFAR-10. This module follows
the architecture of Tan & Le 2021, Table 4, with Keras's conventions
(``keras.applications.EfficientNetV2S``):

======  ==========================  ======  ========  ======
stage   operator                     stride  channels  layers
======  ==========================  ======  ========  ======
0       conv 3×3                     2       24        1
1       Fused-MBConv1, k3×3          1       24        2
2       Fused-MBConv4, k3×3          2       48        4
3       Fused-MBConv4, k3×3          2       64        4
4       MBConv4, k3×3, SE 0.25       2       128       6
5       MBConv6, k3×3, SE 0.25       1       160       9
6       MBConv6, k3×3, SE 0.25       2       256       15
7       conv 1×1 & pooling & fc      -       1280      1
======  ==========================  ======  ========  ======

SiLU activations; batch norm (momentum 0.9, ε 1e-3) after every convolution; the
squeeze-and-excitation width is ``max(1, int(block input channels × 0.25))`` with biased
1×1 convolutions; stochastic depth with a drop rate rising linearly to ``0.2`` over the
blocks (only on residual blocks); dropout before the classifier (``dropout_rate``: 0.2
in Keras; NLFS's progressive schedule uses 0.1–0.4, Table 12). For 10 classes it has
20,190,298 trainable parameters plus 153,872 batch-norm statistics = 20,344,170, the
paper's "20.3 million" (Keras's ``EfficientNetV2S(weights=None, classes=10,
include_preprocessing=False).count_params()``); pinned in ``tests/test_nlfs_models.py``.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

# (conv_type, expand_ratio, kernel, strides, input, output, repeats, se_ratio):
# conv_type 1 = Fused-MBConv, 0 = MBConv.
V2_S_BLOCKS = (
    (1, 1, 3, 1, 24, 24, 2, 0.0),
    (1, 4, 3, 2, 24, 48, 4, 0.0),
    (1, 4, 3, 2, 48, 64, 4, 0.0),
    (0, 4, 3, 2, 64, 128, 6, 0.25),
    (0, 6, 3, 1, 128, 160, 9, 0.25),
    (0, 6, 3, 2, 160, 256, 15, 0.25),
)
_conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "truncated_normal")


def _bn(train: bool):
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-3)


def _conv(features: int, kernel: int, stride: int = 1, groups: int = 1, bias=False):
  return nn.Conv(features, (kernel, kernel), strides=(stride, stride), padding="SAME",
                 feature_group_count=groups, use_bias=bias, kernel_init=_conv_init)


class _Block(nn.Module):
  """One (Fused-)MBConv block (Keras ``MBConvBlock`` / ``FusedMBConvBlock``)."""
  fused: bool
  expand_ratio: int
  kernel: int
  stride: int
  input_filters: int
  output_filters: int
  se_ratio: float
  drop_rate: float

  @nn.compact
  def __call__(self, inputs, train: bool):
    filters = self.input_filters * self.expand_ratio
    x = inputs
    if self.fused:
      if self.expand_ratio != 1:
        x = nn.silu(_bn(train)(_conv(filters, self.kernel, self.stride)(x)))
    else:
      if self.expand_ratio != 1:
        x = nn.silu(_bn(train)(_conv(filters, 1)(x)))
      x = nn.silu(_bn(train)(_conv(filters, self.kernel, self.stride, groups=filters)(x)))
    if 0 < self.se_ratio <= 1:
      se_filters = max(1, int(self.input_filters * self.se_ratio))
      se = jnp.mean(x, axis=(1, 2), keepdims=True)
      se = nn.silu(_conv(se_filters, 1, bias=True)(se))
      se = nn.sigmoid(_conv(filters, 1, bias=True)(se))
      x = x * se
    if self.fused and self.expand_ratio == 1:
      x = nn.silu(_bn(train)(_conv(self.output_filters, self.kernel, self.stride)(x)))
    else:
      x = _bn(train)(_conv(self.output_filters, 1)(x))
    if self.stride == 1 and self.input_filters == self.output_filters:
      if self.drop_rate > 0:
        x = nn.Dropout(self.drop_rate, broadcast_dims=(1, 2, 3),
                       deterministic=not train)(x)
      x = x + inputs
    return x


class EfficientNetV2S(nn.Module):
  """EfficientNetV2-S (module docstring).

  Attributes:
    num_classes: output size.
    dropout_rate: dropout before the classifier (Keras 0.2; NLFS phases 0.1–0.4).
    drop_connect_rate: final stochastic-depth rate (0.2).
    blocks: the block table (:data:`V2_S_BLOCKS`).
    stem_filters, top_filters: 24 and 1280.
  """
  num_classes: int = 10
  dropout_rate: float = 0.2
  drop_connect_rate: float = 0.2
  blocks: Sequence = V2_S_BLOCKS
  stem_filters: int = 24
  top_filters: int = 1280

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = nn.silu(_bn(train)(_conv(self.stem_filters, 3, 2)(x)))
    total = sum(b[6] for b in self.blocks)
    index = 0
    for conv_type, expand, kernel, stride, inp, out, repeats, se in self.blocks:
      for j in range(repeats):
        x = _Block(fused=conv_type == 1, expand_ratio=expand, kernel=kernel,
                   stride=stride if j == 0 else 1,
                   input_filters=inp if j == 0 else out, output_filters=out, se_ratio=se,
                   drop_rate=self.drop_connect_rate * index / total)(x, train)
        index += 1
    x = nn.silu(_bn(train)(_conv(self.top_filters, 1)(x)))
    x = jnp.mean(x, axis=(1, 2))
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return nn.Dense(self.num_classes)(x)
