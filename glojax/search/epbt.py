"""EPBT: population-based training of TaylorGLO loss schedules (and its PBT baselines).

Liang, Gonzalez & Miikkulainen, "Population-Based Training for Loss Function
Optimization" (2020), §3 and Algorithm 1. ``p`` networks train side by side; every
generation the better members' weights and loss parameters θ replace the worse ones'
(:func:`~glojax.search.epbt_ops.next_generation`), so the loss each network is trained
with becomes a *schedule* that changes as training goes on.

Here the whole population is one pytree (:class:`~glojax.search.epbt_ops.Population`)
trained by the population trainer as one compiled program
(:func:`glojax.train.train_population_from`, ``strategy="auto"``), and selection and
variation are one jitted pure function of that pytree. The search has the three-part
shape every glojax search has:

* ``EPBT(config).init(key) -> state`` — ``p`` freshly initialized networks with
  hyperparameters drawn uniformly (θ in ±``theta_init``);
* ``EPBT.step(state, key) -> (state, record)`` — one generation: selection and
  variation (from the second generation on), ``steps_per_generation`` steps of training
  for every member from its own weights and optimizer state, validation accuracy
  (fitness) and test accuracy (logged only);
* ``EPBT.finalize(state) -> results`` — the best member, its test accuracy and its
  ancestry (whose θ over the generations is the discovered loss schedule).

``search.method`` selects the exploit/explore rule: ``"epbt"`` (tournament, mutation,
crossover, elitism), ``"pbt"`` (truncation, ×0.8/×1.2 perturbation or resampling) or
``"none"`` (independent training). ``search.hparams`` picks what is searched:
``"theta"`` (TaylorGLO θ, trained with the TaylorGLO loss), ``"learning_rate"`` and
``"momentum"`` (SGD, held per member in the optimizer state). The paper's baselines are
presets of these (:data:`BASELINES`). The binary and workdir loop are in
:mod:`glojax.search.epbt_run`; ``docs/epbt.md`` describes the algorithm as implemented.
"""

from __future__ import annotations

import dataclasses
import time
import types
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from glojax import config as config_lib
from glojax import losses
from glojax.analysis import lineage
from glojax.search.epbt_ops import (
    EPBTOperators,
    PBTOperators,
    Population,
    Space,
    next_generation,
    pbt_exploit_explore,
    sample_hparams,
    selection_score,
    with_optimizer_hparams,
)
from glojax.search.taylorglo import cross_entropy_loss_fn, taylorglo_loss_fn
from glojax.train.population import (
    evaluate_states,
    init_population,
    train_population_from,
)
from glojax.train.trainer import TrainConfig, Trainer

METHODS = ("epbt", "pbt", "none")
LOSSES = ("taylorglo", "cross_entropy")
HPARAMS = ("theta", "learning_rate", "momentum")
STRATEGIES = ("auto", "vmap", "unroll", "sequential")
# The paper's baselines (§4.1) as overrides of config.search.
BASELINES = {
    "cross_entropy": {"method": "none", "loss": "cross_entropy", "hparams": ()},
    "pbt_theta": {"method": "pbt", "loss": "taylorglo", "hparams": ("theta",),
                  "theta_init": 1.0},
    "pbt_sgd": {"method": "pbt", "loss": "cross_entropy",
                "hparams": ("learning_rate", "momentum")},
}
_TRAIN_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.name != "steps")
_PURPOSE_INIT, _PURPOSE_STEP = 0, 1


def default_config() -> ml_collections.ConfigDict:
  """Every key an EPBT config may set (defaults: the paper's operators, a small run).

  ``train`` holds every :class:`~glojax.train.trainer.TrainConfig` field except
  ``steps``, which is ``generations × steps_per_generation`` (a learning-rate schedule
  spans the whole run: members keep their step count across generations).
  """
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.dataset = ml_collections.ConfigDict({"name": "mnist5k", "seed": 0, "options": {}})
  c.model = ml_collections.ConfigDict({"name": "mlp", "options": {}})
  train = {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.name != "steps"}
  train.update({"batch_size": 100, "learning_rate": 0.1})
  c.train = ml_collections.ConfigDict(train)
  c.search = ml_collections.ConfigDict({
      "method": "epbt", "loss": "taylorglo", "hparams": ("theta",),
      "population_size": 16, "generations": 10, "steps_per_generation": 200,
      "elite_fraction": 0.5, "tournament_size": 2,
      "mutation_rate": 1.0, "sigma": 0.2, "reset_rate": 0.05, "crossover_rate": 0.5,
      "truncation": 0.25, "perturb_factors": (0.8, 1.2), "resample_rate": 0.2,
      "theta_bound": 10.0, "theta_init": 10.0,
      "learning_rate_range": (1e-3, 1.0), "momentum_range": (0.0, 0.99),
      "class_reduction": "mean", "strategy": "auto"})
  c.final = ml_collections.ConfigDict({
      "enabled": True, "seeds": 3,
      "baselines": ("cross_entropy", "pbt_theta", "pbt_sgd"),
      "alternative": "greater"})
  return c


