"""Binary phenotypes of losses: the loss of a two-class example as a function of ``p``.

The GLO paper (§V-A, Fig. 6; dissertation §4.3, eqs. 4.3–4.4) and the NLFS paper
(§3.3, Figs. 2–3) visualize a loss by its *binary phenotype*: two classes, the true
class is class 1 (labels ``[0, 1]``), and the network predicts probability ``p`` for
it (softmax outputs ``[1-p, p]``). The whole two-class loss is evaluated, both
summands included — that is what reproduces the papers' minima (Baikal near 0.71,
BaikalCMA near 0.77, every NeuroLoss at 0.99998).

Losses that read the logits themselves (``fast_logit``, ``expr:`` trees using
``logits``) are not shift-invariant; their phenotype is taken at the particular logits
``log([1-p, p])`` (log-sum-exp 0).
"""

from __future__ import annotations

import os
from typing import Callable, Mapping, Sequence, Union

import jax
import jax.numpy as jnp
import numpy as np

LossLike = Union[str, Callable]


def _as_loss(loss: LossLike) -> Callable:
  if isinstance(loss, str):
    from glojax import losses
    return losses.get(loss)
  if not callable(loss):
    raise ValueError(f"binary_phenotype: loss must be a spec string or a callable "
                     f"(logits, labels) -> per-example loss, got {loss!r}")
  return loss


