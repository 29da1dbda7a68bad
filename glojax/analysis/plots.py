"""Plots for judging a loss and the networks it trains (PNG files, matplotlib without pyplot).

* attraction characteristic curves (dissertation Fig. 6.1),
* histograms of the predicted probability of the true class (GLO paper Fig. 7, diss. Fig. 4.7),
* weight histograms with L2 norm and mean (diss. Fig. 5.8, Table 5.3),
* 1-D and 2-D accuracy basins along filter-normalized random directions (diss. Figs. 5.7, 7.5;
  Li et al. 2018),
* per-generation fitness curves of a search workdir (``<workdir>/log.jsonl``).

Every ``plot_*`` function writes a PNG to ``path`` (parent folders are created) and returns the
:class:`matplotlib.figure.Figure`, so callers and tests can inspect the axes. Figures are built
with :class:`matplotlib.figure.Figure` directly, so no GUI backend or global pyplot state is
involved. Binary-phenotype plots live in ``glojax.analysis.phenotype``.
"""

from __future__ import annotations

import json
import math
import os
from typing import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from glojax.analysis import theory


def _new_figure(figsize=(6.0, 4.0)):
  from matplotlib.figure import Figure
  fig = Figure(figsize=figsize, dpi=100)
  return fig


def _save(fig, path):
  path = os.fspath(path)
  if not path:
    raise ValueError("plot: path must be a non-empty file name.")
  parent = os.path.dirname(os.path.abspath(path))
  os.makedirs(parent, exist_ok=True)
  fig.savefig(path, format="png", bbox_inches="tight")
  return fig


def _check_mapping(items, name):
  if not isinstance(items, Mapping) or not items:
    size = len(items) if hasattr(items, "__len__") else "?"
    raise ValueError(f"{name}: expected a non-empty mapping name -> data, got "
                     f"{type(items).__name__} with {size} entries.")


def legend_outside(ax, **kwargs):
  """Places ``ax``'s legend right of the axes, outside the data (the plot style guide)."""
  return ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0),
                   borderaxespad=0.0, **kwargs)


def style_problems(fig) -> list[str]:
  """What a figure lacks under the plotting style guide (``docs/plots.md``).

  Checks every axes that shows data: non-empty x and y labels (and z for 3-D axes), a
  title (its own or the figure's), and every legend lying outside the axes it describes.
  Colorbars are checked for a label.

  Args:
    fig: a :class:`matplotlib.figure.Figure`.

  Returns:
    Human-readable problems; empty when the figure follows the guide.
  """
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  FigureCanvasAgg(fig)
  renderer = fig.canvas.get_renderer()
  fig.draw(renderer)
  problems = []
  has_suptitle = bool(fig._suptitle is not None and fig._suptitle.get_text().strip())
  for k, ax in enumerate(fig.axes):
    name = f"axes {k} ({ax.get_title() or 'untitled'})"
    if ax.get_label() == "<colorbar>":
      if not (ax.get_ylabel().strip() or ax.get_xlabel().strip()):
        problems.append(f"{name}: colorbar without a label")
      continue
    if not (ax.lines or ax.collections or ax.patches or ax.images):
      continue
    labels = {"x": ax.get_xlabel(), "y": ax.get_ylabel()}
    if hasattr(ax, "get_zlabel"):
      labels["z"] = ax.get_zlabel()
    problems += [f"{name}: empty {a} label" for a, v in labels.items() if not v.strip()]
    if not (ax.get_title().strip() or has_suptitle):
      problems.append(f"{name}: no title (the axes' or the figure's)")
    legend = ax.get_legend()
    if legend is not None:
      box = legend.get_window_extent(renderer)
      area = ax.get_window_extent(renderer)
      dx = min(box.x1, area.x1) - max(box.x0, area.x0)
      dy = min(box.y1, area.y1) - max(box.y0, area.y0)
      if dx > 1 and dy > 1:
        problems.append(f"{name}: the legend covers the data area")
  for legend in fig.legends:
    box = legend.get_window_extent(renderer)
    for ax in fig.axes:
      area = ax.get_window_extent(renderer)
      if (min(box.x1, area.x1) - max(box.x0, area.x0) > 1
          and min(box.y1, area.y1) - max(box.y0, area.y0) > 1):
        problems.append("a figure legend covers an axes")
  return problems


