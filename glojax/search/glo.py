"""GLO: genetic programming over loss trees, then CMA-ES on their coefficients.

GLO paper §III (Gonzalez & Miikkulainen, CEC 2020; dissertation ch. 4; ``docs/glo.md``):

1. **Discovery.** A genetic algorithm evolves loss trees (``glojax.expr``): random
   depth-≤2 initial trees, population 80, 6 elites, roulette selection, subtree
   crossover (p = 0.8, both children kept), four bottom-up mutations
   (:mod:`glojax.expr.variation`). Fitness is validation accuracy after a partial
   training; trees that do not depend on ``x`` and on ``y`` (or ``logits``) get 0
   without training (:func:`glojax.expr.canonical.trainability_error`), NaN training
   gets 0, and fitness is cached under the tree's sympy canonical form
   (:mod:`glojax.expr.canonical`), so equivalent trees train once.
2. **Coefficients.** The best tree(s) get one coefficient per node, absorbable ones
   pruned (:mod:`glojax.expr.coefficients`), tuned by (μ/μ_w, λ)-CMA-ES (evosax
   ``CMA_ES``; σ = 1.5, λ = 32, 35 generations, mean at all ones).

glojax's contribution is the cost: every tree is a fixed-size postfix program
(:mod:`glojax.expr.program`), so the trees of a generation — and all CMA-ES candidates
of a generation, their coefficients being traced program constants — train as one
compiled program (``evaluate_population``), which compiles once per run.

Entry point: :func:`run` (``config``, ``workdir``); resumable, see
:mod:`glojax.search.common` for the workdir contract.
"""

from __future__ import annotations

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

from glojax.expr import canonical as canonical_lib
from glojax.expr import coefficients as coef_lib
from glojax.expr import program as program_lib
from glojax.expr import tree as tree_lib
from glojax.expr import variation
from glojax.search import common
from glojax.train import protocol
from glojax.train.population import STRATEGIES, evaluate_population
from glojax.train.trainer import TrainConfig, Trainer

EXPR_PREFIX = "expr:"
# Keys that may change when a run is resumed. (Unlike TaylorGLO, the GA's generation
# count is fixed: the coefficient phase starts from the GA's final population.)
RESUMABLE_KEYS = ("final",)
FLAT_ACTIONS = ("skip_tell", "tell")
_PURPOSE_VARY, _PURPOSE_TRAIN, _PURPOSE_ASK, _PURPOSE_TELL, _PURPOSE_INIT = range(5)
_PURPOSE_BASELINE = 5
# CMA-ES generations get their own key space, after any GA generation.
_CMA_KEY_OFFSET = 1_000_000


