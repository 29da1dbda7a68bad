"""Train model M on dataset D with loss L for R seeds; report and compare (experiments/train.py).

``run(config, workdir)`` trains ``config.repeats`` networks with the loss spec
``config.loss`` (data parallel over ``config.num_devices`` devices, see
:mod:`glojax.train.parallel`), optionally the same number with cross-entropy, and
writes to ``workdir``:

* ``config.json`` — the config;
* ``runs.jsonl`` — one JSON object per finished run (rerunning resumes after the last);
* ``results.json`` — test accuracy mean ± std per loss and, with
  ``compare_to_cross_entropy``, a one-tailed Welch t-test (dissertation eqs. 3.3–3.5);
* ``curves.png`` — training loss per run against step, one panel per loss (their scales
  differ), and periodic evaluation accuracy of all losses.
"""

from __future__ import annotations

import ast
import json
import os
import re
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from glojax import data as data_lib
from glojax import models as models_lib
from glojax.losses import core
from glojax.train import parallel
from glojax.train.trainer import TrainConfig, Trainer

_TRAIN_FIELDS = ("steps", "batch_size", "learning_rate", "momentum", "weight_decay",
                 "eval_batch_size", "steps_per_call", "loop", "optimizer", "nesterov",
                 "schedule", "boundaries", "decay_factor", "warmup_steps", "augment",
                 "sampling", "aux_loss_weight", "separate_aux_losses")


def default_config() -> ml_collections.ConfigDict:
  """The config of :func:`run`; configs in ``experiments/configs/train_*.py`` edit it."""
  c = ml_collections.ConfigDict()
  c.seed = 0                      # run r uses fold_in(PRNGKey(seed), r)
  c.repeats = 10                  # R networks per loss (the papers: 10)
  c.loss = "cross_entropy"        # loss spec, e.g. "taylorglo(theta=[...])"
  c.compare_to_cross_entropy = False
  c.alternative = "greater"       # Welch: loss > cross-entropy (one-tailed)
  c.eval_every = 0                # steps between validation evaluations (0 = none)
  c.eval_split = "validation"
  c.num_devices = 0               # 0 = all devices (data parallel)
  c.distributed = False           # call jax.distributed.initialize() first (multi-host)
  c.nan_retries = 2
  c.dataset = ml_collections.ConfigDict({"name": "mnist5k", "seed": 0})
  c.dataset.options = {}
  c.model = ml_collections.ConfigDict({"name": "small_cnn"})
  c.model.options = {}
  t = TrainConfig()
  c.train = ml_collections.ConfigDict({f: getattr(t, f) for f in _TRAIN_FIELDS})
  c.train.boundaries = ()
  return c


_TAYLORGLO = re.compile(r"^\s*taylorglo\s*\(\s*theta\s*=\s*(\[[^\]]*\])\s*\)\s*$")


def loss_from_spec(spec: str) -> tuple[Callable, Any]:
  """``(loss_fn(params, logits, labels), params)`` for a loss spec string.

  Uses the loss registry (``glojax.losses.get_parameterized``) when it is available;
  otherwise understands ``"cross_entropy"`` and ``"taylorglo(theta=[θ0, …, θ7])"``.

  Raises:
    ValueError: for a spec that cannot be parsed or names an unknown loss.
  """
  from glojax import losses
  if hasattr(losses, "get_parameterized"):
    return losses.get_parameterized(spec)
  if spec.strip() == "cross_entropy":
    return (lambda p, logits, labels: core.cross_entropy(logits, labels)), jnp.zeros(0)
  m = _TAYLORGLO.match(spec)
  if m:
    try:
      theta = np.asarray(ast.literal_eval(m.group(1)), np.float32)
    except (ValueError, SyntaxError) as e:
      raise ValueError(f"bad theta in loss spec {spec!r}: {e}") from None
    if theta.shape != (core.TAYLORGLO_NUM_PARAMS,):
      raise ValueError(f"taylorglo needs {core.TAYLORGLO_NUM_PARAMS} theta values, got "
                       f"{theta.size} in {spec!r}")
    return core.taylorglo, jnp.asarray(theta)
  raise ValueError(f"unknown loss spec {spec!r} (this build understands 'cross_entropy' "
                   f"and 'taylorglo(theta=[...])')")


