"""Small pieces every search shares: the fitness sign convention, CMA-ES, plots.

Fitness is *higher is better* everywhere in glojax; evosax minimizes, and
:func:`to_minimization` is the one place where the sign flips. The workdir (config,
logs, checkpoints) is :mod:`glojax.workdir`; the loop is :mod:`glojax.search.driver`.
"""

from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np


def sanitize_fitness(fitness) -> np.ndarray:
  """Maps non-finite fitness to the worst value (0) before any ranking.

  ``argmax([0.5, nan, 0.9])`` is 1, so every selection step goes through here.

  Args:
    fitness: ``float[K]`` accuracies (higher is better).

  Returns:
    ``float32[K]`` with NaN/±inf replaced by 0.
  """
  fitness = np.asarray(fitness, np.float32)
  return np.where(np.isfinite(fitness), fitness, 0.0).astype(np.float32)


def to_minimization(fitness) -> jax.Array:
  """glojax fitness (maximize, ``float[K]``) → evosax fitness (minimize): ``-fitness``."""
  return -jnp.asarray(sanitize_fitness(fitness))


@functools.lru_cache(maxsize=64)
def cma_es(population_size: int, dim: int, sigma: float):
  """evosax ``CMA_ES`` over ``float32[dim]`` with initial step size ``sigma``.

  Cached: the same arguments give the same (stateless) strategy object, so its
  compiled ``ask``/``tell`` are reused across generations and runs.

  Returns:
    ``(strategy, params)``; the state comes from ``strategy.init(key, mean, params)``.
  """
  from evosax.algorithms import CMA_ES
  es = CMA_ES(population_size=population_size, solution=jnp.zeros(dim, jnp.float32))
  params = es.default_params.replace(std_init=jnp.asarray(sigma, jnp.float32))
  return es, params


def plot_history(workdir: str, search: str, log) -> None:
  """Writes ``fitness.png`` from ``log.jsonl`` (every candidate, best, mean, median per
  generation, counted from 1 within each phase; docs/plots.md); ``search`` names the
  search in the title. A plot is a convenience, so a failure is logged, never raised."""
  from glojax.analysis import plots
  path = os.path.join(workdir, "fitness.png")
  try:
    plots.plot_fitness_curves(workdir, path, search=search)
  except (OSError, ValueError) as e:
    log(f"could not write {path}: {e}")
    return
  log(f"wrote {path}")


# GLO's phases (GA, then CMA-ES per tree) are segments of the same plot.
plot_phases = plot_history
