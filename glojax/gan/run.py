"""Runs a GAN loss search in a workdir: checkpoint every generation, resume on rerun.

Files (see :mod:`glojax.search.common` for the workdir contract): ``config.json``,
``log.jsonl`` (one record per generation), ``checkpoint.npz`` (the whole
:class:`~glojax.gan.search.GanSearchState`), ``embedding.npz`` (the perceptual network,
trained once), ``samples/gen_NNN.png`` (inputs, the best candidate's samples, targets),
``best_loss.txt`` (the best genome as a ``gan_taylor(...)`` spec), ``fitness.png``,
``final.json`` + ``final.md`` + ``samples/final.png`` (test-split comparison).
"""

from __future__ import annotations

import json
import os
from typing import Callable, Optional

import jax
import numpy as np

from glojax.gan import final as final_lib
from glojax.gan import plots
from glojax.gan import search as search_lib
from glojax.search import common

_PURPOSE_INIT, _PURPOSE_STEP = 0, 1


def run(config, workdir: str, *, log: Callable[[str], None] = print,
        on_generation: Optional[Callable[[int, dict], None]] = None) -> dict:
  """Runs (or resumes) a GAN loss search and its final comparison in ``workdir``.

  Args:
    config: a ConfigDict/mapping with the keys of
      :func:`glojax.gan.search.default_config`.
    workdir: the run's folder; rerunning on it resumes after the last finished
      generation (``search.generations`` and ``final.*`` may change on resume).
    log: progress printer (one line per generation).
    on_generation: optional ``(generation, record)`` callback after each checkpoint
      (tests use it to interrupt a run).

  Returns:
    :meth:`GanSearch.finalize`'s dict (``best_spec``, ``best_fitness``, ``final``).

  Raises:
    ValueError: for a bad config, or a workdir holding a different run.
    FileNotFoundError: if the data set is not installed.
  """
  search = search_lib.GanSearch(config, log=log)  # validates before touching workdir
  cfg = search.cfg
  resumed = common.prepare_workdir(workdir, cfg, search_lib.RESUMABLE_KEYS,
                                   defaults=common.config_to_dict(
                                       search_lib.default_config()))
  search.build(os.path.join(workdir, search_lib.EMBEDDING_FILE))
  s = cfg["search"]
  log(f"GAN loss search: {search.dataset.describe()}; population {s['population_size']}, "
      f"{s['generations']} generations, {cfg['train']['steps']} steps per candidate; "
      f"workdir {workdir}")
  state = search.init(common.generation_key(cfg["seed"], 0, _PURPOSE_INIT))
  history: list[dict] = []
  ckpt = common.load_checkpoint(workdir, ("history",)) if resumed else None
  if ckpt is not None:
    arrays, meta = ckpt
    try:
      state = common.unflatten_state("state", arrays, state)
    except ValueError as e:
      raise ValueError(f"{os.path.join(workdir, common.CHECKPOINT_FILE)}: {e}") from None
    history = meta["history"]
    log(f"resuming after generation {int(state.generation)}")
  common.write_log(workdir, history)

  while int(state.generation) < s["generations"]:
    g = int(state.generation)
    state, record = search.step(state, common.generation_key(cfg["seed"], g + 1,
                                                             _PURPOSE_STEP))
    grid = os.path.join(workdir, "samples", f"gen_{g + 1:03d}.png")
    _sample_grid(search, search.last_samples, grid,
                 f"generation {g + 1}: best candidate (fitness {record['best']})")
    record["sample_grid"] = os.path.relpath(grid, workdir)
    history.append(record)
    common.save_checkpoint(workdir, common.flatten_state("state", state),
                           {"history": history})
    common.append_log(workdir, record)
    log(f"gen {g + 1:3d}/{s['generations']}  best {_fmt(record['best'])}  "
        f"median {_fmt(record['median'])}  best-ever {_fmt(record['best_ever'])}  "
        f"failed {record['failed']}/{s['population_size']}  "
        f"{record['wall_time_s']:.0f}s")
    if on_generation is not None:
      on_generation(g, record)

  best = search.best_spec(state)
  if best is not None:
    common.write_text(os.path.join(workdir, "best_loss.txt"), best + "\n")
    log(f"best validation fitness {float(state.best_fitness):.4f} (generation "
        f"{int(state.best_generation) + 1}): {best}")
  _plot_fitness(workdir, history, log)
  return _final(search, state, workdir, log)


def _final(search, state, workdir: str, log) -> dict:
  cfg = search.cfg
  path = os.path.join(workdir, "final.json")
  best = search.best_spec(state)
  if os.path.exists(path):  # a finished run: reuse instead of retraining
    with open(path) as f:
      saved = json.load(f)
    if saved.get("best_spec") == best and saved.get("config_final") == cfg["final"]:
      log(f"final comparison already in {path}")
      return saved["results"]
  results = search.finalize(state)
  if results["final"]:
    rows = results["final"]
    samples = {k: r.pop("samples") for k, r in rows.items()}
    table = final_lib.table(rows)
    log("test split, mean ± std over seeds:\n" + table)
    common.write_text(os.path.join(workdir, "final.md"), table + "\n")
    ds = search.dataset.test
    n = search.train_config.num_samples
    grid = {"input": ds.inputs[:n]}
    grid.update({_label(k): v for k, v in samples.items()})
    grid["target"] = ds.targets[:n]
    plots.image_grid(grid, os.path.join(workdir, "samples", "final.png"),
                     title="test split, first seed of each loss")
  common.write_json(path, {"best_spec": best, "config_final": cfg["final"],
                           "results": results})
  return results


def _label(spec: str) -> str:
  return "best" if spec.startswith("gan_taylor(") else spec.split("(")[0]


def _sample_grid(search, samples, path: str, title: str) -> None:
  if samples is None:
    return
  ds = search.dataset.validation
  n = samples.shape[0]
  plots.image_grid({"input": ds.inputs[:n], "best": samples, "target": ds.targets[:n]},
                   path, title=title)


def _fmt(value) -> str:
  return "failed" if value is None else f"{value:.4f}"


def _plot_fitness(workdir: str, history: list[dict], log) -> None:
  if not history:
    return
  import matplotlib
  matplotlib.use("Agg", force=False)
  import matplotlib.pyplot as plt
  gens = [r["generation"] + 1 for r in history]
  fig, ax = plt.subplots(figsize=(6, 4))
  for key in ("best", "median", "best_ever"):
    ax.plot(gens, [np.nan if r[key] is None else r[key] for r in history], label=key,
            marker="o" if key == "best" else None)
  ax.set_xlabel("generation")
  ax.set_ylabel("validation 17·SSIM − perceptual distance")
  ax.legend()
  path = os.path.join(workdir, "fitness.png")
  fig.savefig(path + ".tmp.png", dpi=110, bbox_inches="tight")
  plt.close(fig)
  os.replace(path + ".tmp.png", path)
  log(f"wrote {path}")
