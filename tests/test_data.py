"""IDX and TFDS loaders: real Fashion-MNIST files when installed, generated IDX files,
and the TFDS data_source path offline under tfds.testing.mock_data."""

import gzip
import os

import numpy as np
import pytest

from glojax import data
from glojax.data import idx

FASHION = idx.FASHION_MNIST_DIR


def _write_tiny_idx(root, n_train=40, n_test=12, gz=True, seed=0):
  rng = np.random.default_rng(seed)
  ext = ".gz" if gz else ""
  arrays = {"train_images": rng.integers(0, 256, (n_train, 5, 4), np.uint8),
            "train_labels": (np.arange(n_train) % 10).astype(np.uint8),
            "test_images": rng.integers(0, 256, (n_test, 5, 4), np.uint8),
            "test_labels": (np.arange(n_test) % 10).astype(np.uint8)}
  for key, stem in idx.IDX_FILES.items():
    idx.write_idx(os.path.join(root, stem + ext), arrays[key])
  return arrays


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip_and_header(tmp_path, gz):
  a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
  path = str(tmp_path / ("a.idx" + (".gz" if gz else "")))
  idx.write_idx(path, a)
  raw = (gzip.open if gz else open)(path, "rb").read()
  assert raw[:4] == bytes([0, 0, 8, 3]) and raw[4:8] == (2).to_bytes(4, "big")
  np.testing.assert_array_equal(idx.read_idx(path), a)


def test_idx_rejects_bad_files(tmp_path):
  bad = tmp_path / "bad"
  bad.write_bytes(b"\x01\x02\x03\x04rest")
  with pytest.raises(ValueError, match="not an IDX file"):
    idx.read_idx(str(bad))
  short = tmp_path / "short"
  short.write_bytes(bytes([0, 0, 8, 1]) + (10).to_bytes(4, "big") + b"abc")
  with pytest.raises(ValueError, match="header says shape"):
    idx.read_idx(str(short))


def test_idx_loader_splits(tmp_path):
  arrays = _write_tiny_idx(str(tmp_path))
  ds = data.load("idx", data_dir=str(tmp_path), num_validation=10, seed=3)
  assert (len(ds.train), len(ds.validation), len(ds.test)) == (30, 10, 12)
  assert ds.image_shape == (5, 4, 1) and ds.train.images.dtype == np.float32
  np.testing.assert_array_equal(ds.test.images[..., 0] * 255, arrays["test_images"])
  # train and validation partition the official training file
  rows = lambda s: {r.tobytes() for r in np.round(s.images * 255).astype(np.uint8)}
  assert rows(ds.train) | rows(ds.validation) == {r.tobytes() for r in arrays["train_images"]}
  assert not rows(ds.train) & rows(ds.validation)
  again = data.load("idx", data_dir=str(tmp_path), num_validation=10, seed=3)
  np.testing.assert_array_equal(again.validation.labels, ds.validation.labels)
  other = data.load("idx", data_dir=str(tmp_path), num_validation=10, seed=4)
  assert not np.array_equal(other.validation.images, ds.validation.images)
  with pytest.raises(ValueError, match="num_validation=40"):
    data.load("idx", data_dir=str(tmp_path), num_validation=40)
  # fashion_mnist takes IDX files from data_dir first
  fm = data.load("fashion_mnist", data_dir=str(tmp_path), num_validation=10, num_test=5)
  assert (len(fm.train), len(fm.test)) == (30, 5)


def test_missing_idx_files_say_how_to_get_them(tmp_path):
  with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
    data.load("idx", data_dir=str(tmp_path))


@pytest.mark.skipif(idx.find_idx_files(FASHION) is None,
                    reason="apt-get install dataset-fashion-mnist (CI installs it)")
