"""EPBT: population-based training of TaylorGLO loss schedules (and its PBT baselines).

Liang, Gonzalez & Miikkulainen, "Population-Based Training for Loss Function
Optimization" (2020), §3 and Algorithm 1. ``p`` networks train side by side; every
generation the better members' weights and loss parameters θ replace the worse ones'
(:func:`~glojax.search.epbt_ops.next_generation`), so the loss each network is trained
with becomes a *schedule* that changes as training goes on.

Here the whole population is one pytree (:class:`~glojax.search.epbt_ops.Population`)
trained by the population trainer as one compiled program
(:func:`glojax.train.train_population_from`, ``strategy="auto"``), and selection and
variation are one jitted pure function of that pytree. :class:`EPBT` is a
:class:`glojax.search.driver.Search` run by the shared driver, which checkpoints the
whole state (every member's weights and optimizer state, hyperparameters, fitness,
ids, ages, the generation and the per-generation history) after every generation:

* ``init(key) -> state`` — ``p`` freshly initialized networks with hyperparameters
  drawn uniformly (θ in ±``theta_init``);
* ``step(state, key) -> (state, record)`` — one generation: selection and variation
  (from the second generation on), ``steps_per_generation`` steps of training for every
  member from its own weights and optimizer state, validation accuracy (fitness) and
  test accuracy (logged only);
* ``finalize`` — the best member, its test accuracy and ancestry (whose θ over the
  generations is the discovered loss schedule), ``results.json``, ``fitness.png``,
  ``lineage.png``, and with ``final.enabled`` the comparison with the paper's
  baselines over seeds (:mod:`glojax.search.epbt_final`).

``search.method`` selects the exploit/explore rule: ``"epbt"`` (tournament, mutation,
crossover, elitism), ``"pbt"`` (truncation, ×0.8/×1.2 perturbation or resampling) or
``"none"`` (independent training). ``search.hparams`` picks what is searched:
``"theta"`` (TaylorGLO θ, trained with the TaylorGLO loss), ``"learning_rate"`` and
``"momentum"`` (SGD, held per member in the optimizer state). The paper's baselines are
presets of these (:data:`glojax.search.epbt_config.BASELINES`). ``docs/epbt.md``
describes the algorithm as implemented.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from glojax import workdir as workdir_lib
from glojax.search import driver
from glojax.search import epbt_final
from glojax.search.epbt_config import BASELINES, Config, make_space  # noqa: F401
from glojax.search.epbt_ops import (
    EPBTOperators,
    PBTOperators,
    Population,
    next_generation,
    pbt_exploit_explore,
    sample_hparams,
    selection_score,
    with_optimizer_hparams,
)
from glojax.search.taylorglo import cross_entropy_loss_fn, taylorglo_loss_fn
from glojax.train.population import evaluate_states, init_population, train_population_from
from glojax.train.trainer import Trainer

_PURPOSE_WEIGHTS, _PURPOSE_HPARAMS, _PURPOSE_SELECT = 0, 1, 2


class History(NamedTuple):
  """Per-generation record of every member (``[G, p]`` arrays, rows < generation set)."""
  member_id: jax.Array      # int32[G, p]
  parent_id: jax.Array      # int32[G, p]
  hparams: jax.Array        # float32[G, p, D]
  fitness: jax.Array        # float32[G, p]
  test_accuracy: jax.Array  # float32[G, p]
  finite: jax.Array         # bool[G, p]


class EPBTState(NamedTuple):
  """The whole search state, one pytree checkpointed whole by the driver."""
  population: Population
  generation: jax.Array     # int32[]: generations finished
  history: History


def _sgd_with_injected(t):
  """SGD whose learning rate and momentum live in the optimizer state (per member)."""
  def make(learning_rate, momentum):
    sgd = optax.sgd(learning_rate, momentum=momentum, nesterov=t.nesterov)
    if t.weight_decay:
      return optax.chain(optax.add_decayed_weights(t.weight_decay), sgd)
    return sgd
  return optax.inject_hyperparams(make)(learning_rate=float(t.learning_rate),
                                        momentum=float(t.momentum))


_TRAINERS: dict = {}   # runs in one process (the comparison's) share compiled programs
_MAX_TRAINERS = 4


def build_trainer(config: Config, problem: driver.Problem) -> Trainer:
  """The members' trainer: the search's loss, ``generations × steps_per_generation``
  steps, SGD with per-member learning rate and momentum when they are searched.

  Raises:
    ValueError: naming ``config.model.options`` when the model cannot be built.
  """
  s = config.search
  key = workdir_lib.dumps({"dataset": config.dataset, "model": config.model,
                           "train": config.train, "steps": config.total_steps,
                           "loss": s.loss, "reduction": s.class_reduction,
                           "injected": s.searches_sgd})
  if key in _TRAINERS:
    return _TRAINERS[key]
  loss_fn = (taylorglo_loss_fn(s.class_reduction) if s.loss == "taylorglo"
             else cross_entropy_loss_fn)
  try:
    trainer = Trainer(problem.model, problem.dataset, loss_fn, problem.train_config,
                      custom_optimizer=_sgd_with_injected(config.train)
                      if s.searches_sgd else None)
    jax.eval_shape(trainer.init, jax.random.PRNGKey(0))
  except Exception as e:  # flax/JAX raise TypeError/ValueError/... for bad fields
    raise driver._model_error(config.model, e) from None  # noqa: SLF001 (one rule)
  if len(_TRAINERS) >= _MAX_TRAINERS:
    _TRAINERS.pop(next(iter(_TRAINERS)))
  _TRAINERS[key] = trainer
  return trainer


class EPBT(driver.Search):
  """One EPBT / PBT / plain population run on the shared driver (module docstring).

  Args:
    config: the typed :class:`~glojax.search.epbt_config.Config`.

  Raises:
    ValueError: for bad model options or a batch larger than the train split;
    FileNotFoundError: if the dataset is not available.
  """
  name = "epbt"
  config_class = Config
  resumable_keys = ("final",)
  write_plots = True   # fitness.png, lineage.png (the comparison's runs skip them)

  def __init__(self, config: Config):
    super().__init__(config)
    self.problem = dataclasses.replace(
        self.problem, train_config=config.train.train_config(config.total_steps))
    s = config.search
    self.p, self.generations, self.steps = (s.population_size, s.generations,
                                            s.steps_per_generation)
    self.space = make_space(s)
    self.theta_cols = np.asarray(self.space.columns("theta"), np.int32)
    self.ops = (EPBTOperators(elites=int(s.elite_fraction * self.p),
                              tournament_size=s.tournament_size,
                              mutation_rate=float(s.mutation_rate), sigma=float(s.sigma),
                              reset_rate=float(s.reset_rate),
                              crossover_rate=float(s.crossover_rate))
                if s.method == "epbt" else
                PBTOperators(truncation=float(s.truncation),
                             perturb_factors=tuple(map(float, s.perturb_factors)),
                             resample_rate=float(s.resample_rate)))
    self.trainer = build_trainer(config, self.problem)

  # ---- the algorithm -----------------------------------------------------------------

  def init(self, key: jax.Array) -> EPBTState:
    """``p`` fresh networks; hyperparameters uniform in their initial ranges.

    Args:
      key: PRNG key of the run (members' weights use ``split(fold_in(key, 0), p)``, so
        runs of different methods with the same seed start from the same networks).
    """
    p, g, d = self.p, self.generations, self.space.size
    train = init_population(self.trainer,
                            jax.random.split(jax.random.fold_in(key, _PURPOSE_WEIGHTS), p))
    hparams = sample_hparams(jax.random.fold_in(key, _PURPOSE_HPARAMS), self.space, p)
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

  def abstract_state(self):
    return workdir_lib.spec_of(jax.eval_shape(self.init, jax.random.PRNGKey(0)))

  def done(self, state: EPBTState) -> bool:
    return int(state.generation) >= self.generations

  def select(self, pop: Population, key: jax.Array) -> tuple[Population, dict]:
    """This run's exploit/explore on an evaluated population (identity for ``none``)."""
    if isinstance(self.ops, EPBTOperators):
      return next_generation(pop, key, self.space, self.ops)
    if self.config.search.method == "pbt":
      return pbt_exploit_explore(pop, key, self.space, self.ops)
    # Independent training: every member continues as itself.
    return pop._replace(parent_id=pop.member_id), {"is_child": jnp.zeros(self.p, bool)}

  def step(self, state: EPBTState, key: jax.Array) -> tuple[EPBTState, dict]:
    """One generation: select (from the second on), train, evaluate.

    Returns:
      ``(state, record)``; the record is JSON-able: per member ``fitness`` (validation
      accuracy, 0 if failed), ``test_accuracy``, ``member_id``, ``parent_id``,
      ``hparams``; the best member's ids and accuracies; timings in seconds.
    """
    g = int(state.generation)
    s = self.config.search
    t0 = time.perf_counter()
    pop, children = state.population, 0
    if g > 0:
      pop, info = self.select(pop, jax.random.fold_in(key, _PURPOSE_SELECT))
      pop = jax.block_until_ready(pop)
      children = int(np.sum(np.asarray(info["is_child"])))
    t1 = time.perf_counter()
    train = jax.block_until_ready(train_population_from(
        self.trainer, pop.train, pop.hparams[:, self.theta_cols], self.steps,
        strategy=s.strategy, model_name=self.config.model.name))
    t2 = time.perf_counter()
    val = evaluate_states(self.trainer, train, "validation", strategy=s.strategy)
    test = evaluate_states(self.trainer, train, "test", strategy=s.strategy)
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
        "wall_time_s": time.perf_counter() - t0,
    }
    return EPBTState(pop, jnp.asarray(g + 1, jnp.int32), history), record

  # ---- what the driver prints -----------------------------------------------------------

  def describe(self, workdir: str) -> str:
    s = self.config.search
    return (f"{s.method.upper()} ({s.loss}, searching {list(s.hparams) or 'nothing'}): "
            f"{self.problem.dataset.describe()}; model {self.config.model.name}; "
            f"population {self.p}, {self.generations} generations × {self.steps} steps; "
            f"workdir {workdir}")

  def progress(self, state: EPBTState, record: dict) -> str:
    r = record
    return (f"gen {r['generation'] + 1:3d}/{self.generations}  val best {r['best']:.4f} "
            f"mean {r['mean']:.4f}  test(best) {r['best_test_accuracy']:.4f}  "
            f"children {r['children']:2d}  failed {r['failed']}  "
            f"select {1000 * r['select_time_s']:.0f} ms  "
            f"train {r['train_time_s']:.1f}s  {r['wall_time_s']:.1f}s")

  def resume_message(self, state: EPBTState) -> str:
    return f"resuming after generation {int(state.generation)}"

  # ---- the end ---------------------------------------------------------------------------

  def finalize(self, state: EPBTState, workdir: str, log: driver.Log) -> dict:
    """``results.json``, ``fitness.png``, ``lineage.png``, then (``final.enabled``) the
    comparison with the baselines (:func:`glojax.search.epbt_final.compare`).

    Returns:
      :func:`glojax.search.epbt_final.results` plus ``"final"`` (the comparison or
      None).
    """
    results = epbt_final.results(self, state)
    workdir_lib.write_json(os.path.join(workdir, "results.json"), results)
    if self.write_plots:
      epbt_final.plots(self, workdir, results, log)
    log(f"best member {results['best_member_id']}: validation "
        f"{results['best_validation_accuracy']:.4f}, test "
        f"{results['best_test_accuracy']:.4f}"
        + (f"; final loss {results['best_spec']}" if results["best_spec"] else ""))
    results["final"] = (epbt_final.compare(ComparisonRun, self.config, workdir, results,
                                           log=log)
                        if self.config.final.enabled else None)
    return results

  def loss_params_of(self, hparams) -> np.ndarray | None:
    """The TaylorGLO θ (``float32[8]``) in a row of hyperparameters (None if not searched)."""
    return np.asarray(hparams)[self.theta_cols] if self.theta_cols.size else None