def default_config() -> ml_collections.ConfigDict:
  """Every key a GLO config may set, with the GLO paper's defaults (``docs/glo.md``)."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.dataset = ml_collections.ConfigDict({"name": "mnist5k", "seed": 0})
  c.model = ml_collections.ConfigDict({"name": "mlp", "options": {}})
  c.train = ml_collections.ConfigDict({
      "steps": 2000, "batch_size": 100, "learning_rate": 0.01, "momentum": 0.0,
      "weight_decay": 0.0, "eval_batch_size": 1000, "steps_per_call": 10,
      "loop": "auto"})
  c.search = ml_collections.ConfigDict({
      "population_size": 80, "generations": 100, "elites": 6,
      "crossover_probability": 0.8,
      "mutation": {"integer": 0.05, "swap": 0.05, "shrink": 0.025, "grow": 0.025},
      "init_max_depth": 2, "allow_logits": False,
      # Programs: trees larger than max_len nodes (or needing more stack rows) get
      # fitness 0 without training, GP's usual size limit.
      "max_len": 32, "stack_depth": 8,
      # Candidates per compiled training call (0: population_size). The trainer
      # compiles once for this K; a call's unused rows are padded.
      "batch_candidates": 0,
      "strategy": "auto", "nan_retries": 0, "simplify_max_size": 25,
      # Cross-entropy trained with the same fitness protocol, for reference.
      "baseline_repeats": 4})
  c.coefficients = ml_collections.ConfigDict({
      "enabled": True, "num_trees": 1, "population_size": 32, "generations": 35,
      "sigma": 1.5, "prune": True, "flat_action": "skip_tell"})
  c.final = ml_collections.ConfigDict({
      "enabled": False, "repeats": 10, "steps": 20000, "alternative": "greater",
      "seed": 1})
  return c


def validate_config(config) -> dict:
  """Checks a config against :func:`default_config`; returns it as a plain dict.

  Raises:
    ValueError: for unknown keys (typos), unknown dataset/model/strategy names or
      values out of range, naming the offending key and value.
  """
  cfg = common.with_defaults(config, default_config())
  common.check_names(cfg, STRATEGIES)
  s, k = cfg["search"], cfg["coefficients"]
  if k["flat_action"] not in FLAT_ACTIONS:
    raise ValueError(f"config.coefficients.flat_action={k['flat_action']!r} is not one "
                     f"of {FLAT_ACTIONS}")
  _check_int(s, "search.population_size", 2)
  _check_int(s, "search.generations", 0)
  _check_int(s, "search.elites", 0)
  _check_int(s, "search.init_max_depth", 0)
  _check_int(s, "search.max_len", 1)
  _check_int(s, "search.stack_depth", 2)
  _check_int(s, "search.batch_candidates", 0)
  _check_int(s, "search.nan_retries", 0)
  _check_int(s, "search.baseline_repeats", 0)
  _check_int(k, "coefficients.num_trees", 1)
  _check_int(k, "coefficients.population_size", 2)
  _check_int(k, "coefficients.generations", 0)
  if s["elites"] >= s["population_size"]:
    raise ValueError(f"config.search.elites={s['elites']} must be smaller than "
                     f"population_size={s['population_size']}")
  if not 0.0 <= s["crossover_probability"] <= 1.0:
    raise ValueError(f"config.search.crossover_probability="
                     f"{s['crossover_probability']!r} must be in [0, 1]")
  variation.MutationRates(**s["mutation"])  # raises ValueError naming a bad rate
  if not k["sigma"] > 0:
    raise ValueError(f"config.coefficients.sigma={k['sigma']!r} must be > 0")
  if cfg["final"]["enabled"] and cfg["final"]["repeats"] < 2:
    raise ValueError(f"config.final.repeats={cfg['final']['repeats']!r} must be ≥ 2 "
                     f"(Welch's t-test)")
  TrainConfig(**cfg["train"])  # raises ValueError naming a bad training value
  return cfg


def _check_int(section: dict, name: str, minimum: int) -> None:
  value = section[name.split(".")[-1]]
  if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
    raise ValueError(f"config.{name}={value!r} must be an integer ≥ {minimum}")


def tree_spec(tree: tree_lib.Tree) -> str:
  """The ``"expr:..."`` loss spec of a tree (loadable by ``glojax.losses.get``)."""
  return EXPR_PREFIX + tree_lib.to_string(tree)


def cross_entropy_tree(num_classes: int) -> tree_lib.Tree:
  """Cross-entropy as a GLO tree: ``n * (x * log(y))`` with ``L = -(1/n) Σ f``."""
  return tree_lib.parse(f"{num_classes} * (x * log(y))")


# ---- fitness evaluation with the canonical-form cache ------------------------------


@dataclasses.dataclass
class Evaluator:
  """Trains trees (or coefficient vectors) as populations; owns the fitness cache.

  Attributes:
    trainer: a :class:`Trainer` whose ``loss_fn`` is the program interpreter.
    batch: candidates per compiled call (the trainer compiles once for this K).
    max_len, stack_depth: program shape.
    strategy, nan_retries, model_name: passed to ``evaluate_population``.
    simplify_max_size: see :func:`glojax.expr.canonical.canonical`.
    cache: canonical key → fitness.
    counters: ``evaluations`` (trees asked for), ``hits`` (answered by the cache,
      incl. equivalent trees within one generation), ``trained_trees`` (cache
      misses trained), ``invalid`` (no x or no y: fitness 0, no training),
      ``too_large`` (does not fit a program: fitness 0), and over all trainings
      (trees and coefficient candidates) ``trained``, ``failed`` (NaN/inf) and
      ``train_seconds`` (wall time of the training calls, compiles included).
  """
  trainer: Trainer
  batch: int
  max_len: int
  stack_depth: int
  strategy: str
  nan_retries: int
  model_name: str
  simplify_max_size: int
  cache: dict = dataclasses.field(default_factory=dict)
  counters: dict = dataclasses.field(default_factory=lambda: {
      "evaluations": 0, "hits": 0, "trained_trees": 0, "invalid": 0, "too_large": 0,
      "trained": 0, "failed": 0, "train_seconds": 0.0})

  def train_programs(self, programs: program_lib.Program, key: jax.Array,
                     count: bool = True) -> np.ndarray:
    """Fitness of ``K`` programs (``[K, L]`` arrays), trained ``batch`` at a time.

    Candidate ``i`` trains with key ``fold_in(key, i)``, whatever chunk it lands in,
    so its result does not depend on its neighbours. Padding rows repeat row 0.
    ``count=False`` leaves the counters alone (the cross-entropy baseline).
    """
    k = int(np.shape(programs.opcodes)[0])
    fitness = np.zeros(k, np.float32)
    t0 = time.time()
    for start in range(0, k, self.batch):
      rows = np.arange(start, min(start + self.batch, k))
      take = np.concatenate([rows, np.full(self.batch - len(rows), rows[0])])
      chunk = jax.tree_util.tree_map(lambda a: np.asarray(a)[take], programs)
      keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.asarray(take))
      result = evaluate_population(self.trainer, chunk, keys, strategy=self.strategy,
                                   nan_retries=self.nan_retries,
                                   model_name=self.model_name)
      fitness[rows] = common.sanitize_fitness(result.fitness)[:len(rows)]
      if count:
        self.counters["failed"] += int(np.sum(~result.metrics["finite"][:len(rows)]))
    if count:
      self.counters["trained"] += k
      self.counters["train_seconds"] += time.time() - t0
    return fitness

  def status(self, tree: tree_lib.Tree) -> tuple[str, Optional[str]]:
    """``("too_large"|"invalid"|"ok", canonical key or None)`` for one tree."""
    if tree_lib.size(tree) > self.max_len or \
        program_lib.required_stack(tree) > self.stack_depth:
      return "too_large", None
    # One validity rule for GLO and glojax.losses.get (read semantically: x - x + y
    # does not depend on x).
    if canonical_lib.trainability_error(tree, self.simplify_max_size) is not None:
      return "invalid", None
    return "ok", canonical_lib.canonical(tree, self.simplify_max_size)

  def fitness(self, trees: list, key: jax.Array) -> tuple[np.ndarray, list[str]]:
    """GLO fitness of ``trees`` (GLO paper §III-A), training only cache misses.

    Returns:
      ``(fitness float32[len(trees)], status per tree)`` with status one of
      ``"trained"``, ``"hit"``, ``"invalid"``, ``"too_large"``.
    """
    fitness = np.zeros(len(trees), np.float32)
    statuses = [""] * len(trees)
    pending: dict[str, list[int]] = {}
    for i, tree in enumerate(trees):
      self.counters["evaluations"] += 1
      status, ckey = self.status(tree)
      if status != "ok":
        self.counters[status] += 1
        statuses[i] = status
      elif ckey in self.cache:
        self.counters["hits"] += 1
        fitness[i] = self.cache[ckey]
        statuses[i] = "hit"
      elif ckey in pending:  # an equivalent tree of this generation trains once
        self.counters["hits"] += 1
        pending[ckey].append(i)
        statuses[i] = "hit"
      else:
        pending[ckey] = [i]
        statuses[i] = "trained"
    if pending:
      firsts = [rows[0] for rows in pending.values()]
      programs = program_lib.encode_population(
          [trees[i] for i in firsts], self.max_len, stack_depth=self.stack_depth)
      trained = self.train_programs(programs, key)
      self.counters["trained_trees"] += len(firsts)
      for (ckey, rows), f in zip(pending.items(), trained):
        self.cache[ckey] = float(f)
        fitness[rows] = f
    return fitness, statuses

# ---- the genetic algorithm ----------------------------------------------------------


def roulette(rng: np.random.Generator, fitness, count: int) -> np.ndarray:
  """``count`` indices drawn with probability ∝ fitness (GLO paper §III-A).

  Non-finite fitness counts as the worst (0) first; if every fitness is 0 the draw
  is uniform.
  """
  f = common.sanitize_fitness(fitness).astype(np.float64)
  f = np.maximum(f, 0.0)
  p = f / f.sum() if f.sum() > 0 else np.full(len(f), 1.0 / len(f))
  return rng.choice(len(f), size=count, p=p)


def elite_indices(fitness, elites: int) -> np.ndarray:
  """Indices of the ``elites`` fittest (non-finite = worst; stable on ties)."""
  f = common.sanitize_fitness(fitness)
  return np.argsort(-f, kind="stable")[:elites]


def next_generation(rng: np.random.Generator, population: list, fitness, *,
                    elites: int, crossover_probability: float,
                    rates: variation.MutationRates, primitives: variation.Primitives
                    ) -> tuple[list, list, dict]:
  """One GA step: elites copied, the rest bred by roulette + crossover + mutation.

  Returns:
    ``(new_population, elite_rows, counts)``: the first ``len(elite_rows)`` members
    are the elites (``elite_rows`` their indices in ``population``); ``counts`` sums
    crossovers and each mutation's firings.
  """
  size = len(population)
  keep = elite_indices(fitness, elites)
  new = [population[i] for i in keep]
  counts = {"crossovers": 0, **{m: 0 for m in variation.MUTATIONS}}
  while len(new) < size:
    a, b = roulette(rng, fitness, 2)
    child_a, child_b, crossed = variation.crossover(
        rng, population[a], population[b], crossover_probability)
    counts["crossovers"] += int(crossed)
    for child in (child_a, child_b):
      if len(new) < size:
        child, c = variation.mutate(rng, child, rates, primitives)
        for m in variation.MUTATIONS:
          counts[m] += c[m]
        new.append(child)
  return new, keep.tolist(), counts


def _numpy_rng(seed: int, generation: int, purpose: int) -> np.random.Generator:
  # A pure function of (seed, generation): a resumed run draws what an uninterrupted
  # run would have drawn.
  return np.random.default_rng([seed, generation, purpose])


# ---- building blocks ----------------------------------------------------------------


def program_loss_fn(cfg: dict) -> Callable:
  """The trainer's ``loss_fn(program, logits, labels)`` for this config."""
  s = cfg["search"]
  return functools.partial(program_lib.program_loss, stack_depth=s["stack_depth"],
                           use_logits=s["allow_logits"])


