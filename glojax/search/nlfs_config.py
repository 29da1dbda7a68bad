"""NLFS's typed config sections (:mod:`glojax.config`), checked before the workdir is touched.

Defaults are the paper's where it gives them (Morgan & Hougen 2024, §3, appendix D;
``docs/nlfs.md``). ``initial``/``prescreen``/``elimination`` may name their own model
(``model``: a ``{"name", "options"}`` dict, ``{}`` = the surrogate's) and override the
surrogate's training key by key (``train``).
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

from glojax import config as config_lib
from glojax.expr import graph as graph_lib
from glojax.expr import integrity as integrity_lib
from glojax.search import driver
from glojax.train.early_stopping import EarlyStopping
from glojax.train.trainer import TrainConfig

ACTIONS = ("stop", "reject")


def _as_tuples(obj, field: str) -> None:
  value = getattr(obj, field)
  if isinstance(value, (list, tuple)):
    object.__setattr__(obj, field, tuple(
        tuple(v) if isinstance(v, (list, tuple)) else v for v in value))


def _checks(obj, field: str, with_action: bool, train_examples: int = 0):
  """``[step, min_train_accuracy(, action)]`` rows → an EarlyStopping (or None)."""
  _as_tuples(obj, field)
  rows = getattr(obj, field)
  width = 3 if with_action else 2
  if not isinstance(rows, tuple) or any(not isinstance(r, tuple) or len(r) != width
                                        or (with_action and r[2] not in ACTIONS)
                                        for r in rows):
    form = "[step, min_train_accuracy, action in ('stop', 'reject')]" if with_action \
        else "[step, min_train_accuracy]"
    raise config_lib.FieldError(type(obj).__name__, field, rows,
                                f"must be a list of {form}")
  if not rows:
    return None
  try:
    return EarlyStopping(tuple((r[0], r[1]) for r in rows),
                         **({"train_examples": train_examples} if train_examples else {}))
  except (TypeError, ValueError) as e:
    raise config_lib.FieldError(type(obj).__name__, field, rows, str(e)) from None


def _sub_model(obj) -> None:
  config_lib.check_mapping(obj, "model", "{'name': 'nlfs_convnet', 'options': {}}")
  if obj.model:
    config_lib.ModelConfig(**{"options": {}, **obj.model})


def _sub_train(obj) -> None:
  config_lib.check_mapping(obj, "train", "{'steps': 800}")
  unknown = set(obj.train) - {f.name for f in dataclasses.fields(TrainConfig)}
  if unknown:
    raise config_lib.FieldError(type(obj).__name__, "train", dict(obj.train),
                                f"has unknown keys {sorted(unknown)}")


@dataclasses.dataclass(frozen=True)
class NLFSSearchConfig(config_lib.Section):
  """``config.search``: regularized evolution (§3.4, appendix B).

  Attributes:
    population_size: P (100). tournament_size: members per tournament (20).
    children_per_step: B (0: what fills one compiled population call; 1 = the paper's
      sequential algorithm, > 1 the asynchronous variant).
    steps: evolution steps. max_mutation_attempts: per child (2,500). max_redo:
      trainings per slot (7). mutation: appendix B's rates. integrity: §3.3's check
      (:class:`glojax.expr.integrity.IntegrityConfig`). archive_size: best graphs kept
      for elimination. strategy: population strategy (not ``"sharded"``).
    nan_retries: retrainings of a NaN child with a new key.
  """
  population_size: int = 100
  tournament_size: int = 20
  children_per_step: int = 0
  steps: int = 2000
  max_mutation_attempts: int = 2500
  max_redo: int = 7
  mutation: Mapping = dataclasses.field(default_factory=lambda: {
      "op": 0.70, "arity": 0.15, "connection": 0.15, "swap": 0.20})
  integrity: Mapping = dataclasses.field(default_factory=lambda: {
      f.name: f.default for f in dataclasses.fields(integrity_lib.IntegrityConfig)})
  archive_size: int = 150
  strategy: str = "auto"
  nan_retries: int = 0

  def __post_init__(self):
    for name, low in (("population_size", 1), ("tournament_size", 1),
                      ("children_per_step", 0), ("steps", 0),
                      ("max_mutation_attempts", 1), ("max_redo", 1), ("archive_size", 1),
                      ("nan_retries", 0)):
      config_lib.check_int(self, name, low)
    if self.tournament_size > self.population_size:
      raise config_lib.FieldError(type(self).__name__, "population_size",
                                  self.population_size, f"is smaller than tournament_size="
                                  f"{self.tournament_size}")
    driver.check_strategy(self)
    if self.strategy == "sharded":
      raise config_lib.FieldError(type(self).__name__, "strategy", self.strategy,
                                  "is not supported by NLFS (early stopping re-packs the "
                                  "population); use 'vmap'")
    for name, cls in (("mutation", graph_lib.MutationRates),
                      ("integrity", integrity_lib.IntegrityConfig)):
      config_lib.check_mapping(self, name, "{...}")
      try:
        cls(**getattr(self, name))
      except (TypeError, ValueError) as e:
        raise config_lib.FieldError(type(self).__name__, name, dict(getattr(self, name)),
                                    str(e)) from None

  @property
  def rates(self) -> graph_lib.MutationRates:
    return graph_lib.MutationRates(**self.mutation)

  @property
  def integrity_config(self) -> integrity_lib.IntegrityConfig:
    return integrity_lib.IntegrityConfig(**self.integrity)


@dataclasses.dataclass(frozen=True)
class InitialConfig(config_lib.Section):
  """``config.initial``: the decoupled initial population (§3.8): ``size`` graphs
  scored ``batch`` at a time on ``model``/``train`` with ``early_stopping``."""
  size: int = 1000
  batch: int = 16
  model: Mapping = dataclasses.field(default_factory=dict)
  train: Mapping = dataclasses.field(default_factory=dict)
  early_stopping: tuple = ((800, 0.37),)

  def __post_init__(self):
    config_lib.check_int(self, "size", 1)
    config_lib.check_int(self, "batch", 1)
    _sub_model(self)
    _sub_train(self)
    _checks(self, "early_stopping", with_action=False)

  def stopping(self, train_examples: int):
    return _checks(self, "early_stopping", with_action=False,
                   train_examples=train_examples)


@dataclasses.dataclass(frozen=True)
class PrescreenConfig(config_lib.Section):
  """``config.prescreen``: §3.7's cheap training before the surrogate (a child below
  ``min_train_accuracy`` after ``train.steps`` is a failed training)."""
  enabled: bool = False
  model: Mapping = dataclasses.field(default_factory=dict)
  train: Mapping = dataclasses.field(default_factory=lambda: {"steps": 800})
  min_train_accuracy: float = 0.37

  def __post_init__(self):
    config_lib.check_bool(self, "enabled")
    _sub_model(self)
    _sub_train(self)
    config_lib.check_number(self, "min_train_accuracy", 0.0, 1.0)


@dataclasses.dataclass(frozen=True)
class EarlyStoppingConfig(config_lib.Section):
  """``config.early_stopping``: the surrogate's checks ``[step, min_train_accuracy,
  action]`` (§3.7: 25 % after 3,000 steps, ``"stop"``), measured on
  ``train_examples`` training examples."""
  checks: tuple = ((3000, 0.25, "stop"),)
  train_examples: int = 10000

  def __post_init__(self):
    config_lib.check_int(self, "train_examples", 1)
    _checks(self, "checks", with_action=True, train_examples=self.train_examples)

  @property
  def actions(self) -> tuple:
    return tuple(c[2] for c in self.checks)

  def stopping(self):
    return _checks(self, "checks", with_action=True, train_examples=self.train_examples)


@dataclasses.dataclass(frozen=True)
class EliminationConfig(config_lib.Section):
  """``config.elimination``: §3.9's protocol (``experiments/nlfs_eliminate.py``):
  ``rounds`` of ``[keep, steps]``, each from scratch; then the survivors and
  cross-entropy ``final_repeats`` times, Welch's test (``alternative``)."""
  rounds: tuple = ((150, 16000), (50, 32000), (25, 48000), (10, 64000))
  model: Mapping = dataclasses.field(default_factory=dict)
  train: Mapping = dataclasses.field(default_factory=dict)
  repeats: int = 1
  final_repeats: int = 5
  seed: int = 1
  alternative: str = "two-sided"

  def __post_init__(self):
    _as_tuples(self, "rounds")
    if not self.rounds or any(not isinstance(r, tuple) or len(r) != 2 or
                              not all(isinstance(v, int) and v >= 1 for v in r)
                              for r in self.rounds):
      raise config_lib.FieldError(type(self).__name__, "rounds", self.rounds,
                                  "must be a non-empty list of [keep ≥ 1, steps ≥ 1]")
    if any(b[0] > a[0] for a, b in zip(self.rounds, self.rounds[1:])):
      raise config_lib.FieldError(type(self).__name__, "rounds", self.rounds,
                                  "must keep fewer losses each round")
    _sub_model(self)
    _sub_train(self)
    config_lib.check_int(self, "repeats", 1)
    config_lib.check_int(self, "final_repeats", 2, why=" (Welch's t-test)")
    config_lib.check_int(self, "seed", 0, config_lib.MAX_SEED)
    config_lib.check_choice(self, "alternative", ("two-sided", "greater", "less"))