# --------------------------------------------------------------------------------------------
# Attraction characteristic curves


def plot_attraction_curves(losses: Mapping[str, object],
                           n: int | Sequence[int],
                           path,
                           *,
                           eps_grid=None,
                           space: str = "logits",
                           class_reduction: str = "mean",
                           step_size: float = 1.0,
                           title: str | None = None):
  r"""Attraction-to-zero-training-error characteristic curves (dissertation Fig. 6.1).

  Plots :func:`glojax.analysis.theory.characteristic_curve` (eq. 6.51, corrected) against ε.
  Positive values pull a sample towards memorization, negative values push it away. The
  strength is a probability change, so it lies in :math:`(-(1-\epsilon), \epsilon)`.

  Args:
    losses: mapping ``name -> loss`` where a loss is a callable ``loss(logits, labels)`` (or on
      probabilities with ``space="probs"``), a spec string (``"baikal"``), a TaylorGLO θ
      ``float[8]``, or a precomputed
      :class:`~glojax.analysis.theory.CharacteristicCurve`.
    n: number of classes, or several (one line per loss and n).
    path: output PNG file.
    eps_grid: ``float[E]`` in (0, 1); default 199 points in [0.005, 0.995].
    space, class_reduction, step_size: see :func:`~glojax.analysis.theory.characteristic_curve`.
    title: optional axes title.

  Returns:
    The saved :class:`~matplotlib.figure.Figure` (x axis ε ∈ [0, 1]).

  Raises:
    ValueError: on an empty mapping or bad ``n``/``eps_grid``.
  """
  _check_mapping(losses, "plot_attraction_curves")
  ns = [n] if isinstance(n, (int, np.integer)) else list(n)
  fig = _new_figure()
  ax = fig.subplots()
  for name, loss in losses.items():
    for n_i in ns:
      if isinstance(loss, theory.CharacteristicCurve):
        curve = loss
      else:
        curve = theory.characteristic_curve(loss, n_i, eps_grid, space=space,
                                            class_reduction=class_reduction,
                                            step_size=step_size)
      label = name if len(ns) == 1 else f"{name} (n={n_i})"
      ax.plot(np.asarray(curve.eps), np.asarray(curve.strength), label=label)
      if isinstance(loss, theory.CharacteristicCurve):
        break
  ax.axhline(0.0, color="black", linewidth=0.8)
  ax.set_xlim(0.0, 1.0)
  ax.set_xlabel(r"$\epsilon$ = 1 - target probability (before the step)")
  ax.set_ylabel("S: change of the target probability\nin one SGD step (> 0: towards 1)")
  n_text = ", ".join(str(n_i) for n_i in ns)
  ax.set_title(title or f"Attraction to zero training error (eq. 6.51), n = {n_text} classes")
  legend_outside(ax)
  return _save(fig, path)


# --------------------------------------------------------------------------------------------
# Outputs on a test set


def predict_logits(apply_fn: Callable, params, images, *, batch_size: int = 500) -> np.ndarray:
  """Logits of a model on a dataset, in batches.

  Args:
    apply_fn: ``apply_fn(params, images) -> logits float[B, n]`` (e.g.
      ``lambda p, x: model.apply({"params": p}, x, train=False)``).
    params: the model's parameter pytree.
    images: ``float[N, ...]`` inputs.
    batch_size: examples per call.

  Returns:
    ``np.float32[N, n]`` logits.

  Raises:
    ValueError: if ``batch_size < 1`` or ``images`` is empty.
  """
  if batch_size < 1:
    raise ValueError(f"predict_logits: batch_size must be >= 1, got {batch_size}.")
  images = np.asarray(images)
  if images.shape[0] == 0:
    raise ValueError("predict_logits: images is empty.")
  fn = jax.jit(apply_fn)
  outs = [np.asarray(fn(params, images[i:i + batch_size]))
          for i in range(0, images.shape[0], batch_size)]
  return np.concatenate(outs, axis=0)


