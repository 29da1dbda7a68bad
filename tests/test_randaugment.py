"""RandAugment ops, the policy and its progressive magnitude (hand-computed values)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from glojax.data import augment
from glojax.data import randaugment as R


def _image(h=20, w=20, c=3, seed=0):
  return jnp.asarray(np.random.default_rng(seed).uniform(size=(h, w, c)), jnp.float32)


def test_invert_solarize_posterize():
  x = _image()
  np.testing.assert_allclose(R.invert(x), 1 - x)
  # Level 5: threshold 0.5; pixels at or above it are inverted.
  np.testing.assert_allclose(R.solarize(x, 5.0), np.where(x >= 0.5, 1 - x, x))
  # Level 10: 4 bits kept: multiples of 16/255.
  q = np.asarray(R.posterize(x, 10.0)) * 255
  np.testing.assert_allclose(q % 16, 0, atol=1e-3)
  assert np.all(np.asarray(R.posterize(x, 0.0)) * 255 % 1 < 1e-3)   # 8 bits: rounding


def test_auto_contrast_and_equalize_by_hand():
  x = _image() * 0.5 + 0.2
  y = np.asarray(R.auto_contrast(x))
  np.testing.assert_allclose(y.min(axis=(0, 1)), 0.0, atol=1e-6)
  np.testing.assert_allclose(y.max(axis=(0, 1)), 1.0, atol=1e-6)
  flat = jnp.full((4, 4, 1), 0.3)
  np.testing.assert_allclose(R.auto_contrast(flat), flat)
  # 1,024 pixels: 512 at level 0, 256 at 10, 256 at 20. PIL's equalize: step =
  # (1024 - 256) // 255 = 3, lut[10] = (512 + 1) // 3 = 171, lut[20] = 256 → 255.
  img = np.zeros((32, 32, 1), np.float32)
  img.reshape(-1)[512:768] = 10 / 255
  img.reshape(-1)[768:] = 20 / 255
  out = np.round(np.asarray(R.equalize(jnp.asarray(img))) * 255).reshape(-1)
  assert set(out[:512]) == {0} and set(out[512:768]) == {171} and set(out[768:]) == {255}


def test_enhance_ops_are_identity_at_level_5_and_color_0_is_gray():
  x = _image()
  for op in (R.color, R.contrast, R.brightness, R.sharpness):
    np.testing.assert_allclose(op(x, 5.0), x, atol=1e-6, err_msg=op.__name__)
  # Level 0: factor 0.1 — 90 % of the way to the degenerate image.
  gray = 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]
  expected = gray[..., None] + 0.1 * (x - gray[..., None])
  np.testing.assert_allclose(R.color(x, 0.0), np.clip(expected, 0, 1), atol=1e-6)
  np.testing.assert_allclose(R.brightness(x, 0.0), 0.1 * x, atol=1e-6)


def test_geometric_ops():
  x = _image()
  for op in (R.rotate, R.shear_x, R.shear_y, R.translate_x, R.translate_y):
    np.testing.assert_allclose(op(x, 0.0, 1.0), x, err_msg=op.__name__)
  # Level 10 on a 20-pixel side: a 9-pixel shift, 0.5 fill.
  t = np.asarray(R.translate_x(x, 10.0, 1.0))
  np.testing.assert_allclose(t[:, 9:], np.asarray(x)[:, :11])
  np.testing.assert_allclose(t[:, :9], 0.5)
  t = np.asarray(R.translate_y(x, 10.0, -1.0))
  np.testing.assert_allclose(t[:11], np.asarray(x)[9:])
  # A 90° rotation would be level 30: rotating back recovers the centre pixel.
  r = R.rotate(R.rotate(x, 10.0, 1.0), 10.0, -1.0)
  np.testing.assert_allclose(np.asarray(r)[10, 10], np.asarray(x)[10, 10])


def test_cutout_square_area():
  x = jnp.zeros((50, 50, 1))
  out = np.asarray(R.cutout_square(x, 10.0, 1.0, jax.random.PRNGKey(3)))
  # Side round(0.18 * 50) = 9: at most 81 pixels (fewer when clipped at a border).
  assert 0 < np.sum(out == 0.5) <= 81


def test_rand_augment_batch_properties():
  images = jnp.stack([_image(seed=i) for i in range(8)])
  f = jax.jit(lambda k, m: R.rand_augment(k, images, 2, m))
  a = f(jax.random.PRNGKey(0), 10.0)
  assert a.shape == images.shape
  assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
  np.testing.assert_array_equal(a, f(jax.random.PRNGKey(0), 10.0))     # deterministic
  assert not np.allclose(a, f(jax.random.PRNGKey(1), 10.0))
  b = f(jax.random.PRNGKey(0), 3.0)                                  # traced magnitude
  assert not np.allclose(a, b)
  assert f._cache_size() == 1
  np.testing.assert_array_equal(R.rand_augment(jax.random.PRNGKey(0), images, 0), images)
  with pytest.raises(ValueError, match="unknown ops"):
    R.rand_augment(jax.random.PRNGKey(0), images, 1, ops=("Blur",))


def test_progressive_magnitude_schedules():
  assert R.stage_magnitudes((5, 15), 4) == pytest.approx((5, 25 / 3, 35 / 3, 15))
  assert R.stage_magnitudes((5, 8, 12, 15), 4) == (5, 8, 12, 15)      # NLFS Table 12
  assert R.stage_magnitudes((7,), 3) == (7, 7, 7)
  got = [float(R.progressive_magnitude(p, (5, 8, 12, 15), 4))
         for p in (0.0, 0.24, 0.25, 0.6, 0.99, 1.0)]
  assert got == [5, 5, 8, 12, 15, 15]
  with pytest.raises(ValueError, match="per-stage"):
    R.stage_magnitudes((1, 2, 3), 4)


def test_augment_spec_with_resize_and_progressive_randaugment():
  aug = augment.parse("resize=24,randaugment=2,randaugment_magnitude=5:8:12:15,"
                      "randaugment_stages=4")
  assert aug.output_shape((20, 20, 3)) == (24, 24, 3)
  images = jnp.stack([_image(seed=i) for i in range(4)])
  labels = jax.nn.one_hot(jnp.arange(4), 10)
  train = jax.jit(lambda p: aug.train(jax.random.PRNGKey(0), images, labels, progress=p))
  early, _ = train(0.0)
  late, _ = train(0.9)
  assert early.shape == (4, 24, 24, 3) and not np.allclose(early, late)
  assert jax.eval_shape(aug.evaluate, images).shape == (4, 24, 24, 3)
  with pytest.raises(ValueError, match="per-stage"):
    augment.parse("randaugment=2,randaugment_magnitude=1:2:3,randaugment_stages=2")
