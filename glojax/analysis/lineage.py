"""Lineages of population-based training and their plots (EPBT paper, Fig. 5 and Fig. 2).

A population-based run records, every generation ``g``, each slot's ``member_id`` and
``parent_id`` (the id of the member it was copied from at the selection before
training; its own id when it survived unchanged). :func:`ancestry` walks these back
from one member of the last generation; :func:`drop_repeats` removes the repeats of a
member that survived several generations by elitism (the paper's "duplicate
individuals"). :func:`plot_lineage_phenotypes` draws the binary phenotypes of the
TaylorGLO losses along a lineage, darker = earlier, beside cross-entropy;
:func:`plot_accuracy_curves` draws the best member's test accuracy against training
steps per member for several runs.
"""

from __future__ import annotations

import functools
import os
from typing import Mapping, Sequence

import numpy as np


def ancestry(member_id, parent_id, slot: int) -> list[tuple[int, int]]:
  """The ancestors of slot ``slot`` of the last generation, oldest first.

  Args:
    member_id: ``int[G, p]`` member id in each generation's slots.
    parent_id: ``int[G, p]`` id each slot's member was copied from (−1 in generation 0).
    slot: the slot in generation ``G − 1``.

  Returns:
    ``[(generation, slot), ...]`` of length ``G``: the member trained in each generation
    whose weights (and, before variation, hyperparameters) the final member inherited.

  Raises:
    ValueError: if a parent id is missing from the previous generation (a corrupt
      history) or ``slot`` is out of range.
  """
  member_id, parent_id = np.asarray(member_id), np.asarray(parent_id)
  if member_id.ndim != 2 or member_id.shape != parent_id.shape:
    raise ValueError(f"ancestry: member_id and parent_id must be int[G, p] of one shape, "
                     f"got {member_id.shape} and {parent_id.shape}")
  g, p = member_id.shape
  if not 0 <= slot < p:
    raise ValueError(f"ancestry: slot {slot} is not in [0, {p})")
  chain = [(g - 1, int(slot))]
  for gen in range(g - 1, 0, -1):
    pid = parent_id[gen, chain[-1][1]]
    where = np.flatnonzero(member_id[gen - 1] == pid)
    if where.size != 1:
      raise ValueError(f"ancestry: parent id {pid} of generation {gen} appears "
                       f"{where.size} times in generation {gen - 1}")
    chain.append((gen - 1, int(where[0])))
  return chain[::-1]


def drop_repeats(chain: Sequence[tuple[int, int]], member_id) -> list[tuple[int, int]]:
  """``chain`` without later generations of the same member (unchanged by elitism)."""
  member_id = np.asarray(member_id)
  out, last = [], None
  for gen, slot in chain:
    mid = int(member_id[gen, slot])
    if mid != last:
      out.append((gen, slot))
    last = mid
  return out


@functools.lru_cache(maxsize=None)
def _phenotype_program():
  import jax

  from glojax import losses
  return jax.jit(jax.vmap(losses.taylorglo, in_axes=(0, None, None)))


def _taylorglo_phenotypes(thetas, logits, labels):
  """``float[n, k]``: the binary phenotype of each θ on the grid (one compiled call)."""
  return _phenotype_program()(thetas, logits, labels)