def true_class_probabilities(logits, labels) -> np.ndarray:
  """Predicted probability of the true class, ``softmax(logits)[i, labels[i]]``.

  Args:
    logits: ``float[N, n]``.
    labels: ``int[N]`` class indices, or ``float[N, n]`` one-hot/soft labels (argmax is used).

  Returns:
    ``np.float32[N]`` in [0, 1].

  Raises:
    ValueError: on mismatched shapes or class indices out of range.
  """
  logits = np.asarray(logits)
  labels = np.asarray(labels)
  if labels.ndim == 2:
    labels = labels.argmax(axis=-1)
  if logits.ndim != 2 or labels.shape != (logits.shape[0],):
    raise ValueError(f"true_class_probabilities: expected logits [N, n] and labels [N], got "
                     f"{logits.shape} and {labels.shape}.")
  if labels.size and (labels.min() < 0 or labels.max() >= logits.shape[1]):
    raise ValueError(f"true_class_probabilities: labels must be in [0, {logits.shape[1]}), got "
                     f"range [{labels.min()}, {labels.max()}].")
  probs = np.asarray(jax.nn.softmax(jnp.asarray(logits), axis=-1))
  return probs[np.arange(labels.shape[0]), labels].astype(np.float32)


def plot_true_class_histogram(probabilities: Mapping[str, object], path, *, bins: int = 50,
                              log_scale: bool = True, title: str | None = None):
  """Histograms of the predicted probability of the true class (GLO paper Fig. 7).

  A regularizing loss (BaikalCMA) moves mass away from exactly 1.0; cross-entropy piles it there.

  Args:
    probabilities: mapping ``name -> float[N]`` (from :func:`true_class_probabilities`).
    path: output PNG.
    bins: number of equal-width bins on [0, 1].
    log_scale: logarithmic count axis (the extremes dominate otherwise).
    title: optional title.

  Returns:
    The saved Figure (x axis [0, 1]).

  Raises:
    ValueError: on an empty mapping, ``bins < 1`` or values outside [0, 1].
  """
  _check_mapping(probabilities, "plot_true_class_histogram")
  if bins < 1:
    raise ValueError(f"plot_true_class_histogram: bins must be >= 1, got {bins}.")
  fig = _new_figure()
  ax = fig.subplots()
  edges = np.linspace(0.0, 1.0, bins + 1)
  for name, values in probabilities.items():
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if values.size == 0 or np.any(~np.isfinite(values)) or values.min() < 0 or values.max() > 1:
      raise ValueError(f"plot_true_class_histogram: {name!r} needs finite values in [0, 1].")
    ax.hist(values, bins=edges, histtype="step", linewidth=1.5, label=f"{name} (N={values.size})")
  if log_scale:
    ax.set_yscale("log")
  ax.set_xlim(0.0, 1.0)
  ax.set_xlabel("predicted probability of the true class")
  ax.set_ylabel("examples per bin" + (" (log scale)" if log_scale else ""))
  ax.set_title(title or "True-class output distribution")
  legend_outside(ax)
  return _save(fig, path)


# --------------------------------------------------------------------------------------------
# Weights


def _flat_weights(params) -> np.ndarray:
  leaves = [np.asarray(x, dtype=np.float64).reshape(-1) for x in jax.tree_util.tree_leaves(params)]
  if not leaves:
    raise ValueError("weight_statistics: params has no array leaves.")
  return np.concatenate(leaves)


