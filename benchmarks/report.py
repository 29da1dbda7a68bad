r"""Merges ``benchmarks/population.py`` JSON results into Markdown tables for BENCHMARKS.md.

Usage::

  .venv/bin/python benchmarks/report.py benchmarks/results/cpu_*.json

Prints, per model, candidate-steps/s for each K (rows) and strategy (columns) with the
fastest marked in bold, what ``strategy="auto"`` resolves to on this backend, and the
compile times, XLA FLOP/s and memory of the measured programs.
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from glojax.train.population import resolve_strategy  # noqa: E402

ORDER = ["vmap", "unroll", "unroll_all_k", "sequential", "naive", "sharded"]


def tables(reports: list[dict]) -> str:
  rows = [r for rep in reports for r in rep["results"]]
  out = []
  for model in dict.fromkeys(r["model"] for r in rows):
    mine = [r for r in rows if r["model"] == model]
    strategies = [s for s in ORDER if any(r["strategy"] == s for r in mine)]
    steps = mine[0]["steps"]
    out.append(f"### {model} ({steps} steps per run)\n")
    out.append("| K | " + " | ".join(strategies) + " | auto → |")
    out.append("|---:|" + "---:|" * len(strategies) + "---|")
    for k in sorted({r["k"] for r in mine}):
      by = {r["strategy"]: r for r in mine if r["k"] == k}
      best = max((by[s]["cand_steps_per_s"] for s in strategies if s in by), default=0)
      cells = []
      for s in strategies:
        if s not in by:
          cells.append("—")
          continue
        v = by[s]["cand_steps_per_s"]
        cells.append(f"**{v:.1f}**" if v == best else f"{v:.1f}")
      out.append(f"| {k} | " + " | ".join(cells) + f" | {resolve_strategy('auto', model)} |")
    out.append("")
    out.append("| K | strategy | compile s | GFLOP/s | % of peak | memory MB |")
    out.append("|---:|---|---:|---:|---:|---:|")
    for r in sorted(mine, key=lambda r: (r["k"], ORDER.index(r["strategy"]))):
      if r["strategy"] == "naive":
        continue
      out.append(f"| {r['k']} | {r['strategy']} | {r['compile_s']:.1f} | "
                 f"{r['achieved_gflops']:.1f} | {100 * r['fraction_of_peak']:.1f} | "
                 f"{r.get('peak_mem_mb', float('nan')):.0f} |")
    out.append("")
  return "\n".join(out)


def main(paths: list[str]) -> int:
  reports = [json.load(open(p)) for p in paths]
  m = reports[0]["machine"]
  print(f"Machine: {m.get('cpu')} — {m['cpu_count']} cores, backend {m['backend']}, "
        f"jax {m['jax']}; nominal peak {reports[0]['peak_gflops']:.0f} GFLOP/s "
        f"({reports[0]['peak_note']}); load average at start "
        f"{[round(x, 2) for x in m.get('load_average_at_start', [])]}\n")
  print(tables(reports))
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
