"""TaylorGLO: CMA-ES over the 8 parameters of a Taylor-polynomial loss.

Dissertation ch. 5 (``docs/losses.md``). Each generation, (μ/μ_w, λ)-CMA-ES (evosax ``CMA_ES``,
mean 0, σ = 1.2, λ = 20) proposes λ parameter vectors θ; every candidate loss
``taylorglo(θ, ·)`` trains a fresh network for a short partial training, all λ as one
population program; fitness is validation accuracy (0 for NaN training, after
retries). The best-validation θ of the whole search is then retrained R times with full
training and compared with cross-entropy (:mod:`glojax.train.protocol`).

Entry point: :func:`run` (``config``, ``workdir``) — resumable, see
:mod:`glojax.search.common` for the workdir contract.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from glojax import losses
from glojax.analysis import stats
from glojax.analysis.theory import is_trainable
from glojax.search import common
from glojax.train import protocol
from glojax.train.population import STRATEGIES, evaluate_population
from glojax.train.trainer import TrainConfig, Trainer

# Keys that may change when a run is resumed (extending a search, changing the
# final protocol) without invalidating its generations.
RESUMABLE_KEYS = ("search.generations", "final")
FLAT_ACTIONS = ("skip_tell", "tell")
_PURPOSE_ASK, _PURPOSE_TELL, _PURPOSE_TRAIN, _PURPOSE_INIT = 0, 1, 2, 3


def default_config() -> ml_collections.ConfigDict:
  """Every key a TaylorGLO config may set, with the dissertation's defaults."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.dataset = ml_collections.ConfigDict({"name": "mnist5k", "seed": 0, "options": {}})
  c.model = ml_collections.ConfigDict({"name": "mlp", "options": {}})
  # Every TrainConfig field (optimizer, schedule, augment, ...), so CIFAR recipes can
  # be used inside a search; the dissertation's MNIST values override the defaults.
  train = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
  train.update({"steps": 2000, "batch_size": 100, "learning_rate": 0.01})
  c.train = ml_collections.ConfigDict(train)
  c.search = ml_collections.ConfigDict({
      "population_size": 20, "generations": 60, "sigma": 1.2, "mean": 0.0,
      "class_reduction": "mean", "strategy": "auto", "nan_retries": 2,
      "flat_action": "skip_tell", "invariant_filter": False})
  c.final = ml_collections.ConfigDict({
      "enabled": True, "repeats": 10, "steps": 20000, "alternative": "greater",
      "seed": 1})
  return c


def validate_config(config) -> dict:
  """Checks a config against :func:`default_config` and returns it as a plain dict.

  Raises:
    ValueError: for unknown keys (typos), unknown dataset/model/strategy names or
      values out of range, naming the offending key and value.
  """
  cfg = common.with_defaults(config, default_config())
  common.check_names(cfg, STRATEGIES)
  s = cfg["search"]
  if s["class_reduction"] not in losses.CLASS_REDUCTIONS:
    raise ValueError(f"config.search.class_reduction={s['class_reduction']!r} is not one "
                     f"of {losses.CLASS_REDUCTIONS}")
  if s["flat_action"] not in FLAT_ACTIONS:
    raise ValueError(f"config.search.flat_action={s['flat_action']!r} is not one of "
                     f"{FLAT_ACTIONS}")
  _check_int("search.population_size", s["population_size"], 2)
  _check_int("search.generations", s["generations"], 0)
  _check_int("search.nan_retries", s["nan_retries"], 0)
  _check_number("search.sigma", s["sigma"], low=0.0, low_open=True)
  _check_number("search.mean", s["mean"])
  for key in ("seed", "dataset.seed", "final.seed"):
    section, _, name = key.rpartition(".")
    _check_int(key, (cfg[section] if section else cfg)[name], 0, high=2**63 - 1)
  if not isinstance(cfg["model"]["options"], dict):
    raise ValueError(f"config.model.options={cfg['model']['options']!r} must be a dict of "
                     "model fields, e.g. {'hidden': (64,)}")
  t = cfg["train"]
  _check_number("train.learning_rate", t["learning_rate"])  # sign: TrainConfig
  _check_number("train.momentum", t["momentum"], low=0.0, high=1.0, high_open=True)
  _check_number("train.weight_decay", t["weight_decay"], low=0.0)
  for key in ("steps", "batch_size", "eval_batch_size", "steps_per_call"):
    _check_int(f"train.{key}", t[key], 1)
  if not isinstance(s["invariant_filter"], bool):
    raise ValueError(f"config.search.invariant_filter={s['invariant_filter']!r} must be "
                     "True or False")
  f = cfg["final"]
  if not isinstance(f["enabled"], bool):
    raise ValueError(f"config.final.enabled={f['enabled']!r} must be True or False")
  if f["enabled"]:
    _check_int("final.repeats", f["repeats"], 2, why=" (Welch's t-test)")
    _check_int("final.steps", f["steps"], 1)
    if f["alternative"] not in stats.ALTERNATIVES:
      raise ValueError(f"config.final.alternative={f['alternative']!r} is not one of "
                       f"{stats.ALTERNATIVES}")
  try:
    TrainConfig(**t)
  except (TypeError, ValueError) as e:  # e.g. an unknown loop
    raise ValueError(f"config.train: {e}") from None
  return cfg


