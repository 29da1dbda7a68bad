"""The end of an EPBT run: results, plots, and the comparison with the baselines.

:class:`glojax.search.epbt.EPBT`'s ``finalize`` hook calls these:

* :func:`results` — the best member of the final population, its test accuracy and its
  ancestry (the chain of members whose weights it inherited; θ along it is the loss
  schedule), and the best member's test accuracy per generation (``curve``);
* :func:`plots` — ``fitness.png`` and (TaylorGLO runs) ``lineage.png``;
* :func:`compare` — with ``final.enabled``: the same search for ``final.repeats`` seeds
  and each of ``final.baselines`` (same data, population size and training steps), each
  a resumable driver run in ``final/<method>/seed_<s>``, compared by the test accuracy
  of each run's best-validation member (mean ± std over seeds, Welch t-test against
  every baseline): ``final.json`` and ``accuracy.png``.
"""

from __future__ import annotations

import os
from typing import Callable

import jax
import numpy as np

from glojax import config as config_lib
from glojax import losses
from glojax import workdir as workdir_lib
from glojax.analysis import lineage, stats
from glojax.search import driver
from glojax.search.epbt_config import baseline_config, method_label

FINAL_FILE = "final.json"


def _best_slots(fitness: np.ndarray, finite: np.ndarray) -> np.ndarray:
  """``int[G]``: the best-validation slot of every generation (failed members last,
  ties to the lower slot; :func:`glojax.search.epbt_ops.selection_score`)."""
  score = np.where(finite & np.isfinite(fitness), fitness, -np.inf)
  return np.argmax(score, axis=-1)


def results(search, state) -> dict:
  """The results of a finished run (JSON-able).

  Returns:
    ``method``, ``loss``, ``generations`` done, ``steps_per_member``,
    ``best_validation_accuracy``, ``best_test_accuracy`` (the test accuracy of the
    member with the best validation accuracy), ``mean_test_accuracy``,
    ``best_member_id``, ``best_hparams`` (name → value), ``best_spec`` (the final
    TaylorGLO loss, if θ is searched), ``hparam_names``, ``ancestry`` (the best
    member's lineage, oldest first, members unchanged by elitism listed once),
    ``failed``, ``curve`` (``[{"steps", "accuracy"}]``: the best member's test
    accuracy after each generation).

  Raises:
    ValueError: if no generation has run.
  """
  g = int(state.generation)
  if g == 0:
    raise ValueError("finalize: no generation has run")
  h = jax.tree_util.tree_map(lambda a: np.asarray(a)[:g], state.history)
  slots = _best_slots(h.fitness, h.finite)
  best = int(slots[-1])
  chain = lineage.ancestry(h.member_id, h.parent_id, best)
  names = list(search.space.names)
  ancestry = [{"generation": gen, "member_id": int(h.member_id[gen, slot]),
               "hparams": h.hparams[gen, slot].tolist(),
               "fitness": float(h.fitness[gen, slot]),
               "test_accuracy": float(h.test_accuracy[gen, slot])}
              for gen, slot in lineage.drop_repeats(chain, h.member_id)]
  s = search.config.search
  out = {
      "method": s.method, "loss": s.loss, "generations": g,
      "steps_per_member": g * search.steps,
      "best_validation_accuracy": float(h.fitness[-1, best]),
      "best_test_accuracy": float(h.test_accuracy[-1, best]),
      "mean_test_accuracy": float(np.mean(h.test_accuracy[-1])),
      "best_member_id": int(h.member_id[-1, best]),
      "best_hparams": dict(zip(names, h.hparams[-1, best].tolist())),
      "best_spec": None, "hparam_names": names, "ancestry": ancestry,
      "failed": int(np.sum(~h.finite[-1])),
      "curve": [{"steps": (i + 1) * search.steps,
                 "accuracy": float(h.test_accuracy[i, slots[i]])} for i in range(g)],
  }
  if search.theta_cols.size:
    out["best_spec"] = losses.taylorglo_spec(h.hparams[-1, best][search.theta_cols])
  return out