def weight_statistics(params) -> dict:
  """L2 norm, mean, std and count of all trainable parameters (dissertation Table 5.3).

  Args:
    params: a parameter pytree.

  Returns:
    ``{"l2_norm", "mean", "std", "count"}`` (floats, count int) over every leaf flattened.

  Raises:
    ValueError: if ``params`` has no leaves.
  """
  w = _flat_weights(params)
  return {"l2_norm": float(np.linalg.norm(w)), "mean": float(w.mean()), "std": float(w.std()),
          "count": int(w.size)}


def plot_weight_histograms(params_by_name: Mapping[str, object], path, *, bins: int = 51,
                           title: str | None = None):
  """Overlaid histograms of all weights, labelled with L2 norm and mean (Fig. 5.8, Table 5.3).

  Args:
    params_by_name: mapping ``name -> parameter pytree``.
    path: output PNG.
    bins: bins over the common range (51 as in the dissertation).
    title: optional title.

  Returns:
    The saved Figure.

  Raises:
    ValueError: on an empty mapping or ``bins < 1``.
  """
  _check_mapping(params_by_name, "plot_weight_histograms")
  if bins < 1:
    raise ValueError(f"plot_weight_histograms: bins must be >= 1, got {bins}.")
  flats = {name: _flat_weights(p) for name, p in params_by_name.items()}
  lo = min(float(w.min()) for w in flats.values())
  hi = max(float(w.max()) for w in flats.values())
  if hi <= lo:
    hi = lo + 1e-6
  edges = np.linspace(lo, hi, bins + 1)
  fig = _new_figure()
  ax = fig.subplots()
  for name, w in flats.items():
    label = f"{name}: L2 {np.linalg.norm(w):.4f}, mean {w.mean():.4f}"
    ax.hist(w, bins=edges, histtype="step", linewidth=1.5, label=label)
  ax.set_xlim(lo, hi)
  ax.set_xlabel("weight value")
  ax.set_ylabel("parameters per bin")
  ax.set_title(title or "Weight distribution")
  legend_outside(ax)
  return _save(fig, path)


# --------------------------------------------------------------------------------------------
# Accuracy basins


def filter_normalized_direction(params, key: jax.Array, *, ignore_bias: bool = True):
  """A random Gaussian direction rescaled filter-wise to the weights' norms (Li et al. 2018).

  For every array with ≥ 2 dims (dense kernels ``[in, out]``, conv kernels ``[kh, kw, in,
  out]``) each output unit/filter (last axis) of the direction is rescaled to the norm of the
  same filter in ``params``; 1-D arrays (biases, norm scales) get a zero direction when
  ``ignore_bias`` (Li et al.'s default), else are rescaled as a whole.

  Args:
    params: parameter pytree.
    key: PRNG key.
    ignore_bias: zero the direction on 1-D leaves.

  Returns:
    A pytree like ``params``.

  References:
    Li et al., "Visualizing the Loss Landscape of Neural Nets" (NeurIPS 2018) §4; dissertation
    §5.5.1.
  """
  leaves, treedef = jax.tree_util.tree_flatten(params)
  keys = jax.random.split(key, max(len(leaves), 1))
  out = []
  for leaf, k in zip(leaves, keys):
    leaf = jnp.asarray(leaf)
    d = jax.random.normal(k, leaf.shape, dtype=jnp.result_type(leaf.dtype, jnp.float32))
    if leaf.ndim <= 1:
      if ignore_bias:
        d = jnp.zeros_like(d)
      else:
        d = d * jnp.linalg.norm(leaf) / (jnp.linalg.norm(d) + 1e-10)
    else:
      axes = tuple(range(leaf.ndim - 1))
      w_norm = jnp.sqrt(jnp.sum(leaf**2, axis=axes, keepdims=True))
      d_norm = jnp.sqrt(jnp.sum(d**2, axis=axes, keepdims=True))
      d = d * w_norm / (d_norm + 1e-10)
    out.append(d.astype(leaf.dtype))
  return jax.tree_util.tree_unflatten(treedef, out)