# Trainers (and so their compiled programs) shared by runs in one process with the same
# data, model, training and interpreter settings: a notebook or test that runs several
# searches compiles once.
_TRAINERS: dict[str, Trainer] = {}
_MAX_TRAINERS = 4


def make_trainer(cfg: dict) -> Trainer:
  """The (cached) :class:`Trainer` whose loss is the program interpreter."""
  s = cfg["search"]
  key = json.dumps({k: cfg[k] for k in ("dataset", "model", "train")} |
                   {"stack_depth": s["stack_depth"], "allow_logits": s["allow_logits"]},
                   sort_keys=True, default=str)
  if key not in _TRAINERS:
    dataset, model, train_cfg = common.build_run(cfg)
    if len(_TRAINERS) >= _MAX_TRAINERS:
      _TRAINERS.pop(next(iter(_TRAINERS)))
    _TRAINERS[key] = Trainer(model, dataset, program_loss_fn(cfg), train_cfg)
  return _TRAINERS[key]


def make_evaluator(cfg: dict) -> Evaluator:
  """A fresh :class:`Evaluator` (empty cache) of a config."""
  s = cfg["search"]
  trainer = make_trainer(cfg)
  return Evaluator(trainer=trainer, batch=s["batch_candidates"] or s["population_size"],
                   max_len=s["max_len"], stack_depth=s["stack_depth"],
                   strategy=s["strategy"], nan_retries=s["nan_retries"],
                   model_name=cfg["model"]["name"],
                   simplify_max_size=s["simplify_max_size"])


