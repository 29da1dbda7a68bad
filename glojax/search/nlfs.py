"""NLFS: regularized evolution over loss computational graphs.

Morgan & Hougen 2024 (NLFS), §3 and appendices A–B; SPEC §7. The pieces:

* **Genome** — :mod:`glojax.expr.graph` (4 hidden nodes + an output node over NLFS's 34
  ops); **integrity check** — :mod:`glojax.expr.integrity`.
* **Initial population** (§3.8, decoupled): ``initial.size`` graphs (1,000), each drawn
  per §3.2 until it passes the integrity check (against the graphs drawn before it),
  are scored on the cheap model (``initial.model``/``initial.train``, the ConvNet) with
  ``initial.early_stopping``; the best ``search.population_size`` (100) form the first
  population, their fitness that score (Algorithm 2).
* **Regularized evolution** (§3.4, Algorithm 2; Real et al. 2019): each of
  ``children_per_step`` = B slots picks a parent by tournament (``tournament_size`` 20
  members drawn without replacement, the fittest wins), mutates it (appendix B) until the
  child passes the integrity check (at most ``max_mutation_attempts`` = 2,500, else the
  slot produces no child: a *failed mutation*), and trains the child. A child whose
  training fails — NaN/inf, rejected by the prescreen (§3.7: training accuracy < 37 %
  after 800 ConvNet steps) or by a ``"reject"`` early-stopping check — is replaced by a
  new mutation of the same parent, at most ``max_redo`` = 7 trainings per slot. Each
  successful child replaces the oldest member.
* **B = 1 is the paper's sequential algorithm.** With B > 1 the B tournaments of a step
  see the same population and the B children train as one compiled program — the
  asynchronous (batched) variant of regularized evolution that Real et al. ran with
  many workers: a child is born from a population up to B - 1 children stale. Children of
  one step are integrity-checked against each other too.
* **Early stopping** (§3.7) is the population trainer's
  (:mod:`glojax.train.early_stopping`): ``early_stopping.checks`` are ``[step,
  min_train_accuracy, action]``; ``"stop"`` keeps the validation accuracy at the stop as
  the fitness (the paper's 25 % after 3,000 steps), ``"reject"`` counts as a failed
  training (redo). With a surrogate equal to the prescreen model a ``"reject"`` check at
  800 steps is the prescreen without a second training.

The search is shaped as ``init(key) -> state``, ``step(state, key) -> (state, record)``,
``finalize(state) -> results`` on :class:`NLFSSearch`; ``state`` is one pytree of NumPy
arrays (the population, its phenotypes, ages, an archive of the best graphs for the
elimination protocol, counters), checkpointed whole. :func:`run` drives it over a
workdir (resumable; :mod:`glojax.search.common`).
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import json
import os
import time
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from glojax.expr import graph as graph_lib
from glojax.expr import integrity as integrity_lib
from glojax.expr import program as program_lib
from glojax.search import _legacy_common as common
from glojax.train.early_stopping import EarlyStopping
from glojax.train.population import STRATEGIES, UNROLL_GROUP, evaluate_population, \
    resolve_strategy
from glojax.train.trainer import TrainConfig, Trainer

RESUMABLE_KEYS = ("search.steps", "elimination")
ACTIONS = ("stop", "reject")
# Counters kept in the state (all integers but train_seconds/saved_seconds).
COUNTERS = ("init_attempts", "mutation_attempts", "mutation_failed", "trainings",
            "children", "failed_trainings", "nan", "prescreen_rejected",
            "early_rejected", "early_stopped", "redo", "redo_exhausted", "steps_trained",
            "steps_saved", "train_seconds", "saved_seconds")
_PURPOSE_INIT, _PURPOSE_TRAIN = 0, 1
# Graphs per phenotype batch while searching for a valid graph.
_ATTEMPT_BATCH = 32


def default_config() -> ml_collections.ConfigDict:
  """Every key an NLFS config may set; defaults are the paper's where it gives them."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.dataset = ml_collections.ConfigDict({"name": "mnist5k", "seed": 0, "options": {}})
  c.model = ml_collections.ConfigDict({"name": "nlfs_convnet", "options": {}})
  train = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
  # The paper's surrogate recipe (appendix D): Adam, lr 1e-3, batch 64.
  train.update({"steps": 8000, "batch_size": 64, "learning_rate": 0.001,
                "optimizer": "adam"})
  c.train = ml_collections.ConfigDict(train)
  # model/train sections left empty inherit the surrogate's (train: key overrides).
  c.initial = ml_collections.ConfigDict({
      "size": 1000, "batch": 16, "model": {}, "train": {},
      "early_stopping": [[800, 0.37]]})
  c.prescreen = ml_collections.ConfigDict({
      "enabled": False, "model": {}, "train": {"steps": 800},
      "min_train_accuracy": 0.37})
  c.early_stopping = ml_collections.ConfigDict({
      "checks": [[3000, 0.25, "stop"]], "train_examples": 10000})
  c.search = ml_collections.ConfigDict({
      "population_size": 100, "tournament_size": 20, "children_per_step": 0,
      "steps": 2000, "max_mutation_attempts": 2500, "max_redo": 7,
      "mutation": {"op": 0.70, "arity": 0.15, "connection": 0.15, "swap": 0.20},
      "integrity": {f.name: f.default for f in dataclasses.fields(
          integrity_lib.IntegrityConfig)},
      "archive_size": 150, "strategy": "auto", "nan_retries": 0})
  c.elimination = ml_collections.ConfigDict({
      "rounds": [[150, 16000], [50, 32000], [25, 48000], [10, 64000]],
      "model": {}, "train": {}, "repeats": 1, "final_repeats": 5, "seed": 1,
      "alternative": "two-sided"})
  return c