class ComparisonRun(EPBT):
  """A run of the comparison with the baselines (``final/<method>/seed_<s>``): EPBT
  without its plots (the comparison draws them all in ``accuracy.png``)."""
  write_plots = False


def default_config():
  """Every key an EPBT config may set, with its default (a locked ConfigDict)."""
  return EPBT.default_config()


def run(config, workdir: str, *, log: driver.Log = print, on_step=None) -> dict:
  """Runs (or resumes) an EPBT search in ``workdir`` on the shared driver, then its
  comparison with the baselines (``final.enabled``).

  Args:
    config: a ConfigDict/mapping with the keys of :func:`default_config`.
    workdir: the run's folder; rerunning on it resumes.
    log: progress printer (one line per generation).
    on_step: optional callback ``(state, record)`` after each generation's checkpoint.

  Returns:
    :func:`glojax.search.epbt_final.results`'s dict plus ``"final"`` (the comparison,
    or None).

  Raises:
    ValueError: for a bad config, or a workdir holding a different run or a damaged
      checkpoint; FileNotFoundError: if the dataset is not available.

  Files written: the driver's (``config.json``, ``log.jsonl``, ``checkpoint.npz``),
  ``results.json``, ``fitness.png``, ``lineage.png``; with the comparison
  ``final.json``, ``accuracy.png`` and ``final/<method>/seed_<s>/``.
  """
  return driver.run(EPBT, config, workdir, log=log, on_step=on_step)
