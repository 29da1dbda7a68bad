"""The GAN search's final protocol: the best triple against baselines on the test split.

Each spec trains ``final.repeats`` GANs (the same seeds, from ``final.seed``, for every
spec) for ``final.steps`` steps, vectorized, and is scored on the held-out test split:
SSIM, perceptual distance and the fitness ``17 · SSIM − PD``, reported as mean ±
standard deviation (ddof = 1), with a one-tailed Welch t-test of the best triple's
fitness against each baseline's (``final.alternative``). Failed (NaN) runs are reported
and left out of the statistics. The driver's own final protocol
(:mod:`glojax.search.final`) compares classifiers by accuracy, so the GAN search runs
this one from its ``finalize``.

The dissertation's comparison (§7.4.3): ten WGAN + spectral-norm runs against the
evolved triple on CMP Facade, test SSIM (×17) 9.4359 vs 11.6615 and perceptual distance
(VGG-16) 2129.5069 vs 2040.2561 — not comparable with numbers from another data set and
embedding network.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Callable

import jax
import numpy as np

from glojax import config as config_lib
from glojax import workdir as workdir_lib
from glojax.analysis import stats
from glojax.gan import losses as gan_losses
from glojax.gan import plots
from glojax.gan import population as pop
from glojax.gan import trainer as tr

FINAL_FILE = "final.json"
BEST_SUFFIX = "@best"   # a baseline trained with the best triple's hyperparameters


def resolve_baseline(spec: str, best_spec: str) -> str:
  """``"wgan@best"`` → WGAN with ``best_spec``'s learning rate and additive-loss
  weights (the comparison then isolates the triple); other specs are returned as is."""
  if not spec.endswith(BEST_SUFFIX):
    return spec
  best = gan_losses.get(best_spec)
  return gan_losses.with_hparams(spec.removesuffix(BEST_SUFFIX), best.hparams).spec


def _check_specs(obj) -> None:
  specs = obj.baselines
  if not isinstance(specs, (list, tuple)) or not specs:
    raise config_lib.FieldError(type(obj).__name__, "baselines", specs,
                                "must be a non-empty list of GAN loss specs")
  for spec in specs:
    try:
      gan_losses.get(spec.removesuffix(BEST_SUFFIX) if isinstance(spec, str) else spec)
    except ValueError as e:
      raise config_lib.FieldError(type(obj).__name__, "baselines", specs, str(e)) from None
  object.__setattr__(obj, "baselines", tuple(specs))


@dataclasses.dataclass(frozen=True)
class GanFinalConfig(config_lib.Section):
  """``config.final`` of the GAN search.

  The fields mean what they mean in :class:`glojax.search.final.FinalConfig`; the
  baselines here are GAN loss specs and the statistic is the fitness, not accuracy.

  Attributes:
    enabled: run the comparison after the search.
    repeats: runs per loss (R ≥ 2 for Welch's t-test; the dissertation: 10).
    steps: training steps of every run.
    alternative: Welch alternative for the best triple vs each baseline.
    seed: seed of the runs' keys (every loss uses the same R keys).
    baselines: GAN loss specs to compare with (the dissertation's baseline is WGAN
      with spectral normalization); a spec ending in ``@best`` (``"wgan@best"``) trains
      with the best triple's evolved learning rate and weights, isolating the triple.
  """
  enabled: bool = True
  repeats: int = 3
  steps: int = 400
  alternative: str = "greater"
  seed: int = 1
  baselines: tuple = ("wgan", "non_saturating")

  def __post_init__(self):
    config_lib.check_bool(self, "enabled")
    config_lib.check_int(self, "seed", 0, config_lib.MAX_SEED)
    if self.enabled:
      config_lib.check_int(self, "repeats", 2, why=" (Welch's t-test)")
      config_lib.check_int(self, "steps", 1)
      config_lib.check_choice(self, "alternative", stats.ALTERNATIVES)
    _check_specs(self)


def _summary(values) -> tuple:
  v = np.asarray([np.nan if x is None else x for x in values], np.float64)
  v = v[np.isfinite(v)]
  if v.size == 0:
    return None, None
  return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def evaluate(config, trainer: tr.GanTrainer, specs, *, log: Callable[[str], None] = print
             ) -> dict:
  """Trains ``final.repeats`` GANs per spec and scores them on the test split.

  Args:
    config: the search's typed config (``final``, ``train``, ``search`` sections).
    trainer: the search's Taylor trainer (its data and embedding weights).
    specs: GAN loss specs. Taylor triples, WGAN and LSGAN (exactly Taylor triples,
      :func:`glojax.gan.as_taylor`) train through one compiled trainer; the sigmoid
      formulations compile their own.
    log: progress printer.

  Returns:
    ``{spec: {"ssim", "perceptual", "fitness": [per seed, None if failed], "failed",
    "<metric>_mean", "<metric>_std", "samples": float[n, H, W, C] (first seed)}}``.
  """
  f = config.final
  train_config = dataclasses.replace(config.train, steps=f.steps)
  keys = jax.random.split(jax.random.PRNGKey(f.seed), f.repeats)
  taylor = tr.GanTrainer(trainer.dataset, gan_losses.TAYLOR_FNS, train_config,
                         trainer.embedding, trainer.networks)
  out = {}
  for spec in specs:
    t0 = time.time()
    loss = gan_losses.get(spec)
    train_loss = gan_losses.as_taylor(loss) or loss
    t = taylor if train_loss.fns is gan_losses.TAYLOR_FNS else tr.GanTrainer(
        trainer.dataset, train_loss.fns, train_config, trainer.embedding, trainer.networks)
    res = pop.evaluate_population(t, tr.stack([tr.candidate(train_loss, train_config)]
                                              * f.repeats), keys, split="test",
                                  strategy=config.search.strategy,
                                  ssim_weight=config.search.ssim_weight)
    ok = res.metrics["finite"]
    row = {"ssim": [float(v) if o else None for v, o in zip(res.metrics["ssim"], ok)],
           "perceptual": [float(v) if o else None
                          for v, o in zip(res.metrics["perceptual"], ok)],
           "fitness": [float(v) if o else None for v, o in zip(res.fitness, ok)],
           "failed": int(np.sum(~ok)), "samples": res.samples[0]}
    for name in ("ssim", "perceptual", "fitness"):
      row[f"{name}_mean"], row[f"{name}_std"] = _summary(row[name])
    out[loss.spec] = row
    fmt = lambda m, s: "failed" if m is None else f"{m:.4f} ± {s:.4f}"
    log(f"final  {_short(loss.spec):<34} SSIM {fmt(row['ssim_mean'], row['ssim_std'])}  "
        f"PD {fmt(row['perceptual_mean'], row['perceptual_std'])}  failed "
        f"{row['failed']}/{f.repeats}  ({time.time() - t0:.0f}s)")
  return out


def welch(candidate: dict, baseline: dict, alternative: str):
  """Welch's t-test of two rows' fitness (None if either has < 2 finite runs)."""
  a = [v for v in candidate["fitness"] if v is not None]
  b = [v for v in baseline["fitness"] if v is not None]
  if len(a) < 2 or len(b) < 2:
    return None
  r = stats.welch_ttest(a, b, alternative=alternative)
  return {"t": r.t, "dof": r.dof, "p": r.p}


def table(rows: dict, tests: dict) -> str:
  """A Markdown table of :func:`evaluate`'s rows (mean ± std over seeds)."""
  fmt = lambda r, m: "—" if r[f"{m}_mean"] is None else (
      f"{r[f'{m}_mean']:.4f} ± {r[f'{m}_std']:.4f}")
  lines = ["| loss | test SSIM | test perceptual distance | 17·SSIM − PD | failed | "
           "p (best > it) |", "|---|---|---|---|---|---|"]
  for spec, r in rows.items():
    p = tests.get(spec)
    lines.append(f"| `{_short(spec)}` | {fmt(r, 'ssim')} | {fmt(r, 'perceptual')} | "
                 f"{fmt(r, 'fitness')} | {r['failed']}/{len(r['ssim'])} | "
                 f"{'—' if p is None else format(p['p'], '.3g')} |")
  return "\n".join(lines)


def _row_label(spec: str, best: str) -> str:
  if spec == best:
    return "best"
  return spec.split("(")[0] + ("@best" if "(" in spec else "")


def _short(spec: str) -> str:
  return spec if len(spec) <= 34 else spec[:31] + "..."


def run(config, trainer: tr.GanTrainer, best_spec: str, workdir: str, *,
        log: Callable[[str], None] = print) -> dict:
  """The final comparison of ``best_spec`` against ``config.final.baselines``.

  Reuses ``final.json`` when it holds this spec's comparison under the same ``final``
  section. Writes ``final.json``, ``final.md`` and ``samples_final.png`` (inputs, the
  first seed's samples of every loss, targets).

  Returns:
    ``{"best_spec", "rows": {spec: summary (no samples)}, "welch": {baseline: {t, dof,
    p} | None}, "table", "final_config"}``.
  """
  path = os.path.join(workdir, FINAL_FILE)
  final_config = workdir_lib.to_jsonable(dict(sorted(config.final.to_dict().items())))
  try:
    done = workdir_lib.read_json(path)
    if done["best_spec"] == best_spec and done["final_config"] == final_config:
      log(f"final comparison already done for this loss and config.final ({path}; "
          "delete it to retrain)")
      log(done["table"])
      return done
  except (ValueError, KeyError, TypeError, FileNotFoundError, OSError):
    pass
  baselines = [resolve_baseline(spec, best_spec) for spec in config.final.baselines]
  rows = evaluate(config, trainer, [best_spec, *baselines], log=log)
  best = gan_losses.get(best_spec).spec
  tests = {spec: welch(rows[best], row, config.final.alternative)
           for spec, row in rows.items() if spec != best}
  samples = {spec: row.pop("samples") for spec, row in rows.items()}
  n = trainer.config.num_samples
  ds = trainer.dataset.test
  grid = {"input": ds.inputs[:n]}
  grid.update({_row_label(spec, best): s for spec, s in samples.items()})
  grid["target"] = ds.targets[:n]
  plots.image_grid(grid, os.path.join(workdir, "samples_final.png"),
                   title="test split, first seed of each loss")
  result = {"best_spec": best_spec, "rows": rows, "welch": tests,
            "table": table(rows, tests), "final_config": final_config}
  workdir_lib.write_json(path, result)
  workdir_lib.write_text(os.path.join(workdir, "final.md"), result["table"] + "\n")
  log("test split, mean ± std over seeds (p: one-tailed Welch t-test on fitness):\n"
      + result["table"])
  return workdir_lib.read_json(path)