def _check_int(key: str, value, low: int, high: Optional[int] = None, why: str = ""
               ) -> None:
  """Raises ValueError unless ``value`` is an int (not a bool) in [low, high]."""
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) \
      or value < low or (high is not None and value > high):
    bound = f"≥ {low}" if high is None else f"in [{low}, {high}]"
    raise ValueError(f"config.{key}={value!r} must be an integer {bound}{why}")


def _check_number(key: str, value, low: Optional[float] = None,
                  high: Optional[float] = None, low_open: bool = False,
                  high_open: bool = False) -> None:
  """Raises ValueError unless ``value`` is a finite real number within the bounds."""
  ok = (not isinstance(value, bool) and isinstance(value, (int, float, np.number))
        and np.isfinite(value))
  if ok and low is not None:
    ok = value > low if low_open else value >= low
  if ok and high is not None:
    ok = value < high if high_open else value <= high
  if not ok:
    lo = "" if low is None else f"{'>' if low_open else '≥'} {low}"
    hi = "" if high is None else f"{'<' if high_open else '≤'} {high}"
    bounds = " and ".join(b for b in (lo, hi) if b)
    raise ValueError(f"config.{key}={value!r} must be a finite number"
                     f"{' ' + bounds if bounds else ''}")


def taylorglo_loss_fn(class_reduction: str) -> Callable:
  """``loss_fn(theta, logits, labels)`` for the trainer, with a fixed class reduction."""
  def loss_fn(theta, logits, labels):
    return losses.taylorglo(theta, logits, labels, class_reduction=class_reduction)
  return loss_fn


def cross_entropy_loss_fn(_, logits, labels):
  """Cross-entropy in the trainer's ``loss_fn(params, logits, labels)`` form."""
  return losses.cross_entropy(logits, labels)


def _check_model_builds(cfg: dict, make_trainer: Callable[[], Trainer]) -> Trainer:
  """Builds the trainer and initializes its model abstractly (no FLOPs), so bad model
  options fail up front.

  Raises:
    ValueError: naming ``config.model.options`` when the model cannot be built.
  """
  try:
    trainer = make_trainer()
    jax.eval_shape(trainer.init, jax.random.PRNGKey(0))
  except Exception as e:  # flax/JAX raise TypeError/ValueError/... for bad fields
    first_line = (str(e).strip().splitlines() or [type(e).__name__])[0]
    raise ValueError(f"config.model.options={cfg['model']['options']!r} cannot build "
                     f"model {cfg['model']['name']!r}: {first_line}") from None
  return trainer