def build(config: ml_collections.ConfigDict, loss_spec: str):
  """The dataset, model and :class:`Trainer` of ``config`` for ``loss_spec``.

  Raises:
    ValueError: for unknown dataset/model/loss names or bad training options.
  """
  ds = data_lib.load(config.dataset.name, seed=config.dataset.seed,
                     **dict(config.dataset.options))
  model = models_lib.get(config.model.name, num_classes=ds.num_classes,
                         **dict(config.model.options))
  loss_fn, loss_params = loss_from_spec(loss_spec)
  train_cfg = TrainConfig(**{f: config.train[f] for f in _TRAIN_FIELDS})
  return ds, Trainer(model, ds, loss_fn, train_cfg), loss_params


def _summary(runs: list[dict]) -> dict:
  acc = np.asarray([r["test_accuracy"] for r in runs if r["finite"]], np.float64)
  return {"runs": len(runs), "finite_runs": int(acc.size),
          "test_accuracy_mean": float(acc.mean()) if acc.size else float("nan"),
          "test_accuracy_std": float(acc.std(ddof=1)) if acc.size > 1 else float("nan"),
          "test_accuracies": acc.tolist()}


def run(config: ml_collections.ConfigDict, workdir: str,
        log: Callable[[str], None] = print) -> dict:
  """Trains ``config.repeats`` networks per loss and writes the workdir (module docstring).

  Returns:
    The ``results.json`` dict: ``{"losses": {spec: summary}, "welch": {...} | None}``.

  Raises:
    ValueError: for a bad config (unknown names, bad options).
  """
  if config.distributed:
    jax.distributed.initialize()
  if config.repeats < 1:
    raise ValueError(f"repeats must be >= 1, got {config.repeats}")
  os.makedirs(workdir, exist_ok=True)
  with open(os.path.join(workdir, "config.json"), "w") as f:
    f.write(config.to_json(indent=2))
  runs_path = os.path.join(workdir, "runs.jsonl")
  done: list[dict] = []
  if os.path.exists(runs_path):
    with open(runs_path) as f:
      done = [json.loads(line) for line in f if line.strip()]

  specs = [config.loss]
  if config.compare_to_cross_entropy and config.loss.strip() != "cross_entropy":
    specs.append("cross_entropy")
  mesh = parallel.make_mesh(config.num_devices or None)
  all_runs: dict[str, list[dict]] = {}
  for spec in specs:
    ds, trainer, loss_params = build(config, spec)
    dp = parallel.DataParallel(trainer, mesh)
    runs = [r for r in done if r["loss"] == spec]
    log(f"{spec}: {config.model.name} on {ds.describe()}; {trainer.config.steps} steps, "
        f"{mesh.devices.size} device(s); {len(runs)} of {config.repeats} runs done")
    for r in range(len(runs), config.repeats):
      base_key = jax.random.fold_in(jax.random.PRNGKey(config.seed), r)
      for attempt in range(config.nan_retries + 1):
        key = base_key if attempt == 0 else jax.random.fold_in(base_key, 1000 + attempt)
        _, hist = dp.fit(loss_params, key, eval_every=config.eval_every,
                         eval_split=config.eval_split, final_splits=("validation", "test"))
        if hist["finite"]:
          break
      row = {"loss": spec, "run": r, "attempts": attempt + 1, "finite": hist["finite"],
             "test_accuracy": hist["final"]["test"]["accuracy"],
             "test_loss": hist["final"]["test"]["loss"],
             "validation_accuracy": hist["final"]["validation"]["accuracy"],
             "wall_time_s": hist["wall_time_s"],
             "curve": {k: hist[k] for k in ("step", "train_loss", "eval_step",
                                            "eval_accuracy", "eval_loss")}}
      runs.append(row)
      with open(runs_path, "a") as f:
        f.write(json.dumps(row) + "\n")
      log(f"  run {r}: test accuracy {row['test_accuracy']:.4f} "
          f"({'finite' if row['finite'] else 'FAILED'}, {row['wall_time_s']:.1f} s)")
    all_runs[spec] = runs

  results: dict = {"losses": {s: _summary(all_runs[s]) for s in specs}, "welch": None,
                   "model": config.model.name, "dataset": config.dataset.name}
  if len(specs) == 2:
    from glojax.analysis.stats import welch_ttest
    a = results["losses"][specs[0]]["test_accuracies"]
    b = results["losses"][specs[1]]["test_accuracies"]
    if len(a) >= 2 and len(b) >= 2:
      w = welch_ttest(a, b, alternative=config.alternative)
      results["welch"] = {"t": w.t, "dof": w.dof, "p": w.p,
                          "alternative": config.alternative}
  with open(os.path.join(workdir, "results.json"), "w") as f:
    json.dump(results, f, indent=2)
  plot_curves(all_runs, os.path.join(workdir, "curves.png"), eval_split=config.eval_split,
              title=f"experiments/train.py: {workdir} ({config.dataset.name}, "
                    f"{config.model.name}, {config.repeats} runs per loss)")
  for s in specs:
    m = results["losses"][s]
    log(f"{s}: test accuracy {m['test_accuracy_mean']:.4f} ± {m['test_accuracy_std']:.4f} "
        f"({m['finite_runs']}/{m['runs']} finite runs)")
  if results["welch"] is not None:
    log(f"Welch t-test ({config.alternative}): t = {results['welch']['t']:.3f}, "
        f"p = {results['welch']['p']:.3g}")
  return results


