"""MNIST, Fashion-MNIST, CIFAR-10/100 and SVHN through ``tfds.data_source`` (no TensorFlow).

``tfds.data_source`` reads prepared ArrayRecord files with random access and needs no
TensorFlow; it does not download unless asked. The machines that run glojax often have no
internet, so by default nothing is downloaded: prepare the data once on a machine with
internet *and TensorFlow* (TFDS encodes images with it while preparing) — ``download=True``
here, or ``tfds build cifar10 --file_format=array_record --data_dir DIR`` — and pass
``data_dir`` (or set ``TFDS_DATA_DIR``).

Splits (fixed pre-shuffle ``seed`` of the official training set):

==============  ========================  ==========  ============
name            TFDS name                 train/val   test
==============  ========================  ==========  ============
mnist           mnist                     55k / 5k    10,000
fashion_mnist   fashion_mnist (or IDX)    55k / 5k    10,000
cifar10         cifar10                   45k / 5k    10,000
cifar100        cifar100                  45k / 5k    10,000
svhn            svhn_cropped (no extra)   47,225 /    26,032
                                          26,032
==============  ========================  ==========  ============
"""

from __future__ import annotations

import os
from typing import Optional

import numpy as np

from glojax.data import Dataset, register
from glojax.data import idx as idx_lib

# name → (TFDS name, number of classes, validation examples held out of the train split)
TFDS_DATASETS = {
    "mnist": ("mnist", 10, 5000),
    "fashion_mnist": ("fashion_mnist", 10, 5000),
    "cifar10": ("cifar10", 10, 5000),
    "cifar100": ("cifar100", 100, 5000),
    "svhn": ("svhn_cropped", 10, 26032),
}
_CHUNK = 1024


def _read_source(source, name: str) -> tuple[np.ndarray, np.ndarray]:
  """All ``(image uint8[N,H,W,C], label int[N])`` of a random-access data source."""
  n = len(source)
  images, labels = [], []
  for start in range(0, n, _CHUNK):
    keys = list(range(start, min(start + _CHUNK, n)))
    try:
      records = source.__getitems__(keys)
    except (AttributeError, TypeError):
      # tfds.testing.mock_data's sources only support single-record access.
      records = [source[i] for i in keys]
    images.extend(np.asarray(r["image"], np.uint8) for r in records)
    labels.extend(int(r["label"]) for r in records)
  if not images:
    raise ValueError(f"{name}: the data source is empty")
  return np.stack(images), np.asarray(labels, np.int32)


def tfds_arrays(tfds_name: str, split: str, data_dir: Optional[str] = None,
                download: bool = False) -> tuple[np.ndarray, np.ndarray]:
  """Loads one TFDS split into memory through ``tfds.data_source``.

  Args:
    tfds_name: the TFDS dataset name (e.g. ``"cifar10"``).
    split: TFDS split (``"train"``, ``"test"``).
    data_dir: TFDS data directory (None: TFDS's default / ``TFDS_DATA_DIR``).
    download: let TFDS download and prepare the data (needs internet).

  Returns:
    ``(images uint8[N, H, W, C], labels int32[N])``.

  Raises:
    FileNotFoundError: if the dataset is not prepared in ``data_dir`` and
      ``download`` is False; the message says how to obtain it.
  """
  import tensorflow_datasets as tfds
  data_dir = data_dir or None  # "" from a config means TFDS's default
  try:
    source = tfds.data_source(tfds_name, split=split, data_dir=data_dir, download=download,
                              builder_kwargs={"file_format": "array_record"}
                              if download else None)
  except Exception as e:  # TFDS raises several types for "not prepared here"
    raise FileNotFoundError(
        f"{_why_unavailable(tfds_name, split, data_dir, e)}\n"
        f"To obtain it, on a machine with internet and TensorFlow (TFDS needs it to encode "
        f"the images while preparing; reading them back here does not) run\n"
        f"  python -c \"import tensorflow_datasets as tfds; tfds.data_source("
        f"'{tfds_name}', data_dir='DIR', download=True, "
        f"builder_kwargs={{'file_format': 'array_record'}})\"\n"
        f"(or `tfds build {tfds_name} --file_format=array_record --data_dir DIR`), copy DIR "
        f"here and set TFDS_DATA_DIR=DIR, or pass it as data_dir (binaries: "
        f"--config.dataset.options.data_dir=DIR if the config lists data_dir, else "
        f"--config.dataset.options='{{\"data_dir\": \"DIR\"}}').") from e
  return _read_source(source, tfds_name)


def _data_dir(data_dir: Optional[str]) -> str:
  """The folder TFDS reads: ``data_dir``, else ``$TFDS_DATA_DIR``, else TFDS's default."""
  if data_dir:
    return data_dir
  if os.environ.get("TFDS_DATA_DIR"):
    return os.environ["TFDS_DATA_DIR"]
  return os.path.expanduser(os.path.join("~", "tensorflow_datasets"))