def _summary(fitness) -> dict:
  f = np.asarray(fitness, np.float64)
  return {"best": float(f.max()), "mean": float(f.mean()), "median": float(np.median(f))}


# ---- coefficient phase --------------------------------------------------------------


def _make_es(dim: int, cfg: dict):
  from evosax.algorithms import CMA_ES
  k = cfg["coefficients"]
  es = CMA_ES(population_size=k["population_size"], solution=jnp.zeros(dim, jnp.float32))
  params = es.default_params.replace(std_init=jnp.asarray(k["sigma"], jnp.float32))
  return es, params


def coefficient_programs(tree: tree_lib.Tree, indices: list[int], coefficients,
                         max_len: int, stack_depth: int) -> program_lib.Program:
  """``K`` programs of one tree, row ``k`` scaled by ``coefficients[k]`` (``[K, d]``)."""
  coefficients = np.asarray(coefficients, np.float64)
  scales = [coef_lib.scales_dict(indices, row) for row in coefficients]
  return program_lib.encode_population([tree] * len(scales), max_len, scales,
                                       stack_depth=stack_depth)


# ---- the search ---------------------------------------------------------------------


def run(config, workdir: str, *, log: Callable[[str], None] = print,
        on_generation: Optional[Callable[[str, int, dict], None]] = None) -> dict:
  """Runs (or resumes) a GLO search in ``workdir``: GA, coefficient phase, final.

  Args:
    config: a ConfigDict/mapping with the keys of :func:`default_config`.
    workdir: the run's folder; rerunning on the same folder resumes.
    log: progress printer (one line per generation).
    on_generation: optional callback ``(phase, generation, record)`` after each
      generation's checkpoint (``phase`` is ``"ga"`` or ``"cma"``; tests interrupt a run
      with it).

  Returns:
    ``{"best_tree": spec, "best_tree_fitness", "best_loss": spec, "best_loss_fitness",
    "baseline_fitness", "confirm", "counters", "hit_rate", "candidates_per_s",
    "generations", "final"}``; ``confirm`` holds the best tree's, best loss's and
    cross-entropy's validation accuracy over ``search.baseline_repeats`` runs with the
    same keys (an unbiased comparison; the search's best fitness is a maximum over
    many noisy evaluations).

  Raises:
    ValueError: for a bad config, or a workdir holding a different run.

  Files written (besides ``config.json``, ``log.jsonl``, ``checkpoint.npz``):
  ``best_tree.txt`` (best GA tree, ``expr:`` spec), ``best_loss.txt`` (the best loss
  after the coefficient phase, ``expr:`` spec), ``results.json``, ``fitness.png``,
  ``final.json`` (if ``final.enabled``).
  """
  cfg = validate_config(config)
  # Build data and model before touching the workdir: a bad dataset or model option
  # must not leave a config.json that makes the corrected rerun look like another run.
  common.build_run(cfg)
  resumed = common.prepare_workdir(workdir, cfg, RESUMABLE_KEYS)
  s, kc = cfg["search"], cfg["coefficients"]
  evaluator = make_evaluator(cfg)
  dataset = evaluator.trainer.dataset
  primitives = variation.Primitives.glo(allow_logits=s["allow_logits"])
  rates = variation.MutationRates(**s["mutation"])
  log(f"GLO search: {dataset.describe()}; model {cfg['model']['name']}; population "
      f"{s['population_size']}, {s['generations']} generations, "
      f"{evaluator.trainer.config.steps} training steps per candidate, "
      f"{evaluator.batch} candidates per compiled call; workdir {workdir}")

  state = {"phase": "ga", "generation": 0, "population": None, "fitness": None,
           "history": [], "cache": {}, "counters": dict(evaluator.counters),
           "best": {"fitness": -1.0, "tree": None, "generation": -1},
           "baseline": None, "cma": []}
  es_arrays = None
  ckpt = common.load_checkpoint(workdir) if resumed else None
  if ckpt is not None:
    es_arrays, state = ckpt
    log(f"resuming: phase {state['phase']}, generation {state['generation']}, "
        f"{len(state['cache'])} cached trees")
  evaluator.cache = state["cache"]
  evaluator.counters = state["counters"]
  common.write_log(workdir, state["history"])

  def checkpoint(arrays=None):
    state["cache"], state["counters"] = evaluator.cache, evaluator.counters
    common.save_checkpoint(workdir, arrays or {}, state)

  if state["baseline"] is None and s["baseline_repeats"] > 0:
    # Cross-entropy as a program (n * x * log y): the same compiled trainer.
    n = s["baseline_repeats"]
    ce = program_lib.encode_population([cross_entropy_tree(dataset.num_classes)] * n,
                                       s["max_len"], stack_depth=s["stack_depth"])
    t0 = time.time()
    f = evaluator.train_programs(
        ce, common.generation_key(cfg["seed"], 0, _PURPOSE_BASELINE), count=False)
    state["baseline"] = {"fitness": f.tolist(), "mean": float(f.mean())}
    log(f"cross-entropy baseline (same fitness protocol, {n} runs): validation accuracy "
        f"{f.mean():.4f} ± {f.std():.4f} ({time.time() - t0:.1f}s incl. compile)")
    checkpoint()

  # ---- phase 1: genetic algorithm ----
  while state["phase"] == "ga" and state["generation"] < s["generations"]:
    g = state["generation"]
    t0 = time.time()
    before = dict(evaluator.counters)
    rng = _numpy_rng(cfg["seed"], g, _PURPOSE_VARY)
    if g == 0:
      population = [variation.random_tree(rng, s["init_max_depth"], primitives)
                    for _ in range(s["population_size"])]
      elite_rows, var_counts = [], {}
      fitness, statuses = evaluator.fitness(
          population, common.generation_key(cfg["seed"], g, _PURPOSE_TRAIN))
    else:
      parents = [tree_lib.parse(t) for t in state["population"]]
      population, elite_rows, var_counts = next_generation(
          rng, parents, state["fitness"], elites=s["elites"],
          crossover_probability=s["crossover_probability"], rates=rates,
          primitives=primitives)
      # Elites keep their fitness; only offspring are evaluated.
      n_el = len(elite_rows)
      off_fit, statuses = evaluator.fitness(
          population[n_el:], common.generation_key(cfg["seed"], g, _PURPOSE_TRAIN))
      fitness = np.concatenate([np.asarray(state["fitness"], np.float32)[elite_rows],
                                off_fit])
      statuses = ["elite"] * n_el + statuses
    fitness = common.sanitize_fitness(fitness)
    i = int(np.argmax(fitness))
    if fitness[i] > state["best"]["fitness"]:
      state["best"] = {"fitness": float(fitness[i]),
                       "tree": tree_lib.to_string(population[i]), "generation": g}
    delta = {k: evaluator.counters[k] - before[k] for k in evaluator.counters}
    wall = time.time() - t0
    looked_up = delta["hits"] + delta["trained_trees"]
    record = {
        "phase": "ga", "generation": g, "fitness": fitness.tolist(),
        **_summary(fitness),
        "best_tree": tree_lib.to_string(population[i]),
        "best_ever": state["best"]["fitness"],
        "trained": delta["trained"], "hits": delta["hits"],
        "hit_rate": delta["hits"] / looked_up if looked_up else 0.0,
        "invalid": delta["invalid"], "too_large": delta["too_large"],
        "failed": delta["failed"], "elites": len(elite_rows),
        "variation": var_counts,
        "cache_size": len(evaluator.cache),
        "candidates_per_s": delta["trained"] / delta["train_seconds"]
        if delta["train_seconds"] > 0 else None,
        "wall_time_s": wall,
    }
    state["history"].append(record)
    state["population"] = [tree_lib.to_string(t) for t in population]
    state["fitness"] = fitness.tolist()
    state["generation"] = g + 1
    checkpoint()
    common.append_log(workdir, record)
    log(f"gen {g + 1:3d}/{s['generations']}  best {record['best']:.4f}  "
        f"mean {record['mean']:.4f}  median {record['median']:.4f}  best-ever "
        f"{state['best']['fitness']:.4f}  trained {delta['trained']}  hits "
        f"{delta['hits']}  invalid {delta['invalid'] + delta['too_large']}  "
        f"failed {delta['failed']}  {wall:.1f}s  best: {record['best_tree']}")
    if on_generation is not None:
      on_generation("ga", g, record)

  out = {"best_tree": None, "best_tree_fitness": state["best"]["fitness"],
         "best_loss": None, "best_loss_fitness": None,
         "baseline_fitness": state["baseline"]["mean"] if state["baseline"] else None,
         "generations": s["generations"], "confirm": None, "final": None}
  if state["best"]["tree"] is None:
    log("no generation was run (search.generations = 0); nothing to report")
    out.update(counters=dict(evaluator.counters), hit_rate=0.0)
    return out
  best_tree = tree_lib.parse(state["best"]["tree"])
  out["best_tree"] = tree_spec(best_tree)
  common.write_text(os.path.join(workdir, "best_tree.txt"), out["best_tree"] + "\n")

  # ---- phase 2: CMA-ES on the coefficients of the best tree(s) ----
  if state["phase"] == "ga":
    state["phase"] = "cma"
    state["generation"] = 0
    state["cma"] = [{"tree": t, "fitness": f, "best": {"fitness": f, "scales": {}}}
                    for t, f in _top_trees(state, evaluator, kc["num_trees"])]
    checkpoint()
  if not state["cma"]:
    log("no tree reached a fitness above 0: nothing to tune; best_loss.txt = best tree")
    state["cma"] = [{"tree": state["best"]["tree"], "fitness": state["best"]["fitness"],
                     "best": {"fitness": state["best"]["fitness"], "scales": {}},
                     "done": True}]
  if kc["enabled"] and kc["generations"] > 0:
    for j, entry in enumerate(state["cma"]):
      if entry.get("done"):
        continue
      es_arrays = _tune_coefficients(cfg, evaluator, state, j, es_arrays, checkpoint,
                                     workdir, log, on_generation)
  best_entry = max(state["cma"], key=lambda e: e["best"]["fitness"])
  best_scales = {int(k): v for k, v in best_entry["best"]["scales"].items()}
  best_loss = coef_lib.with_coefficients(tree_lib.parse(best_entry["tree"]), best_scales)
  out["best_loss"] = tree_spec(best_loss)
  out["best_loss_fitness"] = best_entry["best"]["fitness"]
  state["phase"] = "done"
  checkpoint()
  common.write_text(os.path.join(workdir, "best_loss.txt"), out["best_loss"] + "\n")
  counters = dict(evaluator.counters)
  looked_up = counters["hits"] + counters["trained_trees"]
  out.update(counters=counters,
             hit_rate=counters["hits"] / looked_up if looked_up else 0.0,
             candidates_per_s=counters["trained"] / counters["train_seconds"]
             if counters["train_seconds"] else None)
  log(f"best tree (validation {out['best_tree_fitness']:.4f}): {out['best_tree']}")
  log(f"best loss after coefficients (validation {out['best_loss_fitness']:.4f}): "
      f"{out['best_loss']}")
  usable = out["best_loss_fitness"] > 0
  if not usable:
    log("no loss trained successfully: skipping the retraining comparisons")
  if state["baseline"] is not None and usable:
    # The search's best fitness is the maximum of many noisy evaluations; retrain the
    # winners with the cross-entropy baseline's keys for an unbiased, paired comparison.
    out["confirm"] = _confirm(cfg, evaluator, best_tree, tree_lib.parse(best_entry["tree"]),
                              best_scales, state["baseline"])
    c = out["confirm"]
    log(f"retrained {c['repeats']}× with the baseline's keys (validation accuracy, "
        f"mean ± std): best tree {c['best_tree']['mean']:.4f} ± {c['best_tree']['std']:.4f}"
        f", best loss {c['best_loss']['mean']:.4f} ± {c['best_loss']['std']:.4f}, "
        f"cross-entropy {c['cross_entropy']['mean']:.4f} ± "
        f"{c['cross_entropy']['std']:.4f}")
  common.write_json(os.path.join(workdir, "results.json"), out)
  log(f"{counters['evaluations']} tree evaluations, {counters['trained']} trainings "
      f"(incl. coefficient phase), cache hit rate {out['hit_rate']:.1%}, "
      f"{counters['invalid']} without x and y, {counters['too_large']} too large, "
      f"{counters['failed']} NaN trainings")
  _plot_history(workdir, state["history"], log)
  if cfg["final"]["enabled"] and usable:
    out["final"] = final_protocol(cfg, tree_lib.parse(best_entry["tree"]), best_scales,
                                  workdir, log=log)
  return out


