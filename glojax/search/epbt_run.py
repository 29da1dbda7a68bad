"""EPBT runs in a workdir: resumable generations, outputs, and the final comparison.

``run(config, workdir)`` drives :class:`glojax.search.epbt.EPBT` generation by
generation (``init`` once, ``step`` per generation, ``finalize`` at the end) and writes
the workdir:

* ``config.json`` — the run's config (a rerun must match it; ``final.*`` may change);
* ``log.jsonl`` — one JSON object per generation (fitness, test accuracy, member and
  parent ids, hyperparameters of every member);
* ``population/<generation>/`` — the whole search state (``p`` networks, optimizer
  states, hyperparameters, history) after the last finished generation, written with
  orbax-checkpoint in the background while the next generation trains
  (:class:`glojax.train.checkpoint.Checkpointer`); the log's records are stored with it;
* ``results.json`` — the best member, its test accuracy and ancestry;
* ``lineage.png`` — the best member's loss schedule (binary phenotypes per generation,
  darker = earlier, beside cross-entropy; TaylorGLO runs only);
* ``fitness.png`` — every member's validation accuracy per generation;
* ``final.json`` / ``final/`` / ``accuracy.png`` — with ``final.enabled``: the same run
  for ``final.seeds`` seeds and each of ``final.baselines`` (same data, population size
  and training steps), compared by the test accuracy of each run's best-validation
  member (mean ± std over seeds, one-tailed Welch t-test against every baseline).

A run killed at any moment resumes from the last committed generation when the same
command is rerun, and reproduces the uninterrupted run.
"""

from __future__ import annotations

import copy
import os
import time
from typing import Callable, Optional

import numpy as np

from glojax.analysis import lineage, stats
from glojax import config as config_lib
from glojax import workdir as workdir_lib
from glojax.search.epbt import BASELINES, EPBT, default_config, init_key, step_key
from glojax.train.checkpoint import Checkpointer

RESUMABLE_KEYS = ("final",)
POPULATION_DIR = "population"


def run(config, workdir: str, *, log: Callable[[str], None] = print,
        on_generation: Optional[Callable[[int, dict], None]] = None,
        trainers: Optional[dict] = None) -> dict:
  """Runs (or resumes) an EPBT search in ``workdir``, then its final comparison.

  Args:
    config: a ConfigDict/mapping with the keys of :func:`glojax.search.epbt.default_config`.
    workdir: the run's folder; rerunning on it resumes.
    log: progress printer (one line per generation).
    on_generation: optional ``callback(generation, record)`` after each generation's
      checkpoint was started (tests use it to interrupt a run).
    trainers: optional compiled-trainer cache shared between runs of one process.

  Returns:
    :meth:`EPBT.finalize`'s dict, plus ``"final"`` (the comparison, or None).

  Raises:
    ValueError: for a bad config, or a workdir holding a different run or a damaged
      checkpoint; FileNotFoundError: if the dataset is not available.
  """
  trainers = {} if trainers is None else trainers
  search = EPBT(config, trainers)  # validates and builds everything before the workdir
  cfg = search.cfg
  s = cfg["search"]
  resumed = workdir_lib.prepare(workdir, cfg, resumable_keys=RESUMABLE_KEYS,
                                defaults=config_lib.to_plain(default_config()))
  trainer = search.trainer
  log(f"{s['method'].upper()} ({s['loss']}, searching {list(s['hparams']) or 'nothing'}): "
      f"{trainer.dataset.describe()}; model {cfg['model']['name']}; population "
      f"{search.p}, {search.generations} generations × {search.steps} steps; "
      f"workdir {workdir}")
  state, records = _resume(search, workdir, resumed, log)
  with Checkpointer(os.path.join(workdir, POPULATION_DIR), max_to_keep=2) as ckpt:
    for g in range(int(state.generation), search.generations):
      t0 = time.time()
      state, record = search.step(state, step_key(cfg["seed"], g))
      record["wall_time_s"] = time.time() - t0
      records.append(record)
      ckpt.save(g + 1, state, {"records": records})
      workdir_lib.append_jsonl(_log_path(workdir), record)
      log(f"gen {g + 1:3d}/{search.generations}  val best {record['best']:.4f} "
          f"mean {record['mean']:.4f}  test(best) {record['best_test_accuracy']:.4f}  "
          f"children {record['children']:2d}  failed {record['failed']}  "
          f"select {1000 * record['select_time_s']:.0f} ms  "
          f"train {record['train_time_s']:.1f}s  {record['wall_time_s']:.1f}s")
      if on_generation is not None:
        on_generation(g, record)
  results = search.finalize(state)
  results["curve"] = [{"steps": r["steps_per_member"], "accuracy": r["best_test_accuracy"]}
                      for r in records]
  workdir_lib.write_json(os.path.join(workdir, "results.json"), results)
  _plots(search, workdir, results, log)
  log(f"best member {results['best_member_id']}: validation "
      f"{results['best_validation_accuracy']:.4f}, test {results['best_test_accuracy']:.4f}"
      + (f"; final loss {results['best_spec']}" if results["best_spec"] else ""))
  results["final"] = None
  if cfg["final"]["enabled"]:
    results["final"] = compare(cfg, workdir, results, log=log, trainers=trainers)
  return results


