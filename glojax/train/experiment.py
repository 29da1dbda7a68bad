"""Train model M on dataset D with loss L for R seeds; report and compare (experiments/train.py).

``run(config, workdir)`` trains ``config.repeats`` networks with the loss spec
``config.loss`` (data parallel over ``config.num_devices`` devices, see
:mod:`glojax.train.parallel`), optionally the same number with cross-entropy, and
writes to ``workdir`` under the workdir contract of every glojax binary
(:mod:`glojax.workdir`: the config is validated before the workdir is touched, a rerun
with a changed config is refused, files are strict JSON written atomically):

* ``config.json`` — the config (only ``repeats`` and ``alternative`` may change on a
  rerun: more runs, another test);
* ``runs.jsonl`` — one JSON object per finished run (rerunning resumes after the last);
* ``results.json`` — test accuracy mean ± std per loss and, with
  ``compare_to_cross_entropy``, a one-tailed Welch t-test (dissertation eqs. 3.3–3.5);
  failed runs follow the rule of :mod:`glojax.train.protocol` (rerun up to
  ``nan_retries`` times, then reported and left out of the statistics);
* ``curves.png`` — training loss per run against step, one panel per loss (their scales
  differ), and periodic evaluation accuracy of all losses;
* ``tb/<i>_<loss>/run_<r>/`` — each run's curves (``train_loss``, ``<split>_accuracy``,
  ``<split>_loss`` against step) as TensorBoard event files (:mod:`glojax.summary`).
"""

from __future__ import annotations

import ast
import dataclasses
import os
import re
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from glojax import config as config_lib
from glojax import data as data_lib
from glojax import models as models_lib
from glojax import progress as progress_lib
from glojax import summary
from glojax import workdir as workdir_lib
from glojax.analysis import stats
from glojax.losses import core
from glojax.train import parallel, protocol
from glojax.train.trainer import TrainConfig, Trainer

_TRAIN_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig))
RUNS_FILE = "runs.jsonl"
RESULTS_FILE = "results.json"
RESUMABLE_KEYS = ("repeats", "alternative")
EVAL_SPLITS = ("validation", "test")


@dataclasses.dataclass(frozen=True)
class ExperimentConfig(config_lib.Composite):
  """The config of :func:`run`.

  Attributes:
    seed: run ``r`` uses ``fold_in(PRNGKey(seed), r)``.
    repeats: R networks per loss (the papers: 10).
    loss: loss spec, e.g. ``"taylorglo(theta=[...])"``.
    compare_to_cross_entropy: also train R networks with cross-entropy, Welch-test.
    alternative: Welch alternative for loss vs cross-entropy (``"greater"``).
    eval_every: steps between evaluations on ``eval_split`` (0 = none).
    eval_split: ``"validation"`` or ``"test"``.
    num_devices: devices for data parallelism (0 = all).
    distributed: call ``jax.distributed.initialize()`` first (multi-host).
    nan_retries: reruns of a failed (NaN/inf) run (the failed-run rule).
    dataset, model, train: what to train and how.
  """
  seed: int = 0
  repeats: int = 10
  loss: str = "cross_entropy"
  compare_to_cross_entropy: bool = False
  alternative: str = "greater"
  eval_every: int = 0
  eval_split: str = "validation"
  num_devices: int = 0
  distributed: bool = False
  nan_retries: int = protocol.DEFAULT_RETRIES
  dataset: config_lib.DatasetConfig = dataclasses.field(
      default_factory=config_lib.DatasetConfig)
  model: config_lib.ModelConfig = dataclasses.field(
      default_factory=lambda: config_lib.ModelConfig(name="small_cnn"))
  train: TrainConfig = dataclasses.field(default_factory=TrainConfig)

  def __post_init__(self):
    config_lib.check_int(self, "seed", 0, config_lib.MAX_SEED)
    config_lib.check_int(self, "repeats", 1)
    if not isinstance(self.loss, str):
      raise config_lib.FieldError(type(self).__name__, "loss", self.loss,
                                  "must be a loss spec string")
    config_lib.check_bool(self, "compare_to_cross_entropy")
    config_lib.check_choice(self, "alternative", stats.ALTERNATIVES)
    config_lib.check_int(self, "eval_every", 0)
    config_lib.check_choice(self, "eval_split", EVAL_SPLITS)
    config_lib.check_int(self, "num_devices", 0)
    config_lib.check_bool(self, "distributed")
    config_lib.check_int(self, "nan_retries", 0)

  @property
  def specs(self) -> list[str]:
    """The loss specs to train: ``loss`` and, if asked, cross-entropy."""
    if self.compare_to_cross_entropy and self.loss.strip() != "cross_entropy":
      return [self.loss, "cross_entropy"]
    return [self.loss]