def _accuracy_fn(apply_fn, images, labels, batch_size):
  images = np.asarray(images)
  labels = np.asarray(labels)
  if labels.ndim == 2:
    labels = labels.argmax(-1)
  if images.shape[0] != labels.shape[0] or images.shape[0] == 0:
    raise ValueError(f"accuracy basin: images and labels must be non-empty with the same length, "
                     f"got {images.shape[0]} and {labels.shape[0]}.")
  batches = [(images[i:i + batch_size], labels[i:i + batch_size])
             for i in range(0, images.shape[0], batch_size)]

  @jax.jit
  def correct(params, x, y):
    return jnp.sum(jnp.argmax(apply_fn(params, x), axis=-1) == y)

  def accuracy(params):
    return float(sum(int(correct(params, x, y)) for x, y in batches)) / images.shape[0]

  return accuracy


def _axpy(params, coeffs_dirs):
  def combine(p, *ds):
    total = p
    for (c, _), d in zip(coeffs_dirs, ds):
      total = total + c * d
    return total
  return jax.tree_util.tree_map(combine, params, *[d for _, d in coeffs_dirs])


def accuracy_basin_1d(apply_fn: Callable, params, images, labels, *, key: jax.Array = None,
                      direction=None, alphas=None, batch_size: int = 500) -> dict:
  """Accuracy of ``params + alpha * d`` along a filter-normalized random direction d.

  Args:
    apply_fn: ``apply_fn(params, images) -> logits`` (inference mode).
    params: trained parameter pytree (the basin's centre).
    images: ``float[N, ...]``; labels: ``int[N]`` (or one-hot ``[N, n]``).
    key: PRNG key for the direction (ignored when ``direction`` is given).
    direction: optional pytree like ``params``.
    alphas: ``float[A]`` offsets; default 21 points in [-1, 1] (the dissertation's slice).
    batch_size: evaluation batch size.

  Returns:
    ``{"alphas": np.float64[A], "accuracy": np.float64[A]}``.

  Raises:
    ValueError: if neither ``key`` nor ``direction`` is given, or on empty data.
  """
  if direction is None:
    if key is None:
      raise ValueError("accuracy_basin_1d: give a PRNG key or a direction.")
    direction = filter_normalized_direction(params, key)
  alphas = np.linspace(-1, 1, 21) if alphas is None else np.asarray(alphas, dtype=np.float64)
  accuracy = _accuracy_fn(apply_fn, images, labels, batch_size)
  accs = [accuracy(_axpy(params, [(float(a), direction)])) for a in alphas]
  return {"alphas": alphas, "accuracy": np.asarray(accs)}


def accuracy_basin_2d(apply_fn: Callable, params, images, labels, *, key: jax.Array = None,
                      directions=None, alphas=None, betas=None, batch_size: int = 500) -> dict:
  """Accuracy on the grid ``params + alpha * d1 + beta * d2`` (dissertation Fig. 5.7).

  Args:
    apply_fn, params, images, labels, batch_size: as :func:`accuracy_basin_1d`.
    key: PRNG key for two filter-normalized directions (ignored if ``directions`` given).
    directions: optional pair of pytrees.
    alphas, betas: ``float[A]``, ``float[B]``; default 11 points each in [-1, 1].

  Returns:
    ``{"alphas": [A], "betas": [B], "accuracy": np.float64[A, B]}``.

  Raises:
    ValueError: if neither ``key`` nor ``directions`` is given, or on empty data.
  """
  if directions is None:
    if key is None:
      raise ValueError("accuracy_basin_2d: give a PRNG key or two directions.")
    k1, k2 = jax.random.split(key)
    directions = (filter_normalized_direction(params, k1), filter_normalized_direction(params, k2))
  d1, d2 = directions
  alphas = np.linspace(-1, 1, 11) if alphas is None else np.asarray(alphas, dtype=np.float64)
  betas = np.linspace(-1, 1, 11) if betas is None else np.asarray(betas, dtype=np.float64)
  accuracy = _accuracy_fn(apply_fn, images, labels, batch_size)
  grid = np.array([[accuracy(_axpy(params, [(float(a), d1), (float(b), d2)])) for b in betas]
                   for a in alphas])
  return {"alphas": alphas, "betas": betas, "accuracy": grid}