def test_real_fashion_mnist_from_debian_package():
  ds = data.load("fashion_mnist", source="idx")
  assert (len(ds.train), len(ds.validation), len(ds.test)) == (55000, 5000, 10000)
  assert ds.image_shape == (28, 28, 1) and ds.num_classes == 10
  np.testing.assert_array_equal(np.bincount(ds.test.labels), [1000] * 10)
  assert ds.train.images.min() == 0.0 and ds.train.images.max() == 1.0
  assert sorted(np.unique(ds.train.labels)) == list(range(10))


@pytest.mark.parametrize("name,shape,classes", [
    ("cifar10", (32, 32, 3), 10), ("cifar100", (32, 32, 3), 100),
    ("svhn", (32, 32, 3), 10), ("mnist", (28, 28, 1), 10)])
def test_tfds_data_source_under_mock(tmp_path, name, shape, classes):
  import tensorflow_datasets as tfds
  with tfds.testing.mock_data(num_examples=30):
    ds = data.load(name, data_dir=str(tmp_path), num_validation=8, num_test=20, seed=1)
  assert (len(ds.train), len(ds.validation), len(ds.test)) == (22, 8, 20)
  assert ds.image_shape == shape and ds.num_classes == classes
  assert ds.train.images.dtype == np.float32 and 0 <= ds.train.images.min()
  assert ds.train.images.max() <= 1 and ds.train.labels.max() < classes


def test_tfds_missing_dataset_message(tmp_path):
  with pytest.raises(FileNotFoundError, match="on a machine with internet"):
    data.load("cifar10", data_dir=str(tmp_path))


def test_tfds_default_split_sizes_need_the_real_data(tmp_path):
  import tensorflow_datasets as tfds
  with tfds.testing.mock_data(num_examples=30):
    with pytest.raises(ValueError, match="num_validation=5000"):
      data.load("cifar10", data_dir=str(tmp_path))
    with pytest.raises(ValueError, match="source must be"):
      data.load("fashion_mnist", source="web")


def test_split_table():
  from glojax.data.tfds import TFDS_DATASETS
  assert TFDS_DATASETS["svhn"] == ("svhn_cropped", 10, 26032)  # 73,257 − 26,032 = 47,225
  assert TFDS_DATASETS["cifar10"][2] == TFDS_DATASETS["cifar100"][2] == 5000


_TINY_BUILDER = '''
import numpy as np
import tensorflow_datasets as tfds


class GlojaxTinyImages(tfds.core.GeneratorBasedBuilder):
  VERSION = tfds.core.Version("1.0.0")

  def _info(self):
    # Tensor, not Image: encoding Image features needs TensorFlow, which we avoid.
    return self.dataset_info_from_configs(features=tfds.features.FeaturesDict({
        "image": tfds.features.Tensor(shape=(4, 4, 3), dtype=np.uint8),
        "label": tfds.features.ClassLabel(num_classes=3)}))

  def _split_generators(self, dl_manager):
    return {"train": self._generate_examples(10), "test": self._generate_examples(5)}

  def _generate_examples(self, n):
    for i in range(n):
      yield i, {"image": np.full((4, 4, 3), i, np.uint8), "label": i % 3}
'''


def test_tfds_arrays_reads_a_real_array_record_source(tmp_path, monkeypatch):
  # A prepared ArrayRecord dataset (no mock): exercises the batched __getitems__ path.
  pkg = tmp_path / "glojax_tiny_tfds"
  pkg.mkdir()
  (pkg / "__init__.py").write_text(_TINY_BUILDER)
  monkeypatch.syspath_prepend(str(tmp_path))
  import glojax_tiny_tfds
  data_dir = str(tmp_path / "tfds")
  glojax_tiny_tfds.GlojaxTinyImages(data_dir=data_dir,
                                    file_format="array_record").download_and_prepare()
  from glojax.data.tfds import tfds_arrays
  images, labels = tfds_arrays("glojax_tiny_images", "train", data_dir)
  assert images.shape == (10, 4, 4, 3) and images.dtype == np.uint8
  # every record keeps its own label, and all 10 records come back once
  np.testing.assert_array_equal(labels, images[:, 0, 0, 0] % 3)
  assert sorted(images[:, 0, 0, 0].tolist()) == list(range(10))
