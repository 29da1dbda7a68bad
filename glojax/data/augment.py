"""Data augmentation in JAX, applied to a batch inside the compiled training step.

An :class:`Augmentation` is built from a spec string (so configs stay plain data), e.g.
``"pad_crop=4,flip,cutout=16,normalize=per_channel"``. Tokens, comma-separated, applied
in this order during training:

==========================  ============================================================
``crop=S``                   random S×S crop (GLO CIFAR CNN: 24); centre crop at eval
``pad_crop=P``               zero-pad P pixels, random crop back to H×W (ResNet recipe: 4)
``flip``                     horizontal flip with probability 1/2
``brightness=D``             add U(−D, D)/255 per image (TF tutorial: 63)
``contrast=LO:HI``           scale each channel's deviation from its mean by U(LO, HI)
``normalize=per_channel``    (x − mean_c) / std_c, train-split statistics (also at eval)
``normalize=per_image``      ``tf.image.per_image_standardization`` (also at eval)
``cutout=S``                 zero one S×S square per image, centre uniform, clipped (16)
``cutout_holes=N``           number of Cutout squares (default 1)
``cutmix=P``                 CutMix on the batch with probability P (0.5), soft labels
``cutmix_alpha=A``           Beta(A, A) for the CutMix area (default 1)
``resize=S``                 bilinear resize to S×S, first (also at eval; NLFS: 96)
``randaugment=N``            RandAugment, N ops per image (:mod:`glojax.data.randaugment`)
``randaugment_magnitude=M``  its magnitude (default 10); ``M0:Me`` ramps it over the
                             stages (EfficientNetV2), ``M1:M2:...:MK`` gives each stage's
``randaugment_stages=K``     the number of equal stages of training (default 1)
==========================  ============================================================

RandAugment runs right after the resize, on [0, 1] images, before the other tokens.

``train(key, images, labels) -> (images, labels)`` takes ``images: float32[B, H, W, C]``
in [0, 1] and one-hot (or soft) ``labels: float32[B, n]``; ``evaluate(images)`` applies
only the deterministic part (centre crop, normalization).

References: random crop + flip: He et al. 2016 §4.2; Cutout: DeVries & Taylor 2017;
CutMix: Yun et al. 2019 (Alg. A1); per-image standardization: TensorFlow CIFAR-10
tutorial (GLO's CIFAR CNN, dissertation §3.2.1).
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

NORMALIZATIONS = ("none", "per_channel", "per_image")


@dataclasses.dataclass(frozen=True)
class Augmentation:
  """A batch augmentation pipeline (see the module docstring for the fields' meaning).

  ``mean`` and ``std`` (per channel, in [0, 1] units) are required for
  ``normalize="per_channel"``; :meth:`with_statistics` fills them from training images.
  """
  crop: int = 0
  pad_crop: int = 0
  flip: bool = False
  brightness: float = 0.0
  contrast: Optional[tuple[float, float]] = None
  normalize: str = "none"
  cutout: int = 0
  cutout_holes: int = 1
  cutmix: float = 0.0
  cutmix_alpha: float = 1.0
  resize: int = 0
  randaugment: int = 0
  randaugment_magnitude: tuple = (10.0,)
  randaugment_stages: int = 1
  mean: Optional[tuple[float, ...]] = None
  std: Optional[tuple[float, ...]] = None

  def __post_init__(self):
    if self.normalize not in NORMALIZATIONS:
      raise ValueError(f"augmentation normalize={self.normalize!r} is not one of "
                       f"{NORMALIZATIONS}")
    for name in ("crop", "pad_crop", "cutout", "cutout_holes"):
      if getattr(self, name) < 0:
        raise ValueError(f"augmentation {name} must be >= 0, got {getattr(self, name)}")
    if not 0.0 <= self.cutmix <= 1.0:
      raise ValueError(f"augmentation cutmix probability must be in [0, 1], got {self.cutmix}")
    if self.cutmix_alpha <= 0:
      raise ValueError(f"augmentation cutmix_alpha must be > 0, got {self.cutmix_alpha}")
    if self.resize < 0 or self.randaugment < 0 or self.randaugment_stages < 1:
      raise ValueError(f"augmentation resize/randaugment must be >= 0 and "
                       f"randaugment_stages >= 1, got {self.resize}, {self.randaugment}, "
                       f"{self.randaugment_stages}")
    if min(self.randaugment_magnitude) < 0:
      raise ValueError(f"augmentation randaugment_magnitude must be >= 0, got "
                       f"{self.randaugment_magnitude}")
    from glojax.data import randaugment
    randaugment.stage_magnitudes(self.randaugment_magnitude, self.randaugment_stages)
    if self.contrast is not None and not 0 <= self.contrast[0] <= self.contrast[1]:
      raise ValueError(f"augmentation contrast range must be 0 <= lo <= hi, "
                       f"got {self.contrast}")

  @property
  def is_identity(self) -> bool:
    return self == Augmentation(mean=self.mean, std=self.std)

  def needs_statistics(self) -> bool:
    return self.normalize == "per_channel" and self.mean is None

  def with_statistics(self, train_images: np.ndarray) -> "Augmentation":
    """Fills ``mean``/``std`` from ``train_images: float[N, H, W, C]`` if needed."""
    if not self.needs_statistics():
      return self
    x = np.asarray(train_images, np.float64)
    mean = tuple(float(v) for v in x.mean(axis=(0, 1, 2)))
    std = tuple(float(v) for v in np.maximum(x.std(axis=(0, 1, 2)), 1e-6))
    return dataclasses.replace(self, mean=mean, std=std)

  def output_shape(self, image_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Shape ``[H', W', C]`` of an image after this pipeline."""
    h, w, c = image_shape
    if self.resize:
      h = w = self.resize
    if self.crop:
      if self.crop > min(h, w):
        raise ValueError(f"augmentation crop={self.crop} is larger than the images "
                         f"({h}×{w})")
      return (self.crop, self.crop, c)
    return (h, w, c)

  # ---- deterministic part ---------------------------------------------------------

  def _normalize(self, images):
    if self.normalize == "per_channel":
      if self.mean is None or self.std is None:
        raise ValueError("normalize=per_channel needs mean/std: call with_statistics "
                         "(the Trainer does this from the train split)")
      return (images - jnp.asarray(self.mean)) / jnp.asarray(self.std)
    if self.normalize == "per_image":
      return per_image_standardization(images)
    return images

  def evaluate(self, images: jax.Array) -> jax.Array:
    """Resize, centre crop (if set) and normalization of ``float32[B, H, W, C]`` images."""
    images = self._resize(images)
    if self.crop:
      h, w = images.shape[1:3]
      top, left = (h - self.crop) // 2, (w - self.crop) // 2
      images = images[:, top:top + self.crop, left:left + self.crop]
    return self._normalize(images)

  def _resize(self, images):
    if not self.resize:
      return images
    b, _, _, c = images.shape
    return jax.image.resize(images, (b, self.resize, self.resize, c), "bilinear")

  # ---- random part ----------------------------------------------------------------

  def train(self, key: jax.Array, images: jax.Array, labels: jax.Array,
            progress: float | jax.Array = 0.0):
    """Augments one training batch.

    Args:
      key: ``uint32[2]`` PRNG key.
      images: ``float32[B, H, W, C]`` in [0, 1].
      labels: ``float32[B, n]`` one-hot or soft labels.
      progress: fraction of training done, in [0, 1] (may be traced): selects the
        RandAugment stage of a progressive magnitude.

    Returns:
      ``(images, labels)``; images are ``[B, H', W', C]`` (see :meth:`output_shape`),
      labels are soft after CutMix, unchanged otherwise.
    """
    images = self._resize(images)
    if self.randaugment:
      from glojax.data import randaugment
      magnitude = randaugment.progressive_magnitude(
          progress, self.randaugment_magnitude, self.randaugment_stages)
      images = randaugment.rand_augment(jax.random.fold_in(key, 7), images,
                                        self.randaugment, magnitude)
    keys = jax.random.split(key, 7)
    if self.crop:
      images = random_crop(keys[0], images, self.crop, self.crop)
    if self.pad_crop:
      images = pad_and_crop(keys[1], images, self.pad_crop)
    if self.flip:
      images = random_flip(keys[2], images)
    if self.brightness:
      delta = jax.random.uniform(keys[3], (images.shape[0], 1, 1, 1), minval=-1.0,
                                 maxval=1.0) * (self.brightness / 255.0)
      images = images + delta
    if self.contrast is not None:
      lo, hi = self.contrast
      factor = jax.random.uniform(keys[4], (images.shape[0], 1, 1, 1), minval=lo, maxval=hi)
      mean = jnp.mean(images, axis=(1, 2), keepdims=True)
      images = (images - mean) * factor + mean
    images = self._normalize(images)
    if self.cutout:
      images = cutout(keys[5], images, self.cutout, self.cutout_holes)
    if self.cutmix:
      images, labels = cutmix(keys[6], images, labels, self.cutmix, self.cutmix_alpha)
    return images, labels


def per_image_standardization(images: jax.Array) -> jax.Array:
  """``(x − mean) / max(std, 1/sqrt(N))`` per image (``tf.image.per_image_standardization``).

  Args:
    images: ``float[B, H, W, C]``; statistics over each image's ``N = H·W·C`` values.
  """
  n = np.prod(images.shape[1:])
  mean = jnp.mean(images, axis=(1, 2, 3), keepdims=True)
  std = jnp.std(images, axis=(1, 2, 3), keepdims=True)
  return (images - mean) / jnp.maximum(std, 1.0 / np.sqrt(n))


def random_crop(key: jax.Array, images: jax.Array, height: int, width: int) -> jax.Array:
  """An independent uniformly placed ``height×width`` crop of each image in ``[B, H, W, C]``."""
  b, h, w, c = images.shape
  ky, kx = jax.random.split(key)
  tops = jax.random.randint(ky, (b,), 0, h - height + 1)
  lefts = jax.random.randint(kx, (b,), 0, w - width + 1)
  crop = lambda im, t, l: jax.lax.dynamic_slice(im, (t, l, 0), (height, width, c))
  return jax.vmap(crop)(images, tops, lefts)


def pad_and_crop(key: jax.Array, images: jax.Array, padding: int) -> jax.Array:
  """Zero-pads ``padding`` pixels on each side, then random-crops back to ``H×W``."""
  h, w = images.shape[1:3]
  padded = jnp.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
  return random_crop(key, padded, h, w)


def random_flip(key: jax.Array, images: jax.Array) -> jax.Array:
  """Mirrors each image left-right with probability 1/2."""
  flip = jax.random.bernoulli(key, 0.5, (images.shape[0], 1, 1, 1))
  return jnp.where(flip, images[:, :, ::-1, :], images)


def cutout(key: jax.Array, images: jax.Array, size: int, holes: int = 1) -> jax.Array:
  """Cutout: zeroes ``holes`` squares of side ``size`` per image.

  Each square's centre is uniform over the image and the square is clipped at the
  border (DeVries & Taylor 2017), so it may cover less than ``size²`` pixels.

  Args:
    key: PRNG key.
    images: ``float[B, H, W, C]`` (after normalization, so 0 is the mean).
    size: side of the square in pixels (16 for CIFAR-10).
    holes: number of squares per image.
  """
  b, h, w, _ = images.shape
  ky, kx = jax.random.split(key)
  cy = jax.random.randint(ky, (b, holes), 0, h)
  cx = jax.random.randint(kx, (b, holes), 0, w)
  ys = jnp.arange(h)[None, None, :, None]
  xs = jnp.arange(w)[None, None, None, :]
  y0, x0 = cy[..., None, None] - size // 2, cx[..., None, None] - size // 2
  inside = (ys >= y0) & (ys < y0 + size) & (xs >= x0) & (xs < x0 + size)
  keep = ~jnp.any(inside, axis=1)
  return images * keep[..., None].astype(images.dtype)


def cutmix(key: jax.Array, images: jax.Array, labels: jax.Array, prob: float = 0.5,
           alpha: float = 1.0):
  """CutMix on a batch (Yun et al. 2019): paste a box from a shuffled batch, mix labels.

  With probability ``prob`` (once per batch, as in the authors' code), λ ~ Beta(α, α),
  a box of area ``(1 − λ)·H·W`` is placed at a uniform centre (clipped), every image
  receives that box from ``images[perm]``, and the labels become
  ``λ' labels + (1 − λ') labels[perm]`` with λ' the exact kept fraction.

  Args:
    key: PRNG key.
    images: ``float[B, H, W, C]``.
    labels: ``float[B, n]`` one-hot or soft labels.
    prob: probability of applying CutMix to this batch.
    alpha: Beta distribution parameter.

  Returns:
    ``(images, labels)`` of the input shapes.
  """
  b, h, w, _ = images.shape
  k_apply, k_lam, k_perm, k_y, k_x = jax.random.split(key, 5)
  apply = jax.random.bernoulli(k_apply, prob)
  lam = jax.random.beta(k_lam, alpha, alpha)
  perm = jax.random.permutation(k_perm, b)
  cut = jnp.sqrt(1.0 - lam)
  cut_h = jnp.floor(h * cut).astype(jnp.int32)
  cut_w = jnp.floor(w * cut).astype(jnp.int32)
  cy = jax.random.randint(k_y, (), 0, h)
  cx = jax.random.randint(k_x, (), 0, w)
  y0, y1 = jnp.clip(cy - cut_h // 2, 0, h), jnp.clip(cy + cut_h // 2, 0, h)
  x0, x1 = jnp.clip(cx - cut_w // 2, 0, w), jnp.clip(cx + cut_w // 2, 0, w)
  ys = jnp.arange(h)[:, None]
  xs = jnp.arange(w)[None, :]
  box = (ys >= y0) & (ys < y1) & (xs >= x0) & (xs < x1) & apply
  mixed = jnp.where(box[None, :, :, None], images[perm], images)
  kept = 1.0 - jnp.sum(box) / (h * w)
  return mixed, kept * labels + (1.0 - kept) * labels[perm]


def parse(spec: str) -> Augmentation:
  """Builds an :class:`Augmentation` from a spec string (module docstring).

  Args:
    spec: comma-separated tokens, e.g. ``"pad_crop=4,flip,cutout=16"``; ``""`` or
      ``"none"`` means no augmentation.

  Raises:
    ValueError: for an unknown token or a malformed value (the message names it).
  """
  if isinstance(spec, Augmentation):
    return spec
  fields: dict = {}
  for token in (t.strip() for t in str(spec).split(",")):
    if not token or token == "none":
      continue
    name, _, value = token.partition("=")
    name = name.strip()
    try:
      if name == "flip":
        fields["flip"] = value in ("", "1", "true", "True")
      elif name in ("crop", "pad_crop", "cutout", "cutout_holes", "resize", "randaugment",
                    "randaugment_stages"):
        fields[name] = int(value)
      elif name == "randaugment_magnitude":
        fields[name] = tuple(float(v) for v in value.split(":"))
      elif name in ("brightness", "cutmix", "cutmix_alpha"):
        fields[name] = float(value) if value else (0.5 if name == "cutmix" else 1.0)
      elif name == "contrast":
        lo, hi = value.split(":")
        fields["contrast"] = (float(lo), float(hi))
      elif name == "normalize":
        fields["normalize"] = value
      else:
        raise ValueError(f"unknown augmentation {name!r} in {spec!r}; known: crop, "
                         "pad_crop, flip, brightness, contrast, normalize, cutout, "
                         "cutout_holes, cutmix, cutmix_alpha, resize, randaugment, "
                         "randaugment_magnitude, randaugment_stages")
    except (TypeError, ValueError) as e:
      if "unknown augmentation" in str(e):
        raise
      raise ValueError(f"bad augmentation token {token!r} in {spec!r}: {e}") from None
  return Augmentation(**fields)