def _check_int(key: str, value, low: int) -> None:
  if not isinstance(value, int) or isinstance(value, bool) or value < low:
    raise ValueError(f"config.{key}={value!r} must be an integer ≥ {low}")


def _sub_config(cfg: dict, section: dict) -> dict:
  """The run config of a sub-training: ``section['model']`` / ``section['train']``
  override the surrogate's model (whole) and training (key by key)."""
  out = {k: cfg[k] for k in ("dataset", "model", "train")}
  if section.get("model"):
    out["model"] = {"options": {}, **section["model"]}
  out["train"] = {**cfg["train"], **section.get("train", {})}
  return out


def validate_config(config) -> dict:
  """Checks a config against :func:`default_config`; returns it as a plain dict.

  Raises:
    ValueError: for unknown keys, names or out-of-range values, naming the key.
  """
  cfg = common.with_defaults(config, default_config())
  common.check_names(cfg, STRATEGIES)
  s, i = cfg["search"], cfg["initial"]
  if s["strategy"] == "sharded":
    raise ValueError("config.search.strategy='sharded' is not supported by NLFS (early "
                     "stopping re-packs the population); use 'vmap'")
  _check_int("search.population_size", s["population_size"], 1)
  _check_int("search.tournament_size", s["tournament_size"], 1)
  _check_int("search.children_per_step", s["children_per_step"], 0)
  _check_int("search.steps", s["steps"], 0)
  _check_int("search.max_mutation_attempts", s["max_mutation_attempts"], 1)
  _check_int("search.max_redo", s["max_redo"], 1)
  _check_int("search.archive_size", s["archive_size"], 1)
  _check_int("search.nan_retries", s["nan_retries"], 0)
  _check_int("initial.size", i["size"], 1)
  _check_int("initial.batch", i["batch"], 1)
  if s["tournament_size"] > s["population_size"]:
    raise ValueError(f"config.search.tournament_size={s['tournament_size']} exceeds "
                     f"population_size={s['population_size']}")
  if i["size"] < s["population_size"]:
    raise ValueError(f"config.initial.size={i['size']} is smaller than "
                     f"search.population_size={s['population_size']}")
  graph_lib.MutationRates(**s["mutation"])
  integrity_lib.IntegrityConfig(**s["integrity"])
  checks = cfg["early_stopping"]["checks"]
  for check in checks:
    if len(check) != 3 or check[2] not in ACTIONS:
      raise ValueError(f"config.early_stopping.checks entries are [step, "
                       f"min_train_accuracy, action in {ACTIONS}], got {check!r}")
  EarlyStopping(tuple((c[0], c[1]) for c in checks), cfg["early_stopping"]["train_examples"])
  EarlyStopping(tuple((c[0], c[1]) for c in i["early_stopping"]))
  if not 0.0 <= cfg["prescreen"]["min_train_accuracy"] <= 1.0:
    raise ValueError(f"config.prescreen.min_train_accuracy="
                     f"{cfg['prescreen']['min_train_accuracy']!r} must be in [0, 1]")
  for name in ("initial", "prescreen"):
    sub = _sub_config(cfg, cfg[name])
    common.check_names({**sub, "search": s}, STRATEGIES)
    TrainConfig(**sub["train"])
  TrainConfig(**cfg["train"])
  return cfg


