"""Shared fixtures: small real data so tests stay fast on 2 CPU cores."""

import functools
import os

import numpy as np
import pytest

from glojax import data

# Binaries started by tests (they inherit this) use no persistent compilation cache:
# tests must not share compiled programs through ~/.cache (experiments/compile_cache.py).
os.environ["GLOJAX_COMPILATION_CACHE"] = "none"


@functools.lru_cache(maxsize=None)
def _mnist5k():
  return data.load("mnist5k", seed=0)


@pytest.fixture(scope="session")
def mnist5k():
  return _mnist5k()


@pytest.fixture(scope="session")
def tiny_mnist():
  """600/100/100 real digits from mnist5k (first rows of each split)."""
  ds = _mnist5k()
  cut = lambda s, n: data.Split(s.images[:n], s.labels[:n])
  return data.Dataset("tiny_mnist", cut(ds.train, 600), cut(ds.validation, 100),
                      cut(ds.test, 100), ds.num_classes)
