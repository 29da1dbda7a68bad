"""The typed config of an EPBT run (``config.search``, ``config.train``, ``config.final``).

Every section is a frozen dataclass that validates itself once (:mod:`glojax.config`),
so a bad value is a one-line ``ValueError`` naming the key before anything is loaded
or written; :class:`Config` adds the checks that span sections (a searched SGD
learning rate needs a constant schedule). ``EPBT.default_config()`` is the locked
ConfigDict of these defaults. :data:`BASELINES` are the paper's baselines (§4.1) as
overrides of ``config.search``; :func:`baseline_config` makes a comparison run's config.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Optional

import numpy as np

from glojax import config as config_lib
from glojax import losses
from glojax.analysis import stats
from glojax.search import driver
from glojax.search.epbt_ops import Space
from glojax.train.trainer import TrainConfig

METHODS = ("epbt", "pbt", "none")
LOSSES = ("taylorglo", "cross_entropy")
HPARAMS = ("theta", "learning_rate", "momentum")
# The paper's baselines (§4.1) as overrides of config.search.
BASELINES = {
    "cross_entropy": {"method": "none", "loss": "cross_entropy", "hparams": ()},
    "pbt_theta": {"method": "pbt", "loss": "taylorglo", "hparams": ("theta",),
                  "theta_init": 1.0},
    "pbt_sgd": {"method": "pbt", "loss": "cross_entropy",
                "hparams": ("learning_rate", "momentum")},
}
_TRAIN_FIELDS = tuple(f for f in dataclasses.fields(TrainConfig) if f.name != "steps")


def _train_post_init(self):
  object.__setattr__(self, "boundaries", tuple(self.boundaries)
                     if isinstance(self.boundaries, (list, tuple)) else self.boundaries)
  self.train_config(1)  # TrainConfig's checks (FieldError naming config.train.<key>)


def _train_config(self, steps: int) -> TrainConfig:
  """The :class:`TrainConfig` of a member trained ``steps`` steps in all."""
  return TrainConfig(steps=steps, **{f.name: getattr(self, f.name) for f in _TRAIN_FIELDS})


# ``config.train``: every TrainConfig field except ``steps``, which is ``generations ×
# steps_per_generation`` (a learning-rate schedule spans the whole run: members keep
# their step count across generations).
TrainSection = dataclasses.make_dataclass(
    "TrainSection",
    [(f.name, f.type, dataclasses.field(default=f.default)) for f in _TRAIN_FIELDS],
    bases=(config_lib.Section,), frozen=True,
    namespace={"__post_init__": _train_post_init, "train_config": _train_config,
               "__module__": __name__,
               "__doc__": "``config.train``: TrainConfig's fields except ``steps``."})


def _as_tuple(obj, field: str) -> None:
  value = getattr(obj, field)
  if isinstance(value, list):
    object.__setattr__(obj, field, tuple(value))


def _check_range(obj, field: str, low=None, high=None, low_open=False) -> None:
  value = getattr(obj, field)
  if not isinstance(value, tuple) or len(value) != 2:
    raise config_lib.FieldError(type(obj).__name__, field, value,
                                "must be a pair (low, high)")
  for v in value:
    config_lib.check_number(type("Bound", (), {field: v})(), field, low, high, low_open)
  if not value[0] <= value[1]:
    raise config_lib.FieldError(type(obj).__name__, field, value, "must have low <= high")


@dataclasses.dataclass(frozen=True)
class SearchConfig(config_lib.Section):
  """``config.search`` of EPBT (defaults: the paper's operators, a small run).

  Attributes:
    method: ``"epbt"`` (tournament, mutation, crossover, elitism), ``"pbt"``
      (truncation, ×0.8/×1.2 perturbation or resampling) or ``"none"`` (independent
      training).
    loss: ``"taylorglo"`` (needs ``"theta"`` in ``hparams``) or ``"cross_entropy"``.
    hparams: what is searched: names from :data:`HPARAMS`.
    population_size: ``p``, networks trained side by side (paper: 40).
    generations: generations of training.
    steps_per_generation: SGD steps of every member per generation.
    elite_fraction: ``k / p``, members kept unchanged (paper: 0.5).
    tournament_size: ``t`` (paper: 2).
    mutation_rate, sigma, reset_rate, crossover_rate: EPBT's operators
      (:class:`glojax.search.epbt_ops.EPBTOperators`).
    truncation, perturb_factors, resample_rate: PBT's operators
      (:class:`glojax.search.epbt_ops.PBTOperators`).
    theta_bound: θ's bounds ±``theta_bound`` in the paper's eq. 1 convention.
    theta_init: initial θ uniform in ±``theta_init`` (same convention).
    learning_rate_range, momentum_range: bounds of the searched SGD hyperparameters.
    class_reduction: the TaylorGLO loss's class reduction (``losses.CLASS_REDUCTIONS``).
    strategy: population strategy (``glojax.train.STRATEGIES``).
  """
  method: str = "epbt"
  loss: str = "taylorglo"
  hparams: tuple = ("theta",)
  population_size: int = 16
  generations: int = 10
  steps_per_generation: int = 200
  elite_fraction: float = 0.5
  tournament_size: int = 2
  mutation_rate: float = 1.0
  sigma: float = 0.2
  reset_rate: float = 0.05
  crossover_rate: float = 0.5
  truncation: float = 0.25
  perturb_factors: tuple = (0.8, 1.2)
  resample_rate: float = 0.2
  theta_bound: float = 10.0
  theta_init: float = 10.0
  learning_rate_range: tuple = (1e-3, 1.0)
  momentum_range: tuple = (0.0, 0.99)
  class_reduction: str = "mean"
  strategy: str = "auto"

  def __post_init__(self):
    for name in ("hparams", "perturb_factors", "learning_rate_range", "momentum_range"):
      _as_tuple(self, name)
    config_lib.check_choice(self, "method", METHODS)
    config_lib.check_choice(self, "loss", LOSSES)
    config_lib.check_choice(self, "class_reduction", losses.CLASS_REDUCTIONS)
    driver.check_strategy(self)
    hp = self.hparams
    if not isinstance(hp, tuple) or any(h not in HPARAMS for h in hp) \
        or len(set(hp)) != len(hp):
      raise config_lib.FieldError(type(self).__name__, "hparams", hp,
                                  f"must be distinct names from {HPARAMS}")
    if (self.loss == "taylorglo") != ("theta" in hp):
      raise config_lib.FieldError(
          type(self).__name__, "loss", self.loss, f"with hparams={hp!r}: the TaylorGLO "
          "loss needs 'theta' in hparams, and 'theta' needs loss='taylorglo'")
    if self.method != "none" and not hp:
      raise config_lib.FieldError(type(self).__name__, "method", self.method,
                                  "needs something to search (hparams is empty); use "
                                  "method='none'")
    config_lib.check_int(self, "population_size", 2)
    config_lib.check_int(self, "generations", 1)
    config_lib.check_int(self, "steps_per_generation", 1)
    config_lib.check_int(self, "tournament_size", 1, self.population_size)
    for name in ("mutation_rate", "reset_rate", "crossover_rate", "resample_rate"):
      config_lib.check_number(self, name, 0.0, 1.0)
    config_lib.check_number(self, "elite_fraction", 0.0, 1.0, high_open=True)
    config_lib.check_number(self, "truncation", 0.0, 0.5, low_open=True)
    config_lib.check_number(self, "sigma", 0.0)
    config_lib.check_number(self, "theta_bound", 0.0, low_open=True)
    config_lib.check_number(self, "theta_init", 0.0, self.theta_bound)
    _check_range(self, "learning_rate_range", 0.0, low_open=True)
    _check_range(self, "momentum_range", 0.0, 1.0)
    pf = self.perturb_factors
    if not isinstance(pf, tuple) or not pf or not all(
        isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0 for x in pf):
      raise config_lib.FieldError(type(self).__name__, "perturb_factors", pf,
                                  "must be positive numbers")

  @property
  def searches_sgd(self) -> bool:
    """Whether SGD's learning rate or momentum is searched (held per member)."""
    return bool({"learning_rate", "momentum"} & set(self.hparams))


@dataclasses.dataclass(frozen=True)
class FinalConfig(config_lib.Section):
  """``config.final``: the comparison with the baselines after the run.

  Attributes:
    enabled: run it.
    repeats: seeds per method (``seed, seed + 1, …``; ≥ 2 for Welch's t-test).
    baselines: names from :data:`BASELINES`.
    alternative: Welch alternative of this run's method vs each baseline.
  """
  enabled: bool = True
  repeats: int = 3
  baselines: tuple = ("cross_entropy", "pbt_theta", "pbt_sgd")
  alternative: str = "greater"

  def __post_init__(self):
    _as_tuple(self, "baselines")
    config_lib.check_bool(self, "enabled")
    config_lib.check_int(self, "repeats", 2, why=" (Welch's t-test needs 2 runs per "
                         "method)")
    if not isinstance(self.baselines, tuple) or any(b not in BASELINES
                                                    for b in self.baselines):
      raise config_lib.FieldError(type(self).__name__, "baselines", self.baselines,
                                  f"must be names from {tuple(BASELINES)}")
    config_lib.check_choice(self, "alternative", stats.ALTERNATIVES)


@dataclasses.dataclass(frozen=True)
class Config(driver.RunConfig):
  """An EPBT config; defaults: mnist5k, MLP, SGD lr 0.1, batch 100."""
  train: TrainSection = dataclasses.field(
      default_factory=lambda: TrainSection(batch_size=100, learning_rate=0.1))
  search: SearchConfig = dataclasses.field(default_factory=SearchConfig)
  final: FinalConfig = dataclasses.field(default_factory=FinalConfig)

  def __post_init__(self):
    super().__post_init__()
    t, s = self.train, self.search
    if s.searches_sgd and (t.optimizer != "sgd" or t.schedule != "constant"
                           or t.warmup_steps):
      raise ValueError(
          f"config.search.hparams={s.hparams!r} searches SGD's learning rate/momentum: "
          f"needs train.optimizer='sgd', schedule='constant', warmup_steps=0 (got "
          f"{t.optimizer!r}, {t.schedule!r}, {t.warmup_steps})")

  @property
  def total_steps(self) -> int:
    """Training steps of every member: ``generations × steps_per_generation``."""
    return self.search.generations * self.search.steps_per_generation


def make_space(s: SearchConfig) -> Space:
  """The hyperparameter columns of ``s.hparams``.

  θ's bounds are ``±theta_bound`` in the paper's eq. 1 convention (with its ½ and ⅙
  factors), i.e. ``±theta_bound · factor`` on the project's factorial-free θ; so the
  search covers exactly the paper's space.
  """
  cols: list = []
  for name in s.hparams:
    if name == "theta":
      factors = np.asarray(losses.theta_from_eq57(np.ones(losses.TAYLORGLO_NUM_PARAMS)))
      for i, fac in enumerate(factors):
        b, b0 = float(s.theta_bound * fac), float(s.theta_init * fac)
        cols.append((f"theta_{i}", -b, b, False, -b0, b0))
    elif name == "learning_rate":
      lo, hi = map(float, s.learning_rate_range)
      cols.append(("learning_rate", lo, hi, True, lo, hi))
    else:
      lo, hi = map(float, s.momentum_range)
      cols.append(("momentum", lo, hi, False, lo, hi))
  return Space(*(tuple(c[i] for c in cols) for i in range(6))) if cols else \
      Space((), (), (), (), (), ())


def method_label(search: dict) -> str:
  """``"epbt"`` or the baseline name a plain ``search`` section matches (else its
  method)."""
  for name, preset in BASELINES.items():
    if all(list(search[k]) == list(v) if isinstance(v, tuple) else search[k] == v
           for k, v in preset.items() if k != "theta_init"):
      return name
  return search["method"]


def baseline_config(cfg: dict, baseline: Optional[str], seed: int) -> dict:
  """The plain config of one comparison run: ``cfg`` with ``seed``, the comparison
  off, and (unless ``baseline`` is None) the baseline's search settings.

  A baseline that searches SGD's learning rate trains with a constant schedule (PBT's
  learning rate replaces the schedule, as in the paper's baseline 3).
  """
  sub = copy.deepcopy(cfg)
  sub["seed"] = seed
  sub["final"]["enabled"] = False
  if baseline is not None:
    sub["search"].update({k: (list(v) if isinstance(v, tuple) else v)
                          for k, v in BASELINES[baseline].items()})
    if {"learning_rate", "momentum"} & set(sub["search"]["hparams"]):
      sub["train"].update(schedule="constant", boundaries=[], warmup_steps=0)
  return sub