def _log_path(workdir: str) -> str:
  return os.path.join(workdir, workdir_lib.LOG_FILE)


def _resume(search: EPBT, workdir: str, resumed: bool, log):
  """The state and records to continue from (fresh ones for a new run)."""
  cfg = search.cfg
  state = search.init(init_key(cfg["seed"]))
  records: list[dict] = []
  folder = os.path.join(workdir, POPULATION_DIR)
  if resumed:
    ckpt = Checkpointer(folder, max_to_keep=2)
    try:
      if ckpt.latest_step() is not None:
        state, meta = ckpt.restore(like=state)
        records = meta.get("records", [])
        if len(records) != int(state.generation):
          raise ValueError(f"checkpoint in {folder} holds {len(records)} log records for "
                           f"{int(state.generation)} generations; it is damaged")
        log(f"resuming after generation {int(state.generation)}")
      elif workdir_lib.read_jsonl(_log_path(workdir)):
        raise ValueError(f"workdir {workdir!r}: {workdir_lib.LOG_FILE} has generations but "
                         f"{folder} holds no checkpoint; restore it, or move "
                         f"{workdir_lib.LOG_FILE} away to restart")
    finally:
      ckpt.close()
  workdir_lib.write_jsonl(_log_path(workdir), records)  # drop any line past the checkpoint
  return state, records


def _plots(search: EPBT, workdir: str, results: dict, log) -> None:
  """``fitness.png`` and (TaylorGLO runs) ``lineage.png``; a failed plot only warns."""
  from glojax.analysis import plots
  jobs = [("fitness.png", lambda p: plots.plot_fitness_curves(
      workdir, p, title=f"{search.cfg['search']['method'].upper()}: validation accuracy"))]
  if results["best_spec"]:
    thetas = [search.loss_params_of(a["hparams"]) for a in results["ancestry"]]
    gens = [a["generation"] for a in results["ancestry"]]
    jobs.append(("lineage.png", lambda p: lineage.plot_lineage_phenotypes(
        thetas, gens, p, total_generations=search.generations - 1,
        title=f"Ancestry of the best member ({len(gens)} distinct losses)")))
  for name, plot in jobs:
    path = os.path.join(workdir, name)
    try:
      plot(path)
      log(f"wrote {path}")
    except (OSError, ValueError) as e:  # a plot is a convenience; never lose a run
      log(f"could not write {path}: {e}")


def method_label(cfg: dict) -> str:
  """``"epbt"`` or the baseline name a search section matches (else its method)."""
  s = cfg["search"]
  for name, preset in BASELINES.items():
    if all(list(s[k]) == list(v) if isinstance(v, tuple) else s[k] == v
           for k, v in preset.items() if k != "theta_init"):
      return name
  return s["method"]


