r"""Fair baselines for a discovered loss, and the final comparison every search runs.

A loss found by search changes, among other things, the size of the gradient: a loss
equal to ``c × cross-entropy`` trains exactly like cross-entropy at ``c ×`` the learning
rate (:mod:`glojax.analysis.scale`). So a search result is compared (``final.baselines``)
with

* ``"cross_entropy"`` — cross-entropy at the config's learning rate (the papers'
  baseline), and
* ``"cross_entropy@tuned"`` — cross-entropy whose learning rate was tuned by a search
  given **the same number of partial trainings** as the loss search, with the same
  fitness (validation accuracy after ``train.steps`` steps, 0 for a failed training),
  the same splits and the same trainer; it never sees the test split.

Any loss spec may be listed (``"baikal"``, ``"taylorglo(theta=[...])"``), optionally with
``@tuned`` or a fixed learning rate (``"cross_entropy@0.4"``). Each is retrained
``final.repeats`` times on the test protocol with the candidate's keys, and Welch's test
compares the candidate with each row (:func:`glojax.train.protocol.compare_all`). The
report also gives the candidate's effective learning rate (its gradient scale relative to
cross-entropy at initialization and after a partial training).

Learning-rate tuning (:func:`tune_learning_rate`): a 1-D CMA-ES (the project's ES
policy, :mod:`glojax.search.es`) over :math:`u = \ln(\eta/\eta_0)`, mean 0 (the config's
rate), σ0 = ``final.tuning.sigma``, λ = the loss search's population, or a log-spaced grid
of ``budget`` rates over ``η0 · 10^{±decades}``. The best validation candidate wins, as in
the loss search. Every partial training trains the learning rate as a traced parameter
(:class:`~glojax.train.trainer.ScaledLearningRate`), so a generation is one compiled
population program.

This module is search-agnostic: TaylorGLO and GLO call :func:`final_comparison`; EPBT,
NLFS or a GAN search call it the same way with their candidate.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, Mapping, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from glojax import losses
from glojax import workdir as workdir_lib
from glojax.analysis import scale as scale_lib
from glojax.search import es as es_lib
from glojax.train import protocol
from glojax.train.population import evaluate_population, programs
from glojax.train.trainer import ScaledLearningRate, TrainConfig, Trainer

DEFAULT_BASELINES = ("cross_entropy", "cross_entropy@tuned")
TUNING_METHODS = ("cma", "grid")
TUNING_FILE = "lr_tuning.json"
# ``final.tuning``: ``budget`` partial trainings per ``@tuned`` search (0: as many as
# the loss search ran), ``population_size`` per generation (0: the search's),
# ``method`` ("cma" or "grid"), ``sigma`` (CMA-ES σ0 in ln(lr) units), ``decades``
# (the grid's half-width).
TUNING_DEFAULTS = {"budget": 0, "population_size": 0, "method": "cma", "sigma": 1.0,
                   "decades": 1.5}
_PURPOSE_TUNE = 0x7a11


def final_defaults() -> dict:
  """``final.baselines`` and ``final.tuning`` with their defaults."""
  return {"baselines": DEFAULT_BASELINES, "tuning": dict(TUNING_DEFAULTS)}


@dataclasses.dataclass(frozen=True)
class TuningContext:
  """What a search lends its ``@tuned`` baselines (``Search.final_tuning``).

  Attributes:
    budget: partial trainings the loss search ran (None: unknown; then
      ``final.tuning.budget`` must be set).
    population_size: the search's candidates per generation.
    nan_retries: the search's retries of a NaN training (same fitness definition).
    policy: the search's ES policy (:mod:`glojax.search.es`).
    seed: the search's seed (the tuning's key derives from it).
  """
  budget: Optional[int]
  population_size: int
  nan_retries: int = 0
  policy: es_lib.Policy = es_lib.Policy()
  seed: int = 0

  @property
  def key(self) -> jax.Array:
    return jax.random.fold_in(jax.random.PRNGKey(self.seed), _PURPOSE_TUNE)


@dataclasses.dataclass(frozen=True)
class Baseline:
  """One ``final.baselines`` entry: ``spec[@tuned | @<learning rate>]``."""
  entry: str
  spec: str
  tuned: bool = False
  learning_rate: Optional[float] = None  # fixed rate; None = the config's (or tuned)


def parse_baseline(entry: str) -> Baseline:
  """Parses ``"cross_entropy"``, ``"cross_entropy@tuned"`` or ``"baikal@0.05"``.

  Raises:
    ValueError: naming the entry, for an unknown loss or a bad learning rate.
  """
  if not isinstance(entry, str) or not entry.strip():
    raise ValueError(f"config.final.baselines entry {entry!r} must be a loss spec string")
  spec, rate = entry.strip(), ""
  if "@" in spec:
    spec, _, rate = spec.rpartition("@")
  try:
    losses.get(spec)
  except ValueError as e:
    raise ValueError(f"config.final.baselines entry {entry!r}: {e}") from None
  if rate == "":
    return Baseline(entry, spec)
  if rate == "tuned":
    return Baseline(entry, spec, tuned=True)
  try:
    lr = float(rate)
  except ValueError:
    lr = float("nan")
  if not (np.isfinite(lr) and lr > 0):
    raise ValueError(f"config.final.baselines entry {entry!r}: after '@' give 'tuned' or "
                     "a learning rate > 0")
  return Baseline(entry, spec, learning_rate=lr)


def validate_final(final: dict) -> list[Baseline]:
  """Checks the ``final.baselines`` / ``final.tuning`` keys of a validated config.

  Returns:
    The parsed baselines.

  Raises:
    ValueError: naming the key and value.
  """
  entries = final["baselines"]
  if not isinstance(entries, (list, tuple)):
    raise ValueError(f"config.final.baselines={final['baselines']!r} must be a list of "
                     f"loss specs, e.g. {list(DEFAULT_BASELINES)}")
  parsed = [parse_baseline(e) for e in entries]
  if len({b.entry for b in parsed}) != len(parsed):
    raise ValueError(f"config.final.baselines={list(entries)!r} lists an entry twice")
  t = final["tuning"]
  if not isinstance(t, Mapping) or set(t) != set(TUNING_DEFAULTS):
    raise ValueError(f"config.final.tuning={t!r} must be a dict with keys "
                     f"{sorted(TUNING_DEFAULTS)}")
  for key in ("budget", "population_size"):
    v = t[key]
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0 or \
        (key == "population_size" and v == 1):
      raise ValueError(f"config.final.tuning.{key}={v!r} must be an integer ≥ "
                       f"{'2' if key == 'population_size' else '1'} (0: the loss search's)")
  if t["method"] not in TUNING_METHODS:
    raise ValueError(f"config.final.tuning.method={t['method']!r} is not one of "
                     f"{TUNING_METHODS}")
  for key in ("sigma", "decades"):
    v = t[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) \
        or v <= 0:
      raise ValueError(f"config.final.tuning.{key}={v!r} must be a finite number > 0")
  return parsed


# ---- learning-rate tuning -------------------------------------------------------------


@dataclasses.dataclass
class LearningRateTuning:
  """Result of :func:`tune_learning_rate`.

  Attributes:
    learning_rate: the best validation candidate's learning rate.
    fitness: its validation accuracy (fraction).
    evaluations: partial trainings run (= the budget).
    trace: one record per generation: ``generation``, ``learning_rates`` (float[k]),
      ``fitness`` (float[k]), ``sigma`` (CMA-ES σ in ln-lr units after the generation,
      None for the grid), ``mean_learning_rate``, ``told``.
  """
  learning_rate: float
  fitness: float
  evaluations: int
  trace: list


_TRAINERS: dict = {}
_MAX_TRAINERS = 6


def _trainer(model, dataset, loss_fn, train_config: TrainConfig) -> Trainer:
  """A Trainer shared by every use of one (model, dataset, loss, config) in a process
  (tunings, final rows, reruns), so each compiles once. Keyed by object identity; the
  cache keeps the objects alive so an identity is never reused."""
  key = (id(model), id(dataset), id(loss_fn), train_config)
  if key not in _TRAINERS:
    if len(_TRAINERS) >= _MAX_TRAINERS:
      _TRAINERS.pop(next(iter(_TRAINERS)))
    _TRAINERS[key] = (Trainer(model, dataset, loss_fn, train_config), model, dataset,
                      loss_fn)
  return _TRAINERS[key][0]


def _generation_sizes(budget: int, population_size: int) -> list[int]:
  full, rest = divmod(budget, population_size)
  return [population_size] * full + ([rest] if rest else [])


def tune_learning_rate(model, dataset, train_config: TrainConfig, budget: int,
                       key: jax.Array, *, loss: str = "cross_entropy",
                       population_size: int = 20, method: str = "cma",
                       sigma: float = 1.0, decades: float = 1.5,
                       strategy: str = "auto", model_name: Optional[str] = None,
                       nan_retries: int = 0, policy: es_lib.Policy = es_lib.Policy(),
                       trace: Optional[list] = None,
                       on_generation: Optional[Callable[[list], None]] = None,
                       log: Callable[[str], None] = print) -> LearningRateTuning:
  """Tunes the learning rate of ``loss`` with exactly ``budget`` partial trainings.

  Args:
    model, dataset: what to train; only the train and validation splits are used.
    train_config: the loss search's partial training (its ``learning_rate`` is η0).
    budget: number of partial trainings (≥ 1).
    key: PRNG key (the ES and every generation's training keys derive from it).
    loss: the loss spec whose rate is tuned.
    population_size: candidates per generation (the last one holds the remainder).
    method: ``"cma"`` (1-D CMA-ES on ``ln(η/η0)``) or ``"grid"`` (``budget`` rates
      log-spaced over ``η0 · 10^[-decades, decades]``).
    sigma: CMA-ES σ0 in ``ln η`` units.
    strategy, model_name, nan_retries: as for ``evaluate_population`` (use the loss
      search's values: same fitness definition).
    policy: the CMA-ES policy (:mod:`glojax.search.es`).
    trace: records of an interrupted tuning with the same arguments; they are
      replayed (the ES is deterministic) instead of retrained.
    on_generation: called with the trace after each generation (to persist it).
    log: progress printer.

  Returns:
    A :class:`LearningRateTuning`.

  Raises:
    ValueError: for ``budget < 1``, ``population_size < 2``, an unknown method, or a
      ``trace`` that does not match these arguments.
  """
  _check_tuning_args(budget, population_size, method)
  loss_fn, loss_params = losses.get_parameterized(loss)
  trainer = _trainer(model, dataset, loss_fn, train_config)
  lr0 = train_config.learning_rate
  sizes = _generation_sizes(int(budget), population_size)
  trace = list(trace or [])
  if len(trace) > len(sizes):
    raise ValueError(f"tuning trace has {len(trace)} generations; this budget has "
                     f"{len(sizes)}")
  init_key, key = jax.random.split(key)
  cma = es_lib.CMAES(1, population_size, sigma, policy) if method == "cma" else None
  state = cma.init(init_key, 0.0) if cma else None
  grid = lr0 * 10.0 ** np.linspace(-decades, decades, int(budget)) \
      if method == "grid" else None
  done = 0
  for g, k in enumerate(sizes):
    key_g = jax.random.fold_in(key, g)
    if cma is not None:
      u, state = cma.ask(jax.random.fold_in(key_g, 0), state)
      rates = lr0 * np.exp(np.asarray(u[:k, 0], np.float64))
    else:
      rates = grid[done:done + k]
    if g < len(trace):
      old = np.asarray(trace[g]["learning_rates"], np.float64)
      if old.shape != rates.shape or not np.allclose(old, rates, rtol=1e-5):
        raise ValueError(f"tuning trace generation {g} does not match this tuning "
                         "(different budget, seed or settings)")
      fitness = np.asarray(trace[g]["fitness"], np.float32)
    else:
      fitness = _validation_fitness(trainer, loss_params, rates / lr0,
                                    jax.random.fold_in(key_g, 1), strategy=strategy,
                                    nan_retries=nan_retries, model_name=model_name)
    told = False
    if cma is not None and k == population_size:
      state, info = cma.tell(jax.random.fold_in(key_g, 2), u, fitness, state)
      told = info.told
    done += k
    if g >= len(trace):
      trace.append({
          "generation": g, "learning_rates": rates.tolist(), "fitness": fitness.tolist(),
          "sigma": cma.sigma(state) if cma else None,
          "mean_learning_rate": float(lr0 * np.exp(cma.mean(state)[0])) if cma else None,
          "told": told})
      _log_tuning(log, trace, done, budget)
      if on_generation is not None:
        on_generation(trace)
  all_f = np.concatenate([np.asarray(r["fitness"], np.float32) for r in trace])
  all_lr = np.concatenate([np.asarray(r["learning_rates"], np.float64) for r in trace])
  i = int(np.argmax(all_f))  # first of the best, as the loss search
  return LearningRateTuning(learning_rate=float(all_lr[i]), fitness=float(all_f[i]),
                            evaluations=int(all_f.size), trace=trace)


def _check_tuning_args(budget, population_size, method) -> None:
  """The argument checks of :func:`tune_learning_rate` (ValueError naming the value)."""
  if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or budget < 1:
    raise ValueError(f"budget={budget!r} must be an integer ≥ 1 (partial trainings)")
  if population_size < 2:
    raise ValueError(f"population_size={population_size!r} must be ≥ 2")
  if method not in TUNING_METHODS:
    raise ValueError(f"method={method!r} is not one of {TUNING_METHODS}")


def _validation_fitness(trainer, loss_params, scales, key, *, strategy, nan_retries,
                        model_name) -> np.ndarray:
  """Validation accuracy of one partial training per learning-rate scale, float32 [k]."""
  k = len(scales)
  params = ScaledLearningRate(
      jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a, (k,) + jnp.shape(a)),
                             loss_params), jnp.asarray(scales, jnp.float32))
  keys = jax.random.split(key, k)
  result = evaluate_population(trainer, params, keys, strategy=strategy,
                               nan_retries=nan_retries, split="validation",
                               model_name=model_name)
  return es_lib.sanitize_fitness(result.fitness)


def _log_tuning(log, trace, done, budget) -> None:
  """One progress line after a tuning generation (the trace's last record)."""
  last = trace[-1]
  fitness, rates = np.asarray(last["fitness"]), np.asarray(last["learning_rates"])
  best = max((f, r) for rec in trace for f, r in zip(rec["fitness"], rec["learning_rates"]))
  log(f"  lr tuning {done}/{budget}: generation best {fitness.max():.4f} at lr "
      f"{rates[int(np.argmax(fitness))]:.4g}; best so far {best[0]:.4f} at lr "
      f"{best[1]:.4g}" + (f"; σ {last['sigma']:.3g}" if last["sigma"] is not None else ""))


# ---- the final comparison -------------------------------------------------------------


def _unwrap(loss_params) -> tuple[Any, float]:
  if isinstance(loss_params, ScaledLearningRate):
    return loss_params.loss_params, float(loss_params.scale)
  return loss_params, 1.0


def _train_state(trainer: Trainer, loss_params, key: jax.Array):
  """One network trained for ``trainer.config.steps`` steps; its final TrainState."""
  single = programs(trainer, "single")  # compiled once per trainer (cached)
  state = single.init(key)
  done, total = 0, trainer.config.steps
  while done < total:
    n = min(trainer.config.steps_per_call, total - done)
    state = single.chunk(n)(state, loss_params, trainer.data)
    done += n
  return state


def candidate_effective_learning_rate(candidate: protocol.LossUnderTest, model, dataset,
                                      train_config: TrainConfig, key: jax.Array
                                      ) -> dict:
  """The candidate's effective learning rate relative to cross-entropy at
  ``train_config.learning_rate``: gradient-norm ratio × its own learning-rate scale, at
  initialization and after a partial training (``train_config.steps``) with itself.

  Returns:
    ``{"initialization": float, "trained": float, "trained_steps": int,
    "learning_rate_scale": float}`` (``trained`` is NaN if that training diverged).
  """
  params, lr_scale = _unwrap(candidate.loss_params)
  trainer = _trainer(model, dataset, candidate.loss_fn, train_config)
  loss = lambda logits, labels: candidate.loss_fn(params, logits, labels)
  out = {"learning_rate_scale": lr_scale, "trained_steps": train_config.steps}
  states = {"initialization": trainer.init(key),
            "trained": _train_state(trainer, candidate.loss_params, key)}
  for name, state in states.items():
    variables = {"params": state.params}
    if trainer.has_batch_stats:
      variables["batch_stats"] = state.batch_stats
    ratio = scale_lib.effective_learning_rate(
        loss, model, dataset, variables=variables,
        preprocess=trainer.augmentation.evaluate)
    out[name] = float(ratio * lr_scale)
  return out


def _tuning_record(workdir: Optional[str]) -> dict:
  if workdir is None:
    return {}
  try:
    return workdir_lib.read_json(os.path.join(workdir, TUNING_FILE))
  except (OSError, ValueError):  # absent or damaged: tune again
    return {}


def resolve_tuning(tuning: Mapping, context: Optional[TuningContext]
                   ) -> tuple[int, int, TuningContext]:
  """``(budget, population_size, context)`` of the ``@tuned`` searches: the
  ``final.tuning`` values, or the search's where those are 0.

  Raises:
    ValueError: if the budget is 0 and the search reports none.
  """
  context = context or TuningContext(budget=None, population_size=20)
  budget = tuning["budget"] or context.budget
  if not budget:
    raise ValueError("config.final.tuning.budget=0 means 'as many partial trainings as "
                     "the search ran', but this search reports none; set "
                     "config.final.tuning.budget")
  return int(budget), int(tuning["population_size"] or context.population_size), context


def final_comparison(candidate: protocol.LossUnderTest, *, model, dataset,
                     search_train_config: TrainConfig, final_train_config: TrainConfig,
                     baselines: Sequence[str], repeats: int, seed: int,
                     tuning: Mapping = TUNING_DEFAULTS,
                     context: Optional[TuningContext] = None,
                     fallback: Optional[protocol.LossUnderTest] = None,
                     strategy: str = "auto", model_name: Optional[str] = None,
                     alternative: str = "greater", workdir: Optional[str] = None,
                     log: Callable[[str], None] = print) -> dict:
  """The final protocol of a search: candidate vs every baseline, fairly.

  1. Each ``@tuned`` baseline gets its learning rate from :func:`tune_learning_rate`
     (the search's budget of partial trainings of ``search_train_config``, validation
     only; its trace is kept in ``workdir/lr_tuning.json``, so an interrupted tuning
     resumes and a finished one is reused).
  2. The candidate and every baseline train ``repeats`` times with
     ``final_train_config`` on the test protocol
     (:func:`glojax.train.protocol.compare_all`).
  3. The candidate's effective learning rate is measured
     (:func:`candidate_effective_learning_rate`).

  Args:
    candidate: the discovered loss (``loss_params`` may carry its own learning rate as a
      :class:`ScaledLearningRate`).
    model, dataset: what to train.
    search_train_config: the loss search's partial training (fitness definition).
    final_train_config: the full training of the test protocol.
    baselines: ``final.baselines`` entries; empty: compare with ``fallback``.
    repeats, seed, alternative: the test protocol (``final.repeats``, ...).
    tuning: the ``final.tuning`` section.
    context: the search's budget, population, retries, ES policy and seed.
    fallback: the search's own baseline.
    strategy, model_name: the population strategy of every training.
    workdir: the run's folder (None: nothing is written).
    log: progress printer.

  Returns:
    :func:`~glojax.train.protocol.compare_all`'s dict plus ``"tuning"`` (per tuned
    entry: learning rate, validation fitness, budget, trace), ``"effective_learning_rate"``
    and ``"table"`` (the printed report).

  Raises:
    ValueError: for a bad baseline entry or tuning setting, or no baseline at all.
  """
  parsed = validate_final({"baselines": list(baselines), "tuning": dict(tuning)})
  lr0 = search_train_config.learning_rate
  record = _tuning_record(workdir)
  tuned: dict[str, dict] = {}
  arms = []
  for b in parsed:
    loss_fn, params = losses.get_parameterized(b.spec)
    lr = b.learning_rate
    if b.tuned:
      lr, tuned[b.entry] = _tuned_rate(b, model, dataset, search_train_config, tuning,
                                       context, strategy, model_name, record, workdir,
                                       log)
    # Always wrapped (scale 1.0 is exact): rows of one loss then share one program.
    params = ScaledLearningRate(params, jnp.asarray((lr or lr0) / lr0, jnp.float32))
    arms.append(protocol.LossUnderTest(b.entry, loss_fn, params, b.spec,
                                       learning_rate=lr or lr0))
  if not arms:
    if fallback is None:
      raise ValueError("config.final.baselines is empty and the search names no "
                       "baseline")
    arms = [fallback]
  result = protocol.compare_all(candidate, arms, model=model, dataset=dataset,
                                train_config=final_train_config, repeats=repeats,
                                seed=seed, strategy=strategy, model_name=model_name,
                                alternative=alternative, log=log, make_trainer=_trainer)
  result["tuning"] = tuned
  result["effective_learning_rate"] = candidate_effective_learning_rate(
      candidate, model, dataset, search_train_config,
      jax.random.split(jax.random.PRNGKey(seed), repeats)[0])
  result["table"] = format_report(result, lr0)
  return result


def _tuned_rate(b: Baseline, model, dataset, search_train_config, tuning, context,
                strategy, model_name, record: dict, workdir, log) -> tuple[float, dict]:
  """Runs (or reuses) the learning-rate search of one ``@tuned`` baseline."""
  budget, population, context = resolve_tuning(tuning, context)
  settings = workdir_lib.to_jsonable({
      "spec": b.spec, "budget": budget, "population_size": population,
      "method": tuning["method"], "sigma": tuning["sigma"], "decades": tuning["decades"],
      "train": dataclasses.asdict(search_train_config), "nan_retries": context.nan_retries,
      "policy": dataclasses.asdict(context.policy), "seed": context.seed,
      "strategy": strategy})
  previous = record.get(b.entry, {})
  trace = previous.get("trace") if previous.get("settings") == settings else None
  log(f"tuning the learning rate of {b.spec}: {budget} partial trainings of "
      f"{search_train_config.steps} steps (the loss search's budget), validation split, "
      f"{tuning['method']}" + (f" (reusing {len(trace)} finished generations)"
                               if trace else ""))

  def persist(tr):
    if workdir is not None:
      record[b.entry] = {"settings": settings, "trace": tr}
      workdir_lib.write_json(os.path.join(workdir, TUNING_FILE), record)

  result = tune_learning_rate(
      model, dataset, search_train_config, budget, context.key, loss=b.spec,
      population_size=population, method=tuning["method"], sigma=tuning["sigma"],
      decades=tuning["decades"], strategy=strategy, model_name=model_name,
      nan_retries=context.nan_retries, policy=context.policy, trace=trace,
      on_generation=persist, log=log)
  persist(result.trace)
  log(f"tuned learning rate of {b.spec}: {result.learning_rate:.4g} (validation "
      f"{result.fitness:.4f}, {result.evaluations} partial trainings)")
  return result.learning_rate, {
      "learning_rate": result.learning_rate, "validation_fitness": result.fitness,
      "budget": result.evaluations, "method": tuning["method"], "trace": result.trace}


def format_report(result: dict, base_learning_rate: float) -> str:
  """The comparison table plus the tuning and effective-learning-rate lines."""
  lines = [protocol.format_comparison(result)]
  for entry, t in result.get("tuning", {}).items():
    lines.append(f"{entry}: learning rate {t['learning_rate']:.4g} tuned by {t['method']} "
                 f"over {t['budget']} partial trainings (validation {t['validation_fitness']:.4f};"
                 f" the loss search's budget, test split unused)")
  e = result.get("effective_learning_rate")
  if e:
    name = result["candidate"]["name"]
    lines.append(f"effective learning rate of {name} (its gradient scale × learning rate, "
                 f"relative to cross-entropy at lr {base_learning_rate:.4g}): "
                 f"{e['initialization']:.3g} at initialization, {e['trained']:.3g} after "
                 f"{e['trained_steps']} steps")
  return "\n".join(lines)
