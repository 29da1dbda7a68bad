r"""RandAugment in JAX, with progressive magnitude (EfficientNetV2's progressive learning).

RandAugment (Cubuk et al. 2020) applies ``N`` operations, each drawn uniformly from a
fixed list, to every image, all at one global magnitude ``M``. EfficientNetV2 (Tan & Le
2021, Alg. 1) raises ``M`` (with image size and dropout) over ``K`` training stages:
stage ``i`` uses :math:`M_i = M_0 + (M_e - M_0)\,i/(K-1)`; NLFS (Table 12) uses
``M = 5, 8, 12, 15`` over four phases. No maintained JAX library ships RandAugment
(``dm-pix`` has some of the colour ops, not the policy), so this is our implementation of
the TensorFlow Model Garden policy the NLFS authors' code used (``tf-models``
``RandAugment``, ``_MAX_LEVEL = 10``), on float images in [0, 1]:

==============  =====================================================================
op              effect at magnitude ``M`` (level ``m = M / 10``)
==============  =====================================================================
AutoContrast    stretch each channel to [0, 1]
Equalize        histogram equalization per channel (256 bins)
Invert          ``1 - x``
Rotate          ``±30·m`` degrees (sign random), fill 0.5
Posterize       keep ``8 - int(4·m)`` bits (≥ 1)
Solarize        invert pixels ≥ ``1 - m`` (stronger with M)
SolarizeAdd     add ``110·m / 255`` to pixels < 0.5, clip
Color           blend with grayscale, factor ``1.8·m + 0.1``
Contrast        blend with the mean gray level, factor ``1.8·m + 0.1``
Brightness      blend with black, factor ``1.8·m + 0.1``
Sharpness       blend with a 3×3 smoothed image, factor ``1.8·m + 0.1``
ShearX/ShearY   shear ``±0.3·m`` (sign random), fill 0.5
TranslateX/Y    shift ``±0.45·m`` of the side (tf-models: 100 px of 224), fill 0.5
Cutout          a square of side ``0.18·m`` of the image (tf-models: 40 of 224) set to 0.5
==============  =====================================================================

Where tf-models' convention weakens an op as ``M`` grows (Solarize's threshold,
Posterize's bits) we use the direction that strengthens it, as timm and the RandAugment
paper's intent do. Geometric ops sample with nearest-neighbour interpolation. Each image
draws its own ops and signs; ``M`` may be a traced scalar, so a magnitude schedule never
recompiles.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

OPS = ("AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize",
       "SolarizeAdd", "Color", "Contrast", "Brightness", "Sharpness", "ShearX", "ShearY",
       "TranslateX", "TranslateY", "Cutout")
MAX_LEVEL = 10.0
FILL = 0.5


def _gray(image):
  """ITU-R 601 luma (PIL's ``convert("L")``); a one-channel image is its own gray."""
  if image.shape[-1] == 1:
    return image
  return jnp.sum(image * jnp.asarray([0.299, 0.587, 0.114]), axis=-1, keepdims=True)


def _blend(degenerate, image, factor):
  return jnp.clip(degenerate + factor * (image - degenerate), 0.0, 1.0)


def _affine(image, matrix, fill=FILL):
  """Output pixel ``(r, c)`` takes input ``matrix @ (r - r0, c - c0) + (r0, c0)`` (centre
  ``(r0, c0)``), nearest neighbour; outside pixels get ``fill``."""
  h, w, _ = image.shape
  r0, c0 = (h - 1) / 2.0, (w - 1) / 2.0
  rr, cc = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32) - r0,
                        jnp.arange(w, dtype=jnp.float32) - c0, indexing="ij")
  src_r = matrix[0, 0] * rr + matrix[0, 1] * cc + matrix[0, 2] + r0
  src_c = matrix[1, 0] * rr + matrix[1, 1] * cc + matrix[1, 2] + c0
  ri, ci = jnp.round(src_r).astype(jnp.int32), jnp.round(src_c).astype(jnp.int32)
  inside = (ri >= 0) & (ri < h) & (ci >= 0) & (ci < w)
  out = image[jnp.clip(ri, 0, h - 1), jnp.clip(ci, 0, w - 1)]
  return jnp.where(inside[..., None], out, fill)


def auto_contrast(image, level=None, sign=None):
  lo = jnp.min(image, axis=(0, 1), keepdims=True)
  hi = jnp.max(image, axis=(0, 1), keepdims=True)
  scaled = (image - lo) / jnp.where(hi > lo, hi - lo, 1.0)
  return jnp.where(hi > lo, scaled, image)


