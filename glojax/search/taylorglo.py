"""TaylorGLO: CMA-ES over the 8 parameters of a Taylor-polynomial loss.

Dissertation ch. 5. Each generation, (μ/μ_w, λ)-CMA-ES (evosax ``CMA_ES``, mean 0,
σ = 1.2, λ = 20) proposes λ parameter vectors θ; every candidate loss
``taylorglo(θ, ·)`` trains a fresh network for a short partial training, all λ as one
population program; fitness is validation accuracy (0 for NaN training, after
retries). The best-validation θ of the whole search is then retrained R times with full
training and compared with cross-entropy (the driver's final protocol hook,
:mod:`glojax.search.final`).

Entry point: :func:`run` (``config``, ``workdir``) — resumable; the search itself is
:class:`TaylorGLO`, run by :mod:`glojax.search.driver`.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from glojax import config as config_lib
from glojax import losses
from glojax import workdir as workdir_lib
from glojax.analysis.theory import is_trainable
from glojax.search import common, driver
from glojax.train import protocol
from glojax.train.population import evaluate_population
from glojax.train.trainer import TrainConfig

FLAT_ACTIONS = ("skip_tell", "tell")
_PURPOSE_ASK, _PURPOSE_TELL, _PURPOSE_TRAIN, _PURPOSE_INIT = 0, 1, 2, 3


@dataclasses.dataclass(frozen=True)
class SearchConfig(config_lib.Section):
  """``config.search`` of TaylorGLO.

  Attributes:
    population_size: λ, candidates per generation (doubled by ``invariant_filter``).
    generations: CMA-ES generations (may be raised on resume to extend a search).
    sigma: initial CMA-ES step size σ (1.2 in the dissertation).
    mean: initial CMA-ES mean of every θ entry.
    class_reduction: how the loss reduces over classes (``losses.CLASS_REDUCTIONS``).
    strategy: population strategy (``glojax.train.STRATEGIES``).
    nan_retries: retrainings of a candidate whose training went NaN.
    flat_action: when every candidate scores the same (typically all failed):
      ``"skip_tell"`` keeps the CMA-ES state (no σ collapse), ``"tell"`` updates it.
    invariant_filter: skip θ that cannot train (theorem 6.5.1), drawing 2λ.
  """
  population_size: int = 20
  generations: int = 60
  sigma: float = 1.2
  mean: float = 0.0
  class_reduction: str = "mean"
  strategy: str = "auto"
  nan_retries: int = 2
  flat_action: str = "skip_tell"
  invariant_filter: bool = False

  def __post_init__(self):
    config_lib.check_int(self, "population_size", 2)
    config_lib.check_int(self, "generations", 0)
    config_lib.check_int(self, "nan_retries", 0)
    config_lib.check_number(self, "sigma", low=0.0, low_open=True)
    config_lib.check_number(self, "mean")
    config_lib.check_choice(self, "class_reduction", losses.CLASS_REDUCTIONS)
    config_lib.check_choice(self, "flat_action", FLAT_ACTIONS)
    config_lib.check_bool(self, "invariant_filter")
    driver.check_strategy(self)

  @property
  def effective_population_size(self) -> int:
    """λ, doubled when the invariant filter is on."""
    return self.population_size * (2 if self.invariant_filter else 1)


@dataclasses.dataclass(frozen=True)
class Config(driver.RunConfig):
  """A TaylorGLO config; defaults are the dissertation's MNIST setting."""
  # Every TrainConfig field (optimizer, schedule, augment, ...), so CIFAR recipes can
  # be used inside a search; the dissertation's MNIST values override the defaults.
  train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(
      steps=2000, batch_size=100, learning_rate=0.01))
  search: SearchConfig = dataclasses.field(default_factory=SearchConfig)


class State(NamedTuple):
  """The TaylorGLO search state (checkpointed whole).

  Attributes:
    generation: finished generations.
    es: the evosax CMA-ES state.
    best_fitness: best validation accuracy so far (-1 before the first generation).
    best_theta: ``float32[8]``, its θ (NaN before the first generation).
    best_generation: the generation it came from (-1 before the first).
  """
  generation: int
  es: Any
  best_fitness: float
  best_theta: np.ndarray
  best_generation: int


def taylorglo_loss_fn(class_reduction: str) -> Callable:
  """``loss_fn(theta, logits, labels)`` for the trainer, with a fixed class reduction."""
  def loss_fn(theta, logits, labels):
    return losses.taylorglo(theta, logits, labels, class_reduction=class_reduction)
  return loss_fn