def validate_config(config) -> dict:
  """Checks a config against :func:`default_config`; returns it as a plain dict.

  Raises:
    ValueError: naming the offending key and value (unknown keys, names, ranges, and
      combinations the search cannot run, e.g. a searched learning rate with a
      learning-rate schedule).
  """
  cfg = config_lib.with_defaults(config, default_config())
  _check_names(cfg)
  s, f, t = cfg["search"], cfg["final"], cfg["train"]
  for key, allowed in (("method", METHODS), ("loss", LOSSES),
                       ("class_reduction", losses.CLASS_REDUCTIONS)):
    if s[key] not in allowed:
      raise ValueError(f"config.search.{key}={s[key]!r} is not one of {allowed}")
  hp = s["hparams"] = tuple(s["hparams"]) if isinstance(s["hparams"], (list, tuple)) \
      else s["hparams"]
  if not isinstance(hp, tuple) or any(h not in HPARAMS for h in hp) or len(set(hp)) != len(hp):
    raise ValueError(f"config.search.hparams={hp!r} must be distinct names from {HPARAMS}")
  if (s["loss"] == "taylorglo") != ("theta" in hp):
    raise ValueError(f"config.search.loss={s['loss']!r} with hparams={hp!r}: the TaylorGLO "
                     "loss needs 'theta' in hparams, and 'theta' needs loss='taylorglo'")
  if s["method"] != "none" and not hp:
    raise ValueError(f"config.search.method={s['method']!r} needs something to search "
                     "(config.search.hparams is empty); use method='none'")
  _check_int("search.population_size", s["population_size"], 2)
  _check_int("search.generations", s["generations"], 1)
  _check_int("search.steps_per_generation", s["steps_per_generation"], 1)
  _check_int("search.tournament_size", s["tournament_size"], 1, high=s["population_size"])
  _check_int("seed", cfg["seed"], 0, high=2**31 - 1)
  _check_int("dataset.seed", cfg["dataset"]["seed"], 0, high=2**63 - 1)
  for key in ("mutation_rate", "reset_rate", "crossover_rate", "resample_rate"):
    _check_number(f"search.{key}", s[key], low=0.0, high=1.0)
  _check_number("search.elite_fraction", s["elite_fraction"], low=0.0, high=1.0,
                high_open=True)
  _check_number("search.truncation", s["truncation"], low=0.0, high=0.5, low_open=True)
  _check_number("search.sigma", s["sigma"], low=0.0)
  _check_number("search.theta_bound", s["theta_bound"], low=0.0, low_open=True)
  _check_number("search.theta_init", s["theta_init"], low=0.0, high=s["theta_bound"])
  _check_range("search.learning_rate_range", s["learning_rate_range"], low=0.0, low_open=True)
  _check_range("search.momentum_range", s["momentum_range"], low=0.0, high=1.0)
  pf = s["perturb_factors"]
  if not isinstance(pf, (list, tuple)) or not pf or not all(
      isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0 for x in pf):
    raise ValueError(f"config.search.perturb_factors={pf!r} must be positive numbers")
  searches_sgd = {"learning_rate", "momentum"} & set(hp)
  if searches_sgd and (t["optimizer"] != "sgd" or t["schedule"] != "constant"
                       or t["warmup_steps"]):
    raise ValueError(f"config.search.hparams={hp!r} searches SGD's {sorted(searches_sgd)}: "
                     f"needs train.optimizer='sgd', schedule='constant', warmup_steps=0 "
                     f"(got {t['optimizer']!r}, {t['schedule']!r}, {t['warmup_steps']})")
  if not isinstance(f["enabled"], bool):
    raise ValueError(f"config.final.enabled={f['enabled']!r} must be True or False")
  _check_int("final.seeds", f["seeds"], 2, why=" (Welch's t-test needs 2 runs per method)")
  f["baselines"] = tuple(f["baselines"]) if isinstance(f["baselines"], (list, tuple)) \
      else f["baselines"]
  if not isinstance(f["baselines"], tuple) or any(b not in BASELINES for b in f["baselines"]):
    raise ValueError(f"config.final.baselines={f['baselines']!r} must be names from "
                     f"{tuple(BASELINES)}")
  if f["alternative"] not in ("greater", "less", "two-sided"):
    raise ValueError(f"config.final.alternative={f['alternative']!r} is not one of "
                     "('greater', 'less', 'two-sided')")
  try:
    train_config(cfg)
  except (TypeError, ValueError) as e:
    raise ValueError(f"config.train: {e}") from None
  return config_lib.to_plain(cfg)