def children_per_step(cfg: dict) -> int:
  """B: ``search.children_per_step``, or (0) what fills one compiled population call:
  ``UNROLL_GROUP`` children for ``"unroll"``, 1 for ``"sequential"``, 16 for ``"vmap"``."""
  b = cfg["search"]["children_per_step"]
  if b:
    return b
  strategy = resolve_strategy(cfg["search"]["strategy"], cfg["model"]["name"])
  return {"unroll": UNROLL_GROUP, "sequential": 1}.get(strategy, 16)


# ---- trainers ---------------------------------------------------------------------------

def graph_loss_fn() -> Callable:
  """The trainer's ``loss_fn(program, logits, labels)`` for graph programs."""
  return functools.partial(program_lib.program_loss,
                           stack_depth=graph_lib.PROGRAM_STACK_DEPTH, use_logits=False,
                           op_set="all")


_TRAINERS: dict[str, Trainer] = {}
_MAX_TRAINERS = 6


def make_trainer(run_cfg: dict) -> Trainer:
  """The (cached per dataset/model/train config) trainer of graph programs."""
  key = json.dumps(run_cfg, sort_keys=True, default=str)
  if key not in _TRAINERS:
    dataset, model, train_cfg = common.build_run(run_cfg)
    if len(_TRAINERS) >= _MAX_TRAINERS:
      _TRAINERS.pop(next(iter(_TRAINERS)))
    _TRAINERS[key] = Trainer(model, dataset, graph_loss_fn(), train_cfg)
  return _TRAINERS[key]


# ---- graph generation -------------------------------------------------------------------


def _first_valid(rng, propose: Callable, population: np.ndarray, cfg_i, max_attempts: int,
                 rejected: collections.Counter):
  """Proposes graphs in batches until one passes the integrity check.

  Returns ``(graph with corrected sign, verdict, attempts)`` or ``(None, None, attempts)``
  after ``max_attempts``. Rejections are counted by reason in ``rejected``.
  """
  attempts = 0
  while attempts < max_attempts:
    batch = [propose(rng) for _ in range(min(_ATTEMPT_BATCH, max_attempts - attempts))]
    for g, v in zip(batch, integrity_lib.check_many(batch, population, cfg_i)):
      attempts += 1
      if v.ok:
        return g.with_sign(v.sign), v, attempts
      rejected[v.reason] += 1
  return None, None, attempts


def tournament(rng: np.random.Generator, fitness, size: int) -> int:
  """Index of the fittest of ``size`` members drawn without replacement (non-finite
  fitness counts as 0; ties go to the first drawn)."""
  f = common.sanitize_fitness(fitness)
  members = rng.choice(len(f), size=size, replace=False)
  return int(members[np.argmax(f[members])])


# ---- the search ----------------------------------------------------------------------


def _rng(key) -> np.random.Generator:
  return np.random.default_rng(np.asarray(jax.random.key_data(key)
                                          if jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
                                          else key, np.uint32))


def _graph_rows(graphs, phenotypes, fitness, birth) -> dict:
  arrays = graph_lib.stack(graphs)
  arrays.update(phenotypes=np.asarray(phenotypes, np.float32).reshape(len(graphs), -1),
                fitness=np.asarray(fitness, np.float32),
                birth=np.asarray(birth, np.int32))
  return arrays


def _take_rows(rows: dict, idx) -> dict:
  return {k: np.asarray(v)[idx] for k, v in rows.items()}


