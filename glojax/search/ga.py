"""The genetic algorithm over loss trees: its state and its pure variation functions.

GLO paper §III-A (Gonzalez & Miikkulainen, CEC 2020): elites copied, the rest of the
population bred by roulette selection (∝ fitness), subtree crossover and bottom-up
mutations (:mod:`glojax.expr.variation`). The variation functions are functions of
their arguments and a NumPy generator; :func:`step` is one generation, a function of
``(GAState, key)``; :class:`GAState` is the GA's part of GLO's search state
(:mod:`glojax.search.glo`), checkpointed whole by the driver.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import jax
import numpy as np

from glojax.expr import canonical as canonical_lib
from glojax.expr import tree as tree_lib
from glojax.expr import variation
from glojax.search import common

_PURPOSE_VARY, _PURPOSE_TRAIN = 0, 1  # the JAX key of GLO's generation g, folded


class Counters(NamedTuple):
  """Evaluation counts of a GLO search.

  Attributes:
    evaluations: trees asked for.
    hits: answered by the fitness cache (incl. equivalent trees of one generation).
    trained_trees: cache misses trained.
    invalid: trees without both x and y (fitness 0, not trained).
    too_large: trees that do not fit a program (fitness 0, not trained).
    trained: trainings of trees and coefficient candidates.
    failed: trainings that went NaN/inf.
    train_seconds: wall time of the training calls, compiles included.
  """
  evaluations: int = 0
  hits: int = 0
  trained_trees: int = 0
  invalid: int = 0
  too_large: int = 0
  trained: int = 0
  failed: int = 0
  train_seconds: float = 0.0

  def add(self, delta: dict) -> "Counters":
    """These counts plus ``delta`` (a dict of some of the fields)."""
    return self._replace(**{k: getattr(self, k) + v for k, v in delta.items()})

  def minus(self, before: "Counters") -> dict:
    return {k: a - b for k, a, b in zip(self._fields, self, before)}


class GAState(NamedTuple):
  """The GA phase of a GLO search.

  Attributes:
    generation: finished GA generations.
    population: ``str[P]`` the last generation's trees (``""`` before the first).
    fitness: ``float32[P]`` their fitness.
    best_fitness: best fitness so far (-1 before the first generation).
    best_tree: its tree (``""`` before the first generation).
    best_generation: the generation it came from (-1 before the first).
    cache_keys: ``str[N]`` canonical forms of the trees trained so far.
    cache_fitness: ``float32[N]`` their fitness (the fitness cache).
    counters: :class:`Counters`.
    baseline_fitness: ``float32[R]`` cross-entropy's fitness under the same protocol
      (``search.baseline_repeats`` runs; empty if 0).
    baseline_seconds: wall time of the baseline's training (compile included).
  """
  generation: int
  population: np.ndarray
  fitness: np.ndarray
  best_fitness: float
  best_tree: str
  best_generation: int
  cache_keys: np.ndarray
  cache_fitness: np.ndarray
  counters: Counters
  baseline_fitness: np.ndarray
  baseline_seconds: float = 0.0

  @classmethod
  def empty(cls, population_size: int) -> "GAState":
    return cls(0, np.asarray([""] * population_size), np.zeros(population_size, np.float32),
               -1.0, "", -1, np.zeros(0, np.str_), np.zeros(0, np.float32), Counters(),
               np.zeros(0, np.float32))

  def cache(self) -> dict[str, float]:
    """The fitness cache as a dict (canonical form → fitness)."""
    return dict(zip(self.cache_keys.tolist(), self.cache_fitness.tolist()))

  def with_cache_entries(self, entries: dict[str, float]) -> "GAState":
    """This state with ``entries`` appended to the cache."""
    if not entries:
      return self
    keys = np.concatenate([self.cache_keys.astype(np.str_),
                           np.asarray(list(entries), np.str_)])
    values = np.concatenate([self.cache_fitness,
                             np.asarray(list(entries.values()), np.float32)])
    return self._replace(cache_keys=keys, cache_fitness=values)


def numpy_rng(seed: int, generation: int, purpose: int) -> np.random.Generator:
  """The NumPy generator of ``purpose`` in ``generation``: a pure function of the
  seed, so a resumed run draws what an uninterrupted run would have drawn."""
  return np.random.default_rng([seed, generation, purpose])


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


def initial_population(rng: np.random.Generator, size: int, max_depth: int,
                       primitives: variation.Primitives) -> list:
  """``size`` random trees of depth ≤ ``max_depth`` (GLO paper §III-A)."""
  return [variation.random_tree(rng, max_depth, primitives) for _ in range(size)]


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


def step(st: GAState, key: jax.Array, *, seed: int, config, evaluator, primitives
         ) -> tuple[GAState, dict]:
  """One GA generation (GLO paper §III-A): breed (or, first, draw) the population and
  evaluate the new trees through the fitness cache.

  Args:
    st: the GA state.
    key: this generation's key.
    seed: the search's seed (the NumPy generator of the variation derives from it).
    config: GLO's ``search`` section (population_size, init_max_depth, elites,
      crossover_probability, rates).
    evaluator: GLO's :class:`glojax.search.glo.Evaluator`.
    primitives: the primitive set trees are built from.

  Returns:
    ``(state, record)``; ``record`` is the generation's ``log.jsonl`` line.
  """
  t0 = time.time()
  g = st.generation
  rng = numpy_rng(seed, g, _PURPOSE_VARY)
  train_key = jax.random.fold_in(key, _PURPOSE_TRAIN)
  if g == 0:
    population = initial_population(rng, config.population_size, config.init_max_depth,
                                    primitives)
    elite_rows, var_counts = [], {}
    fitness, _, new, counts = evaluator.fitness(population, train_key, st.cache())
  else:
    parents = [tree_lib.parse(t) for t in st.population.tolist()]
    population, elite_rows, var_counts = next_generation(
        rng, parents, st.fitness, elites=config.elites,
        crossover_probability=config.crossover_probability, rates=config.rates,
        primitives=primitives)
    # Elites keep their fitness; only offspring are evaluated.
    n_el = len(elite_rows)
    offspring, _, new, counts = evaluator.fitness(population[n_el:], train_key,
                                                  st.cache())
    fitness = np.concatenate([st.fitness[elite_rows], offspring])
  fitness = common.sanitize_fitness(fitness)
  st = st.with_cache_entries(new)._replace(
      generation=g + 1, population=texts(population), fitness=fitness,
      counters=st.counters.add(counts))
  i = int(np.argmax(fitness))
  if fitness[i] > st.best_fitness:
    st = st._replace(best_fitness=float(fitness[i]),
                     best_tree=tree_lib.to_string(population[i]), best_generation=g)
  return st, _record(st, counts, fitness, population[i], len(elite_rows), var_counts,
                     time.time() - t0)


def _record(st: GAState, counts: dict, fitness, best, elites: int, var_counts: dict,
            wall: float) -> dict:
  delta = {k: counts.get(k, 0) for k in Counters._fields}
  looked_up = delta["hits"] + delta["trained_trees"]
  return {
      "phase": "ga", "generation": st.generation - 1, "fitness": fitness.tolist(),
      **summary(fitness), "best_tree": tree_lib.to_string(best),
      "best_ever": st.best_fitness, "trained": delta["trained"], "hits": delta["hits"],
      "hit_rate": delta["hits"] / looked_up if looked_up else 0.0,
      "invalid": delta["invalid"], "too_large": delta["too_large"],
      "failed": delta["failed"], "elites": elites, "variation": var_counts,
      "cache_size": len(st.cache_keys),
      "candidates_per_s": delta["trained"] / delta["train_seconds"]
      if delta["train_seconds"] > 0 else None,
      "wall_time_s": wall,
  }


def top_trees(st: GAState, count: int, simplify_max_size: int
              ) -> list[tuple[str, float]]:
  """The ``count`` best distinct (by canonical form) trees of the last population
  plus the best ever, as ``(text, fitness)``."""
  candidates = [(st.best_tree, st.best_fitness)]
  candidates += sorted(zip(st.population.tolist(), st.fitness.tolist()),
                       key=lambda p: -p[1])
  out, seen = [], set()
  for text, f in candidates:
    if not f > 0:  # invalid or failed trees have nothing to tune
      continue
    key = canonical_lib.canonical(tree_lib.parse(text), simplify_max_size)
    if key not in seen:
      seen.add(key)
      out.append((text, float(f)))
    if len(out) == count:
      break
  return out


def texts(trees: list) -> np.ndarray:
  """Trees as a ``str[K]`` array (their :func:`glojax.expr.tree.to_string`)."""
  return np.asarray([tree_lib.to_string(t) for t in trees], np.str_)


def summary(fitness) -> dict:
  """``{"best", "mean", "median"}`` of a fitness vector."""
  f = np.asarray(fitness, np.float64)
  return {"best": float(f.max()), "mean": float(f.mean()), "median": float(np.median(f))}
