"""NLFS's loss-function elimination protocol (§3.9), run on a finished search's workdir.

The best ``N₁`` graphs found over the whole search (the search's archive, ranked by
search fitness) are retrained from scratch with ``S₁`` steps and ranked by validation
accuracy; the best ``N₂`` of them are retrained from scratch with ``S₂`` steps, and so
on (``elimination.rounds = [[N₁, S₁], [N₂, S₂], ...]``; the paper: 150 → 50 → 25 → 10
losses with 16,000 → 32,000 → 48,000 → 64,000 EfficientNetV2-S steps, one run each).
Each round trains ``elimination.repeats`` runs per loss (ranked by their mean). Finally the
survivors of the last round and cross-entropy (NLFS Table 5: ``-(1/n) Σ x ln(y + ε)``, as a
graph through the same compiled program) are trained ``final_repeats`` times (5, as in
Tables 9–11) with the last round's steps and the same keys per run index; the table
reports mean ± std of the validation accuracy and Welch's t-test of each loss against
cross-entropy (:func:`glojax.analysis.stats.welch_ttest`).

All runs of a round train as one population (:func:`evaluate_population`). The protocol is
resumable: ``elimination.json`` in the workdir records each finished round; a rerun
continues after the last one. The paper also moved through the phases of progressive
RandAugment from round to round; here every round uses ``elimination.train`` (a fixed
recipe, e.g. RandAugment at a fixed magnitude) with its own step count.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from glojax import workdir as workdir_lib
from glojax.analysis import stats
from glojax.expr import graph as graph_lib
from glojax.search import driver
from glojax.search.nlfs import NLFS, graph_loss_fn
from glojax.search.nlfs_config import Config, sub_config
from glojax.search.nlfs_steps import take_rows
from glojax.train.population import evaluate_population

RESULT_FILE = "elimination.json"


def _archive(search: NLFS, workdir: str) -> list[tuple[graph_lib.Graph, float]]:
  """The search's archive (best graphs ever evaluated, fittest first)."""
  loaded = driver.load(search, workdir)
  if loaded is None:
    raise ValueError(f"workdir {workdir!r} holds no NLFS checkpoint; run "
                     "experiments/nlfs.py on it first")
  state = loaded[0]
  if not search.done(state):
    raise ValueError(f"the search in {workdir!r} has not finished (step "
                     f"{int(state.step)} of {search.config.search.steps}); finish it "
                     "first")
  rows = take_rows(state.archive, np.arange(int(state.archive_count)))
  return list(zip(graph_lib.unstack(rows), rows["fitness"].tolist()))


def _train(config: Config, graphs: list, steps: int, repeats: int, seed: int
           ) -> np.ndarray:
  """Validation accuracy ``float32[len(graphs), repeats]``; run ``r`` of every loss uses
  the same key."""
  run_cfg = sub_config(config, config.elimination)
  run_cfg = dataclasses.replace(run_cfg, train=dataclasses.replace(run_cfg.train,
                                                                   steps=steps))
  problem = driver.Problem.build(run_cfg)
  trainer = problem.trainer(graph_loss_fn(), run_cfg, loss_key="nlfs-graph")
  keys = jax.random.split(jax.random.PRNGKey(seed), repeats)
  programs = graph_lib.encode_population([g for g in graphs for _ in range(repeats)])
  all_keys = jnp.tile(keys, (len(graphs), 1))
  result = evaluate_population(trainer, programs, all_keys,
                               strategy=config.search.strategy,
                               nan_retries=config.search.nan_retries,
                               model_name=problem.model_name)
  return np.asarray(result.fitness, np.float32).reshape(len(graphs), repeats)


def format_table(final: dict) -> str:
  """The final comparison as a Markdown table (NLFS Tables 8–9 layout)."""
  lines = [f"Validation accuracy after {final['steps']} steps, {final['repeats']} runs each "
           f"(mean ± std; Welch's t-test vs cross-entropy, {final['alternative']})", "",
           "| rank | loss | accuracy | p |", "|---|---|---|---|"]
  for i, row in enumerate(final["losses"], 1):
    p = "-" if row["p"] is None else f"{row['p']:.3g}"
    lines.append(f"| {i} | `{row['spec']}` | {row['mean']:.4f} ± {row['std']:.4f} | {p} |")
  ce = final["cross_entropy"]
  lines.append(f"| - | cross-entropy `{ce['spec']}` | {ce['mean']:.4f} ± {ce['std']:.4f} | - |")
  return "\n".join(lines)


