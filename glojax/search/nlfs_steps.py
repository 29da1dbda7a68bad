"""NLFS's two kinds of step, its trainings and its archive (used by
:class:`glojax.search.nlfs.NLFS`; Morgan & Hougen 2024, §3.4, §3.7–3.8, appendix B).

The state is one dict of NumPy arrays (``NLFS.template``): the initial population and
the population as stacked graph rows (:func:`glojax.expr.graph.stack` plus
``phenotypes``, ``fitness``, ``birth``), the archive of the best graphs, counters and
integrity rejections by reason. Each step copies the state and returns the new one.
"""

from __future__ import annotations

import collections
import time
from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from glojax.expr import graph as graph_lib
from glojax.expr import integrity as integrity_lib
from glojax.search import common
from glojax.train.early_stopping import EarlyStopping
from glojax.train.population import evaluate_population

# Counters kept in the state (all integers but train_seconds, the only wall-clock one).
COUNTERS = ("init_attempts", "mutation_attempts", "mutation_failed", "trainings",
            "children", "failed_trainings", "nan", "prescreen_rejected",
            "early_rejected", "early_stopped", "redo", "redo_exhausted", "steps_trained",
            "steps_saved", "train_seconds")
PURPOSE_MUTATE, PURPOSE_TRAIN = 0, 1


class State(NamedTuple):
  """NLFS's search state (checkpointed whole; graph rows: :func:`graph_rows`).

  Attributes:
    phase: 0 while the initial population is scored, 1 during evolution.
    step: evolution steps done. scored: initial graphs scored.
    next_birth: birth index of the next child (ages for "replace the oldest").
    initial, population, archive: graph rows (``ops``, ``args``, ``signs``, ...,
      ``phenotypes float32[n, G]``, ``fitness float32[n]``, ``birth int32[n]``).
    archive_count: valid rows of ``archive`` (fittest first).
    counters: :data:`COUNTERS` (float64 scalars).
    rejections: integrity rejections by reason (int64 scalars).
  """
  phase: np.ndarray
  step: np.ndarray
  scored: np.ndarray
  next_birth: np.ndarray
  initial: dict
  population: dict
  archive: dict
  archive_count: np.ndarray
  counters: dict
  rejections: dict
# Graphs per phenotype batch while searching for a valid graph.
_ATTEMPT_BATCH = 32