class NLFSSearch:
  """NLFS on one config: ``init``, ``step``, ``finalize`` (module docstring)."""

  def __init__(self, config, log: Callable[[str], None] = print):
    self.cfg = validate_config(config)
    cfg = self.cfg
    s = cfg["search"]
    self.log = log
    self.batch = children_per_step(cfg)
    self.strategy = s["strategy"]
    self.rates = graph_lib.MutationRates(**s["mutation"])
    self.integrity = integrity_lib.IntegrityConfig(**s["integrity"])
    self.surrogate_cfg = {k: cfg[k] for k in ("dataset", "model", "train")}
    self.initial_cfg = _sub_config(cfg, cfg["initial"])
    self.prescreen_cfg = _sub_config(cfg, cfg["prescreen"])
    checks = cfg["early_stopping"]["checks"]
    self.early = EarlyStopping(tuple((c[0], c[1]) for c in checks),
                               cfg["early_stopping"]["train_examples"]) if checks else None
    self.actions = [c[2] for c in checks]
    init_checks = cfg["initial"]["early_stopping"]
    self.initial_early = EarlyStopping(tuple((c[0], c[1]) for c in init_checks),
                                       cfg["early_stopping"]["train_examples"]
                                       ) if init_checks else None

  # -- state ---------------------------------------------------------------------------

  def template(self) -> dict:
    """A state of the right structure and shapes (zeros), for restoring a checkpoint."""
    s, n0, g = self.cfg["search"], self.cfg["initial"]["size"], self.integrity.grid_points
    filler = [graph_lib.KNOWN_GRAPHS["cross_entropy"]]
    rows = lambda n: _graph_rows(filler * n, np.zeros((n, g)), np.zeros(n), np.zeros(n))
    return {"phase": np.int32(0), "step": np.int32(0), "scored": np.int32(0),
            "next_birth": np.int32(0), "initial": rows(n0),
            "population": rows(s["population_size"]), "archive": rows(s["archive_size"]),
            "archive_count": np.int32(0),
            "counters": {k: np.float64(0) for k in COUNTERS},
            "rejections": {r: np.int64(0) for r in integrity_lib.REASONS}}

  def init(self, key) -> dict:
    """Draws the initial population (§3.2, §3.8): ``initial.size`` valid graphs."""
    state = self.template()
    rng = _rng(key)
    n0 = self.cfg["initial"]["size"]
    graphs, phenos = [], []
    rejected = collections.Counter()
    attempts = 0
    t0 = time.time()
    while len(graphs) < n0:
      g, v, a = _first_valid(rng, graph_lib.random_graph,
                             np.asarray(phenos).reshape(-1, self.integrity.grid_points),
                             self.integrity, 1_000_000, rejected)
      attempts += a
      if g is None:
        raise RuntimeError("no random graph passed the integrity check in 1,000,000 "
                           "draws; check config.search.integrity")
      graphs.append(g)
      phenos.append(v.phenotype)
    state["initial"] = _graph_rows(graphs, phenos, np.zeros(n0), np.arange(n0))
    state["counters"]["init_attempts"] = np.float64(attempts)
    for r, n in rejected.items():
      state["rejections"][r] += n
    self.log(f"initial population: {n0} graphs passed the integrity check out of "
             f"{attempts} drawn ({time.time() - t0:.1f}s); rejected: "
             f"{dict(rejected.most_common())}")
    return state

  def done(self, state: dict) -> bool:
    return int(state["phase"]) == 1 and int(state["step"]) >= self.cfg["search"]["steps"]

  # -- training ----------------------------------------------------------------------

  def _train(self, graphs: list, key, run_cfg: dict, early: Optional[EarlyStopping],
             batch: int) -> dict:
    """Trains ``graphs`` (padded to a multiple of ``batch`` rows: fixed shapes, one
    compile); candidate ``i`` uses ``fold_in(key, i)``."""
    trainer = make_trainer(run_cfg)
    k = len(graphs)
    padded = -(-k // batch) * batch
    programs = graph_lib.encode_population(graphs + graphs[:1] * (padded - k))
    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(padded))
    t0 = time.time()
    out = collections.defaultdict(list)
    for start in range(0, padded, batch):
      rows = slice(start, start + batch)
      result = evaluate_population(
          trainer, jax.tree_util.tree_map(lambda a: a[rows], programs), keys[rows],
          strategy=self.strategy, nan_retries=self.cfg["search"]["nan_retries"],
          model_name=run_cfg["model"]["name"], early_stopping=early)
      out["fitness"].append(result.fitness)
      for name in ("finite", "stopped", "stopped_check", "steps_trained"):
        default = {"stopped": False, "stopped_check": -1,
                   "steps_trained": trainer.config.steps}.get(name)
        out[name].append(result.metrics.get(name, np.full(batch, default)))
    res = {name: np.concatenate(v)[:k] for name, v in out.items()}
    seconds = time.time() - t0
    res["seconds"] = seconds * k / padded
    res["total_steps"] = trainer.config.steps
    res["step_seconds"] = seconds / max(1, padded * trainer.config.steps)
    return res

  def _account(self, counters: dict, res: dict) -> None:
    n = len(res["fitness"])
    steps = float(np.sum(res["steps_trained"]))
    saved = float(np.sum(res["total_steps"] - res["steps_trained"]))
    counters["trainings"] += n
    counters["nan"] += int(np.sum(~res["finite"]))
    counters["steps_trained"] += steps
    counters["steps_saved"] += saved
    counters["train_seconds"] += res["seconds"]
    # Time saved: the stopped steps at this call's measured cost per step.
    per_step = res["seconds"] / steps if steps else 0.0
    counters["saved_seconds"] += saved * per_step

  # -- steps ---------------------------------------------------------------------------

  def step(self, state: dict, key) -> tuple[dict, dict]:
    """One step: scores the next chunk of the initial population, or evolves B
    children (module docstring). Returns ``(new_state, record)``."""
    state = jax.tree_util.tree_map(np.copy, state)
    t0 = time.time()
    before = {k: float(v) for k, v in state["counters"].items()}
    rejections_before = {k: int(v) for k, v in state["rejections"].items()}
    if int(state["phase"]) == 0:
      record = self._initial_step(state, key)
    else:
      record = self._evolution_step(state, key)
    delta = {k: float(state["counters"][k] - before[k]) for k in COUNTERS}
    record["counters"] = delta
    record["rejections"] = {r: int(state["rejections"][r] - rejections_before[r])
                            for r in integrity_lib.REASONS}
    pop = state["population"]["fitness"]
    if int(state["phase"]) == 1:
      record.update(best=float(np.max(pop)), mean=float(np.mean(pop)),
                    median=float(np.median(pop)))
    if int(state["archive_count"]):
      record["best_ever"] = float(state["archive"]["fitness"][0])
    record["wall_time_s"] = time.time() - t0
    return state, record

  def _initial_step(self, state: dict, key) -> dict:
    init = state["initial"]
    n0, done = self.cfg["initial"]["size"], int(state["scored"])
    batch = self.cfg["initial"]["batch"]
    rows = np.arange(done, min(done + batch, n0))
    graphs = graph_lib.unstack(_take_rows(init, rows))
    res = self._train(graphs, jax.random.fold_in(key, _PURPOSE_TRAIN), self.initial_cfg,
                      self.initial_early, batch)
    self._account(state["counters"], res)
    fitness = np.where(res["finite"] & ~res["stopped"], res["fitness"], 0.0)
    init["fitness"][rows] = fitness
    state["scored"] = np.int32(rows[-1] + 1)
    record = {"phase": "initial", "scored": int(state["scored"]), "of": n0,
              "fitness": fitness.tolist(),
              "stopped": int(np.sum(res["stopped"])), "nan": int(np.sum(~res["finite"]))}
    self._archive(state, graphs, fitness, init["phenotypes"][rows])
    if int(state["scored"]) >= n0:
      p = self.cfg["search"]["population_size"]
      best = np.argsort(-common.sanitize_fitness(init["fitness"]), kind="stable")[:p]
      state["population"] = _take_rows(init, best)
      state["population"]["birth"] = np.arange(p, dtype=np.int32)
      state["next_birth"] = np.int32(p)
      state["phase"] = np.int32(1)
      record["population_formed"] = True
    return record

  def _evolution_step(self, state: dict, key) -> dict:
    cfg, s = self.cfg, self.cfg["search"]
    rng = _rng(jax.random.fold_in(key, _PURPOSE_INIT))
    pop = state["population"]
    counters, rejections = state["counters"], collections.Counter()
    parents = [tournament(rng, pop["fitness"], s["tournament_size"])
               for _ in range(self.batch)]
    parent_graphs = graph_lib.unstack(pop)
    parent_fitness = [float(common.sanitize_fitness(pop["fitness"])[i]) for i in parents]
    redo_left = {b: s["max_redo"] for b in range(self.batch)}
    children: dict[int, tuple] = {}
    failed_mutation = []
    pending = list(range(self.batch))
    round_ = 0
    while pending:
      accepted_phenos = [p for _, _, p in children.values()]
      candidates = []
      for b in pending:
        population = np.concatenate(
            [pop["phenotypes"], np.asarray(accepted_phenos + [c[2] for c in candidates]
                                           ).reshape(-1, self.integrity.grid_points)])
        child, verdict, attempts = _first_valid(
            rng, lambda r, p=parent_graphs[parents[b]]: graph_lib.mutate(r, p, self.rates)[0],
            population, self.integrity, s["max_mutation_attempts"], rejections)
        counters["mutation_attempts"] += attempts
        if child is None:
          counters["mutation_failed"] += 1
          failed_mutation.append(b)
        else:
          candidates.append((b, child, verdict.phenotype))
      pending = []
      if not candidates:
        break
      ok, fitness, res = self._train_children(
          [c[1] for c in candidates],
          jax.random.fold_in(jax.random.fold_in(key, _PURPOSE_TRAIN), round_), counters)
      for (b, child, pheno), good, f in zip(candidates, ok, fitness):
        if good:
          children[b] = (child, float(f), pheno)
        else:
          counters["failed_trainings"] += 1
          redo_left[b] -= 1
          if redo_left[b] > 0:
            counters["redo"] += 1
            pending.append(b)
          else:
            counters["redo_exhausted"] += 1
      round_ += 1
    for r, n in rejections.items():
      state["rejections"][r] += n
    # Each child replaces the oldest member (slot order).
    born = []
    for b in sorted(children):
      child, f, pheno = children[b]
      oldest = int(np.argmin(pop["birth"]))
      row = _graph_rows([child], [pheno], [f], [int(state["next_birth"])])
      for name in pop:
        pop[name][oldest] = row[name][0]
      state["next_birth"] += 1
      born.append({"spec": graph_lib.to_spec(child), "fitness": f,
                   "parent_fitness": parent_fitness[b]})
    counters["children"] += len(children)
    self._archive(state, [c[0] for c in children.values()],
                  [c[1] for c in children.values()], [c[2] for c in children.values()])
    state["step"] += 1
    return {"phase": "evolve", "step": int(state["step"]), "children": born,
            "failed_mutations": len(failed_mutation), "rounds": round_}

  def _train_children(self, graphs: list, key, counters: dict
                      ) -> tuple[np.ndarray, np.ndarray, dict]:
    """Prescreen (if enabled), then the surrogate with early stopping.

    Returns ``(ok bool[k], fitness float32[k], surrogate result)``: ``ok`` is False for
    a failed training (NaN/inf, prescreen rejection, a ``"reject"`` check).
    """
    k = len(graphs)
    ok = np.ones(k, bool)
    fitness = np.zeros(k, np.float32)
    if self.cfg["prescreen"]["enabled"]:
      steps = TrainConfig(**self.prescreen_cfg["train"]).steps
      pre = self._train(graphs, jax.random.fold_in(key, 1), self.prescreen_cfg,
                        EarlyStopping(((steps, self.cfg["prescreen"]["min_train_accuracy"]),),
                                      self.cfg["early_stopping"]["train_examples"]),
                        self.batch)
      self._account(counters, pre)
      rejected = pre["stopped"] | ~pre["finite"]
      counters["prescreen_rejected"] += int(np.sum(pre["stopped"]))
      ok &= ~rejected
    rows = np.flatnonzero(ok)
    res = None
    if rows.size:
      res = self._train([graphs[i] for i in rows], key, self.surrogate_cfg, self.early,
                        self.batch)
      self._account(counters, res)
      stopped = res["stopped"]
      action = np.array([self.actions[c] if c >= 0 else "" for c in res["stopped_check"]])
      rejected = stopped & (action == "reject")
      counters["early_rejected"] += int(np.sum(rejected))
      counters["early_stopped"] += int(np.sum(stopped & ~rejected))
      good = res["finite"] & ~rejected
      ok[rows] = good
      fitness[rows] = np.where(good, res["fitness"], 0.0)
    return ok, fitness, res

  def _archive(self, state: dict, graphs: list, fitness, phenotypes) -> None:
    """Keeps the ``archive_size`` fittest distinct graphs seen (for elimination)."""
    if not len(graphs):
      return
    arch, n = state["archive"], int(state["archive_count"])
    cur = _take_rows(arch, np.arange(n))
    new = _graph_rows(graphs, phenotypes, fitness,
                      np.full(len(graphs), int(state["next_birth"])))
    merged = {k: np.concatenate([cur[k], new[k]]) for k in cur}
    order = np.argsort(-common.sanitize_fitness(merged["fitness"]), kind="stable")
    keep, seen = [], set()
    for i in order:
      ident = (merged["ops"][i].tobytes(), merged["args"][i].tobytes(),
               int(merged["signs"][i]))
      if ident not in seen:
        seen.add(ident)
        keep.append(i)
      if len(keep) == len(arch["fitness"]):
        break
    for name in arch:
      arch[name][:len(keep)] = merged[name][keep]
    state["archive_count"] = np.int32(len(keep))

  # -- results -------------------------------------------------------------------------

  def finalize(self, state: dict) -> dict:
    """The search's results: the best graph (fittest ever evaluated), the archive,
    counters and rejection counts."""
    n = int(state["archive_count"])
    archive = graph_lib.unstack(_take_rows(state["archive"], np.arange(n)))
    fitness = state["archive"]["fitness"][:n]
    counters = {k: float(v) for k, v in state["counters"].items()}
    out = {"steps": int(state["step"]), "children_per_step": self.batch,
           "counters": counters,
           "rejections": {k: int(v) for k, v in state["rejections"].items()},
           "archive": [{"spec": graph_lib.to_spec(g), "fitness": float(f)}
                       for g, f in zip(archive, fitness)],
           "best": None}
    if n:
      out["best"] = {"spec": graph_lib.to_spec(archive[0]), "fitness": float(fitness[0]),
                     "graph": archive[0].describe()}
    return out


