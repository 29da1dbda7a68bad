"""NLFS's progress lines, results files and plots (``best_loss.txt``, ``results.json``,
``phenotype.png``, ``fitness.png``)."""

from __future__ import annotations

import os
from typing import Optional

import numpy as np

from glojax import workdir as workdir_lib


def progress_line(record: dict, steps: int) -> str:
  """One line per step: the initial population's scoring, or an evolution step."""
  c = record["counters"]
  rej = {k: v for k, v in record["rejections"].items() if v}
  if record["phase"] == "initial":
    f = np.asarray(record["fitness"])
    return (f"initial {record['scored']}/{record['of']} scored  best {f.max():.4f}  "
            f"stopped {record['stopped']}  NaN {record['nan']}  "
            f"{record['wall_time_s']:.1f}s")
  kids = " ".join(f"{k['fitness']:.3f}" for k in record["children"]) or "-"
  return (f"step {record['step']}/{steps}  best {record['best']:.4f}  "
          f"mean {record['mean']:.4f}  median {record['median']:.4f}  children [{kids}]  "
          f"trainings {int(c['trainings'])}  redo {int(c['redo'])}  early-stopped "
          f"{int(c['early_stopped'] + c['early_rejected'])}  failed mutations "
          f"{record['failed_mutations']}  rejected {rej}  {record['wall_time_s']:.1f}s")


def write_outputs(workdir: str, results: dict, history: list, log) -> None:
  """The results files and the summary lines (counts by kind, early-stopping saving)."""
  c, rej = results["counters"], results["rejections"]
  if results["best"] is not None:
    workdir_lib.write_text(os.path.join(workdir, "best_loss.txt"),
                           results["best"]["spec"] + "\n")
    log(f"best graph (validation {results['best']['fitness']:.4f}): "
        f"{results['best']['spec']}\n{results['best']['graph']}")
  workdir_lib.write_json(os.path.join(workdir, "results.json"), results)
  log(f"{int(c['trainings'])} trainings ({int(c['children'])} children kept, "
      f"{int(c['redo'])} redone, {int(c['nan'])} NaN); mutation attempts "
      f"{int(c['mutation_attempts'])}, failed mutations {int(c['mutation_failed'])}; "
      f"integrity rejections {dict((k, v) for k, v in rej.items() if v)}")
  stopped = int(c["early_stopped"] + c["early_rejected"] + c["prescreen_rejected"])
  total = c["steps_trained"] + c["steps_saved"]
  # Time saved: the stopped steps at the run's measured cost per trained step.
  saved_seconds = c["steps_saved"] * c["train_seconds"] / max(c["steps_trained"], 1)
  log(f"early stopping: {stopped} trainings stopped ({int(c['early_rejected'])} "
      f"rejected, {int(c['early_stopped'])} kept their validation accuracy, "
      f"{int(c['prescreen_rejected'])} failed the prescreen); "
      f"{int(c['steps_saved'])} of {int(total)} candidate-steps saved "
      f"({c['steps_saved'] / max(total, 1):.0%}), ≈{saved_seconds:.0f}s of "
      f"{c['train_seconds'] + saved_seconds:.0f}s training")
  if results["archive"]:
    plot_phenotypes(os.path.join(workdir, "phenotype.png"), results, log)
  plot_history(workdir, history, log)


def plot_phenotypes(path: str, results: dict, log=print, top: int = 3) -> Optional[str]:
  """Binary phenotypes (normalized, NLFS Fig. 2 style) of the best graphs and CE."""
  try:
    from glojax.analysis.phenotype import plot_binary_phenotypes
  except ImportError:
    return None
  losses = {f"#{i + 1} ({e['fitness']:.3f}): {e['spec'][5:]}": e["spec"]
            for i, e in enumerate(results["archive"][:top])}
  losses["cross-entropy"] = "cross_entropy"
  out = plot_binary_phenotypes(losses, path, normalize=True)
  log(f"wrote {out}")
  return out


def plot_history(workdir: str, history: list, log) -> None:
  """``fitness.png``: population best / median and best ever, per evolution step."""
  evo = [r for r in history if r["phase"] == "evolve"]
  if not evo:
    return
  try:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
  except ImportError:
    return
  fig = Figure(figsize=(7, 4), dpi=100)
  FigureCanvasAgg(fig)
  ax = fig.add_subplot(1, 1, 1)
  x = [r["step"] for r in evo]
  for name in ("best", "median"):
    ax.plot(x, [r[name] for r in evo], marker="o", ms=3, label=f"population {name}")
  ax.plot(x, [r.get("best_ever", np.nan) for r in evo], "k--", lw=1, label="best ever")
  ax.set_xlabel("evolution step")
  ax.set_ylabel("validation accuracy")
  ax.set_title("NLFS regularized evolution")
  ax.legend(loc="lower right")
  ax.grid(alpha=0.3)
  fig.tight_layout()
  path = os.path.join(workdir, "fitness.png")
  fig.savefig(path)
  log(f"wrote {path}")
