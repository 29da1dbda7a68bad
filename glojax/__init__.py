"""glojax: evolutionary loss-function metalearning in JAX.

Subpackages: ``losses`` (published and parameterized losses), ``data`` (in-memory
datasets), ``models`` (flax modules), ``train`` (single-candidate and population
trainers), ``search`` (TaylorGLO, GLO, ...), ``analysis`` (statistics, theory, plots),
``expr`` (loss expression trees). After a bare ``import glojax`` every subpackage is
reachable as an attribute (``glojax.train.Trainer``); it is imported on first use, so
``import glojax`` stays cheap.
"""

import importlib

__version__ = "0.1.0"

from glojax import losses  # noqa: F401,E402  (the most common entry point: glojax.losses.get)

_SUBPACKAGES = ("analysis", "data", "expr", "losses", "models", "search", "train")


def __getattr__(name):
  """Imports a subpackage on first attribute access (PEP 562)."""
  if name in _SUBPACKAGES:
    return importlib.import_module(f"glojax.{name}")
  raise AttributeError(f"module 'glojax' has no attribute {name!r}; subpackages: "
                       f"{', '.join(_SUBPACKAGES)}")


def __dir__():
  return sorted(set(globals()) | set(_SUBPACKAGES))