# ---- the run loop over a workdir ------------------------------------------------------


def _flatten(state) -> dict:
  return {f"state/{i}": np.asarray(leaf)
          for i, leaf in enumerate(jax.tree_util.tree_leaves(state))}


def _restore(arrays: dict, like):
  """Rebuilds a NumPy state from :func:`_flatten` output (dtypes exact: no JAX)."""
  leaves, treedef = jax.tree_util.tree_flatten(like)
  try:
    new = [arrays[f"state/{i}"] for i in range(len(leaves))]
  except KeyError as e:
    raise ValueError(f"checkpoint does not match this NLFS config (leaf {e} missing)"
                     ) from None
  for a, b in zip(new, leaves):
    if np.shape(a) != np.shape(b) or np.asarray(a).dtype != np.asarray(b).dtype:
      raise ValueError(f"checkpoint does not match this NLFS config (a leaf of shape "
                       f"{np.shape(a)} where {np.shape(b)} is expected)")
  return jax.tree_util.tree_unflatten(treedef, [np.asarray(a) for a in new])


def _progress_line(record: dict, cfg: dict) -> str:
  c = record["counters"]
  rej = {k: v for k, v in record["rejections"].items() if v}
  if record["phase"] == "initial":
    f = np.asarray(record["fitness"])
    return (f"initial {record['scored']}/{record['of']} scored  best {f.max():.4f}  "
            f"stopped {record['stopped']}  NaN {record['nan']}  "
            f"{record['wall_time_s']:.1f}s")
  kids = " ".join(f"{k['fitness']:.3f}" for k in record["children"]) or "-"
  return (f"step {record['step']}/{cfg['search']['steps']}  best {record['best']:.4f}  "
          f"mean {record['mean']:.4f}  median {record['median']:.4f}  children [{kids}]  "
          f"trainings {int(c['trainings'])}  redo {int(c['redo'])}  early-stopped "
          f"{int(c['early_stopped'] + c['early_rejected'])}  failed mutations "
          f"{record['failed_mutations']}  rejected {rej}  {record['wall_time_s']:.1f}s")