def binary_logits(p: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Logits whose softmax is ``[1-p, p]`` and labels ``[0, 1]``.

  Args:
    p: predicted probability of the true class, scalar or ``float[...]`` in ``[0, 1]``.

  Returns:
    ``(logits, labels)``, both ``float32[..., 2]``: ``logits = log([1-p, p])`` (computed
    in float64, so ``p`` close to 1 keeps its precision), ``labels = [0, 1]``.

  Raises:
    ValueError: if any ``p`` is outside ``[0, 1]`` or NaN.
  """
  p = np.asarray(p, np.float64)
  if not np.all((p >= 0.0) & (p <= 1.0)):
    raise ValueError(f"binary_phenotype: p must lie in [0, 1], got {p[~((p >= 0) & (p <= 1))]}")
  with np.errstate(divide="ignore"):
    logits = np.log(np.stack([1.0 - p, p], axis=-1))
  labels = np.broadcast_to(np.array([0.0, 1.0]), logits.shape)
  return logits.astype(np.float32), labels.astype(np.float32)


def binary_phenotype(loss: LossLike, p: float | np.ndarray) -> np.ndarray:
  """The loss of a two-class example whose true class gets probability ``p``.

  Args:
    loss: a loss ``(logits, labels) -> float[...]`` (e.g. from
      ``glojax.losses.get``) or a spec string.
    p: scalar or ``float[...]`` in ``[0, 1]``.

  Returns:
    ``float32`` array of ``p``'s shape: ``loss(log([1-p, p]), [0, 1])``. For
    cross-entropy this is ``-log(p)``.

  Raises:
    ValueError: for ``p`` outside ``[0, 1]`` or a bad ``loss``.

  References:
    GLO paper §V-A (eqs. 3–4); NLFS paper §3.3.
  """
  fn = _as_loss(loss)
  logits, labels = binary_logits(p)
  # One small compiled program is faster here than op-by-op dispatch.
  return np.asarray(jax.jit(fn)(jnp.asarray(logits), jnp.asarray(labels)), np.float32)


def format_probability(p: float) -> str:
  """``p`` with enough digits to tell it from 0 and 1: 0.707, 0.99998 (never "1")."""
  p = float(p)
  digits = 3
  for edge in (p, 1.0 - p):
    if 0.0 < edge < 0.01:
      digits = max(digits, int(np.ceil(-np.log10(edge))) + 2)
  text = f"{p:.{digits}f}".rstrip("0").rstrip(".")
  return text if text not in ("0", "1") or p in (0.0, 1.0) else f"{p:.3g}"


def phenotype_figure(losses: Mapping[str, LossLike] | Sequence[LossLike],
                     p: np.ndarray | None = None, normalize: bool = False, ncols: int = 4,
                     title: str | None = None):
  """The figure of :func:`plot_binary_phenotypes` (one panel per loss), not saved.

  Args and Raises: as :func:`plot_binary_phenotypes`; ``title`` is the figure title.

  Returns:
    A :class:`matplotlib.figure.Figure`.
  """
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure

  if isinstance(losses, Mapping):
    items = list(losses.items())
  else:
    items = [(getattr(l, "spec", l if isinstance(l, str) else getattr(l, "__name__", "loss")),
              l) for l in losses]
  if not items:
    raise ValueError("plot_binary_phenotypes: no losses given")
  grid = np.linspace(0.0025, 0.9975, 399) if p is None else np.asarray(p, np.float64)
  if grid.ndim != 1 or grid.size < 2:
    raise ValueError(f"plot_binary_phenotypes: p must be a 1-D grid, got shape {grid.shape}")
  ncols = max(1, min(int(ncols), len(items)))
  nrows = -(-len(items) // ncols)
  fig = Figure(figsize=(3.2 * ncols, 2.7 * nrows + 0.5), dpi=100)
  FigureCanvasAgg(fig)
  for k, (panel_title, loss) in enumerate(items):
    ax = fig.add_subplot(nrows, ncols, k + 1)
    values = binary_phenotype(loss, grid).astype(np.float64)
    if normalize:
      finite = np.isfinite(values)
      lo, hi = np.min(values[finite]), np.max(values[finite])
      values = (values - lo) / (hi - lo) if hi > lo else values - lo
    ax.plot(grid, values, lw=1.5)
    finite = values[np.isfinite(values)]
    if finite.size:
      # Poles near p = 0 (Baikal's x/y, ...) would flatten the rest: clip the y-range
      # to the 95th percentile so the shape around the minimum stays visible.
      lo, hi = float(np.min(finite)), float(np.percentile(finite, 95))
      if np.max(finite) > hi > lo:
        ax.set_ylim(lo - 0.05 * (hi - lo), hi)
    if np.any(np.isfinite(values)):
      i = int(np.nanargmin(np.where(np.isfinite(values), values, np.nan)))
      ax.plot([grid[i]], [values[i]], "o", ms=4, color="C3")
      ax.annotate(f"min at p = {format_probability(grid[i])}", (grid[i], values[i]),
                  fontsize=7, textcoords="offset points", xytext=(-60, 8))
    label = str(panel_title)
    ax.set_title(label if len(label) <= 40 else label[:37] + "...", fontsize=8)
    ax.set_xlabel("p: predicted probability of the true class", fontsize=7)
    ax.set_ylabel("loss, rescaled to [0, 1]" if normalize else "loss (two-class example)",
                  fontsize=7)
    ax.tick_params(labelsize=6)
  fig.suptitle(title or "Binary phenotypes: loss of a two-class example whose true class "
               "gets probability p", fontsize=9)
  fig.tight_layout()
  return fig


def plot_binary_phenotypes(losses: Mapping[str, LossLike] | Sequence[LossLike],
                           path: str | os.PathLike,
                           p: np.ndarray | None = None,
                           normalize: bool = False,
                           ncols: int = 4,
                           title: str | None = None) -> str:
  """Writes a PNG with one panel per loss: its binary phenotype over ``p``.

  Each panel marks the minimum on the grid (printed with enough digits to tell it from
  1: NeuroLoss's 0.99998); its y-range is clipped at the 95th percentile of the curve so
  poles near ``p = 0`` do not flatten it. Uses matplotlib's Agg canvas directly (no
  pyplot, no global backend change), so it works headless.

  Args:
    losses: ``{title: loss or spec}`` or a sequence of specs / :class:`Loss` objects
      (titled by their spec).
    path: output file (``.png``); parent directories are created.
    p: the grid, ``float[k]`` in ``[0, 1]``; default 399 points in ``[0.0025, 0.9975]``.
    normalize: rescale each curve to ``[0, 1]`` (as NLFS Fig. 2 does).
    ncols: panels per row.
    title: figure title (default: what a binary phenotype is).

  Returns:
    ``str(path)``.

  Raises:
    ValueError: for an empty ``losses`` or a bad grid.
  """
  fig = phenotype_figure(losses, p=p, normalize=normalize, ncols=ncols, title=title)
  path = os.fspath(path)
  parent = os.path.dirname(path)
  if parent:
    os.makedirs(parent, exist_ok=True)
  fig.savefig(path, format="png")
  return path
