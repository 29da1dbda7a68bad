"""Data validation: bad IDX files fail at load with the file and the problem named."""

import gzip
import os
import struct

import numpy as np
import pytest

from glojax import data
from glojax.data import idx


def _write(path, array, code=0x08):
  """An IDX file of any type code (write_idx only writes uint8)."""
  dtype = {0x08: ">u1", 0x09: ">i1", 0x0C: ">i4", 0x0D: ">f4"}[code]
  array = np.asarray(array).astype(dtype)
  header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
  with open(path, "wb") as f:
    f.write(header + array.tobytes())


def _dataset(root, train_labels=None, test_labels=None, images=None, test_images=None):
  rng = np.random.default_rng(0)
  files = {
      "train_images": images if images is not None
      else (rng.integers(0, 256, (30, 5, 4)), 0x08),
      "train_labels": train_labels if train_labels is not None
      else (np.arange(30) % 10, 0x08),
      "test_images": test_images if test_images is not None
      else (rng.integers(0, 256, (8, 5, 4)), 0x08),
      "test_labels": test_labels if test_labels is not None else (np.arange(8) % 10, 0x08),
  }
  paths = {}
  for key, (array, code) in files.items():
    paths[key] = os.path.join(root, idx.IDX_FILES[key])
    _write(paths[key], array, code)
  return paths


def test_labels_outside_the_classes_name_the_file_and_the_range(tmp_path):
  # The example: labels 1..26 (an EMNIST-letters-like file) loaded as 10
  # classes trained to accuracy 0 with finite=True.
  paths = _dataset(str(tmp_path), train_labels=(np.arange(30) % 26 + 1, 0x08))
  with pytest.raises(ValueError) as err:
    data.load("idx", data_dir=str(tmp_path), num_validation=5)
  message = str(err.value)
  assert paths["train_labels"] in message
  assert "[1, 26]" in message and "[0, 10)" in message
  # The right number of classes loads the same files.
  ds = data.load("idx", data_dir=str(tmp_path), num_validation=5, num_classes=27)
  assert ds.num_classes == 27 and ds.train.labels.max() <= 26


def test_negative_and_non_integer_labels(tmp_path):
  paths = _dataset(str(tmp_path), test_labels=(np.arange(8) % 10 - 1, 0x09))
  with pytest.raises(ValueError, match=r"labels span \[-1, 6\]") as err:
    data.load("idx", data_dir=str(tmp_path), num_validation=5)
  assert paths["test_labels"] in str(err.value)
  paths = _dataset(str(tmp_path), test_labels=(np.arange(8) % 10, 0x0D))
  with pytest.raises(ValueError, match="labels must be integers") as err:
    data.load("idx", data_dir=str(tmp_path), num_validation=5)
  assert paths["test_labels"] in str(err.value)


def test_image_type_shape_and_count_errors_name_the_file(tmp_path):
  rng = np.random.default_rng(1)
  paths = _dataset(str(tmp_path), images=(rng.random((30, 5, 4)), 0x0D))
  with pytest.raises(ValueError, match="must be uint8") as err:
    data.load("idx", data_dir=str(tmp_path), num_validation=5)
  assert paths["train_images"] in str(err.value)
  paths = _dataset(str(tmp_path), train_labels=(np.arange(29) % 10, 0x08))
  with pytest.raises(ValueError, match="29 labels for 30 images") as err:
    data.load("idx", data_dir=str(tmp_path), num_validation=5)
  assert paths["train_labels"] in str(err.value)
  paths = _dataset(str(tmp_path), test_images=(rng.integers(0, 256, (8, 6, 4)), 0x08))
  with pytest.raises(ValueError, match=r"size \(6, 4, 1\)") as err:
    data.load("idx", data_dir=str(tmp_path), num_validation=5)
  assert paths["test_images"] in str(err.value)
  paths = _dataset(str(tmp_path), images=(rng.integers(0, 256, (30, 20)), 0x08))
  with pytest.raises(ValueError, match=r"expected \[N, H, W\]") as err:
    data.load("idx", data_dir=str(tmp_path), num_validation=5)
  assert paths["train_images"] in str(err.value)


def test_broken_files_name_the_file(tmp_path):
  truncated = tmp_path / "truncated"
  truncated.write_bytes(bytes([0, 0, 8, 3]) + (10).to_bytes(4, "big"))
  with pytest.raises(ValueError, match="truncated IDX header") as err:
    idx.read_idx(str(truncated))
  assert str(truncated) in str(err.value)
  not_gzip = tmp_path / "labels.gz"
  not_gzip.write_bytes(b"plain bytes, not gzip")
  with pytest.raises(ValueError, match="not a readable gzip file") as err:
    idx.read_idx(str(not_gzip))
  assert str(not_gzip) in str(err.value)
  cut = tmp_path / "cut.gz"
  cut.write_bytes(gzip.compress(bytes([0, 0, 8, 1]) + (4).to_bytes(4, "big") + b"abcd")[:-6])
  with pytest.raises(ValueError, match="gzip") as err:
    idx.read_idx(str(cut))
  assert str(cut) in str(err.value)


def test_in_memory_sources_are_named_too():
  # TFDS arrays go through the same check; the message names the TFDS source.
  images = np.zeros((6, 4, 4, 1), np.uint8)
  labels = np.array([0, 1, 2, 3, 4, 10])
  sources = {k: f"TFDS 'svhn_cropped' split '{k.split('_')[0]}'" for k in
             ("train_images", "train_labels", "test_images", "test_labels")}
  with pytest.raises(ValueError, match=r"TFDS 'svhn_cropped' split 'train'.*\[0, 10\]"):
    idx.make_splits("svhn", images, labels, images, labels % 10, seed=0,
                    num_validation=2, num_train=None, num_classes=10, sources=sources)
  with pytest.raises(ValueError, match="num_classes must be an integer >= 2"):
    idx.make_splits("x", images, labels % 10, images, labels % 10, seed=0,
                    num_validation=2, num_train=None, num_classes=1)