def run(config, workdir: str, *, log: Callable[[str], None] = print,
        on_step: Optional[Callable[[int, dict], None]] = None) -> dict:
  """Runs (or resumes) an NLFS search in ``workdir``.

  Args:
    config: a ConfigDict/mapping with the keys of :func:`default_config`.
    workdir: the run's folder; rerunning on it resumes after the last finished step.
    log: progress printer.
    on_step: optional callback ``(step_index, record)`` after each step's checkpoint.

  Returns:
    :meth:`NLFSSearch.finalize`'s results.

  Raises:
    ValueError: for a bad config, or a workdir holding a different run.

  Files: ``config.json``, ``log.jsonl`` (one record per step), ``checkpoint.npz``,
  ``best_loss.txt`` (the best graph's ``expr:`` spec), ``results.json``,
  ``phenotype.png`` (binary phenotypes of the best graphs and cross-entropy),
  ``fitness.png``.
  """
  search = NLFSSearch(config, log)
  cfg = search.cfg
  # Data and model errors before the workdir is touched (the trainers are cached).
  for run_cfg in (search.surrogate_cfg, search.initial_cfg) + (
      (search.prescreen_cfg,) if cfg["prescreen"]["enabled"] else ()):
    make_trainer(run_cfg)
  resumed = common.prepare_workdir(workdir, cfg, RESUMABLE_KEYS, defaults=default_config())
  ckpt = common.load_checkpoint(workdir, ("history",)) if resumed else None
  log(f"NLFS search: {cfg['dataset']['name']}; surrogate {cfg['model']['name']} "
      f"({cfg['train']['steps']} steps); initial population {cfg['initial']['size']} → "
      f"{cfg['search']['population_size']}; {cfg['search']['steps']} steps of "
      f"{search.batch} children; workdir {workdir}")
  if ckpt is not None:
    arrays, meta = ckpt
    state, history = _restore(arrays, search.template()), meta["history"]
    log(f"resuming after {len(history)} steps")
  else:
    state = search.init(common.generation_key(cfg["seed"], 0, _PURPOSE_INIT))
    history = []
    common.save_checkpoint(workdir, _flatten(state), {"history": history})
  common.write_log(workdir, history)
  t_start = time.time()
  while not search.done(state):
    n = len(history)
    state, record = search.step(state, common.generation_key(cfg["seed"], n + 1,
                                                             _PURPOSE_TRAIN))
    history.append(record)
    common.save_checkpoint(workdir, _flatten(state), {"history": history})
    common.append_log(workdir, record)
    log(_progress_line(record, cfg))
    if on_step is not None:
      on_step(n, record)
  results = search.finalize(state)
  results["wall_time_s"] = time.time() - t_start
  _write_outputs(workdir, results, history, log)
  return results