def first_valid(rng, propose: Callable, population: np.ndarray, cfg_i, max_attempts: int,
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


def numpy_rng(key) -> np.random.Generator:
  """A NumPy generator seeded from a JAX key (raw or typed)."""
  return np.random.default_rng(np.asarray(jax.random.key_data(key)
                                          if jnp.issubdtype(key.dtype, jax.dtypes.prng_key)
                                          else key, np.uint32))


def graph_rows(graphs, phenotypes, fitness, birth) -> dict:
  arrays = graph_lib.stack(graphs)
  arrays.update(phenotypes=np.asarray(phenotypes, np.float32).reshape(len(graphs), -1),
                fitness=np.asarray(fitness, np.float32),
                birth=np.asarray(birth, np.int32))
  return arrays


def take_rows(rows: dict, idx) -> dict:
  return {k: np.asarray(v)[idx] for k, v in rows.items()}


class Steps:
  """The step logic of :class:`glojax.search.nlfs.NLFS` (a mixin: it reads
  ``self.config``, ``self.batch``, ``self.trainers``, ``self.early``, ...)."""

  # -- training ----------------------------------------------------------------------

  def _train(self, graphs: list, key, role: str, early: Optional[EarlyStopping],
             batch: int) -> dict:
    """Trains ``graphs`` with ``self.trainers[role]`` (padded to a multiple of
    ``batch`` rows: fixed shapes, one compile); candidate ``i`` uses ``fold_in(key, i)``."""
    trainer, model_name = self.trainers[role]
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
          strategy=self.config.search.strategy, nan_retries=self.config.search.nan_retries,
          model_name=model_name, early_stopping=early)
      out["fitness"].append(result.fitness)
      for name in ("finite", "stopped", "stopped_check", "steps_trained"):
        default = {"stopped": False, "stopped_check": -1,
                   "steps_trained": trainer.config.steps}.get(name)
        out[name].append(result.metrics.get(name, np.full(batch, default)))
    res = {name: np.concatenate(v)[:k] for name, v in out.items()}
    res["seconds"] = (time.time() - t0) * k / padded
    res["total_steps"] = trainer.config.steps
    return res

  @staticmethod
  def _account(counters: dict, res: dict) -> None:
    n = len(res["fitness"])
    saved = float(np.sum(res["total_steps"] - res["steps_trained"]))
    counters["trainings"] += n
    counters["nan"] += int(np.sum(~res["finite"]))
    counters["steps_trained"] += float(np.sum(res["steps_trained"]))
    counters["steps_saved"] += saved
    counters["train_seconds"] += res["seconds"]

  def _prescreen(self, graphs: list, key, counters: dict) -> np.ndarray:
    """§3.7's prescreen: ``bool[k]``, True where the child failed it (or NaN)."""
    p = self.config.prescreen
    steps = self.trainers["prescreen"][0].config.steps
    pre = self._train(graphs, key, "prescreen",
                      EarlyStopping(((steps, p.min_train_accuracy),),
                                    self.config.early_stopping.train_examples), self.batch)
    self._account(counters, pre)
    counters["prescreen_rejected"] += int(np.sum(pre["stopped"]))
    return pre["stopped"] | ~pre["finite"]

  def _train_children(self, graphs: list, key, counters: dict
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Prescreen (if enabled), then the surrogate with early stopping.

    Returns ``(ok bool[k], fitness float32[k])``: ``ok`` is False for a failed training
    (NaN/inf, prescreen rejection, a ``"reject"`` check).
    """
    k = len(graphs)
    ok = np.ones(k, bool)
    fitness = np.zeros(k, np.float32)
    if self.config.prescreen.enabled:
      ok &= ~self._prescreen(graphs, jax.random.fold_in(key, 1), counters)
    rows = np.flatnonzero(ok)
    if rows.size:
      res = self._train([graphs[i] for i in rows], key, "surrogate", self.early,
                        self.batch)
      self._account(counters, res)
      stopped = res["stopped"]
      actions = self.config.early_stopping.actions
      action = np.array([actions[c] if c >= 0 else "" for c in res["stopped_check"]])
      rejected = stopped & (action == "reject")
      counters["early_rejected"] += int(np.sum(rejected))
      counters["early_stopped"] += int(np.sum(stopped & ~rejected))
      good = res["finite"] & ~rejected
      ok[rows] = good
      fitness[rows] = np.where(good, res["fitness"], 0.0)
    return ok, fitness

  # -- the initial population (§3.8) ---------------------------------------------------

  def _initial_step(self, state: dict, key) -> dict:
    init = state["initial"]
    n0, done = self.config.initial.size, int(state["scored"])
    batch = self.config.initial.batch
    rows = np.arange(done, min(done + batch, n0))
    graphs = graph_lib.unstack(take_rows(init, rows))
    res = self._train(graphs, jax.random.fold_in(key, PURPOSE_TRAIN), "initial",
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
      p = self.config.search.population_size
      best = np.argsort(-common.sanitize_fitness(init["fitness"]), kind="stable")[:p]
      state["population"] = take_rows(init, best)
      state["population"]["birth"] = np.arange(p, dtype=np.int32)
      state["next_birth"] = np.int32(p)
      state["phase"] = np.int32(1)
      record["population_formed"] = True
    return record

  # -- regularized evolution (§3.4, Algorithm 2) -------------------------------------

  def _mutate_pending(self, rng, pending, parents, parent_graphs, pop, accepted,
                      counters, rejections, failed) -> list:
    """One valid mutation per pending slot: ``[(slot, child, phenotype)]``; slots
    whose ``max_mutation_attempts`` all fail are appended to ``failed``."""
    s, g = self.config.search, self.integrity.grid_points
    candidates = []
    for b in pending:
      population = np.concatenate(
          [pop["phenotypes"],
           np.asarray(accepted + [c[2] for c in candidates]).reshape(-1, g)])
      child, verdict, attempts = first_valid(
          rng, lambda r, p=parent_graphs[parents[b]]: graph_lib.mutate(r, p, self.rates)[0],
          population, self.integrity, s.max_mutation_attempts, rejections)
      counters["mutation_attempts"] += attempts
      if child is None:
        counters["mutation_failed"] += 1
        failed.append(b)
      else:
        candidates.append((b, child, verdict.phenotype))
    return candidates

  def _breed(self, state: dict, key, rng, parents: list) -> tuple[dict, list, int]:
    """Mutates and trains one child per slot, redoing failed trainings (appendix B).

    Returns ``(children {slot: (graph, fitness, phenotype)}, failed slots, rounds)``.
    """
    s, pop = self.config.search, state["population"]
    counters, rejections = state["counters"], collections.Counter()
    parent_graphs = graph_lib.unstack(pop)
    redo_left = {b: s.max_redo for b in range(len(parents))}
    children, failed = {}, []
    pending, round_ = list(range(len(parents))), 0
    while pending:
      candidates = self._mutate_pending(
          rng, pending, parents, parent_graphs, pop, [c[2] for c in children.values()],
          counters, rejections, failed)
      pending = []
      if not candidates:
        break
      ok, fitness = self._train_children(
          [c[1] for c in candidates],
          jax.random.fold_in(jax.random.fold_in(key, PURPOSE_TRAIN), round_), counters)
      for (b, child, pheno), good, f in zip(candidates, ok, fitness):
        if good:
          children[b] = (child, float(f), pheno)
          continue
        counters["failed_trainings"] += 1
        redo_left[b] -= 1
        counters["redo" if redo_left[b] > 0 else "redo_exhausted"] += 1
        if redo_left[b] > 0:
          pending.append(b)
      round_ += 1
    for r, n in rejections.items():
      state["rejections"][r] += n
    return children, failed, round_

  def _evolution_step(self, state: dict, key) -> dict:
    rng = numpy_rng(jax.random.fold_in(key, PURPOSE_MUTATE))
    pop = state["population"]
    parents = [tournament(rng, pop["fitness"], self.config.search.tournament_size)
               for _ in range(self.batch)]
    parent_fitness = common.sanitize_fitness(pop["fitness"])[parents]
    children, failed, rounds = self._breed(state, key, rng, parents)
    born = []
    for b in sorted(children):   # each child replaces the oldest member (slot order)
      child, f, pheno = children[b]
      oldest = int(np.argmin(pop["birth"]))
      row = graph_rows([child], [pheno], [f], [int(state["next_birth"])])
      for name in pop:
        pop[name][oldest] = row[name][0]
      state["next_birth"] += 1
      born.append({"spec": graph_lib.to_spec(child), "fitness": f,
                   "parent_fitness": float(parent_fitness[b])})
    state["counters"]["children"] += len(children)
    kept = list(children.values())
    self._archive(state, [c[0] for c in kept], [c[1] for c in kept], [c[2] for c in kept])
    state["step"] += 1
    return {"phase": "evolve", "step": int(state["step"]), "children": born,
            "failed_mutations": len(failed), "rounds": rounds}

  # -- the archive (elimination's candidates) ------------------------------------------

  def _archive(self, state: dict, graphs: list, fitness, phenotypes) -> None:
    """Keeps the ``archive_size`` fittest distinct graphs seen (for elimination)."""
    if not len(graphs):
      return
    arch, n = state["archive"], int(state["archive_count"])
    cur = take_rows(arch, np.arange(n))
    new = graph_rows(graphs, phenotypes, fitness,
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