def run_config(cfg: dict, baseline: Optional[str], seed: int) -> dict:
  """The config of one comparison run: ``cfg`` with ``seed``, the final comparison off,
  and (unless ``baseline`` is None) the baseline's search settings.

  A baseline that searches SGD's learning rate trains with a constant schedule (PBT's
  learning rate replaces the schedule, as in the paper's baseline 3).
  """
  sub = copy.deepcopy(cfg)
  sub["seed"] = seed
  sub["final"]["enabled"] = False
  if baseline is not None:
    sub["search"].update({k: (list(v) if isinstance(v, tuple) else v)
                          for k, v in BASELINES[baseline].items()})
    if {"learning_rate", "momentum"} & set(sub["search"]["hparams"]):
      sub["train"].update(schedule="constant", boundaries=[], warmup_steps=0)
  return sub


def compare(cfg: dict, workdir: str, main: dict, *, log=print,
            trainers: Optional[dict] = None) -> dict:
  """Runs ``final.seeds`` seeds of this search and of each baseline; compares them.

  Seeds are ``seed, seed + 1, …``; the main run is seed ``seed`` of its own method.
  Every other run is a resumable run in ``final/<method>/seed_<s>`` with the same
  data, model, population size and training steps; runs with the same seed start from
  the same networks. Writes ``final.json`` and ``accuracy.png``.

  Returns:
    ``{"methods": {name: {"runs", "mean", "std", "validation"}}, "welch": {baseline:
    {"t", "dof", "p", "alternative"}}, "table": str, ...}`` (test accuracy of each
    run's best-validation member).
  """
  f = cfg["final"]
  main_name = method_label(cfg)
  seeds = [cfg["seed"] + i for i in range(f["seeds"])]
  names = [main_name] + [b for b in f["baselines"] if b != main_name]
  runs: dict[str, list[dict]] = {n: [] for n in names}
  curves = {}
  for name in names:
    for seed in seeds:
      if name == main_name and seed == cfg["seed"]:
        res = main
      else:
        sub = run_config(cfg, None if name == main_name else name, seed)
        tag = f"[{name} seed {seed}] "
        res = run(sub, os.path.join(workdir, "final", name, f"seed_{seed}"),
                  log=lambda m, tag=tag: log(tag + m) if m.startswith(
                      ("gen", "best", "resum")) else None, trainers=trainers)
      runs[name].append(res)
      curves[f"{name} seed {seed}"] = res.get("curve", [])
  out = {"metric": "test accuracy of the best-validation member", "seeds": seeds,
         "steps_per_member": main["steps_per_member"],
         "population_size": cfg["search"]["population_size"], "methods": {}, "welch": {},
         "final_config": dict(f)}
  for name in names:
    acc = [r["best_test_accuracy"] for r in runs[name]]
    out["methods"][name] = {
        "runs": acc, "mean": float(np.mean(acc)), "std": float(np.std(acc, ddof=1)),
        "validation": [r["best_validation_accuracy"] for r in runs[name]],
        "mean_member_test": [r["mean_test_accuracy"] for r in runs[name]]}
  for name in names[1:]:
    w = stats.welch_ttest(out["methods"][main_name]["runs"], out["methods"][name]["runs"],
                          alternative=f["alternative"])
    out["welch"][name] = {**w._asdict(), "alternative": f["alternative"]}
  out["table"] = format_comparison(out, main_name)
  workdir_lib.write_json(os.path.join(workdir, "final.json"), out)
  log(out["table"])
  try:
    path = lineage.plot_accuracy_curves(curves, os.path.join(workdir, "accuracy.png"))
    log(f"wrote {path}")
  except (OSError, ValueError) as e:
    log(f"could not write accuracy.png: {e}")
  return out


def format_comparison(out: dict, main_name: str) -> str:
  """The comparison as a text table: mean ± std per method, Welch p against the main."""
  width = max(len(n) for n in out["methods"])
  lines = [f"Test accuracy of the best-validation member after {out['steps_per_member']} "
           f"steps per member, population {out['population_size']}, "
           f"{len(out['seeds'])} seeds",
           f"{'method':<{width}}  {'mean':>7}  {'std':>7}  Welch p ({main_name} vs)"]
  for name, m in out["methods"].items():
    w = out["welch"].get(name)
    p = "" if w is None else f"{w['p']:.4g} ({w['alternative']})"
    lines.append(f"{name:<{width}}  {m['mean']:7.4f}  {m['std']:7.4f}  {p}")
  return "\n".join(lines)
