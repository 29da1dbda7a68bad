"""Analysis report for losses and search workdirs (used by ``experiments/analyze.py``).

:func:`analyze` writes, into an output folder, the plots that apply and a short report as
``report.md`` and ``report.json``:

* for every loss spec: null-epoch γ, the trainability invariant, the attraction curve's range
  and sign changes; for TaylorGLO specs also θ, the c-coefficients and a/b/c (ch. 6);
  one ``attraction.png`` with all losses;
* for a workdir: ``fitness_curves.png`` from ``log.jsonl``, the best generation (counted
  from 1, with its phase), the loss in
  ``best_loss.txt`` (analysed as above) and, if present, the final comparison of
  ``final.json`` as a table row (mean (std), Welch p, stars).
"""

from __future__ import annotations

import json
import math
import os
from typing import Sequence

import numpy as np

from glojax import workdir as workdir_lib
from glojax.analysis import plots, stats, theory


def _finite(v):
  v = float(v)
  return v if math.isfinite(v) else None


def _sign_changes(eps, strength):
  s = np.sign(np.asarray(strength))
  idx = np.nonzero(s[:-1] * s[1:] < 0)[0]
  return [float(0.5 * (eps[i] + eps[i + 1])) for i in idx]


def analyze_loss(spec: str, num_classes: int, eps_grid=None) -> tuple:
  """Ch. 6 summary of one loss spec.

  Args:
    spec: a ``glojax.losses.get`` spec, e.g. ``"baikal"`` or ``"taylorglo(theta=[...])"``.
    num_classes: n.
    eps_grid: ε values for the attraction curve (default: 199 points in (0, 1)).

  Returns:
    ``(summary, curve)``: ``curve`` the :class:`~glojax.analysis.theory.CharacteristicCurve`
    and ``summary`` a JSON-able dict with ``spec``, ``null_epoch`` (centred γ, mean class
    reduction),
    ``trainable`` (theorem 6.5.1 generalised, see ``theory.is_trainable_loss``),
    ``attraction`` (min, max, sign changes in ε) and, for TaylorGLO, ``theta``,
    ``c_coefficients``, ``zero_error`` (a, b, c), ``null_epoch_raw`` and ``invariant``
    (theorem and centred rules).

  Raises:
    ValueError: on an unknown or malformed spec (from the loss registry).
  """
  from glojax import losses
  loss = losses.get(spec)
  curve = theory.characteristic_curve(loss, num_classes, eps_grid)
  ne = theory.null_epoch(loss, num_classes)
  eps = np.asarray(curve.eps)
  strength = np.asarray(curve.strength)
  out = {
      "spec": loss.spec,
      "null_epoch": {"gamma_nontarget": _finite(ne.gamma_nontarget),
                     "gamma_target": _finite(ne.gamma_target)},
      "trainable": bool(theory.is_trainable_loss(loss, num_classes)),
      "attraction": {"min": _finite(np.nanmin(strength)), "max": _finite(np.nanmax(strength)),
                     "sign_changes_at_eps": _sign_changes(eps, strength),
                     "finite": bool(np.all(np.isfinite(strength)))},
  }
  if getattr(loss, "name", None) == "taylorglo":
    theta = np.asarray(loss.params, np.float64)
    c = theory.c_coefficients(theta)
    abc = theory.zero_error_coefficients(theta)
    raw = theory.null_epoch(theta, num_classes)
    out["theta"] = theta.tolist()
    out["c_coefficients"] = {k: float(v) for k, v in c._asdict().items()}
    out["zero_error"] = {k: float(v) for k, v in abc._asdict().items()}
    out["null_epoch_raw"] = {"gamma_nontarget": float(raw.gamma_nontarget),
                             "gamma_target": float(raw.gamma_target)}
    out["invariant"] = {
        "theorem": bool(theory.is_trainable(theta, num_classes)),
        "centred": bool(theory.is_trainable(theta, num_classes, rule="centred"))}
  return out, curve


def _workdir_summary(workdir: str, output_dir: str) -> dict:
  log = plots.read_fitness_log(workdir)
  plots.plot_fitness_curves(workdir, os.path.join(output_dir, "fitness_curves.png"),
                            search="Fitness per generation")
  best = np.asarray(log["best"], dtype=np.float64)
  i = int(np.nanargmax(np.where(np.isfinite(best), best, -np.inf)))
  # Generations are counted from 1 here, as on the console and in the plots; log.jsonl
  # stores them from 0.
  out = {"workdir": os.path.abspath(workdir), "generations": int(len(log["generation"])),
         "best_fitness": _finite(best[i]), "best_generation": int(log["generation"][i]) + 1,
         "best_phase": log["phase"][i], "fitness": plots.fitness_description(workdir),
         "last_mean": _finite(log["mean"][-1]), "last_median": _finite(log["median"][-1]),
         "plot": "fitness_curves.png"}
  best_path = os.path.join(workdir, "best_loss.txt")
  if os.path.exists(best_path):
    with open(best_path) as f:
      out["best_loss"] = f.read().strip()
  final_path = os.path.join(workdir, "final.json")
  if os.path.exists(final_path):
    with open(final_path) as f:
      final = json.load(f)
    try:
      cand, base = final["candidate"], final["baseline"]
      alternative = final.get("welch", {}).get("alternative", "greater")
      out["final_row"] = stats.format_table_row(
          f"{cand.get('name', 'candidate')} vs {base.get('name', 'baseline')}",
          cand["runs"], base["runs"], alternative=alternative)
    except (KeyError, TypeError, ValueError) as e:
      out["final_row_error"] = f"final.json not usable: {e}"
  return out