def equalize(image, level=None, sign=None):
  """Per-channel histogram equalization (PIL/tf-models ``equalize``) on 256 levels."""
  q = jnp.clip(jnp.round(image * 255.0), 0, 255).astype(jnp.int32)

  def channel(c):
    hist = jnp.zeros(256, jnp.int32).at[c.reshape(-1)].add(1)
    last = hist[255 - jnp.argmax(hist[::-1] > 0)]          # count of the top level
    step = (jnp.sum(hist) - last) // 255
    lut = (jnp.cumsum(hist) + step // 2) // jnp.maximum(step, 1)
    lut = jnp.clip(jnp.concatenate([jnp.zeros(1, jnp.int32), lut[:-1]]), 0, 255)
    return jnp.where(step == 0, c, lut[c])

  out = jax.vmap(channel, in_axes=-1, out_axes=-1)(q)
  return out.astype(jnp.float32) / 255.0


def invert(image, level=None, sign=None):
  return 1.0 - image


def rotate(image, level, sign):
  angle = jnp.deg2rad(30.0 * level / MAX_LEVEL) * sign
  cos, sin = jnp.cos(angle), jnp.sin(angle)
  return _affine(image, jnp.array([[cos, -sin, 0.0], [sin, cos, 0.0]]))


def posterize(image, level, sign=None):
  bits = jnp.clip(8 - jnp.floor(4.0 * level / MAX_LEVEL), 1, 8)
  shift = 2.0 ** (8 - bits)
  q = jnp.floor(jnp.clip(jnp.round(image * 255.0), 0, 255) / shift) * shift
  return q / 255.0


def solarize(image, level, sign=None):
  threshold = 1.0 - level / MAX_LEVEL
  return jnp.where(image >= threshold, 1.0 - image, image)


def solarize_add(image, level, sign=None):
  added = jnp.clip(image + 110.0 * level / MAX_LEVEL / 255.0, 0.0, 1.0)
  return jnp.where(image < 0.5, added, image)


def _enhance_factor(level):
  return 1.8 * level / MAX_LEVEL + 0.1


def color(image, level, sign=None):
  return _blend(jnp.broadcast_to(_gray(image), image.shape), image, _enhance_factor(level))


def contrast(image, level, sign=None):
  mean = jnp.mean(_gray(image))
  return _blend(jnp.full(image.shape, mean), image, _enhance_factor(level))


def brightness(image, level, sign=None):
  return _blend(jnp.zeros_like(image), image, _enhance_factor(level))


def sharpness(image, level, sign=None):
  kernel = jnp.array([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]]) / 13.0
  padded = jnp.pad(image, ((1, 1), (1, 1), (0, 0)), mode="edge")
  h, w, _ = image.shape
  smooth = sum(kernel[i, j] * padded[i:i + h, j:j + w] for i in range(3) for j in range(3))
  # PIL keeps the border pixels of the original.
  border = np.ones((h, w, 1), bool)
  border[1:-1, 1:-1] = False
  smooth = jnp.where(border, image, smooth)
  return _blend(smooth, image, _enhance_factor(level))


def shear_x(image, level, sign):
  s = 0.3 * level / MAX_LEVEL * sign
  return _affine(image, jnp.array([[1.0, 0.0, 0.0], [s, 1.0, 0.0]]))


def shear_y(image, level, sign):
  s = 0.3 * level / MAX_LEVEL * sign
  return _affine(image, jnp.array([[1.0, s, 0.0], [0.0, 1.0, 0.0]]))


def translate_x(image, level, sign):
  dx = jnp.round(0.45 * level / MAX_LEVEL * image.shape[1]) * sign
  return _affine(image, jnp.array([[1.0, 0.0, 0.0], [0.0, 1.0, -dx]]))


def translate_y(image, level, sign):
  dy = jnp.round(0.45 * level / MAX_LEVEL * image.shape[0]) * sign
  return _affine(image, jnp.array([[1.0, 0.0, -dy], [0.0, 1.0, 0.0]]))


def cutout_square(image, level, sign, key=None):
  h, w, _ = image.shape
  size = jnp.round(0.18 * level / MAX_LEVEL * min(h, w)).astype(jnp.int32)
  k1, k2 = jax.random.split(key)
  cy, cx = jax.random.randint(k1, (), 0, h), jax.random.randint(k2, (), 0, w)
  ys, xs = jnp.arange(h)[:, None], jnp.arange(w)[None, :]
  inside = (jnp.abs(ys - cy) * 2 < size) & (jnp.abs(xs - cx) * 2 < size)
  return jnp.where(inside[..., None], FILL, image)


