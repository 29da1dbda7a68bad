"""Pictures of the GAN search: sample grids and loss-triple curves (matplotlib, Agg)."""

from __future__ import annotations

import os
from typing import Mapping, Sequence

import numpy as np


def _figure(figsize):
  import matplotlib
  matplotlib.use("Agg", force=False)
  import matplotlib.pyplot as plt
  return plt.figure(figsize=figsize), plt


def _save(fig, plt, path):
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = f"{path}.tmp.png"
  fig.savefig(tmp, dpi=110, bbox_inches="tight")
  plt.close(fig)
  os.replace(tmp, path)  # a reader never sees half a PNG


def image_grid(rows: Mapping[str, np.ndarray], path: str, *, title: str = "") -> str:
  """Saves a grid with one labelled row per entry of ``rows``.

  Args:
    rows: ``{label: float[N, H, W, C]}`` images in [0, 1] (C = 1 grey or 3 RGB); every
      row shows its first ``min(N)`` images.
    path: PNG file to write (folders are created; written atomically).
    title: figure title.

  Returns:
    ``path``.

  Raises:
    ValueError: if ``rows`` is empty or the rows' image shapes differ.
  """
  if not rows:
    raise ValueError("image_grid: no rows to draw")
  arrays = {k: np.clip(np.asarray(v, np.float32), 0.0, 1.0) for k, v in rows.items()}
  shapes = {a.shape[1:] for a in arrays.values()}
  if len(shapes) != 1:
    raise ValueError(f"image_grid: rows have different image shapes {sorted(shapes)}")
  n = min(a.shape[0] for a in arrays.values())
  fig, plt = _figure((1.1 * n + 1.4, 1.15 * len(arrays) + (0.3 if title else 0)))
  for r, (label, images) in enumerate(arrays.items()):
    for c in range(n):
      ax = fig.add_subplot(len(arrays), n, r * n + c + 1)
      img = images[c]
      ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1)
      ax.set_xticks([])
      ax.set_yticks([])
      if c == 0:
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
  if title:
    fig.suptitle(title, fontsize=9)
  _save(fig, plt, path)
  return path


def plot_triples(losses: Mapping[str, object], path: str, *,
                 d_range: Sequence[float] = (-3.0, 3.0)) -> str:
  """Plots the three components of each GAN loss triple against the discriminator output.

  Args:
    losses: ``{label: GanLoss or spec}``.
    path: PNG file to write.
    d_range: the range of raw discriminator outputs ``d`` on the x axis.

  Returns:
    ``path``.
  """
  import jax.numpy as jnp
  from glojax.gan import losses as gan_losses
  d = jnp.linspace(d_range[0], d_range[1], 201)
  fig, plt = _figure((12.0, 3.4))
  titles = {"d_real": "D loss, real: f(D(x))", "d_fake": "D loss, fake: f(D(G(z)))",
            "g_fake": "G loss, fake: f(D(G(z)))"}
  axes = [fig.add_subplot(1, 3, i + 1) for i in range(3)]
  for label, spec in losses.items():
    loss = gan_losses.get(spec)
    for ax, comp in zip(axes, gan_losses.COMPONENTS):
      ax.plot(d, np.asarray(getattr(loss, comp)(d)), label=label)
  for ax, comp in zip(axes, gan_losses.COMPONENTS):
    ax.set_title(titles[comp], fontsize=9)
    ax.set_xlabel("raw discriminator output d (logit / critic value)")
    ax.axhline(0, color="0.8", lw=0.5)
  axes[0].legend(fontsize=7)
  _save(fig, plt, path)
  return path


def plot_fitness(workdir: str, log) -> None:
  """Writes ``fitness.png`` from ``log.jsonl``: every candidate's validation fitness
  (17·SSIM − PD; failed ones left out) and the best, median and best-so-far per
  generation. A plot is a convenience: a failure is logged, never raised."""
  from glojax.analysis.plots import read_fitness_log
  path = os.path.join(workdir, "fitness.png")
  try:
    rows = read_fitness_log(workdir)
  except (OSError, ValueError) as e:
    log(f"could not write {path}: {e}")
    return
  fig, plt = _figure((6.5, 4.0))
  ax = fig.add_subplot(1, 1, 1)
  for step, values in zip(rows["step"], rows["fitness"]):
    ax.scatter([step] * len(values), values, s=8, color="0.7")
  for key in ("best", "median", "best_ever"):
    ax.plot(rows["step"], rows[key], label=key.replace("_", "-"),
            marker="o" if key == "best" else None)
  ax.set_xlabel("generation")
  ax.set_ylabel("validation fitness: 17·SSIM − perceptual distance")
  ax.legend(fontsize=8)
  _save(fig, plt, path)
  log(f"wrote {path}")