def default_config() -> ml_collections.ConfigDict:
  """The config of :func:`run` (locked); configs in ``experiments/configs/train_*.py``
  edit it."""
  return config_lib.locked_config(ExperimentConfig().to_dict())


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


def _build(config: ExperimentConfig, dataset, mesh) -> dict:
  """``{spec: (DataParallel, loss_params)}`` for every loss of the run.

  Raises:
    ValueError: for a bad loss spec, model option or batch size.
  """
  try:
    model = models_lib.get(config.model.name, num_classes=dataset.num_classes,
                           **config.model.options)
  except (TypeError, ValueError) as e:
    raise ValueError(f"config.model.options={dict(config.model.options)!r} cannot build "
                     f"model {config.model.name!r}: {e}") from None
  built = {}
  for spec in config.specs:
    try:
      loss_fn, loss_params = loss_from_spec(spec)
    except ValueError as e:
      raise ValueError(f"config.loss={spec!r}: {e}") from None
    try:
      trainer = Trainer(model, dataset, loss_fn, config.train)
      jax.eval_shape(trainer.init, jax.random.PRNGKey(0))
    except Exception as e:  # flax raises TypeError/ValueError/... for bad fields
      first = (str(e).strip().splitlines() or [type(e).__name__])[0]
      raise ValueError(f"config.model.options={dict(config.model.options)!r} cannot "
                       f"build model {config.model.name!r}: {first}") from None
    built[spec] = (parallel.DataParallel(trainer, mesh), loss_params)
  return built


def _summary(runs: list[dict]) -> dict:
  s = protocol.summarize([r["test_accuracy"] for r in runs], [r["finite"] for r in runs])
  return {"runs": len(runs), "finite_runs": len(runs) - s["failed"],
          "test_accuracy_mean": s["mean"], "test_accuracy_std": s["std"],
          "test_accuracies": s["runs"]}


def run(config, workdir: str, log: Callable[[str], None] = print) -> dict:
  """Trains ``config.repeats`` networks per loss and writes the workdir (module docstring).

  Returns:
    The ``results.json`` dict: ``{"losses": {spec: summary}, "welch": {...} | None}``.

  Raises:
    ValueError: for a bad config (unknown keys or names, bad values or options; the
      workdir is then untouched) or a workdir holding a run with another config.
    FileNotFoundError: if the dataset is not available.
  """
  cfg = config_lib.with_defaults(config, default_config())
  typed = ExperimentConfig.from_dict(cfg)
  if typed.distributed:
    parallel.initialize_distributed()  # a no-op if the binary's --distributed did it
  d = typed.dataset
  dataset = data_lib.load(d.name, seed=d.seed, **d.options)
  mesh = parallel.make_mesh(typed.num_devices or None)
  built = _build(typed, dataset, mesh)
  # Several processes (jax.distributed): only process 0 writes the workdir.
  with workdir_lib.for_process(workdir) as workdir:
    return _run(typed, cfg, dataset, mesh, built, workdir, log)


