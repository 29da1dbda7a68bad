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


def plot_history(workdir: str, title: str, log) -> None:
  """Writes ``fitness.png`` from ``log.jsonl`` (every candidate, best, mean, median per
  generation); a plot is a convenience, so a failure is logged, never raised."""
  from glojax.analysis import plots
  path = os.path.join(workdir, "fitness.png")
  try:
    plots.plot_fitness_curves(workdir, path, title=title)
  except (OSError, ValueError) as e:
    log(f"could not write {path}: {e}")
    return
  log(f"wrote {path}")


def plot_phases(workdir: str, title: str, log) -> None:
  """Writes ``fitness.png`` from ``log.jsonl``: best / median fitness and the best so
  far per step, with a line where the records' ``phase`` changes (GLO: GA, then
  CMA-ES on coefficients). A failure is logged, never raised."""
  try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
  except ImportError:  # plotting is a convenience; never lose a run over it
    return
  from glojax import workdir as workdir_lib
  history = workdir_lib.read_jsonl(os.path.join(workdir, workdir_lib.LOG_FILE))
  fig, ax = plt.subplots(figsize=(7, 4))
  x = np.arange(1, len(history) + 1)
  for key in ("best", "median"):
    ax.plot(x, [r[key] for r in history], marker="o", ms=3, label=key)
  ax.plot(x, [r["best_ever"] for r in history], "k--", lw=1, label="best so far")
  n_ga = sum(r["phase"] == "ga" for r in history)
  if n_ga < len(history):
    ax.axvline(n_ga + 0.5, color="gray", lw=1)
    ax.text(n_ga + 1, 0.05, "CMA-ES coefficients", fontsize=8)
  ax.set(xlabel="generation (GA, then CMA-ES)", ylabel="validation accuracy",
         ylim=(0, 1), title=title)
  ax.legend(loc="lower right")
  ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(os.path.join(workdir, "fitness.png"), dpi=100)
  plt.close(fig)
  log(f"wrote {os.path.join(workdir, 'fitness.png')}")
