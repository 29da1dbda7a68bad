r"""Merges ``benchmarks/population.py`` JSON results into Markdown tables for BENCHMARKS.md.

Usage::

  python benchmarks/report.py benchmarks/results/cpu_peer.json benchmarks/results/cpu_*.json

Prints, per result file, its conditions (machine, load average at start and end, peer
threads), then

* when the run timed the PyTorch peer: one row per (model, K) with glojax ``auto``, the
  ``before`` variant, the peer (medians and ranges over the repetitions), the ratios,
  the evaluation cost per candidate and the fraction of the measured roofline;
* per model: candidate-steps/s for each K (rows) and strategy (columns), the fastest in
  bold, with what ``strategy="auto"`` resolves to now; then compile times, memory and
  the fraction of the roofline.
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from glojax.train.population import resolve_strategy  # noqa: E402

ORDER = ["auto", "before", "vmap", "unroll", "sequential", "naive"]


def _order(strategy: str) -> tuple:
  base, _, group = strategy.partition("@")
  return (ORDER.index(base) if base in ORDER else len(ORDER), int(group or 0))


def conditions(report: dict) -> str:
  m = report["machine"]
  load = lambda key: [round(x, 1) for x in m.get(key, [])]
  roof = next((r["roofline"] for r in report["results"] if r.get("roofline")), {})
  probes = "; ".join(f"{p['name']}: {p['gflops']:.0f} GFLOP/s (best {p['best_gflops']:.0f})"
                     for p in roof.values())
  return (f"{m.get('cpu')}, {m['cpu_count']} cores, jax {m['jax']}"
          + (f", torch {m['torch']}" if m.get("torch") else "")
          + f"; load average (1/5/15 min) {load('load_average_at_start')} at start, "
          f"{load('load_average_at_end')} at end; peer: {report.get('peer', '—')}"
          + (f"; roofline probes (first model): {probes}" if probes else ""))


def _range(lo: float, hi: float) -> str:
  return f"{lo:,.0f}–{hi:,.0f}" if hi >= 10 else f"{lo:.1f}–{hi:.1f}"


def peer_table(rows: list[dict]) -> str:
  rows = [r for r in rows if "peer" in r]
  if not rows:
    return ""
  out = ["| model | K | glojax `auto` | before (flax pool, unroll 4) | PyTorch one at a time "
         "| ratio | ratio before | eval ms/cand glojax / PyTorch | % roofline (before) |",
         "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
  for (model, k) in dict.fromkeys((r["model"], r["k"]) for r in rows):
    by = {r["strategy"]: r for r in rows if r["model"] == model and r["k"] == k}
    a, b = by.get("auto"), by.get("before")
    if a is None:
      continue
    p = a["peer"]
    cell = lambda r: f"{r['cand_steps_per_s']:,.1f} ({_range(*r['range'])})"
    out.append(
        f"| {model} | {k} | {cell(a)} | {cell(b) if b else '—'} | {p['median']:,.1f} "
        f"({_range(p['min'], p['max'])}; {p['threads']} thr) | **{a['ratio']:.2f}×** | "
        + (f"{b['ratio']:.2f}×" if b else "—")
        + f" | {a['eval_ms_per_cand']:.1f} / {p['eval_ms_per_cand']:.1f} | "
        f"{100 * a['fraction_of_roofline']:.0f} %"
        + (f" ({100 * b['fraction_of_roofline']:.0f} %)" if b else "") + " |")
  return "\n".join(out)


def strategy_tables(rows: list[dict]) -> str:
  out = []
  for model in dict.fromkeys(r["model"] for r in rows):
    mine = [r for r in rows if r["model"] == model]
    strategies = sorted(dict.fromkeys(r["strategy"] for r in mine), key=_order)
    out.append(f"### {model} ({mine[0]['steps']} steps per run)\n")
    out.append("| K | " + " | ".join(strategies) + " | auto → |")
    out.append("|---:|" + "---:|" * len(strategies) + "---|")
    for k in sorted({r["k"] for r in mine}):
      by = {r["strategy"]: r for r in mine if r["k"] == k}
      best = max(by[s]["cand_steps_per_s"] for s in strategies if s in by)
      cells = []
      for s in strategies:
        if s not in by:
          cells.append("—")
          continue
        v = by[s]["cand_steps_per_s"]
        cells.append(f"**{v:,.1f}**" if v == best else f"{v:,.1f}")
      out.append(f"| {k} | " + " | ".join(cells) + f" | {resolve_strategy('auto', model)} |")
    out.append("")
    out.append("| K | strategy | compile s | eval ms/cand | GFLOP/s | % roofline | memory MB |")
    out.append("|---:|---|---:|---:|---:|---:|---:|")
    for r in sorted(mine, key=lambda r: (r["k"], _order(r["strategy"]))):
      out.append(f"| {r['k']} | {r['strategy']} | {r['compile_s']:.1f} | "
                 f"{r['eval_ms_per_cand']:.1f} | {r['achieved_gflops']:.1f} | "
                 f"{100 * r['fraction_of_roofline']:.0f} | {r.get('peak_mem_mb', float('nan')):.0f} |")
    out.append("")
  return "\n".join(out)


def main(paths: list[str]) -> int:
  for path in paths:
    report = json.load(open(path))
    print(f"**{os.path.basename(path)}**: {conditions(report)}\n")
    table = peer_table(report["results"])
    if table:
      print(table + "\n")
    print(strategy_tables(report["results"]))
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