def plot_basin_1d(basins: Mapping[str, dict], path, *, title: str | None = None):
  """Accuracy along one filter-normalized direction for one or more models (Fig. 7.5).

  Args:
    basins: mapping ``name -> accuracy_basin_1d(...)`` result.
    path: output PNG.
    title: optional title.

  Returns:
    The saved Figure (y axis accuracy in [0, 1]).
  """
  _check_mapping(basins, "plot_basin_1d")
  fig = _new_figure()
  ax = fig.subplots()
  for name, b in basins.items():
    ax.plot(b["alphas"], b["accuracy"], marker="o", markersize=3, label=name)
  ax.set_ylim(0.0, 1.0)
  ax.set_xlabel(r"$\alpha$: step along a filter-normalized random direction")
  ax.set_ylabel("accuracy (fraction correct)")
  ax.set_title(title or "Accuracy basin (1-D)")
  legend_outside(ax)
  return _save(fig, path)


def plot_basin_2d(basin: dict, path, *, title: str | None = None, surface: bool = False):
  """Accuracy over a 2-D filter-normalized slice (dissertation Fig. 5.7).

  Args:
    basin: an :func:`accuracy_basin_2d` result.
    path: output PNG.
    title: optional title.
    surface: draw a 3-D surface (as the dissertation) instead of filled contours.

  Returns:
    The saved Figure (colour/z scale accuracy in [0, 1]).
  """
  alphas, betas, acc = basin["alphas"], basin["betas"], np.asarray(basin["accuracy"])
  if acc.shape != (len(alphas), len(betas)):
    raise ValueError(f"plot_basin_2d: accuracy shape {acc.shape} does not match "
                     f"({len(alphas)}, {len(betas)}).")
  a_grid, b_grid = np.meshgrid(alphas, betas, indexing="ij")
  fig = _new_figure()
  if surface:
    ax = fig.add_subplot(projection="3d")
    ax.plot_surface(a_grid, b_grid, acc, cmap="coolwarm", vmin=0.0, vmax=1.0)
    ax.set_zlim(0.0, 1.0)
    ax.set_zlabel("accuracy (fraction correct)")
  else:
    ax = fig.subplots()
    levels = np.linspace(0.0, 1.0, 21)
    cs = ax.contourf(a_grid, b_grid, acc, levels=levels, cmap="coolwarm", vmin=0.0, vmax=1.0)
    fig.colorbar(cs, ax=ax, label="accuracy (fraction correct)")
  ax.set_xlabel(r"$\alpha$: step along direction 1")
  ax.set_ylabel(r"$\beta$: step along direction 2")
  ax.set_title(title or "Accuracy basin (2-D)")
  return _save(fig, path)


# --------------------------------------------------------------------------------------------
# Search workdirs