def _write_outputs(workdir: str, results: dict, history: list, log) -> None:
  c, rej = results["counters"], results["rejections"]
  if results["best"] is not None:
    common.write_text(os.path.join(workdir, "best_loss.txt"), results["best"]["spec"] + "\n")
    log(f"best graph (validation {results['best']['fitness']:.4f}): "
        f"{results['best']['spec']}\n{results['best']['graph']}")
  common.write_json(os.path.join(workdir, "results.json"), results)
  log(f"{int(c['trainings'])} trainings ({int(c['children'])} children kept, "
      f"{int(c['redo'])} redone, {int(c['nan'])} NaN); mutation attempts "
      f"{int(c['mutation_attempts'])}, failed mutations {int(c['mutation_failed'])}; "
      f"integrity rejections {dict((k, v) for k, v in rej.items() if v)}")
  stopped = int(c["early_stopped"] + c["early_rejected"] + c["prescreen_rejected"])
  total = c["steps_trained"] + c["steps_saved"]
  log(f"early stopping: {stopped} trainings stopped ({int(c['early_rejected'])} "
      f"rejected, {int(c['early_stopped'])} kept their validation accuracy, "
      f"{int(c['prescreen_rejected'])} failed the prescreen); "
      f"{int(c['steps_saved'])} of {int(total)} candidate-steps saved "
      f"({c['steps_saved'] / max(total, 1):.0%}), ≈{c['saved_seconds']:.0f}s of "
      f"{c['train_seconds'] + c['saved_seconds']:.0f}s training")
  if results["archive"]:
    plot_phenotypes(os.path.join(workdir, "phenotype.png"), results, log)
  _plot_history(workdir, history, log)