def _round(config: Config, ranked: list, index: int, log) -> tuple[list, dict]:
  """Round ``index``: retrains the best ``N`` of ``ranked``; returns the new ranking and
  the round's record."""
  e = config.elimination
  n, steps = e.rounds[index]
  pool = ranked[:n]
  t0 = time.time()
  log(f"elimination round {index + 1}/{len(e.rounds)}: {len(pool)} losses × "
      f"{e.repeats} runs, {steps} steps each")
  acc = _train(config, [g for g, _ in pool], steps, e.repeats, e.seed + index)
  means = acc.mean(axis=1)
  order = np.argsort(-means, kind="stable")
  ranked = [(pool[i][0], float(means[i])) for i in order]
  log(f"  best: {ranked[0][1]:.4f} {graph_lib.to_spec(ranked[0][0])}  "
      f"({time.time() - t0:.0f}s)")
  return ranked, {
      "losses": len(pool), "steps": steps, "seconds": time.time() - t0,
      "ranking": [{"spec": graph_lib.to_spec(pool[i][0]), "mean": float(means[i]),
                   "runs": acc[i].tolist()} for i in order]}


def _final(config: Config, ranked: list, log) -> dict:
  """The survivors and cross-entropy, ``final_repeats`` runs each, Welch's test."""
  e = config.elimination
  survivors = [g for g, _ in ranked[:e.rounds[-1][0]]]
  ce = graph_lib.KNOWN_GRAPHS["cross_entropy"]
  steps = e.rounds[-1][1]
  log(f"final: {len(survivors)} losses and cross-entropy × {e.final_repeats} runs, "
      f"{steps} steps each")
  acc = _train(config, survivors + [ce], steps, e.final_repeats, e.seed + 1000)
  ce_runs = acc[-1]
  rows = []
  for g, runs in zip(survivors, acc[:-1]):
    p = stats.welch_ttest(runs, ce_runs, alternative=e.alternative).p \
        if np.ptp(np.concatenate([runs, ce_runs])) > 0 else None
    rows.append({"spec": graph_lib.to_spec(g), "runs": runs.tolist(),
                 "mean": float(runs.mean()), "std": float(runs.std(ddof=1)),
                 "p": None if p is None or not np.isfinite(p) else float(p)})
  rows.sort(key=lambda r: -r["mean"])
  return {"steps": steps, "repeats": e.final_repeats, "alternative": e.alternative,
          "losses": rows,
          "cross_entropy": {"spec": graph_lib.to_spec(ce), "runs": ce_runs.tolist(),
                            "mean": float(ce_runs.mean()),
                            "std": float(ce_runs.std(ddof=1))}}


def eliminate(config, workdir: str, *, log: Callable[[str], None] = print) -> dict:
  """Runs (or resumes) the elimination protocol on a finished NLFS search in ``workdir``.

  Args:
    config: the search's config (its ``elimination`` section drives this).
    workdir: the search's workdir.
    log: progress printer.

  Returns:
    ``{"rounds": [...], "final": {...}, "table": str}``; also written to
    ``elimination.json`` (and the table to ``elimination.md``).

  Raises:
    ValueError: for a bad config, a workdir without a finished search, or one whose
      config differs from ``config`` (other than the resumable keys).
  """
  typed, cfg = driver.parse_config(NLFS, config)
  search = NLFS(typed)
  if not os.path.exists(os.path.join(workdir, workdir_lib.CHECKPOINT_FILE)):
    raise ValueError(f"workdir {workdir!r} holds no NLFS checkpoint; run "
                     "experiments/nlfs.py on it first")
  workdir_lib.prepare(workdir, cfg, defaults=NLFS.default_config(),
                      resumable_keys=NLFS.resumable_keys)
  ranked = _archive(search, workdir)
  if not ranked:
    raise ValueError(f"the search in {workdir!r} evaluated no graph")
  path = os.path.join(workdir, RESULT_FILE)
  e_plain = json.loads(workdir_lib.dumps(typed.elimination.to_dict()))
  done = {"rounds": [], "final": None}
  if os.path.exists(path):
    with open(path) as f:
      previous = json.load(f)
    if previous.get("config") == e_plain:
      done = previous
  for r in done["rounds"]:      # replay finished rounds' rankings
    by_spec = {graph_lib.to_spec(g): g for g, _ in ranked}
    ranked = [(by_spec[row["spec"]], row["mean"]) for row in r["ranking"]]
  for index in range(len(done["rounds"]), len(typed.elimination.rounds)):
    ranked, record = _round(typed, ranked, index, log)
    done["rounds"].append(record)
    done["config"] = e_plain
    workdir_lib.write_json(path, done)
  if done["final"] is None:
    done["final"] = _final(typed, ranked, log)
    done["config"] = e_plain
    workdir_lib.write_json(path, done)
  table = format_table(done["final"])
  workdir_lib.write_text(os.path.join(workdir, "elimination.md"), table + "\n")
  log(table)
  return {**done, "table": table}
