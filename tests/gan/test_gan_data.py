"""Paired data: the degradations, make_paired, the pix2pix folder loader."""

import numpy as np
import pytest

from glojax.gan import data


def _digits():
  rng = np.random.default_rng(0)
  return (rng.uniform(0, 1, (5, 28, 28, 1)) > 0.7).astype(np.float32)


def test_inpaint_greys_one_half_side_square():
  images = _digits()
  out = data.degrade(images, "inpaint", np.random.default_rng(1))
  for img, deg in zip(images, out):
    changed = deg != img
    grey = deg[..., 0] == 0.5
    assert grey.sum() == 14 * 14             # exactly one 14×14 square
    rows, cols = np.nonzero(grey)
    assert rows.max() - rows.min() == 13 and cols.max() - cols.min() == 13
    assert not changed[~grey[..., None]].any()


def test_edges_and_denoise():
  img = np.zeros((1, 8, 8, 1), np.float32)
  img[0, 2:6, 2:6] = 1.0                    # a square: edges on its border only
  edges = data.degrade(img, "edges", np.random.default_rng(0))
  assert set(np.unique(edges)) == {0.0, 1.0}
  assert edges[0, 0, 0, 0] == 0 and edges[0, 4, 4, 0] == 0 and edges[0, 2, 4, 0] == 1
  noisy = data.degrade(_digits(), "denoise", np.random.default_rng(0))
  assert noisy.min() >= 0 and noisy.max() <= 1 and not np.array_equal(noisy, _digits())
  with pytest.raises(ValueError, match="unknown GAN task 'blur'"):
    data.degrade(img, "blur", np.random.default_rng(0))


def test_make_paired_is_fixed_by_the_seed():
  a = data.make_paired("mnist5k", "inpaint", seed=0, max_train=32, max_eval=8)
  b = data.make_paired("mnist5k", "inpaint", seed=0, max_train=32, max_eval=8)
  assert (len(a.train), len(a.validation), len(a.test)) == (32, 8, 8)
  np.testing.assert_array_equal(a.train.inputs, b.train.inputs)
  assert not np.array_equal(a.train.inputs, a.train.targets)
  assert a.image_shape == (28, 28, 1)
  with pytest.raises(ValueError, match="max_eval must be an integer >= 0"):
    data.make_paired("mnist5k", "inpaint", max_eval=-1)
  with pytest.raises(ValueError, match="unknown split 'dev'"):
    a.split("dev")


def _write_pairs(root, n=2, h=16):
  from PIL import Image
  for split in ("train", "val", "test"):
    (root / split).mkdir(parents=True)
    for i in range(n):
      img = np.zeros((h, 2 * h, 3), np.uint8)
      img[:, :h] = 200       # A: bright photo
      img[:, h:, 0] = 50     # B: dark red label map
      Image.fromarray(img).save(root / split / f"{i}.png")


def test_pix2pix_folder_splits_halves_and_resizes(tmp_path):
  _write_pairs(tmp_path)
  ds = data.load_pix2pix_folder(str(tmp_path), image_size=8)
  assert (len(ds.train), len(ds.validation), len(ds.test)) == (2, 2, 2)
  assert ds.image_shape == (8, 8, 3)
  np.testing.assert_allclose(ds.train.targets, 200 / 255, atol=1e-6)   # BtoA: target A
  np.testing.assert_allclose(ds.train.inputs[..., 0], 50 / 255, atol=1e-6)
  flipped = data.load_pix2pix_folder(str(tmp_path), image_size=8, direction="AtoB",
                                     max_train=1)
  np.testing.assert_array_equal(flipped.test.inputs, ds.test.targets)
  assert len(flipped.train) == 1


def test_pix2pix_folder_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="facades.tar.gz"):
    data.load_pix2pix_folder(str(tmp_path / "nowhere"))
  from PIL import Image
  for split in ("train", "val", "test"):
    (tmp_path / split).mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / split / "0.png")
  with pytest.raises(ValueError, match="not two 8×8 halves"):
    data.load_pix2pix_folder(str(tmp_path))
  with pytest.raises(ValueError, match="direction='up'"):
    data.load_pix2pix_folder(str(tmp_path), direction="up")