def _run(typed: ExperimentConfig, cfg: dict, dataset, mesh, built: dict, workdir: str,
         log: Callable[[str], None]) -> dict:
  workdir_lib.prepare(workdir, cfg, defaults=default_config(),
                      resumable_keys=RESUMABLE_KEYS, run_files=(RUNS_FILE,))
  runs_path = os.path.join(workdir, RUNS_FILE)
  done = workdir_lib.read_jsonl(runs_path)
  all_runs: dict[str, list[dict]] = {}
  for spec, (dp, loss_params) in built.items():
    runs = [r for r in done if r["loss"] == spec][:typed.repeats]
    log(f"{spec}: {typed.model.name} on {dataset.describe()}; {typed.train.steps} steps, "
        f"{mesh.devices.size} device(s); {len(runs)} of {typed.repeats} runs done")
    todo = range(len(runs), typed.repeats)
    for r in progress_lib.iterate(todo, len(todo), desc=f"{spec}: runs"):
      row = _train_run(typed, dp, loss_params, spec, r)
      runs.append(row)
      workdir_lib.append_jsonl(runs_path, row)
      _write_tensorboard(workdir, typed, spec, list(built).index(spec), row)
      log(f"  run {r}: test accuracy {row['test_accuracy']:.4f} "
          f"({'finite' if row['finite'] else 'FAILED'} after {row['attempts']} "
          f"attempt(s), {row['wall_time_s']:.1f} s)")
    all_runs[spec] = runs
  results = _results(typed, all_runs)
  workdir_lib.write_json(os.path.join(workdir, RESULTS_FILE), results)
  plot_curves(all_runs, os.path.join(workdir, "curves.png"), eval_split=typed.eval_split,
              title=f"experiments/train.py: {workdir} ({typed.dataset.name}, "
                    f"{typed.model.name}, {typed.repeats} runs per loss)")
  _log_results(typed, results, log)
  return results


def _train_run(config: ExperimentConfig, dp, loss_params, spec: str, r: int) -> dict:
  """Run ``r`` of ``spec``, rerun under the failed-run rule (``nan_retries``)."""
  base_key = jax.random.fold_in(jax.random.PRNGKey(config.seed), r)
  for attempt in range(config.nan_retries + 1):
    key = base_key if attempt == 0 else protocol.retry_key(base_key, attempt)
    _, hist = dp.fit(loss_params, key, eval_every=config.eval_every,
                     eval_split=config.eval_split, final_splits=("validation", "test"))
    if hist["finite"]:
      break
  return {"loss": spec, "run": r, "attempts": attempt + 1, "finite": hist["finite"],
          "test_accuracy": hist["final"]["test"]["accuracy"],
          "test_loss": hist["final"]["test"]["loss"],
          "validation_accuracy": hist["final"]["validation"]["accuracy"],
          "wall_time_s": hist["wall_time_s"],
          "curve": {k: hist[k] for k in ("step", "train_loss", "eval_step",
                                         "eval_accuracy", "eval_loss")}}


def _write_tensorboard(workdir: str, config: ExperimentConfig, spec: str, index: int,
                       row: dict) -> None:
  """One run's curves under ``<workdir>/tb/<loss>/run_<r>/`` (TensorBoard's run names)."""
  name = f"{index}_" + re.sub(r"[^\w.=-]+", "_", spec).strip("_")[:60]
  c = row["curve"]
  split = config.eval_split
  with summary.Writer(workdir, os.path.join(name, f"run_{row['run']}")) as tb:
    tb.curve("train_loss", c["step"], c["train_loss"])
    tb.curve(f"{split}_accuracy", c["eval_step"], c["eval_accuracy"])
    tb.curve(f"{split}_loss", c["eval_step"], c["eval_loss"])


def _results(config: ExperimentConfig, all_runs: dict) -> dict:
  specs = list(all_runs)
  results: dict = {"losses": {s: _summary(all_runs[s]) for s in specs}, "welch": None,
                   "model": config.model.name, "dataset": config.dataset.name}
  if len(specs) == 2:
    results["welch"] = protocol.welch(results["losses"][specs[0]]["test_accuracies"],
                                      results["losses"][specs[1]]["test_accuracies"],
                                      config.alternative)
  return results


def _log_results(config: ExperimentConfig, results: dict, log) -> None:
  fmt = lambda v: "n/a" if v is None else f"{v:.4f}"
  for s, m in results["losses"].items():
    log(f"{s}: test accuracy {fmt(m['test_accuracy_mean'])} ± "
        f"{fmt(m['test_accuracy_std'])} ({m['finite_runs']}/{m['runs']} finite runs)")
  w = results["welch"]
  if w is not None and w["p"] is not None:
    log(f"Welch t-test ({config.alternative}): t = {w['t']:.3f}, p = {w['p']:.3g}")


def curves_figure(all_runs: dict[str, list[dict]], *, title: str = "",
                  eval_split: str = "validation"):
  """The figure of :func:`plot_curves`: one training-loss panel per loss (their scales
  differ: a TaylorGLO loss sits near 0, cross-entropy near 2), then evaluation accuracy of
  all losses on one shared axis (docs/plots.md)."""
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
