"""IDX-file datasets (the MNIST / Fashion-MNIST file format), no download needed.

Debian's ``dataset-fashion-mnist`` package installs the four Fashion-MNIST files in
``/usr/share/datasets/fashion-mnist`` (``apt-get install dataset-fashion-mnist``); MNIST
IDX files work the same from any directory. Files may be gzipped (``*.gz``) or not.

Splits (``docs/models_and_data.md``): the official training file is shuffled with ``seed`` and split into
55,000 train / 5,000 validation; the official test file is the test split.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
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
  try:
    with opener(path, "rb") as f:
      raw = f.read()
  except (gzip.BadGzipFile, EOFError, zlib.error) as e:
    raise ValueError(f"{path}: not a readable gzip file ({e})") from None
  if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
    raise ValueError(f"{path} is not an IDX file (magic bytes {raw[:4]!r})")
  ndim = raw[3]
  if len(raw) < 4 + 4 * ndim:
    raise ValueError(f"{path}: truncated IDX header ({ndim} dimensions need "
                     f"{4 + 4 * ndim} bytes, the file has {len(raw)})")
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
  for key in ("train_images", "test_images"):
    if arrays[key].ndim != 3:
      raise ValueError(f"{files[key]}: images of shape {arrays[key].shape}; expected "
                       "[N, H, W]")
    arrays[key] = arrays[key][..., None]
  return make_splits(name, arrays["train_images"], arrays["train_labels"],
                     arrays["test_images"], arrays["test_labels"], seed=seed,
                     num_validation=num_validation, num_train=num_train,
                     num_classes=num_classes, sources=files)


def check_arrays(images: np.ndarray, labels: np.ndarray, num_classes: int, *,
                 images_source: str, labels_source: str) -> None:
  """Validates one split's arrays before they become a :class:`Split`.

  Args:
    images: ``uint8[N, H, W, C]``.
    labels: integer ``[N]`` in ``[0, num_classes)``.
    num_classes: the number of classes the dataset declares.
    images_source, labels_source: where the arrays came from (a file path, or a
      TFDS name and split), named in every error.

  Raises:
    ValueError: naming the source, for images that are not ``uint8[N, H, W, C]``,
      labels that are not integers of shape ``[N]``, or labels outside
      ``[0, num_classes)`` (with the range found: a dataset whose labels run 1..26
      does not load as 10 classes).
  """
  images, labels = np.asarray(images), np.asarray(labels)
  if images.ndim != 4 or images.dtype != np.uint8:
    raise ValueError(f"{images_source}: images must be uint8 [N, H, W, C], got "
                     f"{images.dtype} {images.shape}")
  if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(f"{labels_source}: labels must be integers of shape [N], got "
                     f"{labels.dtype} {labels.shape}")
  if labels.shape[0] != images.shape[0]:
    raise ValueError(f"{labels_source}: {labels.shape[0]} labels for "
                     f"{images.shape[0]} images in {images_source}")
  if labels.size:
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= num_classes:
      outside = np.count_nonzero((labels < 0) | (labels >= num_classes))
      raise ValueError(f"{labels_source}: labels span [{low}, {high}], outside [0, "
                       f"{num_classes}) for num_classes={num_classes} ({outside} of "
                       f"{labels.size} labels); pass the right num_classes or remap "
                       "the labels to 0..num_classes-1")


def make_splits(name: str, train_images: np.ndarray, train_labels: np.ndarray,
                test_images: np.ndarray, test_labels: np.ndarray, *, seed: int,
                num_validation: int, num_train: Optional[int], num_classes: int,
                sources: Optional[dict[str, str]] = None) -> Dataset:
  """Shuffles the official training set with ``seed`` and holds out a validation split.

  Args:
    train_images, test_images: ``uint8[N, H, W, C]`` (scaled here to float32 in [0, 1]).
    train_labels, test_labels: ``int[N]`` in ``[0, num_classes)``.
    seed: pre-shuffle seed (fixed per experiment, ``docs/models_and_data.md``).
    num_validation: size of the validation split (the first examples of the shuffle).
    num_train: training examples kept after the validation split (None = all).
    num_classes: number of classes (an integer ``>= 2``).
    sources: where each array came from, keyed ``train_images``, ``train_labels``,
      ``test_images``, ``test_labels`` (file paths; default: ``name`` and the role),
      named in the errors of :func:`check_arrays`.

  Raises:
    ValueError: for invalid arrays (:func:`check_arrays`), train and test images of
      different sizes, a bad ``num_classes``, or split sizes that do not fit.
  """
  if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) \
      or num_classes < 2:
    raise ValueError(f"{name}: num_classes must be an integer >= 2, got {num_classes!r}")
  where = {k: f"{name} {k.replace('_', ' ')}" for k in
           ("train_images", "train_labels", "test_images", "test_labels")}
  where.update(sources or {})
  for split, images, labels in (("train", train_images, train_labels),
                                ("test", test_images, test_labels)):
    check_arrays(images, labels, num_classes, images_source=where[f"{split}_images"],
                 labels_source=where[f"{split}_labels"])
  if train_images.shape[1:] != test_images.shape[1:]:
    raise ValueError(f"{where['test_images']}: images of size {test_images.shape[1:]}, "
                     f"but {where['train_images']} holds {train_images.shape[1:]}")
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