def _check_int(key: str, value, low: int, high=None, why: str = "") -> None:
  """``config_lib.check_int`` on the plain-dict value at dotted ``key``."""
  _check(config_lib.check_int, key, value, low, high, why)


def _check_number(key: str, value, low=None, high=None, low_open=False,
                  high_open=False) -> None:
  """``config_lib.check_number`` on the plain-dict value at dotted ``key``."""
  _check(config_lib.check_number, key, value, low, high, low_open, high_open)


def _check(check, key: str, value, *args) -> None:
  owner, _, field = f"config.{key}".rpartition(".")
  try:
    check(types.SimpleNamespace(**{field: value}), field, *args)
  except config_lib.FieldError as e:
    e.owner = owner  # name the config key, not the namespace
    raise


def _check_names(cfg: dict) -> None:
  """Raises a clear ValueError for an unknown dataset, model or population strategy."""
  from glojax import data as data_lib
  from glojax import models as models_lib
  if cfg["dataset"]["name"] not in data_lib.names():
    raise ValueError(f"config.dataset.name={cfg['dataset']['name']!r} is not a known "
                     f"dataset; known: {data_lib.names()}")
  if cfg["model"]["name"] not in models_lib.names():
    raise ValueError(f"config.model.name={cfg['model']['name']!r} is not a known model; "
                     f"known: {models_lib.names()}")
  if cfg["search"]["strategy"] not in STRATEGIES:
    raise ValueError(f"config.search.strategy={cfg['search']['strategy']!r} is not one "
                     f"of {STRATEGIES}")


def _check_range(key: str, value, low=None, high=None, low_open=False) -> None:
  if not isinstance(value, (list, tuple)) or len(value) != 2:
    raise ValueError(f"config.{key}={value!r} must be a pair (low, high)")
  for v in value:
    _check_number(key, v, low=low, high=high, low_open=low_open)
  if not value[0] <= value[1]:
    raise ValueError(f"config.{key}={value!r} must have low <= high")


def train_config(cfg: dict) -> TrainConfig:
  """The :class:`TrainConfig` of a config: ``steps = generations × steps_per_generation``."""
  s = cfg["search"]
  return TrainConfig(steps=s["generations"] * s["steps_per_generation"],
                     **{k: cfg["train"][k] for k in _TRAIN_FIELDS})


def make_space(cfg: dict) -> Space:
  """The hyperparameter columns of ``config.search.hparams``.

  θ's bounds are ``±theta_bound`` in the paper's eq. 1 convention (with its ½ and ⅙
  factors), i.e. ``±theta_bound · factor`` on the project's factorial-free θ; so the
  search covers exactly the paper's space.
  """
  s = cfg["search"]
  cols: list = []
  for name in s["hparams"]:
    if name == "theta":
      factors = np.asarray(losses.theta_from_eq57(np.ones(losses.TAYLORGLO_NUM_PARAMS)))
      for i, fac in enumerate(factors):
        b, b0 = float(s["theta_bound"] * fac), float(s["theta_init"] * fac)
        cols.append((f"theta_{i}", -b, b, False, -b0, b0))
    elif name == "learning_rate":
      lo, hi = map(float, s["learning_rate_range"])
      cols.append(("learning_rate", lo, hi, True, lo, hi))
    else:
      lo, hi = map(float, s["momentum_range"])
      cols.append(("momentum", lo, hi, False, lo, hi))
  return Space(*(tuple(c[i] for c in cols) for i in range(6))) if cols else \
      Space((), (), (), (), (), ())