def plot_phenotypes(path: str, results: dict, log=print, top: int = 3) -> Optional[str]:
  """Binary phenotypes (normalized, NLFS Fig. 2 style) of the best graphs and CE."""
  try:
    from glojax.analysis.phenotype import plot_binary_phenotypes
  except ImportError:
    return None
  losses = {f"#{i + 1} ({e['fitness']:.3f}): {e['spec'][5:]}": e["spec"]
            for i, e in enumerate(results["archive"][:top])}
  losses["cross-entropy"] = "cross_entropy"
  out = plot_binary_phenotypes(losses, path, normalize=True)
  log(f"wrote {out}")
  return out


def _plot_history(workdir: str, history: list, log) -> None:
  """``fitness.png``: population best / median and best ever, per evolution step."""
  evo = [r for r in history if r["phase"] == "evolve"]
  if not evo:
    return
  try:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
  except ImportError:
    return
  fig = Figure(figsize=(7, 4), dpi=100)
  FigureCanvasAgg(fig)
  ax = fig.add_subplot(1, 1, 1)
  x = [r["step"] for r in evo]
  for name in ("best", "median"):
    ax.plot(x, [r[name] for r in evo], marker="o", ms=3, label=f"population {name}")
  ax.plot(x, [r.get("best_ever", np.nan) for r in evo], "k--", lw=1, label="best ever")
  ax.set_xlabel("evolution step")
  ax.set_ylabel("validation accuracy")
  ax.set_title("NLFS regularized evolution")
  ax.legend(loc="lower right")
  ax.grid(alpha=0.3)
  fig.tight_layout()
  path = os.path.join(workdir, "fitness.png")
  fig.savefig(path)
  log(f"wrote {path}")