def effective_population_size(cfg: dict) -> int:
  """λ: ``search.population_size``, doubled when the invariant filter is on (dissertation §5.3)."""
  s = cfg["search"]
  return s["population_size"] * (2 if s["invariant_filter"] else 1)


def _make_es(cfg: dict):
  from evosax.algorithms import CMA_ES
  s = cfg["search"]
  es = CMA_ES(population_size=effective_population_size(cfg),
              solution=jnp.zeros(losses.TAYLORGLO_NUM_PARAMS, jnp.float32))
  params = es.default_params.replace(std_init=jnp.asarray(s["sigma"], jnp.float32))
  return es, params


def _fresh_state(cfg: dict, es, es_params):
  mean = jnp.full((losses.TAYLORGLO_NUM_PARAMS,), cfg["search"]["mean"], jnp.float32)
  return es.init(common.generation_key(cfg["seed"], 0, _PURPOSE_INIT), mean, es_params)


def run(config, workdir: str, *, log: Callable[[str], None] = print,
        on_generation: Optional[Callable[[int, dict], None]] = None) -> dict:
  """Runs (or resumes) a TaylorGLO search and its final protocol in ``workdir``.

  Args:
    config: a ConfigDict/mapping with the keys of :func:`default_config`.
    workdir: the run's folder; rerunning on the same folder resumes.
    log: progress printer (one line per generation).
    on_generation: optional callback ``(generation, record)`` after each generation's
      checkpoint (tests use it to interrupt a run).

  Returns:
    ``{"best_theta": list[8], "best_fitness": float, "best_spec": str,
    "generations": int, "final": dict | None}``.

  Raises:
    ValueError: for a bad config, or a workdir holding a different run.
    FileNotFoundError: if the dataset is not available (the message says how to get it).

  Files written: see :mod:`glojax.search.common`; plus ``best_loss.txt`` (the best θ as
  a ``taylorglo(theta=[...])`` spec) and ``final.json`` (the final comparison).
  """
  cfg = validate_config(config)
  s = cfg["search"]
  # Build everything that can fail on a bad config before the workdir is claimed
  # (config.json): a corrected rerun must not be refused as "a different run".
  dataset, model, train_cfg = common.build_run(cfg)
  trainer = _check_model_builds(
      cfg, lambda: Trainer(model, dataset, taylorglo_loss_fn(s["class_reduction"]),
                           train_cfg))
  if train_cfg.batch_size > len(dataset.train):
    raise ValueError(f"config.train.batch_size={train_cfg.batch_size} is larger than the "
                     f"train split of {dataset.name} ({len(dataset.train)} examples)")
  resumed = common.prepare_workdir(workdir, cfg, RESUMABLE_KEYS,
                                   defaults=common.config_to_dict(default_config()))
  popsize = effective_population_size(cfg)
  log(f"TaylorGLO search: {dataset.describe()}; model {cfg['model']['name']}; "
      f"population {popsize}"
      f"{' (invariant filter on: untrainable θ skipped)' if s['invariant_filter'] else ''}, "
      f"{s['generations']} generations, "
      f"{train_cfg.steps} training steps per candidate; workdir {workdir}")
  es, es_params = _make_es(cfg)
  state = _fresh_state(cfg, es, es_params)

  history: list[dict] = []
  best = {"fitness": -1.0, "theta": None, "generation": -1}
  start_generation = 0
  ckpt = (common.load_checkpoint(workdir, ("history", "best", "generation"))
          if resumed else None)
  if ckpt is not None:
    arrays, meta = ckpt
    try:
      state = common.unflatten_state("es", arrays, state)
    except ValueError as e:
      raise ValueError(f"{os.path.join(workdir, common.CHECKPOINT_FILE)}: {e}") from None
    history, best = meta["history"], meta["best"]
    start_generation = meta["generation"]
    log(f"resuming from generation {start_generation} (best so far "
        f"{best['fitness']:.4f})")
    if start_generation >= s["generations"]:
      log(f"the search already has {start_generation} generation(s) "
          f"(search.generations={s['generations']}); nothing left to search")
  common.write_log(workdir, history)  # drop any line past the checkpoint

  for generation in range(start_generation, s["generations"]):
    t0 = time.time()
    thetas, state = es.ask(common.generation_key(cfg["seed"], generation, _PURPOSE_ASK),
                           state, es_params)
    keys = jax.random.split(
        common.generation_key(cfg["seed"], generation, _PURPOSE_TRAIN), popsize)
    if s["invariant_filter"]:
      trainable = np.asarray(is_trainable(thetas, dataset.num_classes))
    else:
      trainable = np.ones(popsize, bool)
    fitness, failed, retries = _evaluate_subset(trainer, thetas, keys, trainable, cfg)
    flat = bool(np.all(fitness == fitness[0]))
    if flat and s["flat_action"] == "skip_tell":
      # All candidates equal (typically all failed): telling would shrink σ with no
      # information (step-size collapse). Keep the state; the next ask resamples.
      told = False
    else:
      state, _ = es.tell(common.generation_key(cfg["seed"], generation, _PURPOSE_TELL),
                         thetas, common.to_minimization(fitness), state, es_params)
      told = True
    i = int(np.argmax(fitness))
    if fitness[i] > best["fitness"]:
      best = {"fitness": float(fitness[i]), "theta": np.asarray(thetas[i]).tolist(),
              "generation": generation}
    record = {
        "generation": generation,
        "fitness": fitness.tolist(),
        "best": float(fitness.max()), "mean": float(fitness.mean()),
        "median": float(np.median(fitness)),
        "best_theta": np.asarray(thetas[i]).tolist(),
        "thetas": np.asarray(thetas).tolist(),
        "best_ever": best["fitness"],
        "sigma": float(state.std),
        "failed": failed, "retries": retries,
        "skipped_untrainable": int(np.sum(~trainable)),
        "flat": flat, "told": told,
        "wall_time_s": time.time() - t0,
    }
    history.append(record)
    common.save_checkpoint(workdir, common.flatten_state("es", state),
                           {"generation": generation + 1, "history": history,
                            "best": best})
    common.append_log(workdir, record)
    log(f"gen {generation + 1:3d}/{s['generations']}  best {record['best']:.4f}  "
        f"mean {record['mean']:.4f}  median {record['median']:.4f}  "
        f"best-ever {best['fitness']:.4f}  σ {record['sigma']:.3g}  "
        f"failed {record['failed']}"
        f"{'  skipped ' + str(record['skipped_untrainable']) if s['invariant_filter'] else ''}"
        f"{'  (flat: no update)' if not told else ''}  "
        f"{record['wall_time_s']:.1f}s")
    if on_generation is not None:
      on_generation(generation, record)

  out = {"best_theta": best["theta"], "best_fitness": best["fitness"],
         "generations": s["generations"], "final": None, "best_spec": None}
  if best["theta"] is None:
    log("no generation was run (search.generations = 0); nothing to report")
    return out
  out["best_spec"] = losses.taylorglo_spec(best["theta"])
  common.write_text(os.path.join(workdir, "best_loss.txt"), out["best_spec"] + "\n")
  log(f"best validation accuracy {best['fitness']:.4f} (generation "
      f"{best['generation'] + 1}): {out['best_spec']}")
  _plot_history(workdir, log)

  if best["fitness"] <= 0:
    # Accuracy 0 means no candidate trained (NaN/inf, fitness 0): retraining one
    # would only fail again.
    log("warning: every candidate failed to train (NaN/inf), so there is no loss to "
        "compare; skipping the final protocol. Try a smaller search.sigma or "
        "train.learning_rate")
    return out
  if cfg["final"]["enabled"]:
    out["final"] = (_finished_final(cfg, out["best_spec"], workdir, log)
                    or final_protocol(cfg, best["theta"], workdir, log=log))
  return out