def curves_figure(all_runs: dict[str, list[dict]], *, title: str = "",
                  eval_split: str = "validation"):
  """The figure of :func:`plot_curves`: one training-loss panel per loss (their scales
  differ: a TaylorGLO loss sits near 0, cross-entropy near 2), then evaluation accuracy of
  all losses on one shared axis."""
  from matplotlib.figure import Figure
  specs = list(all_runs)
  fig = Figure(figsize=(4.0 * (len(specs) + 1), 3.8))
  axes = fig.subplots(1, len(specs) + 1, squeeze=False)[0]
  ax_acc = axes[-1]
  for i, (spec, runs) in enumerate(all_runs.items()):
    color, ax_loss = f"C{i}", axes[i]
    short = spec if len(spec) < 40 else spec[:37] + "..."
    for j, r in enumerate(runs):
      c = r["curve"]
      ax_loss.plot(c["step"], c["train_loss"], color=color, alpha=0.6)
      if c["eval_step"]:
        ax_acc.plot(c["eval_step"], c["eval_accuracy"], color=color, alpha=0.6,
                    label=short if j == 0 else None)
    ax_loss.set(xlabel="training step", ylabel="training loss on the last batch",
                title=f"{short}\n({len(runs)} runs)")
    ax_loss.title.set_fontsize(8)
  ax_acc.set(xlabel="training step", ylabel=f"{eval_split} accuracy (fraction correct)",
             title=f"{eval_split} accuracy")
  if ax_acc.lines:
    ax_acc.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
  else:
    ax_acc.text(0.5, 0.5, "no evaluations during training\n(config.eval_every = 0)",
                ha="center", va="center", fontsize=8, transform=ax_acc.transAxes)
  if title:
    fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  return fig


def plot_curves(all_runs: dict[str, list[dict]], path: str, *, title: str = "",
                eval_split: str = "validation") -> None:
  """Writes ``curves.png``: training loss per run, one panel per loss, and evaluation
  accuracy against step (:func:`curves_figure`)."""
  import matplotlib
  matplotlib.use("Agg")
  fig = curves_figure(all_runs, title=title, eval_split=eval_split)
  fig.savefig(path, dpi=100, bbox_inches="tight")
