"""The GAN search's final protocol: the best triple against baselines on the test split.

Each spec trains ``final.repeats`` GANs (seeds from ``final.seed``; the same seeds for
every spec) for ``final.steps`` steps (0: the search's ``train.steps``), vectorized, and
is scored on the held-out test split: SSIM, perceptual distance and the fitness
``17 · SSIM − PD``, reported as mean ± standard deviation (sample, ddof = 1). The
dissertation's comparison (§7.4.3) is ten WGAN + spectral-norm runs against the evolved
triple (test SSIM ×17: 9.4359 vs 11.6615; perceptual distance 2129.5 vs 2040.3 on
CMP Facade with VGG-16 embeddings — those numbers are not comparable with ours).
"""

from __future__ import annotations

import time
from typing import Callable, Sequence

import jax
import numpy as np

from glojax.gan import losses as gan_losses
from glojax.gan import population as pop
from glojax.gan import trainer as tr


def _mean_std(values) -> tuple[float, float]:
  v = np.asarray(values, np.float64)
  v = v[np.isfinite(v)]
  if v.size == 0:
    return float("nan"), float("nan")
  return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def compare(search, specs: Sequence[str], *, log: Callable[[str], None] = print) -> dict:
  """Trains ``final.repeats`` GANs per spec and scores them on the test split.

  Args:
    search: a built :class:`glojax.gan.search.GanSearch` (data, embedding, configs).
    specs: GAN loss specs; Taylor triples (and WGAN/LSGAN, exactly Taylor triples:
      :func:`glojax.gan.as_taylor`) share one compiled trainer, the sigmoid
      formulations compile their own.
    log: progress printer.

  Returns:
    ``{spec: {"ssim": [...], "perceptual": [...], "fitness": [...], "failed": int,
    "ssim_mean", "ssim_std", "perceptual_mean", "perceptual_std", "fitness_mean",
    "fitness_std", "samples": float[num_samples, H, W, C] of the first seed}}``.
  """
  cfg = search.cfg
  f = cfg["final"]
  config = search.train_config
  if f["steps"]:
    config = tr.GanTrainConfig(**{**cfg["train"], "steps": f["steps"]})
  keys = jax.random.split(jax.random.PRNGKey(f["seed"]), f["repeats"])
  trainers = {}
  out = {}
  for spec in specs:
    loss = gan_losses.get(spec)
    t0 = time.time()
    # WGAN/LSGAN train through the (already compiled) Taylor trainer: same GAN.
    train_loss = gan_losses.as_taylor(loss) or loss
    fns = train_loss.fns
    if fns not in trainers:
      trainers[fns] = (search.trainer if fns is gan_losses.TAYLOR_FNS and not f["steps"]
                       else tr.GanTrainer(search.dataset, fns, config, search.embedding))
    cands = tr.stack([tr.candidate(train_loss, config)] * f["repeats"])
    res = pop.evaluate_population(trainers[fns], cands, keys, split="test",
                                  strategy=cfg["search"]["strategy"],
                                  ssim_weight=cfg["search"]["ssim_weight"])
    ok = res.metrics["finite"]
    row = {"ssim": [float(v) if o else None for v, o in zip(res.metrics["ssim"], ok)],
           "perceptual": [float(v) if o else None
                          for v, o in zip(res.metrics["perceptual"], ok)],
           "fitness": [float(v) if o else None for v, o in zip(res.fitness, ok)],
           "failed": int(np.sum(~ok)), "samples": res.samples[0]}
    for name in ("ssim", "perceptual", "fitness"):
      values = np.asarray([np.nan if v is None else v for v in row[name]])
      row[f"{name}_mean"], row[f"{name}_std"] = _mean_std(values)
    out[loss.spec] = row
    log(f"final  {_short(loss.spec):<32}  SSIM {row['ssim_mean']:.4f} ± "
        f"{row['ssim_std']:.4f}  PD {row['perceptual_mean']:.4f} ± "
        f"{row['perceptual_std']:.4f}  fitness {row['fitness_mean']:.4f}  failed "
        f"{row['failed']}/{f['repeats']}  ({time.time() - t0:.0f}s)")
  return out


def _short(spec: str) -> str:
  return spec if len(spec) <= 32 else spec[:29] + "..."


def table(results: dict) -> str:
  """A Markdown table of :func:`compare`'s results (mean ± std over seeds)."""
  lines = ["| loss | test SSIM | test perceptual distance | 17·SSIM − PD | failed |",
           "|---|---|---|---|---|"]
  for spec, r in results.items():
    lines.append(f"| `{_short(spec)}` | {r['ssim_mean']:.4f} ± {r['ssim_std']:.4f} | "
                 f"{r['perceptual_mean']:.4f} ± {r['perceptual_std']:.4f} | "
                 f"{r['fitness_mean']:.4f} ± {r['fitness_std']:.4f} | "
                 f"{r['failed']}/{len(r['ssim'])} |")
  return "\n".join(lines)