def _why_unavailable(tfds_name: str, split: str, data_dir: Optional[str], error) -> str:
  """One line saying why ``tfds.data_source`` failed, from what is on disk.

  TFDS itself reports a missing folder as "Random access ... TFRECORD is not
  supported" or an empty ``splits``, which reads like a format problem.
  """
  where = _data_dir(data_dir)
  folder = os.path.join(where, tfds_name)
  infos, records = [], []
  for root, _, files in os.walk(folder):
    infos += [f for f in files if f == "dataset_info.json"]
    records += [f for f in files if ".array_record" in f]
  if not infos:
    return (f"dataset {tfds_name!r} is not prepared at {where} (no "
            f"{os.path.join(folder, '<version>', 'dataset_info.json')})")
  if not records:
    return (f"dataset {tfds_name!r} is prepared at {where} but not in ArrayRecord format "
            f"(glojax reads it with random access); prepare it again with "
            f"--file_format=array_record")
  first = str(error).splitlines()[0] if str(error) else ""
  return (f"dataset {tfds_name!r} (split {split!r}) could not be read from {where}: "
          f"{type(error).__name__}: {first}")


def load_tfds(name: str, *, seed: int = 0, data_dir: Optional[str] = None,
              download: bool = False, num_validation: Optional[int] = None,
              num_train: Optional[int] = None, num_test: Optional[int] = None) -> Dataset:
  """Loads ``name`` (a key of :data:`TFDS_DATASETS`) with the papers' splits.

  Args:
    name: ``mnist``, ``fashion_mnist``, ``cifar10``, ``cifar100`` or ``svhn``.
    seed: pre-shuffle seed of the official training set.
    data_dir: TFDS data directory.
    download: allow TFDS to download (needs internet).
    num_validation: validation examples (default: the table in the module docstring).
    num_train: keep this many training examples (None = all the rest).
    num_test: keep the first this many test examples (None = all), for quick runs.

  Raises:
    FileNotFoundError: missing data (see :func:`tfds_arrays`).
    ValueError: for an unknown name or split sizes that do not fit.
  """
  if name not in TFDS_DATASETS:
    raise ValueError(f"unknown TFDS dataset {name!r}; known: {sorted(TFDS_DATASETS)}")
  tfds_name, num_classes, default_validation = TFDS_DATASETS[name]
  train_images, train_labels = tfds_arrays(tfds_name, "train", data_dir, download)
  test_images, test_labels = tfds_arrays(tfds_name, "test", data_dir, download)
  if num_test is not None:
    if not 0 < num_test <= len(test_labels):
      raise ValueError(f"{name}: num_test={num_test} must be in (0, {len(test_labels)}]")
    test_images, test_labels = test_images[:num_test], test_labels[:num_test]
  where = data_dir or os.environ.get("TFDS_DATA_DIR") or "TFDS's default data_dir"
  sources = {f"{split}_{part}": f"TFDS {tfds_name!r} split {split!r} in {where}"
             for split in ("train", "test") for part in ("images", "labels")}
  return idx_lib.make_splits(
      name, train_images, train_labels, test_images, test_labels, seed=seed,
      num_validation=default_validation if num_validation is None else num_validation,
      num_train=num_train, num_classes=num_classes, sources=sources)


def _register(name: str):
  @register(name)
  def loader(*, seed: int = 0, data_dir: Optional[str] = None, download: bool = False,
             num_validation: Optional[int] = None, num_train: Optional[int] = None,
             num_test: Optional[int] = None) -> Dataset:
    return load_tfds(name, seed=seed, data_dir=data_dir, download=download,
                     num_validation=num_validation, num_train=num_train, num_test=num_test)
  loader.__doc__ = f"{name} through TFDS ``data_source``; see :func:`load_tfds`."
  return loader


for _name in ("mnist", "cifar10", "cifar100", "svhn"):
  _register(_name)


@register("fashion_mnist")
def load_fashion_mnist(*, seed: int = 0, data_dir: Optional[str] = None,
                       source: str = "auto", download: bool = False,
                       num_validation: int = 5000, num_train: Optional[int] = None,
                       num_test: Optional[int] = None) -> Dataset:
  """Fashion-MNIST from IDX files or TFDS (55k / 5k / 10k).

  Args:
    seed: pre-shuffle seed.
    data_dir: a directory with the IDX files, or a TFDS data directory.
    source: ``"idx"``, ``"tfds"`` or ``"auto"`` (IDX files in ``data_dir`` or in
      ``/usr/share/datasets/fashion-mnist`` if present, else TFDS).
    download: allow TFDS to download.
    num_validation, num_train, num_test: split sizes (see :func:`load_tfds`).

  Raises:
    FileNotFoundError: when no source has the data (the message says how to get it).
    ValueError: for an unknown ``source``.
  """
  if source not in ("auto", "idx", "tfds"):
    raise ValueError(f"fashion_mnist: source must be 'auto', 'idx' or 'tfds', got {source!r}")
  idx_dir = None
  if source in ("auto", "idx"):
    for d in ([data_dir] if data_dir else []) + [idx_lib.FASHION_MNIST_DIR]:
      if idx_lib.find_idx_files(d) is not None:
        idx_dir = d
        break
    if idx_dir is None and source == "idx":
      idx_dir = data_dir or idx_lib.FASHION_MNIST_DIR  # raises with instructions below
  if idx_dir is not None:
    ds = idx_lib.load_idx_dataset("fashion_mnist", idx_dir, seed=seed,
                                  num_validation=num_validation, num_train=num_train)
    if num_test is not None:
      from glojax.data import Split
      ds = Dataset(ds.name, ds.train, ds.validation,
                   Split(ds.test.images[:num_test], ds.test.labels[:num_test]),
                   ds.num_classes)
    return ds
  return load_tfds("fashion_mnist", seed=seed, data_dir=data_dir, download=download,
                   num_validation=num_validation, num_train=num_train, num_test=num_test)