def plots(search, workdir: str, res: dict, log: Callable[[str], None]) -> None:
  """``fitness.png`` and (TaylorGLO runs) ``lineage.png``; a failed plot only warns."""
  from glojax.analysis import plots as plots_lib
  method = search.config.search.method.upper()
  jobs = [("fitness.png", lambda p: plots_lib.plot_fitness_curves(
      workdir, p, title=f"{method}: validation accuracy"))]
  if res["best_spec"]:
    thetas = [search.loss_params_of(a["hparams"]) for a in res["ancestry"]]
    gens = [a["generation"] for a in res["ancestry"]]
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


def _finished(path: str, final_config: dict, main: dict):
  """``final.json`` if it holds this comparison (same section, same main run)."""
  try:
    out = workdir_lib.read_json(path)
    same = (out["final_config"] == final_config
            and out["main_run"] == {k: main[k] for k in ("best_member_id",
                                                         "best_test_accuracy")})
  except (ValueError, KeyError, TypeError, OSError):
    return None
  return out if same else None


def compare(search_class, config, workdir: str, main: dict, *,
            log: Callable[[str], None] = print) -> dict:
  """Runs ``final.repeats`` seeds of this search and of each baseline; compares them.

  Seeds are ``seed, seed + 1, …``; the main run is seed ``seed`` of its own method.
  Every other run is a resumable driver run of ``search_class`` in
  ``final/<method>/seed_<s>`` with the same data, model, population size and training
  steps; runs with the same seed start from the same networks. A rerun with the same
  ``final`` section and main run reuses ``final.json``.

  Returns:
    ``{"methods": {name: {"runs", "mean", "std", "validation", "mean_member_test"}},
    "welch": {baseline: {"t", "dof", "p", "alternative"}}, "table": str, ...}`` (test
    accuracy of each run's best-validation member).
  """
  cfg = config_lib.to_plain(config)
  f = config.final
  final_config = workdir_lib.to_jsonable(dict(sorted(cfg["final"].items())))
  path = os.path.join(workdir, FINAL_FILE)
  done = _finished(path, final_config, main)
  if done is not None:
    log(f"comparison already done ({path}; delete it to rerun)")
    log(done["table"])
    return done
  main_name = method_label(cfg["search"])
  seeds = [config.seed + i for i in range(f.repeats)]
  names = [main_name] + [b for b in f.baselines if b != main_name]
  runs: dict[str, list[dict]] = {n: [] for n in names}
  curves = {}
  for name in names:
    for seed in seeds:
      if name == main_name and seed == config.seed:
        res = main
      else:
        sub = baseline_config(cfg, None if name == main_name else name, seed)
        tag = f"[{name} seed {seed}] "
        res = driver.run(search_class, sub, os.path.join(workdir, "final", name,
                                                         f"seed_{seed}"),
                         log=lambda m, tag=tag: log(tag + m) if m.startswith(
                             ("gen", "best", "resum")) else None)
      runs[name].append(res)
      curves[f"{name} seed {seed}"] = res.get("curve", [])
  out = _summary(runs, names, main, seeds, config)
  out["final_config"] = final_config
  out["main_run"] = {k: main[k] for k in ("best_member_id", "best_test_accuracy")}
  out = workdir_lib.to_jsonable(out)
  workdir_lib.write_json(path, out)
  log(out["table"])
  try:
    log(f"wrote {lineage.plot_accuracy_curves(curves, os.path.join(workdir, 'accuracy.png'))}")
  except (OSError, ValueError) as e:
    log(f"could not write accuracy.png: {e}")
  return out


def _summary(runs: dict, names: list, main: dict, seeds: list, config) -> dict:
  f = config.final
  out = {"metric": "test accuracy of the best-validation member", "seeds": seeds,
         "steps_per_member": main["steps_per_member"],
         "population_size": config.search.population_size, "methods": {}, "welch": {}}
  for name in names:
    acc = [r["best_test_accuracy"] for r in runs[name]]
    out["methods"][name] = {
        "runs": acc, "mean": float(np.mean(acc)), "std": float(np.std(acc, ddof=1)),
        "validation": [r["best_validation_accuracy"] for r in runs[name]],
        "mean_member_test": [r["mean_test_accuracy"] for r in runs[name]]}
  for name in names[1:]:
    w = stats.welch_ttest(out["methods"][names[0]]["runs"], out["methods"][name]["runs"],
                          alternative=f.alternative)
    out["welch"][name] = {**w._asdict(), "alternative": f.alternative}
  out["table"] = format_comparison(out, names[0])
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
