"""pix2pix-style networks: a U-Net generator and a PatchGAN discriminator (flax linen).

Small versions of the pix2pix / pix2pix-HD architectures (Isola et al. 2017; Wang et
al. 2018) sized by ``features``: the defaults fit 28×28 digits on a CPU; the
paper-scale config widens and deepens them for 256×256 facades. Images are
``float32[B, H, W, C]`` in ``[-1, 1]``; ``H`` and ``W`` must be divisible by
``2 ** len(features)``.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class Networks:
  """The pix2pix networks of a run (``config.model.options``); hashable.

  Attributes:
    generator_features: channels of each U-Net down level.
    discriminator_features: channels of each PatchGAN stride-2 conv.
    spectral_norm: spectral normalization in the discriminator (the baseline's).

  Raises:
    ValueError: for an empty or non-positive channel list, or a non-bool
      ``spectral_norm``.
  """
  generator_features: Sequence[int] = (32, 64)
  discriminator_features: Sequence[int] = (32, 64)
  spectral_norm: bool = True

  def __post_init__(self):
    for name in ("generator_features", "discriminator_features"):
      feats = getattr(self, name)
      ok = isinstance(feats, (list, tuple)) and len(feats) > 0 and all(
          isinstance(f, (int, np.integer)) and not isinstance(f, bool) and f >= 1
          for f in feats)
      if not ok:
        raise ValueError(f"{name}={feats!r} must be a non-empty list of positive "
                         "channel counts")
      object.__setattr__(self, name, tuple(int(f) for f in feats))
    if not isinstance(self.spectral_norm, (bool, np.bool_)):
      raise ValueError(f"spectral_norm={self.spectral_norm!r} must be True or False")

  def check_image_shape(self, image_shape) -> None:
    """Raises ValueError unless H and W are divisible by ``2 ** levels`` of both nets."""
    h, w = image_shape[:2]
    for name in ("generator_features", "discriminator_features"):
      levels = 2 ** len(getattr(self, name))
      if h % levels or w % levels:
        raise ValueError(f"images {h}×{w} are not divisible by 2**len({name}) = {levels}; "
                         "use fewer levels")

  def generator(self, out_channels: int) -> "UNetGenerator":
    return UNetGenerator(self.generator_features, out_channels)

  def discriminator(self) -> "PatchDiscriminator":
    return PatchDiscriminator(self.discriminator_features, self.spectral_norm)


class UNetGenerator(nn.Module):
  """U-Net: strided-conv encoder, transposed-conv decoder, skip connections, tanh output.

  Attributes:
    features: channels of each down level (one stride-2 4×4 conv each).
    out_channels: channels of the generated image.
  """
  features: Sequence[int] = (32, 64)
  out_channels: int = 1

  @nn.compact
  def __call__(self, x):
    """``x: float32[B, H, W, C_in]`` condition → ``float32[B, H, W, out_channels]``."""
    h = nn.leaky_relu(nn.Conv(self.features[0], (3, 3))(x), 0.2)
    skips = []
    for f in self.features:
      skips.append(h)
      h = nn.Conv(f, (4, 4), strides=(2, 2))(h)
      h = nn.leaky_relu(nn.InstanceNorm()(h), 0.2)
    h = nn.relu(nn.InstanceNorm()(nn.Conv(self.features[-1], (3, 3))(h)))
    for f, skip in zip(reversed(self.features), reversed(skips)):
      h = nn.ConvTranspose(f, (4, 4), strides=(2, 2))(h)
      h = nn.relu(nn.InstanceNorm()(h))
      h = jnp.concatenate([h, skip], axis=-1)
    return jnp.tanh(nn.Conv(self.out_channels, (3, 3))(h))


class PatchDiscriminator(nn.Module):
  """PatchGAN: one raw output (logit / critic value) per receptive-field patch.

  The condition and the image are concatenated on channels (a conditional GAN). With
  ``spectral_norm`` every conv is wrapped in ``flax.linen.SpectralNorm`` (Miyato et al.
  2018; the dissertation's baseline) and instance norm is left out; its power-iteration
  vectors live in the ``batch_stats`` collection (``update_stats=True`` in the
  discriminator's own step, ``mutable=["batch_stats"]``).

  Attributes:
    features: channels of each stride-2 4×4 conv.
    spectral_norm: wrap convs in spectral normalization.
  """
  features: Sequence[int] = (32, 64)
  spectral_norm: bool = True

  def _conv(self, features, kernel, strides, h, update_stats):
    conv = nn.Conv(features, kernel, strides=strides)
    if self.spectral_norm:
      return nn.SpectralNorm(conv)(h, update_stats=update_stats)
    return conv(h)

  @nn.compact
  def __call__(self, condition, image, update_stats: bool = False):
    """Returns ``(outputs float32[B, h, w, 1], [features of each layer])``.

    The feature list (one ``float32[B, h_l, w_l, c_l]`` per conv layer) is what the
    discriminator-feature-matching loss compares (pix2pix-HD).
    """
    h = jnp.concatenate([condition, image], axis=-1)
    feats = []
    for i, f in enumerate(self.features):
      h = self._conv(f, (4, 4), (2, 2), h, update_stats)
      if i > 0 and not self.spectral_norm:
        h = nn.InstanceNorm()(h)
      h = nn.leaky_relu(h, 0.2)
      feats.append(h)
    h = nn.leaky_relu(self._conv(self.features[-1], (3, 3), (1, 1), h, update_stats), 0.2)
    feats.append(h)
    return self._conv(1, (3, 3), (1, 1), h, update_stats), feats
