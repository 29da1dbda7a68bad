"""Augmentations in JAX: crop, flip, Cutout, CutMix, normalizations, spec parsing."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from glojax.data import augment


def _images(b=6, h=8, w=8, c=2, seed=0):
  return jnp.asarray(np.random.default_rng(seed).uniform(size=(b, h, w, c)), jnp.float32)


def test_parse_and_errors():
  a = augment.parse("pad_crop=4, flip, cutout=16, cutmix=0.5, normalize=per_channel")
  assert (a.pad_crop, a.flip, a.cutout, a.cutmix, a.normalize) == (4, True, 16, 0.5,
                                                                   "per_channel")
  assert augment.parse("").is_identity and augment.parse("none").is_identity
  assert augment.parse("contrast=0.2:1.8").contrast == (0.2, 1.8)
  with pytest.raises(ValueError, match="unknown augmentation 'rotate'"):
    augment.parse("flip,rotate=10")
  with pytest.raises(ValueError, match="bad augmentation token 'cutout=x'"):
    augment.parse("cutout=x")
  with pytest.raises(ValueError, match="normalize"):
    augment.parse("normalize=zca")
  with pytest.raises(ValueError, match="probability"):
    augment.parse("cutmix=1.5")


def test_pad_crop_is_a_shifted_window():
  x = _images()
  out = np.asarray(augment.pad_and_crop(jax.random.PRNGKey(0), x, 2))
  padded = np.pad(np.asarray(x), ((0, 0), (2, 2), (2, 2), (0, 0)))
  for i in range(x.shape[0]):
    assert any(np.array_equal(out[i], padded[i, t:t + 8, l:l + 8])
               for t in range(5) for l in range(5))
  np.testing.assert_array_equal(augment.pad_and_crop(jax.random.PRNGKey(0), x, 0), x)


def test_flip_mirrors_about_half():
  x = _images(b=64)
  out = np.asarray(augment.random_flip(jax.random.PRNGKey(0), x))
  same = [np.array_equal(out[i], x[i]) for i in range(64)]
  mirrored = [np.array_equal(out[i], np.asarray(x[i])[:, ::-1]) for i in range(64)]
  assert all(s or m for s, m in zip(same, mirrored))
  assert 16 < sum(mirrored) < 48


def test_cutout_zeroes_one_clipped_square():
  x = jnp.ones((32, 12, 12, 1))
  out = np.asarray(augment.cutout(jax.random.PRNGKey(0), x, 4))[..., 0]
  for im in out:
    ys, xs = np.nonzero(im == 0)
    assert 0 < len(ys) <= 16
    # the zeros fill their bounding box exactly: one (possibly clipped) square
    assert (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1) == len(ys)
  assert any((im == 0).sum() == 16 for im in out)    # unclipped squares
  assert any((im == 0).sum() < 16 for im in out)     # clipped at the border


def test_cutmix_label_weights_equal_pixel_fractions():
  b, n = 10, 10
  x = jnp.broadcast_to(jnp.arange(b, dtype=jnp.float32)[:, None, None, None], (b, 16, 16, 3))
  y = jax.nn.one_hot(jnp.arange(b), n)
  for seed in range(4):
    out, lab = augment.cutmix(jax.random.PRNGKey(seed), x, y, prob=1.0, alpha=1.0)
    out, lab = np.asarray(out), np.asarray(lab)
    np.testing.assert_allclose(lab.sum(-1), 1.0, rtol=1e-6)
    for i in range(b):
      np.testing.assert_allclose(lab[i, i], np.mean(out[i] == i), atol=1e-6)
  same, lab = augment.cutmix(jax.random.PRNGKey(0), x, y, prob=0.0)
  np.testing.assert_array_equal(same, x)
  np.testing.assert_array_equal(lab, y)


def test_per_image_standardization():
  x = _images()
  z = np.asarray(augment.per_image_standardization(x))
  np.testing.assert_allclose(z.mean(axis=(1, 2, 3)), 0, atol=1e-5)
  np.testing.assert_allclose(z.std(axis=(1, 2, 3)), 1, atol=1e-4)
  const = augment.per_image_standardization(jnp.full((1, 4, 4, 3), 0.7))
  np.testing.assert_allclose(const, 0.0, atol=1e-5)  # std floor 1/sqrt(N): no NaN


def test_per_channel_statistics_and_eval_center_crop():
  x = np.asarray(_images(b=50, h=6, w=6, c=3)) * np.array([1.0, 2.0, 3.0])
  a = augment.parse("crop=4,normalize=per_channel").with_statistics(x)
  np.testing.assert_allclose(a.mean, x.mean(axis=(0, 1, 2)), rtol=1e-6)
  z = np.asarray(a.evaluate(jnp.asarray(x)))
  assert z.shape == (50, 4, 4, 3) and a.output_shape((6, 6, 3)) == (4, 4, 3)
  np.testing.assert_allclose(z, (x[:, 1:5, 1:5] - np.array(a.mean)) / np.array(a.std),
                             rtol=1e-5, atol=1e-5)
  with pytest.raises(ValueError, match="larger than the images"):
    a.output_shape((3, 3, 3))


def test_train_pipeline_jits_and_keeps_shapes():
  a = augment.parse("pad_crop=2,flip,brightness=63,contrast=0.5:1.5,cutout=4,cutmix=0.5,"
                    "normalize=per_image")
  x, y = _images(b=8), jax.nn.one_hot(jnp.arange(8) % 3, 3)
  eager = a.train(jax.random.PRNGKey(1), x, y)
  jitted = jax.jit(a.train)(jax.random.PRNGKey(1), x, y)
  for e, j in zip(eager, jitted):
    np.testing.assert_allclose(e, j, rtol=1e-5, atol=1e-6)
  assert eager[0].shape == x.shape and eager[1].shape == y.shape