class History(NamedTuple):
  """Per-generation record of every member (``[G, p]`` arrays, rows < generation set)."""
  member_id: jax.Array
  parent_id: jax.Array
  hparams: jax.Array        # float32[G, p, D]
  fitness: jax.Array
  test_accuracy: jax.Array
  finite: jax.Array


class EPBTState(NamedTuple):
  """The whole search state, one pytree: population, generation counter, history."""
  population: Population
  generation: jax.Array     # int32[]: generations finished
  history: History


def _sgd_with_injected(cfg: dict):
  """SGD whose learning rate and momentum live in the optimizer state (per member)."""
  t = cfg["train"]

  def make(learning_rate, momentum):
    sgd = optax.sgd(learning_rate, momentum=momentum, nesterov=t["nesterov"])
    if t["weight_decay"]:
      return optax.chain(optax.add_decayed_weights(t["weight_decay"]), sgd)
    return sgd
  return optax.inject_hyperparams(make)(learning_rate=float(t["learning_rate"]),
                                        momentum=float(t["momentum"]))


class EPBT:
  """One EPBT / PBT / plain population run (see the module docstring).

  Args:
    config: a ConfigDict/mapping with the keys of :func:`default_config`.
    trainers: optional cache ``{key: Trainer}`` shared by runs in one process, so runs
      with the same model, data and training reuse compiled programs.

  Raises:
    ValueError: for a bad config or model options (before any training);
    FileNotFoundError: if the dataset is not available.
  """

  def __init__(self, config, trainers: Optional[dict] = None):
    self.cfg = cfg = validate_config(config)
    s = cfg["search"]
    self.p = s["population_size"]
    self.generations = s["generations"]
    self.steps = s["steps_per_generation"]
    self.space = make_space(cfg)
    self.theta_cols = np.asarray(self.space.columns("theta"), np.int32)
    self.ops = (EPBTOperators(elites=int(s["elite_fraction"] * self.p),
                              tournament_size=s["tournament_size"],
                              mutation_rate=float(s["mutation_rate"]),
                              sigma=float(s["sigma"]), reset_rate=float(s["reset_rate"]),
                              crossover_rate=float(s["crossover_rate"]))
                if s["method"] == "epbt" else
                PBTOperators(truncation=float(s["truncation"]),
                             perturb_factors=tuple(map(float, s["perturb_factors"])),
                             resample_rate=float(s["resample_rate"])))
    injected = bool({"learning_rate", "momentum"} & set(s["hparams"]))
    key = config_lib.to_plain({k: cfg[k] for k in ("dataset", "model", "train")})
    key = repr((key, s["generations"] * self.steps, s["loss"], s["class_reduction"],
                injected))
    trainers = {} if trainers is None else trainers
    if key not in trainers:
      trainers[key] = _build_trainer(cfg, s["generations"] * self.steps, injected)
    self.trainer = trainers[key]

  # ---- the three parts of a search -------------------------------------------------

  def init(self, key: jax.Array) -> EPBTState:
    """``p`` fresh networks; hyperparameters uniform in their initial ranges.

    Args:
      key: PRNG key of the run (members' weights use ``split(fold_in(key, 0), p)``, so
        runs of different methods with the same key start from the same networks).
    """
    p, g, d = self.p, self.generations, self.space.size
    k_init = jax.random.fold_in(key, 0)
    k_h = jax.random.fold_in(key, 1)
    train = init_population(self.trainer, jax.random.split(k_init, p))
    hparams = sample_hparams(k_h, self.space, p)
    train = with_optimizer_hparams(train, hparams, self.space)
    pop = Population(
        train=train, hparams=hparams, fitness=jnp.zeros(p, jnp.float32),
        test_accuracy=jnp.zeros(p, jnp.float32), finite=jnp.ones(p, bool),
        member_id=jnp.arange(p, dtype=jnp.int32), parent_id=jnp.full(p, -1, jnp.int32),
        age=jnp.zeros(p, jnp.int32), next_id=jnp.asarray(p, jnp.int32))
    history = History(
        member_id=jnp.full((g, p), -1, jnp.int32), parent_id=jnp.full((g, p), -1, jnp.int32),
        hparams=jnp.zeros((g, p, d), jnp.float32), fitness=jnp.zeros((g, p), jnp.float32),
        test_accuracy=jnp.zeros((g, p), jnp.float32), finite=jnp.zeros((g, p), bool))
    return EPBTState(pop, jnp.asarray(0, jnp.int32), history)

  def select(self, pop: Population, key: jax.Array) -> tuple[Population, dict]:
    """This run's exploit/explore on an evaluated population (identity for ``none``)."""
    if isinstance(self.ops, EPBTOperators):
      return next_generation(pop, key, self.space, self.ops)
    if self.cfg["search"]["method"] == "pbt":
      return pbt_exploit_explore(pop, key, self.space, self.ops)
    # Independent training: every member continues as itself.
    return pop._replace(parent_id=pop.member_id), {"is_child": jnp.zeros(self.p, bool)}

  def step(self, state: EPBTState, key: jax.Array) -> tuple[EPBTState, dict]:
    """One generation: select (from the second on), train, evaluate.

    Returns:
      ``(state, record)``; the record is JSON-able: per member ``fitness`` (validation
      accuracy, 0 if failed), ``test_accuracy``, ``member_id``, ``parent_id``,
      ``hparams``; the best member's ids and accuracies; timings in seconds.

    Raises:
      ValueError: if every generation is already done.
    """
    g = int(state.generation)
    if g >= self.generations:
      raise ValueError(f"all {self.generations} generations are done")
    t0 = time.perf_counter()
    pop, children = state.population, 0
    if g > 0:
      pop, info = self.select(pop, key)
      pop = jax.block_until_ready(pop)
      children = int(np.sum(np.asarray(info["is_child"])))
    t1 = time.perf_counter()
    s = self.cfg["search"]
    loss_params = pop.hparams[:, self.theta_cols]
    train = train_population_from(self.trainer, pop.train, loss_params, self.steps,
                                  strategy=s["strategy"], model_name=self.cfg["model"]["name"])
    train = jax.block_until_ready(train)
    t2 = time.perf_counter()
    val = evaluate_states(self.trainer, train, "validation", strategy=s["strategy"])
    test = evaluate_states(self.trainer, train, "test", strategy=s["strategy"])
    t3 = time.perf_counter()
    finite = val["finite"] & test["finite"]
    fitness = np.where(finite, val["accuracy"], 0.0).astype(np.float32)
    test_acc = np.where(finite, test["accuracy"], 0.0).astype(np.float32)
    pop = pop._replace(train=train, fitness=jnp.asarray(fitness),
                       test_accuracy=jnp.asarray(test_acc), finite=jnp.asarray(finite),
                       age=pop.age + 1)
    h = state.history
    history = History(h.member_id.at[g].set(pop.member_id),
                      h.parent_id.at[g].set(pop.parent_id), h.hparams.at[g].set(pop.hparams),
                      h.fitness.at[g].set(pop.fitness),
                      h.test_accuracy.at[g].set(pop.test_accuracy), h.finite.at[g].set(finite))
    best = int(np.argmax(np.asarray(selection_score(pop))))
    record = {
        "generation": g, "steps_per_member": (g + 1) * self.steps,
        "fitness": fitness.tolist(), "test_accuracy": test_acc.tolist(),
        "best": float(fitness.max()), "mean": float(fitness.mean()),
        "median": float(np.median(fitness)),
        "best_slot": best, "best_member_id": int(pop.member_id[best]),
        "best_test_accuracy": float(test_acc[best]),
        "mean_test_accuracy": float(test_acc.mean()),
        "member_id": np.asarray(pop.member_id).tolist(),
        "parent_id": np.asarray(pop.parent_id).tolist(),
        "hparam_names": list(self.space.names),
        "hparams": np.asarray(pop.hparams).tolist(),
        "children": children, "failed": int(np.sum(~finite)),
        "select_time_s": t1 - t0, "train_time_s": t2 - t1, "eval_time_s": t3 - t2,
    }
    return EPBTState(pop, jnp.asarray(g + 1, jnp.int32), history), record

  def finalize(self, state: EPBTState) -> dict:
    """The best member of the final population and its ancestry.

    Returns:
      JSON-able dict: ``method``, ``generations`` done, ``steps_per_member``,
      ``best_validation_accuracy``, ``best_test_accuracy`` (the test accuracy of the
      member with the best validation accuracy), ``mean_test_accuracy``,
      ``best_member_id``, ``best_hparams`` (name → value), ``best_spec`` (the final
      TaylorGLO loss, if θ is searched), ``ancestry`` (the best member's lineage,
      oldest first, members unchanged by elitism listed once), ``failed``.
    """
    g = int(state.generation)
    if g == 0:
      raise ValueError("finalize: no generation has run")
    pop = state.population
    best = int(np.argmax(np.asarray(selection_score(pop))))
    h = jax.tree_util.tree_map(lambda a: np.asarray(a)[:g], state.history)
    chain = lineage.ancestry(h.member_id, h.parent_id, best)
    names = list(self.space.names)
    ancestry = [{"generation": gen, "member_id": int(h.member_id[gen, slot]),
                 "hparams": h.hparams[gen, slot].tolist(),
                 "fitness": float(h.fitness[gen, slot]),
                 "test_accuracy": float(h.test_accuracy[gen, slot])}
                for gen, slot in lineage.drop_repeats(chain, h.member_id)]
    out = {
        "method": self.cfg["search"]["method"], "loss": self.cfg["search"]["loss"],
        "generations": g, "steps_per_member": g * self.steps,
        "best_validation_accuracy": float(pop.fitness[best]),
        "best_test_accuracy": float(pop.test_accuracy[best]),
        "mean_test_accuracy": float(np.mean(np.asarray(pop.test_accuracy))),
        "best_member_id": int(pop.member_id[best]),
        "best_hparams": dict(zip(names, np.asarray(pop.hparams[best]).tolist())),
        "best_spec": None, "hparam_names": names, "ancestry": ancestry,
        "failed": int(np.sum(~np.asarray(pop.finite))),
    }
    if self.theta_cols.size:
      out["best_spec"] = losses.taylorglo_spec(np.asarray(pop.hparams[best])[self.theta_cols])
    return out

  def loss_params_of(self, hparams) -> Any:
    """The TaylorGLO θ (``float32[8]``) in a row of hyperparameters (None if not searched)."""
    return np.asarray(hparams)[self.theta_cols] if self.theta_cols.size else None