def _confirm(cfg: dict, evaluator: Evaluator, best_tree, tuned_tree, tuned_scales,
             baseline: dict) -> dict:
  """Validation accuracy of the best tree and best tuned loss, retrained with the
  cross-entropy baseline's keys (``search.baseline_repeats`` runs each)."""
  s = cfg["search"]
  n = len(baseline["fitness"])
  key = common.generation_key(cfg["seed"], 0, _PURPOSE_BASELINE)
  stats = lambda f: {"runs": np.asarray(f).tolist(), "mean": float(np.mean(f)),
                     "std": float(np.std(f))}
  runs = {}
  for name, tree, scales in (("best_tree", best_tree, None),
                             ("best_loss", tuned_tree, tuned_scales)):
    programs = program_lib.encode_population(
        [tree] * n, s["max_len"], [scales] * n if scales else None,
        stack_depth=s["stack_depth"])
    runs[name] = stats(evaluator.train_programs(programs, key, count=False))
  return {"repeats": n, **runs, "cross_entropy": stats(baseline["fitness"])}


def _top_trees(state: dict, evaluator: Evaluator, count: int) -> list[tuple[str, float]]:
  """The ``count`` best distinct (by canonical form) trees seen in the last population
  plus the best ever, as ``(text, fitness)``."""
  candidates = [(state["best"]["tree"], state["best"]["fitness"])]
  candidates += sorted(zip(state["population"], state["fitness"]), key=lambda p: -p[1])
  out, seen = [], set()
  for text, f in candidates:
    if not f > 0:  # invalid or failed trees have nothing to tune
      continue
    key = canonical_lib.canonical(tree_lib.parse(text), evaluator.simplify_max_size)
    if key not in seen:
      seen.add(key)
      out.append((text, float(f)))
    if len(out) == count:
      break
  return out