def cross_entropy_loss_fn(_, logits, labels):
  """Cross-entropy in the trainer's ``loss_fn(params, logits, labels)`` form."""
  return losses.cross_entropy(logits, labels)


class TaylorGLO(driver.Search):
  """The TaylorGLO search (module docstring) on the shared driver."""
  name = "TaylorGLO"
  config_class = Config
  resumable_keys = ("search.generations", "final")

  def __init__(self, config: Config):
    super().__init__(config)
    s = config.search
    self.trainer = self.problem.trainer(taylorglo_loss_fn(s.class_reduction), config,
                                        loss_key=f"taylorglo:{s.class_reduction}")
    self.es, self.es_params = common.cma_es(
        s.effective_population_size, losses.TAYLORGLO_NUM_PARAMS, s.sigma)

  def describe(self, workdir: str) -> str:
    s = self.config.search
    filtered = (f" (2 × search.population_size {s.population_size}: the invariant filter is "
                "on, so CMA-ES draws twice as many θ and those failing theorem 6.5.1 get "
                "fitness 0 untrained)" if s.invariant_filter else "")
    return (f"TaylorGLO search: {self.problem.dataset.describe()}; model "
            f"{self.config.model.name}; population {s.effective_population_size}"
            f"{filtered}, {s.generations} generations, "
            f"{self.config.train.steps} training steps per candidate; workdir {workdir}")

  def init(self, key: jax.Array) -> State:
    mean = jnp.full((losses.TAYLORGLO_NUM_PARAMS,), self.config.search.mean, jnp.float32)
    es = self.es.init(jax.random.fold_in(key, _PURPOSE_INIT), mean, self.es_params)
    return State(generation=0, es=es, best_fitness=-1.0,
                 best_theta=np.full(losses.TAYLORGLO_NUM_PARAMS, np.nan, np.float32),
                 best_generation=-1)

  def abstract_state(self):
    return workdir_lib.spec_of(self.init(jax.random.PRNGKey(0)))

  def done(self, state: State) -> bool:
    return state.generation >= self.config.search.generations

  def resume_message(self, state: State) -> str:
    s = self.config.search
    message = (f"resuming from generation {state.generation} (best so far "
               f"{state.best_fitness:.4f})")
    if state.generation >= s.generations:
      message += (f"\nthe search already has {state.generation} generation(s) "
                  f"(search.generations={s.generations}); nothing left to search")
    return message

  def step(self, state: State, key: jax.Array) -> tuple[State, dict]:
    """One CMA-ES generation: ask, train the λ candidates, tell."""
    t0 = time.time()
    s, g = self.config.search, state.generation
    thetas, es = self.es.ask(jax.random.fold_in(key, _PURPOSE_ASK), state.es,
                             self.es_params)
    popsize = s.effective_population_size
    keys = jax.random.split(jax.random.fold_in(key, _PURPOSE_TRAIN), popsize)
    if s.invariant_filter:
      trainable = np.asarray(is_trainable(thetas, self.problem.dataset.num_classes))
    else:
      trainable = np.ones(popsize, bool)
    fitness, failed, retries = self._evaluate_subset(thetas, keys, trainable)
    flat = bool(np.all(fitness == fitness[0]))
    # All candidates equal (typically all failed): telling would shrink σ with no
    # information (step-size collapse). Keep the state; the next ask resamples.
    told = not (flat and s.flat_action == "skip_tell")
    if told:
      es, _ = self.es.tell(jax.random.fold_in(key, _PURPOSE_TELL), thetas,
                           common.to_minimization(fitness), es, self.es_params)
    i = int(np.argmax(fitness))
    best = (state.best_fitness, state.best_theta, state.best_generation)
    if fitness[i] > state.best_fitness:
      best = (float(fitness[i]), np.asarray(thetas[i], np.float32), g)
    state = State(g + 1, es, *best)
    record = {
        "generation": g, "fitness": fitness.tolist(),
        "best": float(fitness.max()), "mean": float(fitness.mean()),
        "median": float(np.median(fitness)),
        "best_theta": np.asarray(thetas[i]).tolist(),
        "thetas": np.asarray(thetas).tolist(),
        "best_ever": state.best_fitness, "sigma": float(es.std),
        "failed": failed, "retries": retries,
        "skipped_untrainable": int(np.sum(~trainable)),
        "flat": flat, "told": told, "wall_time_s": time.time() - t0,
    }
    return state, record

  def progress(self, state: State, record: dict) -> str:
    s = self.config.search
    skipped = f"  skipped {record['skipped_untrainable']}" if s.invariant_filter else ""
    return (f"gen {record['generation'] + 1:3d}/{s.generations}  best "
            f"{record['best']:.4f}  mean {record['mean']:.4f}  median "
            f"{record['median']:.4f}  best-ever {state.best_fitness:.4f}  σ "
            f"{record['sigma']:.3g}  failed {record['failed']}{skipped}"
            f"{'  (flat: no update)' if not record['told'] else ''}  "
            f"{record['wall_time_s']:.1f}s")

  def _evaluate_subset(self, thetas, keys, trainable: np.ndarray):
    """Trains the candidates where ``trainable`` holds; the others get fitness 0.

    The trained subset is padded (with copies of its first member, results
    discarded) to a multiple of a quarter of the population, so vmapped programs
    compile for at most four sizes instead of one per subset size.

    Returns:
      ``(fitness float32[K], failed count, retries count)``.
    """
    s = self.config.search
    k = len(trainable)
    fitness = np.zeros(k, np.float32)
    idx = np.flatnonzero(trainable)
    if idx.size == 0:
      return fitness, 0, 0
    bucket = max(1, k // 4) if idx.size < k else k
    padded = np.concatenate([idx, np.full((-idx.size) % bucket, idx[0])])
    result = evaluate_population(self.trainer, jnp.asarray(thetas)[padded], keys[padded],
                                 strategy=s.strategy, nan_retries=s.nan_retries,
                                 model_name=self.config.model.name)
    fitness[idx] = common.sanitize_fitness(result.fitness[:idx.size])
    failed = int(np.sum(~result.metrics["finite"][:idx.size]))
    retries = int(result.attempts[:idx.size].sum() - idx.size)
    return fitness, failed, retries

  def finalize(self, state: State, workdir: str, log) -> dict:
    """Writes ``best_loss.txt`` (the best θ as a ``taylorglo(theta=[...])`` spec) and
    ``fitness.png``."""
    out = {"best_theta": None, "best_fitness": state.best_fitness,
           "generations": self.config.search.generations, "final": None,
           "best_spec": None}
    if state.best_generation < 0:
      log("no generation was run (search.generations = 0); nothing to report")
      return out
    out["best_theta"] = state.best_theta.tolist()
    out["best_spec"] = losses.taylorglo_spec(out["best_theta"])
    workdir_lib.write_text(os.path.join(workdir, "best_loss.txt"), out["best_spec"] + "\n")
    log(f"best validation accuracy {state.best_fitness:.4f} (generation "
        f"{state.best_generation + 1}): {out['best_spec']}")
    common.plot_history(workdir, "TaylorGLO search", log)
    return out

  def final_losses(self, state: State, results: dict, log):
    if results["best_spec"] is None:
      return None
    if state.best_fitness <= 0:
      # Accuracy 0 means no candidate trained (NaN/inf, fitness 0): retraining one
      # would only fail again.
      log("warning: every candidate failed to train (NaN/inf), so there is no loss to "
          "compare; skipping the final protocol. Try a smaller search.sigma or "
          "train.learning_rate")
      return None
    candidate = protocol.LossUnderTest(
        "taylorglo", taylorglo_loss_fn(self.config.search.class_reduction),
        jnp.asarray(results["best_theta"], jnp.float32), results["best_spec"])
    baseline = protocol.LossUnderTest("cross_entropy", cross_entropy_loss_fn,
                                      jnp.zeros((0,), jnp.float32), "cross_entropy")
    return candidate, baseline


def default_config():
  """Every key a TaylorGLO config may set, with the dissertation's defaults (locked)."""
  return TaylorGLO.default_config()


def run(config, workdir: str, *, log: Callable[[str], None] = print,
        on_step: Optional[Callable[[State, dict], None]] = None) -> dict:
  """Runs (or resumes) a TaylorGLO search and its final protocol in ``workdir``.

  Args:
    config: a ConfigDict/mapping with the keys of :func:`default_config`.
    workdir: the run's folder; rerunning on the same folder resumes.
    log: progress printer (one line per generation).
    on_step: optional callback ``(state, record)`` after each generation's checkpoint.

  Returns:
    ``{"best_theta": list[8], "best_fitness": float, "best_spec": str,
    "generations": int, "final": dict | None}``.

  Raises:
    ValueError: for a bad config, or a workdir holding a different run.
    FileNotFoundError: if the dataset is not available (the message says how to get it).

  Files written: see :mod:`glojax.workdir`; plus ``best_loss.txt``, ``fitness.png`` and
  ``final.json`` (the final comparison).
  """
  return driver.run(TaylorGLO, config, workdir, log=log, on_step=on_step)