def _build_trainer(cfg: dict, steps: int, injected: bool) -> Trainer:
  """Loads data, builds the model and the trainer of ``steps`` steps; the model is
  initialized abstractly (no FLOPs), so bad model options fail up front.

  Raises:
    ValueError: naming ``config.model.options`` when the model cannot be built, or a
      batch larger than the train split; FileNotFoundError if the dataset is missing.
  """
  from glojax import data as data_lib
  from glojax import models as models_lib
  s, d, m = cfg["search"], cfg["dataset"], cfg["model"]
  dataset = data_lib.load(d["name"], seed=d["seed"], **d.get("options", {}))
  tcfg = TrainConfig(steps=steps, **{k: cfg["train"][k] for k in _TRAIN_FIELDS})
  if tcfg.batch_size > len(dataset.train):
    raise ValueError(f"config.train.batch_size={tcfg.batch_size} is larger than the "
                     f"train split of {dataset.name} ({len(dataset.train)} examples)")
  loss_fn = (taylorglo_loss_fn(s["class_reduction"]) if s["loss"] == "taylorglo"
             else cross_entropy_loss_fn)
  try:
    model = models_lib.get(m["name"], num_classes=dataset.num_classes, **m["options"])
    trainer = Trainer(model, dataset, loss_fn, tcfg,
                      custom_optimizer=_sgd_with_injected(cfg) if injected else None)
    jax.eval_shape(trainer.init, jax.random.PRNGKey(0))
  except Exception as e:  # flax/JAX raise TypeError/ValueError/... for bad fields
    first_line = (str(e).strip().splitlines() or [type(e).__name__])[0]
    raise ValueError(f"config.model.options={m['options']!r} cannot build model "
                     f"{m['name']!r}: {first_line}") from None
  return trainer


def _generation_key(seed: int, generation: int, purpose: int) -> jax.Array:
  """The key of ``purpose`` in ``generation``: a pure function of the seed (so a resumed
  run draws exactly what the uninterrupted run would have drawn)."""
  key = jax.random.fold_in(jax.random.PRNGKey(seed), generation)
  return jax.random.fold_in(key, purpose)


def step_key(seed: int, generation: int) -> jax.Array:
  """The key of generation ``generation``'s step (a pure function of seed, generation)."""
  return _generation_key(seed, generation, _PURPOSE_STEP)


def init_key(seed: int) -> jax.Array:
  """The key of :meth:`EPBT.init` for ``seed``."""
  return _generation_key(seed, 0, _PURPOSE_INIT)
