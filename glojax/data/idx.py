"""IDX-file datasets (the MNIST / Fashion-MNIST file format), no download needed.

Debian's ``dataset-fashion-mnist`` package installs the four Fashion-MNIST files in
``/usr/share/datasets/fashion-mnist`` (``apt-get install dataset-fashion-mnist``); MNIST
IDX files work the same from any directory. Files may be gzipped (``*.gz``) or not.

Splits (SPEC §8): the official training file is shuffled with ``seed`` and split into
55,000 train / 5,000 validation; the official test file is the test split.
"""

from __future__ import annotations

import gzip
import os
import struct
from typing import Optional

import numpy as np

from glojax.data import Dataset, Split, register

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
IDX_FILES = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
             "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}
# IDX type codes (third byte of the magic number) → NumPy big-endian dtypes.
_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str) -> np.ndarray:
  """Reads one IDX file (optionally gzipped).

  Format: 2 zero bytes, a type code, the number of dimensions ``d``, ``d`` big-endian
  uint32 sizes, then the data in C order (LeCun et al., MNIST database page).

  Args:
    path: the file (``.gz`` is decompressed).

  Returns:
    An array of the stored shape; dtype as stored (``uint8`` for MNIST).

  Raises:
    ValueError: if the file is not a valid IDX file (bad magic, type or size).
  """
  opener = gzip.open if path.endswith(".gz") else open
  with opener(path, "rb") as f:
    raw = f.read()
  if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
    raise ValueError(f"{path} is not an IDX file (magic bytes {raw[:4]!r})")
  ndim = raw[3]
  shape = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
  dtype = np.dtype(_DTYPES[raw[2]])
  offset = 4 + 4 * ndim
  expected = int(np.prod(shape)) * dtype.itemsize
  if len(raw) - offset != expected:
    raise ValueError(f"{path}: header says shape {shape} ({expected} bytes) but the file "
                     f"holds {len(raw) - offset} bytes of data")
  return np.frombuffer(raw, dtype, offset=offset).reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str, array: np.ndarray) -> None:
  """Writes ``array`` (uint8) as an IDX file (gzipped if ``path`` ends in ``.gz``)."""
  array = np.ascontiguousarray(array, np.uint8)
  header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
  opener = gzip.open if path.endswith(".gz") else open
  with opener(path, "wb") as f:
    f.write(header + array.tobytes())


def find_idx_files(data_dir: str) -> Optional[dict[str, str]]:
  """Paths of the four standard IDX files in ``data_dir`` (plain or .gz), or None."""
  found = {}
  for key, stem in IDX_FILES.items():
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx")):
      if os.path.exists(os.path.join(data_dir, name)):
        found[key] = os.path.join(data_dir, name)
        break
    else:
      return None
  return found


def load_idx_dataset(name: str, data_dir: str, *, seed: int = 0, num_validation: int = 5000,
                     num_train: Optional[int] = None, num_classes: int = 10) -> Dataset:
  """A :class:`Dataset` from the four IDX files in ``data_dir``.

  Args:
    name: dataset name to record.
    data_dir: directory holding ``train-images-idx3-ubyte[.gz]`` etc.
    seed: seed of the pre-shuffle of the official training file.
    num_validation: examples of the shuffled training file held out for validation.
    num_train: keep only this many training examples (None = all the rest).
    num_classes: number of classes.

  Raises:
    FileNotFoundError: if the files are missing (the message says how to get them).
    ValueError: for inconsistent files or split sizes.
  """
  files = find_idx_files(data_dir)
  if files is None:
    raise FileNotFoundError(
        f"{name}: IDX files {sorted(IDX_FILES.values())} (optionally .gz) not found in "
        f"{data_dir!r}. For Fashion-MNIST on Debian/Ubuntu run `apt-get install "
        f"dataset-fashion-mnist` (files land in {FASHION_MNIST_DIR}); otherwise download "
        f"the four files on a machine with internet and pass their directory as data_dir.")
  arrays = {k: read_idx(v) for k, v in files.items()}
  for split in ("train", "test"):
    images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
      raise ValueError(f"{name}: {split} images {images.shape} and labels {labels.shape} "
                       f"do not match (expected [N, H, W] and [N])")
  return make_splits(name, arrays["train_images"][..., None], arrays["train_labels"],
                     arrays["test_images"][..., None], arrays["test_labels"], seed=seed,
                     num_validation=num_validation, num_train=num_train,
                     num_classes=num_classes)


def make_splits(name: str, train_images: np.ndarray, train_labels: np.ndarray,
                test_images: np.ndarray, test_labels: np.ndarray, *, seed: int,
                num_validation: int, num_train: Optional[int], num_classes: int) -> Dataset:
  """Shuffles the official training set with ``seed`` and holds out a validation split.

  Args:
    train_images, test_images: ``uint8[N, H, W, C]`` (scaled here to float32 in [0, 1]).
    train_labels, test_labels: ``int[N]``.
    seed: pre-shuffle seed (fixed per experiment, SPEC §8).
    num_validation: size of the validation split (the first examples of the shuffle).
    num_train: training examples kept after the validation split (None = all).
    num_classes: number of classes.

  Raises:
    ValueError: if the split sizes do not fit the training set.
  """
  n = len(train_labels)
  if not 0 < num_validation < n:
    raise ValueError(f"{name}: num_validation={num_validation} must be in (0, {n}) "
                     f"(the official training set has {n} examples)")
  rest = n - num_validation
  if num_train is None:
    num_train = rest
  if not 0 < num_train <= rest:
    raise ValueError(f"{name}: num_train={num_train} must be in (0, {rest}]")
  perm = np.random.default_rng(seed).permutation(n)
  va, tr = perm[:num_validation], perm[num_validation:num_validation + num_train]

  def split(images, labels, idx=None):
    if idx is not None:
      images, labels = images[idx], labels[idx]
    return Split(np.asarray(images, np.float32) / 255.0, np.asarray(labels, np.int32))

  return Dataset(name, split(train_images, train_labels, tr),
                 split(train_images, train_labels, va), split(test_images, test_labels),
                 num_classes=num_classes)


@register("idx")
def load_idx(*, seed: int = 0, data_dir: str = FASHION_MNIST_DIR, name: str = "idx",
             num_validation: int = 5000, num_train: Optional[int] = None,
             num_classes: int = 10) -> Dataset:
  """Any MNIST-format IDX dataset in ``data_dir`` (default: Debian's Fashion-MNIST)."""
  return load_idx_dataset(name, data_dir, seed=seed, num_validation=num_validation,
                          num_train=num_train, num_classes=num_classes)