def plot_lineage_phenotypes(thetas: Sequence, generations: Sequence[int], path, *,
                            total_generations: int | None = None,
                            title: str = "Loss schedule of the best member") -> str:
  """Binary phenotypes of TaylorGLO losses along a lineage, beside cross-entropy.

  Left: one curve per ancestor, the loss of a two-class example whose true class gets
  probability ``p`` (:func:`glojax.analysis.phenotype.binary_phenotype`), coloured from
  dark (early generations) to light (late), as the EPBT paper's Fig. 5; each curve is
  shifted so its minimum is 0 (a constant offset does not change training). Right:
  cross-entropy ``-log p`` for comparison.

  Args:
    thetas: ``float[n, 8]`` TaylorGLO θ (project layout), oldest first.
    generations: the generation of each θ (``int[n]``).
    path: output PNG (parent folders are created).
    total_generations: colour scale's last generation (default ``max(generations)``).
    title: the left panel's title.

  Returns:
    ``str(path)``.

  Raises:
    ValueError: if ``thetas`` is empty or not ``[n, 8]``, or lengths differ.
  """
  import jax.numpy as jnp
  from matplotlib import colormaps
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.cm import ScalarMappable
  from matplotlib.colors import Normalize
  from matplotlib.figure import Figure
  from matplotlib.ticker import MaxNLocator

  from glojax import losses
  from glojax.analysis.phenotype import binary_logits, binary_phenotype

  thetas = np.asarray(thetas, np.float32)
  generations = [int(g) for g in generations]
  if thetas.ndim != 2 or thetas.shape[0] == 0 or thetas.shape[1] != losses.TAYLORGLO_NUM_PARAMS:
    raise ValueError(f"plot_lineage_phenotypes: thetas must be float[n>0, 8], got "
                     f"{thetas.shape}")
  if len(generations) != thetas.shape[0]:
    raise ValueError(f"plot_lineage_phenotypes: {thetas.shape[0]} thetas but "
                     f"{len(generations)} generations")
  grid = np.linspace(0.01, 0.99, 197)
  last = total_generations if total_generations is not None else max(generations)
  norm = Normalize(vmin=0, vmax=max(last, 1))
  cmap = colormaps["viridis"]
  fig = Figure(figsize=(9.0, 3.6), dpi=100)
  FigureCanvasAgg(fig)
  ax, ax_ce = fig.subplots(1, 2)
  logits, labels = binary_logits(grid)
  curves = np.asarray(_taylorglo_phenotypes(jnp.asarray(thetas), jnp.asarray(logits),
                                            jnp.asarray(labels)), np.float64)
  for values, gen in zip(curves, generations):
    if not np.isfinite(values).any():  # an overflowing θ (a failed member) has no curve
      continue
    # A constant offset does not change the gradients; align the minima to compare shapes.
    ax.plot(grid, values - np.nanmin(values), color=cmap(norm(gen)), lw=1.5)
  bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax,
                     label="generation (darker = earlier)")
  bar.ax.yaxis.set_major_locator(MaxNLocator(integer=True))
  ax.set(xlabel="p (predicted probability of the true class)",
         ylabel="loss − its minimum", title=title)
  ax_ce.plot(grid, binary_phenotype("cross_entropy", grid), color="k", lw=1.5)
  ax_ce.set(xlabel="p (predicted probability of the true class)", ylabel="loss",
            title="cross-entropy")
  for a in (ax, ax_ce):
    a.title.set_fontsize(9)
  fig.tight_layout()
  path = os.fspath(path)
  if os.path.dirname(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
  fig.savefig(path, format="png")
  return path


def plot_accuracy_curves(curves: Mapping[str, Sequence[Mapping]], path, *,
                         ylabel: str = "test accuracy of the best-validation member",
                         title: str = "Test accuracy during training") -> str:
  """Accuracy against training steps per member, one line per run (the paper's Fig. 2).

  Args:
    curves: ``{label: [{"steps": int, "accuracy": float}, ...]}``; labels sharing a
      prefix before ``" seed"`` share a colour.
    path: output PNG.
    ylabel, title: axis label and title.

  Returns:
    ``str(path)``.

  Raises:
    ValueError: if ``curves`` is empty.
  """
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure

  if not curves:
    raise ValueError("plot_accuracy_curves: no curves given")
  fig = Figure(figsize=(6.4, 4.0), dpi=100)
  FigureCanvasAgg(fig)
  ax = fig.subplots()
  colours: dict[str, str] = {}
  for label, points in curves.items():
    group = label.split(" seed")[0]
    first = group not in colours
    colours.setdefault(group, f"C{len(colours)}")
    xs = [pt["steps"] for pt in points]
    ys = [pt["accuracy"] for pt in points]
    ax.plot(xs, ys, color=colours[group], alpha=0.8, marker=".", ms=3,
            label=group if first else None)
  ax.set(xlabel="training steps per member", ylabel=ylabel, title=title)
  ax.legend(fontsize="small")
  fig.tight_layout()
  path = os.fspath(path)
  if os.path.dirname(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
  fig.savefig(path, format="png")
  return path