def _tune_coefficients(cfg, evaluator: Evaluator, state: dict, j: int, es_arrays,
                       checkpoint, workdir, log, on_generation):
  """CMA-ES on the coefficients of ``state["cma"][j]`` (GLO paper §III-B)."""
  kc, s = cfg["coefficients"], cfg["search"]
  entry = state["cma"][j]
  tree = tree_lib.parse(entry["tree"])
  indices = coef_lib.coefficient_indices(tree, prune=kc["prune"])
  es, es_params = _make_es(len(indices), cfg)
  base = _CMA_KEY_OFFSET * (j + 1)
  es_state = es.init(common.generation_key(cfg["seed"], base, _PURPOSE_INIT),
                     jnp.ones(len(indices), jnp.float32), es_params)
  if es_arrays and state["generation"] > 0:
    es_state = common.unflatten_state("es", es_arrays, es_state)
  if state["generation"] == 0:
    log(f"coefficient phase for {tree_spec(tree)}: {len(indices)} coefficients "
        f"(of {tree_lib.size(tree)} nodes), CMA-ES population {kc['population_size']}, "
        f"σ {kc['sigma']}, {kc['generations']} generations")
  while state["generation"] < kc["generations"]:
    g = state["generation"]
    t0 = time.time()
    trained_before = evaluator.counters["trained"]
    coefs, es_state = es.ask(common.generation_key(cfg["seed"], base + g, _PURPOSE_ASK),
                             es_state, es_params)
    programs = coefficient_programs(tree, indices, coefs, s["max_len"], s["stack_depth"])
    fitness = evaluator.train_programs(
        programs, common.generation_key(cfg["seed"], base + g, _PURPOSE_TRAIN))
    flat = bool(np.all(fitness == fitness[0]))
    told = not (flat and kc["flat_action"] == "skip_tell")
    if told:
      es_state, _ = es.tell(common.generation_key(cfg["seed"], base + g, _PURPOSE_TELL),
                            coefs, common.to_minimization(fitness), es_state, es_params)
    i = int(np.argmax(fitness))
    if fitness[i] > entry["best"]["fitness"]:
      entry["best"] = {"fitness": float(fitness[i]),
                       "scales": coef_lib.scales_dict(indices, np.asarray(coefs[i]))}
    record = {"phase": "cma", "tree": entry["tree"], "generation": g,
              "fitness": fitness.tolist(), **_summary(fitness),
              "best_coefficients": np.asarray(coefs[i]).tolist(),
              "best_ever": entry["best"]["fitness"], "sigma": float(es_state.std),
              "flat": flat, "told": told,
              "trained": evaluator.counters["trained"] - trained_before,
              "wall_time_s": time.time() - t0}
    state["history"].append(record)
    finished = g + 1 == kc["generations"]
    if finished:  # the next tree (if any) starts at generation 0
      entry["done"] = True
      state["generation"] = 0
      checkpoint({})
    else:
      state["generation"] = g + 1
      checkpoint(common.flatten_state("es", es_state))
    common.append_log(workdir, record)
    log(f"cma {g + 1:3d}/{kc['generations']}  best {record['best']:.4f}  mean "
        f"{record['mean']:.4f}  best-ever {entry['best']['fitness']:.4f}  σ "
        f"{record['sigma']:.3g}{'  (flat: no update)' if not told else ''}  "
        f"{record['wall_time_s']:.1f}s")
    if on_generation is not None:
      on_generation("cma", g, record)
    if finished:
      break
  return None