def analyze(loss_specs: Sequence[str] = (), workdir: str | None = None, *,
            output_dir: str, num_classes: int = 10) -> dict:
  """Writes plots and ``report.md`` / ``report.json`` for losses and/or a search workdir.

  Args:
    loss_specs: loss spec strings to analyse (may be empty if ``workdir`` is given).
    workdir: a search workdir with ``log.jsonl`` (optionally ``best_loss.txt``,
      ``final.json``); its best loss is analysed too.
    output_dir: folder for ``attraction.png``, ``fitness_curves.png``, ``report.md``,
      ``report.json`` (created if missing).
    num_classes: n for the theory (default 10).

  Returns:
    The report dict (also written as ``report.json``).

  Raises:
    ValueError: if neither losses nor a workdir is given, on a bad spec, or a bad ``n``.
    FileNotFoundError: if ``workdir`` has no ``log.jsonl``.
  """
  specs = list(loss_specs)
  if not specs and workdir is None:
    raise ValueError("analyze: give at least one loss spec or a workdir.")
  if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
    raise ValueError(f"analyze: num_classes must be an int >= 2, got {num_classes!r}.")
  os.makedirs(output_dir, exist_ok=True)
  report = {"num_classes": num_classes, "losses": [], "workdir": None}
  if workdir is not None:
    report["workdir"] = _workdir_summary(workdir, output_dir)
    if "best_loss" in report["workdir"] and report["workdir"]["best_loss"] not in specs:
      specs.append(report["workdir"]["best_loss"])
  curves = {}
  for spec in specs:
    summary, curve = analyze_loss(spec, num_classes)
    report["losses"].append(summary)
    curves[summary["spec"] if len(summary["spec"]) < 40 else summary["spec"][:37] + "..."] = curve
  if curves:
    title = (f"Attraction to zero training error (eq. 6.51), n = {num_classes}"
             + (f"; {plots.run_description(workdir)}" if workdir is not None else ""))
    plots.plot_attraction_curves(curves, num_classes, os.path.join(output_dir, "attraction.png"),
                                 title=title)
    report["attraction_plot"] = "attraction.png"
  # The workdir contract of every binary: strict JSON (NaN -> null), atomic writes.
  workdir_lib.write_json(os.path.join(output_dir, "report.json"), report)
  workdir_lib.write_text(os.path.join(output_dir, "report.md"), _markdown(report))
  return report


def _fmt(v, digits=4):
  return "n/a" if v is None else f"{v:.{digits}g}"


def _markdown(report: dict) -> str:
  n = report["num_classes"]
  lines = [f"# glojax analysis (n = {n} classes)", ""]
  wd = report["workdir"]
  if wd:
    lines += ["## Search", "",
              f"* workdir: `{wd['workdir']}` — {wd['generations']} generations",
              f"* fitness: {wd['fitness']}",
              f"* best fitness {_fmt(wd['best_fitness'])} at generation {wd['best_generation']}"
              f"{'' if wd['best_phase'] == 'search' else ' of phase ' + wd['best_phase']}"
              f" (counted from 1); last generation mean {_fmt(wd['last_mean'])}, median "
              f"{_fmt(wd['last_median'])}",
              "* plot: `fitness_curves.png`"]
    if "best_loss" in wd:
      lines.append(f"* best loss: `{wd['best_loss']}`")
    if "final_row" in wd:
      lines += ["", "| comparison | baseline | candidate | p (Welch, one-tailed) |",
                "|---|---|---|---|", "| " + wd["final_row"] + " |"]
    lines.append("")
  if report["losses"]:
    lines += ["## Losses (dissertation ch. 6)", "",
              "γ: centred null-epoch update coefficients (eq. 6.3 at h = 1/n); trainable: "
              "theorem 6.5.1 via γ; attraction: eq. 6.51 (corrected) over ε ∈ (0, 1), "
              "plot `attraction.png`.", "",
              "| loss | γ non-target | γ target | trainable | attraction min / max | "
              "sign changes at ε |", "|---|---|---|---|---|---|"]
    for s in report["losses"]:
      a = s["attraction"]
      changes = ", ".join(f"{e:.3f}" for e in a["sign_changes_at_eps"]) or "none"
      lines.append(f"| `{s['spec']}` | {_fmt(s['null_epoch']['gamma_nontarget'])} | "
                   f"{_fmt(s['null_epoch']['gamma_target'])} | {'yes' if s['trainable'] else 'NO'}"
                   f" | {_fmt(a['min'], 3)} / {_fmt(a['max'], 3)} | {changes} |")
    for s in report["losses"]:
      if "c_coefficients" in s:
        c, z, inv = s["c_coefficients"], s["zero_error"], s["invariant"]
        raw = s["null_epoch_raw"]
        lines += ["", f"### `{s['spec']}`", "",
                  "* c-coefficients (eqs. 6.19–6.24): " + ", ".join(
                      f"{k} = {_fmt(v, 6)}" for k, v in c.items()),
                  f"* zero-error a, b, c (eqs. 6.33–6.35): {_fmt(z['a'], 6)}, {_fmt(z['b'], 6)},"
                  f" {_fmt(z['c'], 6)}",
                  f"* null epoch γ (eq. 6.47): non-target {_fmt(raw['gamma_nontarget'], 6)},"
                  f" target {_fmt(raw['gamma_target'], 6)}",
                  f"* invariant (theorem 6.5.1): {'passes' if inv['theorem'] else 'FAILS'};"
                  f" centred rule: {'passes' if inv['centred'] else 'FAILS'}"]
  return "\n".join(lines) + "\n"