def read_fitness_log(workdir) -> dict:
  """Reads ``<workdir>/log.jsonl`` (one JSON object per generation) in run order.

  A search may have several phases that each count generations from 0 (GLO: the GA,
  then CMA-ES on the coefficients of one or more trees), so rows are keyed by *segment*
  and generation: the segment is the row's ``phase`` (``"search"`` if it has none) plus,
  for a coefficient phase, its ``tree``. Segments keep the order in which they first
  appear; a repeated ``(segment, generation)`` (a resumed run re-logging it) keeps its last
  row.

  Args:
    workdir: a search workdir.

  Returns:
    A dict of per-row lists/arrays, ``G`` rows in run order:
    ``"step"`` ``int[G]`` 1-based position in the run (the plots' x axis),
    ``"generation"`` ``int[G]`` generation within its segment as logged (0-based),
    ``"phase"`` and ``"segment"`` (``list[str]``), ``"best"``, ``"mean"``, ``"median"``,
    ``"best_ever"`` (``float[G]``; NaN where not logged) and ``"fitness"`` (list of ``G``
    lists); non-finite or null fitness values become ``nan``.

  Raises:
    FileNotFoundError: if the log is missing.
    ValueError: if a line is not JSON or lacks a required key.
  """
  path = os.path.join(os.fspath(workdir), "log.jsonl")
  if not os.path.exists(path):
    raise FileNotFoundError(f"read_fitness_log: no log.jsonl in {workdir!r}.")
  segments: dict[str, dict[int, dict]] = {}
  with open(path) as f:
    for lineno, line in enumerate(f, 1):
      if not line.strip():
        continue
      try:
        row = json.loads(line)
      except json.JSONDecodeError as e:
        raise ValueError(f"read_fitness_log: {path}:{lineno} is not JSON ({e}).") from None
      missing = [k for k in ("generation", "fitness", "best", "mean", "median") if k not in row]
      if missing:
        raise ValueError(f"read_fitness_log: {path}:{lineno} lacks keys {missing}.")
      segments.setdefault(_segment(row), {})[int(row["generation"])] = row
  if not segments:
    raise ValueError(f"read_fitness_log: {path} has no generations.")

  def num(v):
    return float("nan") if v is None else float(v)

  rows = [(seg, g, by_gen[g]) for seg, by_gen in segments.items() for g in sorted(by_gen)]
  return {
      "step": np.arange(1, len(rows) + 1, dtype=np.int64),
      "generation": np.asarray([g for _, g, _ in rows], dtype=np.int64),
      "phase": [r.get("phase") or "search" for _, _, r in rows],
      "segment": [seg for seg, _, _ in rows],
      "best": np.asarray([num(r["best"]) for _, _, r in rows]),
      "mean": np.asarray([num(r["mean"]) for _, _, r in rows]),
      "median": np.asarray([num(r["median"]) for _, _, r in rows]),
      "best_ever": np.asarray([num(r.get("best_ever")) for _, _, r in rows]),
      "fitness": [[num(v) for v in r["fitness"]] for _, _, r in rows],
  }


_PHASE_NAMES = {"ga": "GA", "cma": "CMA-ES", "search": "search"}


def _segment(row: dict) -> str:
  phase = row.get("phase") or "search"
  return f"{phase}: {row['tree']}" if row.get("tree") else phase


def _segment_title(segment: str) -> str:
  phase, _, tree = segment.partition(": ")
  name = _PHASE_NAMES.get(phase, phase)
  return name if not tree else f"{name} ({tree if len(tree) <= 24 else tree[:21] + '...'})"


def fitness_description(workdir) -> str:
  """What a search's fitness measured, from ``<workdir>/config.json``: ``"validation
  accuracy after N training steps"`` for configs with ``train.steps``, else ``"fitness"``."""
  config = _read_config(workdir)
  steps = (config.get("train") or {}).get("steps")
  if isinstance(steps, int):
    return f"validation accuracy after {steps:,} training steps"
  return "fitness"


def run_description(workdir) -> str:
  """``"runs/quickstart (mnist5k, mlp)"``: the workdir and, from its ``config.json``, the
  dataset and model — what a plot title needs to say which run it shows."""
  config = _read_config(workdir)
  parts = [((config.get(k) or {}).get("name")) for k in ("dataset", "model")]
  parts = [p for p in parts if isinstance(p, str)]
  name = os.path.normpath(os.fspath(workdir))  # as the user gave it: runs/quickstart
  if name in (".", ".."):
    name = os.path.abspath(name)
  return name + (f" ({', '.join(parts)})" if parts else "")


def _read_config(workdir) -> dict:
  try:
    with open(os.path.join(os.fspath(workdir), "config.json")) as f:
      config = json.load(f)
  except (OSError, ValueError):
    return {}
  return config if isinstance(config, dict) else {}