def _finished_final(cfg: dict, best_spec: str, workdir: str, log) -> Optional[dict]:
  """``final.json`` if it already holds this loss's final protocol under ``cfg["final"]``.

  A rerun of a finished search then costs nothing instead of repeating the
  ``2 × final.repeats`` full trainings.
  """
  path = os.path.join(workdir, "final.json")
  try:
    with open(path) as f:
      result = json.load(f)
    done = (result["candidate"]["spec"] == best_spec
            and result["final_config"] == cfg["final"])
  except (OSError, ValueError, KeyError, TypeError):
    return None
  if not done:
    return None
  log(f"final protocol already done for this loss and config.final ({path}; delete it "
      "to retrain)")
  log(result["table"])
  return result


def _evaluate_subset(trainer, thetas, keys, trainable: np.ndarray, cfg: dict):
  """Trains the candidates where ``trainable`` holds; the others get fitness 0.

  The trained subset is padded (with copies of its first member, results discarded) to
  a multiple of a quarter of the population, so vmapped programs compile for at most
  four sizes instead of one per subset size.

  Returns:
    ``(fitness float32[K], failed count, retries count)``.
  """
  s = cfg["search"]
  k = len(trainable)
  fitness = np.zeros(k, np.float32)
  idx = np.flatnonzero(trainable)
  if idx.size == 0:
    return fitness, 0, 0
  bucket = max(1, k // 4) if idx.size < k else k
  padded = np.concatenate([idx, np.full((-idx.size) % bucket, idx[0])])
  result = evaluate_population(trainer, jnp.asarray(thetas)[padded], keys[padded],
                               strategy=s["strategy"], nan_retries=s["nan_retries"],
                               model_name=cfg["model"]["name"])
  fitness[idx] = common.sanitize_fitness(result.fitness[:idx.size])
  failed = int(np.sum(~result.metrics["finite"][:idx.size]))
  retries = int(result.attempts[:idx.size].sum() - idx.size)
  return fitness, failed, retries


def final_protocol(cfg: dict, theta, workdir: str, *, log: Callable[[str], None] = print
                   ) -> dict:
  """Retrains ``theta`` and cross-entropy ``final.repeats`` times; writes ``final.json``.

  Returns:
    The result of :func:`glojax.train.protocol.compare` plus the printed table.
  """
  f = cfg["final"]
  dataset, model, train_cfg = common.build_run(cfg, steps=f["steps"])
  candidate = protocol.LossUnderTest(
      "taylorglo", taylorglo_loss_fn(cfg["search"]["class_reduction"]),
      jnp.asarray(theta, jnp.float32), losses.taylorglo_spec(theta))
  baseline = protocol.LossUnderTest("cross_entropy", cross_entropy_loss_fn,
                                    jnp.zeros((0,), jnp.float32), "cross_entropy")
  result = protocol.compare(candidate, baseline, model=model, dataset=dataset,
                            train_config=train_cfg, repeats=f["repeats"], seed=f["seed"],
                            strategy=cfg["search"]["strategy"],
                            model_name=cfg["model"]["name"],
                            alternative=f["alternative"], log=log)
  result["table"] = protocol.format_table(result)
  result["final_config"] = dict(f)  # lets a rerun reuse this result
  common.write_json(os.path.join(workdir, "final.json"), result)
  log(result["table"])
  return result


def _plot_history(workdir: str, log) -> None:
  """Writes ``fitness.png`` (every candidate, best, mean, median per generation)."""
  from glojax.analysis import plots
  path = os.path.join(workdir, "fitness.png")
  try:
    plots.plot_fitness_curves(workdir, path, title="TaylorGLO search")
  except (OSError, ValueError) as e:  # a plot is a convenience; never lose a run over it
    log(f"could not write {path}: {e}")
    return
  log(f"wrote {path}")