_FUNCTIONS = (auto_contrast, equalize, invert, rotate, posterize, solarize, solarize_add,
              color, contrast, brightness, sharpness, shear_x, shear_y, translate_x,
              translate_y, cutout_square)
assert len(_FUNCTIONS) == len(OPS)


def apply_op(index, image, level, sign, key):
  """Applies ``OPS[index]`` (a traced int) to one ``float32[H, W, C]`` image."""
  branches = [lambda im, f=f: f(im, level, sign) for f in _FUNCTIONS[:-1]]
  branches.append(lambda im: cutout_square(im, level, sign, key))
  return jax.lax.switch(index, branches, image)


def rand_augment(key: jax.Array, images: jax.Array, num_ops: int = 2,
                 magnitude: float | jax.Array = 10.0,
                 ops: Sequence[str] = OPS) -> jax.Array:
  """RandAugment on a batch: ``num_ops`` random ops per image at ``magnitude``.

  Args:
    key: PRNG key.
    images: ``float32[B, H, W, C]`` in [0, 1] (C = 1 or 3).
    num_ops: operations applied in sequence to each image (N; 2 in EfficientNetV2).
    magnitude: M on tf-models' scale (10 = the reference strength; NLFS uses 5–15);
      may be traced.
    ops: the subset of :data:`OPS` to draw from (uniformly).

  Returns:
    ``float32[B, H, W, C]`` in [0, 1].

  Raises:
    ValueError: for an unknown op name or ``num_ops < 0``.
  """
  if num_ops < 0:
    raise ValueError(f"rand_augment: num_ops must be ≥ 0, got {num_ops}")
  unknown = [o for o in ops if o not in OPS]
  if unknown or not ops:
    raise ValueError(f"rand_augment: unknown ops {unknown}; known: {OPS}")
  allowed = jnp.asarray([OPS.index(o) for o in ops], jnp.int32)
  level = jnp.asarray(magnitude, jnp.float32)

  def one(k, image):
    for i in range(num_ops):
      k, k_op, k_sign, k_cut = jax.random.split(k, 4)
      index = allowed[jax.random.randint(k_op, (), 0, allowed.size)]
      sign = jnp.where(jax.random.bernoulli(k_sign), 1.0, -1.0)
      image = apply_op(index, image, level, sign, k_cut)
    return image

  return jax.vmap(one)(jax.random.split(key, images.shape[0]), images)


def stage_magnitudes(magnitudes: Sequence[float], stages: int) -> tuple[float, ...]:
  r"""The magnitude of each of ``stages`` training stages.

  ``(M,)``: constant. ``(M0, Me)``: EfficientNetV2's linear ramp (Tan & Le 2021, Alg. 1),
  :math:`M_i = M_0 + (M_e - M_0) \cdot i / (K - 1)`. ``K`` values: one per stage
  (NLFS Table 12: ``(5, 8, 12, 15)``).

  Raises:
    ValueError: for ``stages < 1``, no magnitudes, or a per-stage list whose length is
      not ``stages``.
  """
  magnitudes = tuple(float(m) for m in magnitudes)
  if stages < 1 or not magnitudes:
    raise ValueError(f"stage_magnitudes: need stages ≥ 1 and a magnitude, got "
                     f"{magnitudes}, stages={stages}")
  if len(magnitudes) == 1:
    return magnitudes * stages
  if len(magnitudes) == 2:
    m0, m1 = magnitudes
    if stages == 1:
      return (m0,)
    return tuple(m0 + (m1 - m0) * i / (stages - 1) for i in range(stages))
  if len(magnitudes) != stages:
    raise ValueError(f"stage_magnitudes: {len(magnitudes)} per-stage magnitudes for "
                     f"{stages} stages")
  return magnitudes


def progressive_magnitude(progress: float | jax.Array, magnitudes: Sequence[float],
                          stages: int) -> jax.Array:
  """The magnitude at ``progress`` (fraction of training done, may be traced): training
  is split into ``stages`` equal parts with :func:`stage_magnitudes`."""
  table = jnp.asarray(stage_magnitudes(magnitudes, stages), jnp.float32)
  i = jnp.clip(jnp.floor(jnp.asarray(progress, jnp.float32) * stages), 0, stages - 1)
  return table[i.astype(jnp.int32)]