def _surrogate_train() -> TrainConfig:
  # The paper's surrogate recipe (appendix D): Adam, lr 1e-3, batch 64.
  return TrainConfig(steps=8000, batch_size=64, learning_rate=0.001, optimizer="adam")


@dataclasses.dataclass(frozen=True)
class Config(driver.RunConfig):
  """An NLFS run: the surrogate (``dataset``/``model``/``train``), the initial population,
  prescreen, early stopping, the evolution, the final protocol and elimination."""
  dataset: config_lib.DatasetConfig = dataclasses.field(
      default_factory=lambda: config_lib.DatasetConfig(name="mnist5k"))
  model: config_lib.ModelConfig = dataclasses.field(
      default_factory=lambda: config_lib.ModelConfig(name="nlfs_convnet"))
  train: TrainConfig = dataclasses.field(default_factory=_surrogate_train)
  initial: InitialConfig = dataclasses.field(default_factory=InitialConfig)
  prescreen: PrescreenConfig = dataclasses.field(default_factory=PrescreenConfig)
  early_stopping: EarlyStoppingConfig = dataclasses.field(
      default_factory=EarlyStoppingConfig)
  search: NLFSSearchConfig = dataclasses.field(default_factory=NLFSSearchConfig)
  elimination: EliminationConfig = dataclasses.field(default_factory=EliminationConfig)

  def __post_init__(self):
    super().__post_init__()
    if self.initial.size < self.search.population_size:
      raise config_lib.FieldError("config.initial", "size", self.initial.size,
                                  f"is smaller than search.population_size="
                                  f"{self.search.population_size}")


def sub_config(config: Config, section) -> Config:
  """The run config of a sub-training: ``section.model`` replaces the surrogate's model
  (whole), ``section.train`` overrides its training key by key.

  Raises:
    ValueError: for a bad model/train override (naming it).
  """
  model = config.model
  if section.model:
    model = config_lib.ModelConfig(**{"options": {}, **section.model})
  train = dataclasses.replace(config.train, **dict(section.train))
  return dataclasses.replace(config, model=model, train=train)