def plot_fitness_curves(workdir, path, *, title: str | None = None,
                        search: str = "Search"):
  """Per-generation fitness of a search: every candidate (dots), best, mean, median.

  The x axis counts generations from 1, as the console does, through all phases in run
  order (GLO: the GA, then each CMA-ES phase, separated by vertical lines); the y axis
  says what fitness measured (:func:`fitness_description`); the legend sits outside the
  data, right of the axes.

  Args:
    workdir: search workdir containing ``log.jsonl`` (and ``config.json``).
    path: output PNG.
    title: the title (default: ``"<search>: <workdir> (<dataset>, <model>)"``).
    search: the search's name for the default title (``"TaylorGLO search"``).

  Returns:
    The saved Figure.

  Raises:
    FileNotFoundError, ValueError: as :func:`read_fitness_log`.
  """
  log = read_fitness_log(workdir)
  fig = _new_figure(figsize=(8.0, 4.0))
  ax = fig.subplots()
  x = log["step"]
  xs, ys = [], []
  for step, fit in zip(x, log["fitness"]):
    fit = np.asarray(fit, dtype=np.float64)
    fit = fit[np.isfinite(fit)]
    xs.extend([step] * fit.size)
    ys.extend(fit.tolist())
  ax.scatter(xs, ys, s=6, alpha=0.3, color="gray", label="each candidate")
  segments = list(dict.fromkeys(log["segment"]))
  for k, seg in enumerate(segments):  # lines do not join across phases
    rows = np.asarray([s_ == seg for s_ in log["segment"]])
    first = k == 0
    ax.plot(x[rows], log["best"][rows], color="C0", linewidth=2,
            label="best of generation" if first else None)
    ax.plot(x[rows], log["mean"][rows], color="C1", label="mean" if first else None)
    ax.plot(x[rows], log["median"][rows], color="C2", linestyle="--",
            label="median" if first else None)
    if np.any(np.isfinite(log["best_ever"][rows])):
      ax.plot(x[rows], log["best_ever"][rows], "k:", linewidth=1,
              label="best so far" if first else None)
  # Fitness is usually an accuracy: show [0, 1] at least, widened to hold every value.
  finite = [v for v in ys + log["best"].tolist() + log["mean"].tolist() if math.isfinite(v)]
  ax.set_ylim(min(finite + [0.0]), max(finite + [1.0]) + 0.02)
  ax.set_xlim(x.min() - 0.5, x.max() + 0.5)
  from matplotlib.ticker import FuncFormatter, MaxNLocator
  ax.xaxis.set_major_locator(MaxNLocator(integer=True))
  if len(segments) > 1:
    # Each phase counts its own generations from 1, as the console does; ticks show
    # that count, the phase names sit above the axes.
    in_phase = dict(zip(x.tolist(), (log["generation"] + 1).tolist()))
    ax.xaxis.set_major_formatter(FuncFormatter(
        lambda v, _: str(in_phase[int(v)]) if float(v).is_integer() and int(v) in in_phase
        else ""))
    for k, seg in enumerate(segments):
      start = int(x[log["segment"].index(seg)])
      if k:
        ax.axvline(start - 0.5, color="gray", linewidth=1)
      ax.annotate(_segment_title(seg), (start - 0.4, 1.0), xycoords=("data", "axes fraction"),
                  xytext=(0, 2), textcoords="offset points", fontsize=7, va="bottom")
    ax.set_xlabel("generation within each phase (counted from 1, as on the console)")
  else:
    ax.set_xlabel("generation (counted from 1, as on the console)")
  ax.set_ylabel(fitness_description(workdir) + "\n(fitness; 0 = failed or skipped)")
  ax.set_title(title or f"{search}: {run_description(workdir)}",
               pad=14 if len(segments) > 1 else None)
  legend_outside(ax)
  return _save(fig, path)
