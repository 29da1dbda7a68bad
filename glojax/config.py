"""Typed config sections: each section of a binary's config becomes a frozen dataclass
that validates itself once, when it is built.

A binary's ``default_config()`` is a *locked* ``ml_collections.ConfigDict`` generated
from these dataclasses' defaults (:func:`locked_config`), so a misspelt key fails where
it is written; :func:`with_defaults` checks a user's config against it and fills in
the keys it does not set; ``Section.from_dict(values, "search")`` then builds the typed
section, and every error names the full key and the bad value, e.g.
``config.search.sigma='abc' must be a finite number > 0``.

The checks here are the only ones: :class:`glojax.train.TrainConfig` and every
search's sections use them.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from typing import Any, Iterable, Mapping, Optional

import ml_collections
import numpy as np

MAX_SEED = 2**63 - 1


class FieldError(ValueError):
  """A bad config value; ``str()`` names it as ``{owner}.{field}={value!r} {problem}``.

  ``owner`` starts as the section class's name and becomes ``config.<section>`` when
  the section is built from a config (:meth:`Section.from_dict`).
  """

  def __init__(self, owner: str, field: str, value: Any, problem: str):
    super().__init__(owner, field, value, problem)
    self.owner, self.field, self.value, self.problem = owner, field, value, problem

  def __str__(self):
    return f"{self.owner}.{self.field}={self.value!r} {self.problem}"


# ---- field checks -----------------------------------------------------------------


def check_int(obj, field: str, low: int = 0, high: Optional[int] = None,
              why: str = "") -> None:
  """Raises :class:`FieldError` unless ``obj.field`` is an int (not a bool) in
  ``[low, high]``."""
  value = getattr(obj, field)
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
      or value < low or (high is not None and value > high):
    bound = f"≥ {low}" if high is None else f"in [{low}, {high}]"
    raise FieldError(type(obj).__name__, field, value, f"must be an integer {bound}{why}")


def check_number(obj, field: str, low: Optional[float] = None,
                 high: Optional[float] = None, low_open: bool = False,
                 high_open: bool = False) -> None:
  """Raises :class:`FieldError` unless ``obj.field`` is a finite real number within
  the bounds (``low_open``/``high_open`` exclude the bound itself)."""
  value = getattr(obj, field)
  ok = (not isinstance(value, bool) and isinstance(value, (int, float, np.number))
        and math.isfinite(value))
  if ok and low is not None:
    ok = value > low if low_open else value >= low
  if ok and high is not None:
    ok = value < high if high_open else value <= high
  if not ok:
    lo = "" if low is None else f"{'>' if low_open else '≥'} {low}"
    hi = "" if high is None else f"{'<' if high_open else '≤'} {high}"
    bounds = " and ".join(b for b in (lo, hi) if b)
    raise FieldError(type(obj).__name__, field, value,
                     f"must be a finite number{' ' + bounds if bounds else ''}")


def check_choice(obj, field: str, choices: Iterable) -> None:
  """Raises :class:`FieldError` unless ``obj.field`` is one of ``choices``."""
  value, choices = getattr(obj, field), tuple(choices)
  if not isinstance(value, str) or value not in choices:
    raise FieldError(type(obj).__name__, field, value, f"is not one of {choices}")


def check_bool(obj, field: str) -> None:
  """Raises :class:`FieldError` unless ``obj.field`` is True or False."""
  value = getattr(obj, field)
  if not isinstance(value, (bool, np.bool_)):
    raise FieldError(type(obj).__name__, field, value, "must be True or False")


def check_mapping(obj, field: str, example: str) -> None:
  """Raises :class:`FieldError` unless ``obj.field`` is a mapping."""
  value = getattr(obj, field)
  if not isinstance(value, Mapping):
    raise FieldError(type(obj).__name__, field, value, f"must be a dict, e.g. {example}")


# ---- sections -----------------------------------------------------------------------


class Section:
  """Mixin of a frozen dataclass config section (see the module docstring)."""

  @classmethod
  def from_dict(cls, values: Mapping, path: str):
    """Builds the section from ``values`` (every key a field of the section).

    Raises:
      ValueError: naming ``config.<path>.<field>`` and the bad value.
    """
    try:
      return cls(**values)
    except FieldError as e:
      e.owner = f"config.{path}"
      raise
    except TypeError as e:  # an unknown field; with_defaults normally catches it
      raise ValueError(f"config.{path}: {e}") from None

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)


class Composite(Section):
  """Mixin of a whole config: a frozen dataclass whose fields are top-level values and
  :class:`Section` fields (those whose default is a section)."""

  @classmethod
  def from_dict(cls, values: Mapping, path: str = ""):
    """Builds every section from a full config dict (defaults filled in, see
    :func:`with_defaults`).

    Raises:
      ValueError: naming ``config.<key>`` and the bad value.
    """
    kwargs = {}
    for field in dataclasses.fields(cls):
      value = values[field.name]
      if field.default_factory is not dataclasses.MISSING:
        default = field.default_factory()
        if isinstance(default, Section):
          value = type(default).from_dict(value, field.name)
      kwargs[field.name] = value
    try:
      return cls(**kwargs)
    except FieldError as e:
      e.owner = "config"
      raise


@dataclasses.dataclass(frozen=True)
class DatasetConfig(Section):
  """``config.dataset``: which data set (:func:`glojax.data.load`).

  Attributes:
    name: a registered data set (``glojax.data.names()``).
    seed: seed of the data set's split/shuffle.
    options: keyword options of the data set (e.g. ``data_dir``).
  """
  name: str = "mnist5k"
  seed: int = 0
  options: Mapping = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    from glojax import data as data_lib
    if self.name not in data_lib.names():
      raise FieldError(type(self).__name__, "name", self.name,
                       f"is not a known dataset; known: {data_lib.names()}")
    check_int(self, "seed", 0, MAX_SEED)
    check_mapping(self, "options", "{'data_dir': '/data'}")


@dataclasses.dataclass(frozen=True)
class ModelConfig(Section):
  """``config.model``: which network (:func:`glojax.models.get`).

  Attributes:
    name: a registered model (``glojax.models.names()``).
    options: fields of the model, e.g. ``{"hidden": (64,)}``.
  """
  name: str = "mlp"
  options: Mapping = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    from glojax import models as models_lib
    if self.name not in models_lib.names():
      raise FieldError(type(self).__name__, "name", self.name,
                       f"is not a known model; known: {models_lib.names()}")
    check_mapping(self, "options", "{'hidden': (64,)}")


# ---- ConfigDicts ----------------------------------------------------------------------


FREE_FORM = ("options",)  # sub-dicts whose keys are a model's/dataset's own fields


def locked_config(values: Mapping) -> ml_collections.ConfigDict:
  """A locked ConfigDict of ``values``: setting a key it lacks raises (with a "did you
  mean"); free-form ``options`` sub-dicts stay open."""
  config = ml_collections.ConfigDict(to_plain(values))
  config.lock()
  for section in config.values():
    if isinstance(section, ml_collections.ConfigDict):
      for name in FREE_FORM:
        if isinstance(section.get(name), ml_collections.ConfigDict):
          section[name].unlock()
  return config


def to_plain(config) -> Any:
  """A ConfigDict/dataclass/mapping as plain dicts (tuples kept)."""
  if hasattr(config, "to_dict"):
    config = config.to_dict()
  if dataclasses.is_dataclass(config) and not isinstance(config, type):
    config = dataclasses.asdict(config)
  if isinstance(config, Mapping):
    return {k: to_plain(v) for k, v in config.items()}
  return config


def check_keys(config: Mapping, reference: Mapping, path: str = "config") -> None:
  """Raises ValueError for a key of ``config`` that ``reference`` lacks (a typo inside
  a config file), naming the closest known keys."""
  for key, value in config.items():
    if key not in reference:
      close = difflib.get_close_matches(key, list(reference), n=3)
      hint = f"; did you mean {close}?" if close else f"; known keys: {sorted(reference)}"
      raise ValueError(f"unknown config key {path}.{key}{hint}")
    ref_value = reference[key]
    if isinstance(ref_value, Mapping) and ref_value and isinstance(value, Mapping):
      check_keys(value, ref_value, f"{path}.{key}")


def with_defaults(config, reference) -> dict:
  """Checks ``config`` against the default ``reference``; fills in the keys it lacks.

  Args:
    config: the user's config (ConfigDict or mapping).
    reference: the binary's default config (every allowed key).

  Returns:
    Plain dicts: ``reference`` overlaid with ``config``, sections and non-empty
    sub-sections merged key by key.

  Raises:
    ValueError: if the config is not a mapping, a section is not a mapping, or a key
      is unknown (naming the closest known keys).
  """
  cfg = to_plain(config)
  if not isinstance(cfg, dict):
    raise ValueError(f"the config must be a ConfigDict or dict (get_config() in the "
                     f"config file), got {type(config).__name__} {config!r}")
  ref = to_plain(reference)
  check_keys(cfg, ref)
  for section, values in ref.items():
    if not isinstance(values, dict):
      cfg.setdefault(section, values)
      continue
    if not isinstance(cfg.get(section, {}), dict):
      raise ValueError(f"config.{section}={cfg[section]!r} must be a section (a dict) "
                       f"with keys {sorted(values)}")
    merged = {**values, **cfg.get(section, {})}
    for sub, sub_values in values.items():
      if isinstance(sub_values, dict) and sub_values:
        merged[sub] = {**sub_values, **merged.get(sub, {})}
    cfg[section] = merged
  return cfg