def final_protocol(cfg: dict, tree: tree_lib.Tree, scales: dict, workdir: str, *,
                   log: Callable[[str], None] = print) -> dict:
  """Retrains ``tree`` (coefficients ``scales``) and cross-entropy ``final.repeats``
  times with full training; writes ``final.json``."""
  f, s = cfg["final"], cfg["search"]
  dataset, model, train_cfg = common.build_run(cfg, steps=f["steps"])
  loss_fn = program_loss_fn(cfg)
  encode = lambda t, sc=None: program_lib.encode(t, s["max_len"], sc,
                                                 stack_depth=s["stack_depth"])
  spelled = coef_lib.with_coefficients(tree, scales)
  candidate = protocol.LossUnderTest("glo", loss_fn, encode(tree, scales),
                                     tree_spec(spelled))
  baseline = protocol.LossUnderTest("cross_entropy", loss_fn,
                                    encode(cross_entropy_tree(dataset.num_classes)),
                                    "cross_entropy")
  result = protocol.compare(candidate, baseline, model=model, dataset=dataset,
                            train_config=train_cfg, repeats=f["repeats"], seed=f["seed"],
                            strategy=s["strategy"], model_name=cfg["model"]["name"],
                            alternative=f["alternative"], log=log)
  result["table"] = protocol.format_table(result)
  common.write_json(os.path.join(workdir, "final.json"), result)
  log(result["table"])
  return result


def _plot_history(workdir: str, history: list[dict], log) -> None:
  """Writes ``fitness.png``: best / median GA fitness per generation, then CMA-ES."""
  try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
  except ImportError:  # plotting is a convenience; never lose a run over it
    return
  fig, ax = plt.subplots(figsize=(7, 4))
  x = np.arange(1, len(history) + 1)
  for key in ("best", "median"):
    ax.plot(x, [r[key] for r in history], marker="o", ms=3, label=key)
  ax.plot(x, [r["best_ever"] for r in history], "k--", lw=1, label="best so far")
  n_ga = sum(r["phase"] == "ga" for r in history)
  if n_ga < len(history):
    ax.axvline(n_ga + 0.5, color="gray", lw=1)
    ax.text(n_ga + 1, 0.05, "CMA-ES coefficients", fontsize=8)
  ax.set_xlabel("generation (GA, then CMA-ES)")
  ax.set_ylabel("validation accuracy")
  ax.set_ylim(0, 1)
  ax.set_title("GLO search")
  ax.legend(loc="lower right")
  ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(os.path.join(workdir, "fitness.png"), dpi=100)
  plt.close(fig)
  log(f"wrote {os.path.join(workdir, 'fitness.png')}")
