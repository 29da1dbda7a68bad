"""TaylorGLO: CMA-ES over the 8 parameters of a Taylor-polynomial loss.

Dissertation ch. 5. Each generation, (μ/μ_w, λ)-CMA-ES (evosax ``CMA_ES`` under the
project's ES policy, :mod:`glojax.search.es`; mean 0, σ = 1.2, λ = 20) proposes λ
parameter vectors θ; every candidate loss
``taylorglo(θ, ·)`` trains a fresh network for a short partial training, all λ as one
population program; fitness is validation accuracy (0 for NaN training, after
retries). The best-validation θ of the whole search is then retrained R times with full
training and compared with cross-entropy at the config's learning rate and with its
learning rate tuned on the same budget (the driver's final protocol hook,
:mod:`glojax.search.final`). ``search.normalize_scale`` and
``search.tune_learning_rate`` separate the loss's shape from its step size
(:mod:`glojax.search.step_size`).

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
from glojax.search import baselines as baselines_lib
from glojax.search import common, driver
from glojax.search import es as es_lib
from glojax.search import step_size
from glojax.train import protocol
from glojax.train.population import evaluate_population
from glojax.train.trainer import ScaledLearningRate, TrainConfig

FLAT_ACTIONS = es_lib.FLAT_ACTIONS
_PURPOSE_ASK, _PURPOSE_TELL, _PURPOSE_TRAIN, _PURPOSE_INIT = 0, 1, 2, 3
_PURPOSE_NORMALIZE = 0x5ca1e


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
    recombination: ``"positive"`` (the papers' (μ/μ_w, λ) weights) or ``"active"``
      (evosax's negative weights); :mod:`glojax.search.es`.
    ties: ``"random"`` (failed and tied candidates are ranked in random order, so
      they do not shrink σ) or ``"average"`` (evosax's averaged ranks).
    flat_action: when every candidate scores the same (typically all failed):
      ``"skip_tell"`` keeps the CMA-ES state, ``"tell"`` updates it.
    invariant_filter: skip θ that cannot train (theorem 6.5.1), drawing 2λ.
    normalize_scale: rescale each candidate to cross-entropy's effective learning
      rate at initialization (:mod:`glojax.search.step_size`).
    tune_learning_rate: co-evolve ``ln(lr / train.learning_rate)`` as a 9th variable.
  """
  population_size: int = 20
  generations: int = 60
  sigma: float = 1.2
  mean: float = 0.0
  class_reduction: str = "mean"
  strategy: str = "auto"
  nan_retries: int = 2
  recombination: str = "positive"
  ties: str = "random"
  flat_action: str = "skip_tell"
  invariant_filter: bool = False
  normalize_scale: bool = False
  tune_learning_rate: bool = False

  def __post_init__(self):
    config_lib.check_int(self, "population_size", 2)
    config_lib.check_int(self, "generations", 0)
    config_lib.check_int(self, "nan_retries", 0)
    config_lib.check_number(self, "sigma", low=0.0, low_open=True)
    config_lib.check_number(self, "mean")
    config_lib.check_choice(self, "class_reduction", losses.CLASS_REDUCTIONS)
    config_lib.check_choice(self, "recombination", es_lib.RECOMBINATIONS)
    config_lib.check_choice(self, "ties", es_lib.TIE_POLICIES)
    config_lib.check_choice(self, "flat_action", FLAT_ACTIONS)
    for name in ("invariant_filter", "normalize_scale", "tune_learning_rate"):
      config_lib.check_bool(self, name)
    driver.check_strategy(self)

  @property
  def policy(self) -> es_lib.Policy:
    return es_lib.Policy(self.recombination, self.ties, self.flat_action)

  @property
  def num_dims(self) -> int:
    """CMA-ES dimension: θ, plus the learning-rate variable when it is co-evolved."""
    return losses.TAYLORGLO_NUM_PARAMS + (1 if self.tune_learning_rate else 0)

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
    best_theta: ``float32[8]``, its θ as trained (scale-normalized if that option is
      on), plus ``ln(lr / train.learning_rate)`` as a 9th entry when the learning rate
      is co-evolved (NaN before the first generation).
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
    self.cma = es_lib.CMAES(s.num_dims, s.effective_population_size, s.sigma, s.policy)
    # Fixed logits (an initialized network, the run's seed) for scale normalization.
    self.normalizer = (step_size.init_logits(
        self.problem.model, self.problem.dataset,
        jax.random.fold_in(jax.random.PRNGKey(config.seed), _PURPOSE_NORMALIZE),
        preprocess=self.trainer.augmentation.evaluate) if s.normalize_scale else None)

  def describe(self, workdir: str) -> str:
    s = self.config.search
    filtered = (f" (2 × search.population_size {s.population_size}: the invariant filter is "
                "on, so CMA-ES draws twice as many θ and those failing theorem 6.5.1 get "
                "fitness 0 untrained)" if s.invariant_filter else "")
    options = step_size.describe(s.normalize_scale, s.tune_learning_rate)
    return (f"TaylorGLO search: {self.problem.dataset.describe()}; model "
            f"{self.config.model.name}; population {s.effective_population_size}"
            f"{filtered}, {s.generations} generations, "
            f"{self.config.train.steps} training steps per candidate"
            f"{'; ' + options if options else ''}; workdir {workdir}")

  def init(self, key: jax.Array) -> State:
    s = self.config.search
    mean = jnp.full((losses.TAYLORGLO_NUM_PARAMS,), s.mean, jnp.float32)
    if s.tune_learning_rate:  # ln(lr / lr0) starts at 0: the config's rate
      mean = jnp.concatenate([mean, jnp.zeros(1, jnp.float32)])
    es = self.cma.init(jax.random.fold_in(key, _PURPOSE_INIT), mean)
    return State(generation=0, es=es, best_fitness=-1.0,
                 best_theta=np.full(s.num_dims, np.nan, np.float32), best_generation=-1)

  def candidates(self, samples) -> tuple[jax.Array, Optional[jax.Array]]:
    """CMA-ES samples → ``(θ float32[K, 8] as trained, lr scales float32[K] | None)``:
    the learning-rate variable split off, θ scale-normalized per the options."""
    s = self.config.search
    thetas, scales = jnp.asarray(samples, jnp.float32), None
    if s.tune_learning_rate:
      thetas, scales = step_size.split_learning_rate(samples)
    if self.normalizer is not None:
      thetas = step_size.normalize_taylorglo(thetas, *self.normalizer, s.class_reduction)
    return thetas, scales

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
    samples, es = self.cma.ask(jax.random.fold_in(key, _PURPOSE_ASK), state.es)
    thetas, lr_scales = self.candidates(samples)
    popsize = s.effective_population_size
    keys = jax.random.split(jax.random.fold_in(key, _PURPOSE_TRAIN), popsize)
    if s.invariant_filter:
      trainable = np.asarray(is_trainable(thetas, self.problem.dataset.num_classes))
    else:
      trainable = np.ones(popsize, bool)
    fitness, failed, retries = self._evaluate_subset(
        step_size.with_learning_rate(thetas, lr_scales), keys, trainable)
    # Failed and tied candidates and flat generations follow the ES policy (es.py).
    es, info = self.cma.tell(jax.random.fold_in(key, _PURPOSE_TELL), samples, fitness, es)
    flat, told = info.flat, info.told
    i = int(np.argmax(fitness))
    best = (state.best_fitness, state.best_theta, state.best_generation)
    if fitness[i] > state.best_fitness:
      trained = np.asarray(thetas[i], np.float32)
      if lr_scales is not None:
        trained = np.append(trained, np.log(np.asarray(lr_scales[i], np.float32)))
      best = (float(fitness[i]), trained.astype(np.float32), g)
    state = State(g + 1, es, *best)
    lr0 = self.config.train.learning_rate
    record = {
        "generation": g, "fitness": fitness.tolist(),
        "best": float(fitness.max()), "mean": float(fitness.mean()),
        "median": float(np.median(fitness)),
        "best_theta": np.asarray(thetas[i]).tolist(),
        "thetas": np.asarray(thetas).tolist(),
        **({"learning_rates": (lr0 * np.asarray(lr_scales, np.float64)).tolist()}
           if lr_scales is not None else {}),
        "best_ever": state.best_fitness, "sigma": self.cma.sigma(es),
        "trained": int(np.sum(trainable)), "failed": failed, "retries": retries,
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

  def _evaluate_subset(self, loss_params, keys, trainable: np.ndarray):
    """Trains the candidates where ``trainable`` holds; the others get fitness 0.

    ``loss_params``: θ ``float32[K, 8]``, or a ``ScaledLearningRate`` of θ and
    ``[K]`` learning-rate scales.

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
    rows = jax.tree_util.tree_map(lambda a: jnp.asarray(a)[padded], loss_params)
    result = evaluate_population(self.trainer, rows, keys[padded],
                                 strategy=s.strategy, nan_retries=s.nan_retries,
                                 model_name=self.config.model.name)
    fitness[idx] = common.sanitize_fitness(result.fitness[:idx.size])
    failed = int(np.sum(~result.metrics["finite"][:idx.size]))
    retries = int(result.attempts[:idx.size].sum() - idx.size)
    return fitness, failed, retries

  def finalize(self, state: State, workdir: str, log) -> dict:
    """Writes ``best_loss.txt`` (the best θ as a ``taylorglo(theta=[...])`` spec) and
    ``fitness.png``."""
    s = self.config.search
    out = {"best_theta": None, "best_fitness": state.best_fitness,
           "generations": s.generations, "final": None, "best_spec": None,
           "best_learning_rate": None, "trainings": 0}
    if state.best_generation < 0:
      log("no generation was run (search.generations = 0); nothing to report")
      return out
    theta = state.best_theta[:losses.TAYLORGLO_NUM_PARAMS]
    out["best_theta"] = theta.tolist()
    out["best_spec"] = losses.taylorglo_spec(out["best_theta"])
    if s.tune_learning_rate:
      out["best_learning_rate"] = float(self.config.train.learning_rate
                                        * np.exp(np.float64(state.best_theta[-1])))
    # Partial trainings run (the tuned baselines' budget): every candidate the
    # invariant filter did not skip.
    records = workdir_lib.read_jsonl(os.path.join(workdir, workdir_lib.LOG_FILE))
    out["trainings"] = sum(r.get("trained", s.effective_population_size
                                 - r.get("skipped_untrainable", 0)) for r in records)
    workdir_lib.write_text(os.path.join(workdir, "best_loss.txt"), out["best_spec"] + "\n")
    lr_note = (f" at learning rate {out['best_learning_rate']:.4g}"
               if s.tune_learning_rate else "")
    log(f"best validation accuracy {state.best_fitness:.4f} (generation "
        f"{state.best_generation + 1}): {out['best_spec']}{lr_note}")
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
    params = jnp.asarray(results["best_theta"], jnp.float32)
    lr, lr0 = results.get("best_learning_rate"), self.config.train.learning_rate
    if lr is not None:  # the co-evolved rate travels with the loss
      params = ScaledLearningRate(params, jnp.asarray(lr / lr0, jnp.float32))
    candidate = protocol.LossUnderTest(
        "taylorglo", taylorglo_loss_fn(self.config.search.class_reduction), params,
        results["best_spec"], learning_rate=lr)
    baseline = protocol.LossUnderTest("cross_entropy", cross_entropy_loss_fn,
                                      jnp.zeros((0,), jnp.float32), "cross_entropy")
    return candidate, baseline

  def final_tuning(self, state: State, results: dict) -> baselines_lib.TuningContext:
    s = self.config.search
    return baselines_lib.TuningContext(
        budget=results.get("trainings") or s.effective_population_size * s.generations,
        population_size=s.population_size, nan_retries=s.nan_retries, policy=s.policy,
        seed=self.config.seed)


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
