r"""Published classification losses (``docs/losses.md``), as pure per-example functions.

Every function here follows the project signature (``docs/losses.md``):
``loss(logits, labels, ...) -> per_example_loss`` with ``logits, labels: float[..., n]``
(``labels`` one-hot or soft) and a result of shape ``float[...]``; the caller takes the
batch mean (optax's convention). All are jit/grad/vmap-safe.

Notation: :math:`x` = labels, :math:`y = \mathrm{softmax}(\tilde y)`, :math:`\tilde y` =
logits, :math:`n` = number of classes. The losses found by metalearning are written in
the papers' GLO form

.. math:: L = -\frac{1}{n} \sum_{i=1}^n f(x_i, y_i[, \tilde y_i]),

i.e. a **mean over classes** (``class_reduction="mean"``, the default). The authors' code
sums over classes instead, a constant factor ``n`` (a learning-rate scale), available as
``class_reduction="sum"``.

The published formulas are implemented as printed, with the paper's ``ε`` where it
gives one (the NLFS losses use ``ε = 1e-7``). Numerics (``docs/losses.md``, "Saturation
and masking"): every loss computes in at least float32 from ``log_softmax``, so a
saturated softmax entry keeps its true magnitude and logits of ``±inf`` give the limit
of the formula. Losses written with ``x / y`` (Baikal, BaikalCMA, FastLogit) are GLO
trees and run through the one tree evaluator (:func:`glojax.expr.program.tree_loss`,
exact at any logit spread); the others are bounded functions of ``y ∈ [0, 1]``
evaluated with the limit softmax (:func:`glojax.losses.core.softmax`).
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp

from glojax.losses import core
from glojax.losses.core import _check_shapes, _reduce_classes

# NLFS paper (Morgan & Hougen 2024), Tables 1–2: ε for numerical stability.
NLFS_EPSILON = 1e-7
# GLO paper eq. (2) / dissertation eq. 4.2: BaikalCMA's coefficients c0…c5.
BAIKAL_CMA_COEFFICIENTS = (2.7279, 0.9863, 1.5352, -1.1135, 1.3716, -0.8411)

# f(x, y) -> float[..., n]: the summand of L = -(1/n) Σ_i f (bounded losses).
_Terms = Callable[[jax.Array, jax.Array], jax.Array]
# The tree-shaped losses, as GLO trees (x = labels, y = softmax, logits).
BAIKAL_TREE = "log(y) - x / y"
FAST_LOGIT_TREE = "(logits - x) * (x / y - (logits - (-2)))"


def _baikal_cma_tree() -> str:
  c0, c1, c2, c3, c4, c5 = (repr(c) for c in BAIKAL_CMA_COEFFICIENTS)
  return f"{c0} * ({c1} * log({c2} * y) - ({c3}) * ({c4} * x) / ({c5} * y))"


def _glo_form(terms: _Terms, logits, labels, class_reduction: str, name: str):
  """``L = -reduce_i f(x_i, y_i)`` with ``y`` the limit softmax (bounded ``f`` only)."""
  _check_shapes(logits, labels, name)
  logits, labels, out = core.upcast(logits, labels)
  y = core.softmax(logits)
  return (-_reduce_classes(terms(labels, y), class_reduction, name)).astype(out)


@functools.lru_cache(maxsize=None)
def _tree_loss(text: str, class_reduction: str):
  from glojax.expr import program, tree
  return program.tree_loss(tree.parse(text), class_reduction)


def _tree_form(text: str, logits, labels, class_reduction: str, name: str):
  """``L = -reduce_i f`` for a loss that is a GLO tree ``text`` (exact at saturation)."""
  _check_shapes(logits, labels, name)
  if class_reduction not in core.CLASS_REDUCTIONS:
    _reduce_classes(None, class_reduction, name)   # raises the usual ValueError
  return _tree_loss(text, class_reduction)(logits, labels)


def label_smoothed_cross_entropy(logits: jax.Array, labels: jax.Array,
                                 alpha: float | jax.Array = 0.1) -> jax.Array:
  r"""Cross-entropy against label-smoothed targets, per example.

  .. math:: L = -\sum_i \left(x_i (1-\alpha) + \frac{\alpha}{n}\right) \log y_i

  Args:
    logits: ``float[..., n]``.
    labels: ``float[..., n]`` target distribution (one-hot or soft).
    alpha: smoothing strength in ``[0, 1]`` (may be a traced scalar). ``0`` gives plain
      cross-entropy.

  Returns:
    ``float[...]`` per-example loss (nats); equals ``optax.softmax_cross_entropy(logits,
    optax.smooth_labels(labels, alpha))`` where that is finite. A masked class
    (logit ``-inf``) gets the target ``α/n > 0``, so the loss is ``+inf`` for
    ``α > 0`` (it truly diverges).

  Raises:
    ValueError: if the shapes of ``logits`` and ``labels`` differ.

  References:
    Szegedy et al. 2016, "Rethinking the Inception Architecture" §7; dissertation
    eqs. 6.77–6.82 (label smoothing as a TaylorGLO reparameterization).
  """
  _check_shapes(logits, labels, "label_smoothing")
  logits, labels, out = core.upcast(logits, labels)
  n = jnp.shape(labels)[-1]
  smoothed = labels * (1.0 - alpha) + alpha / n
  return (-core.xlogy_sum(smoothed, core.log_softmax(logits))).astype(out)


def polyloss(logits: jax.Array, labels: jax.Array,
             epsilon: float | jax.Array = 2.0) -> jax.Array:
  r"""Poly-1 loss: cross-entropy plus a first-order polynomial term, per example.

  .. math:: L = -\sum_i x_i \log y_i + \epsilon \left(1 - \sum_i x_i y_i\right)

  Args:
    logits: ``float[..., n]``.
    labels: ``float[..., n]`` target distribution.
    epsilon: coefficient of the polynomial term (optax's default 2.0; may be traced).

  Returns:
    ``float[...]``; equals ``optax.losses.poly_loss_cross_entropy`` where that is
    finite, and the limit at ``±inf`` logits (a masked class with label 0 adds 0).

  Raises:
    ValueError: if the shapes of ``logits`` and ``labels`` differ.

  References:
    Leng et al. 2022, "PolyLoss: A Polynomial Expansion Perspective of Classification
    Loss Functions", eq. 2 (Poly-1).
  """
  _check_shapes(logits, labels, "polyloss")
  logits, labels, out = core.upcast(logits, labels)
  ce = -core.xlogy_sum(labels, core.log_softmax(logits))
  pt = jnp.sum(labels * core.softmax(logits), axis=-1)
  return (ce + epsilon * (1.0 - pt)).astype(out)


def mse(logits: jax.Array, labels: jax.Array, class_reduction: str = "mean") -> jax.Array:
  r"""Mean squared error between labels and softmax outputs, per example.

  .. math:: L = \frac{1}{n} \sum_i (x_i - y_i)^2

  Args:
    logits: ``float[..., n]``.
    labels: ``float[..., n]``.
    class_reduction: ``"mean"`` (default, as above) or ``"sum"`` (drops the ``1/n``).

  Returns:
    ``float[...]`` per-example loss.

  Raises:
    ValueError: for mismatched shapes or an unknown ``class_reduction``.

  References:
    Dissertation ch. 6 (MSE in the learning-rule analysis, eq. 6.38 ff.).
  """
  return _glo_form(lambda x, y: -jnp.square(x - y), logits, labels,
                   class_reduction, "mse")


def baikal(logits: jax.Array, labels: jax.Array, class_reduction: str = "mean") -> jax.Array:
  r"""Baikal loss, per example.

  .. math:: L = -\frac{1}{n} \sum_i \left(\log y_i - \frac{x_i}{y_i}\right)

  No ``ε``: the paper gives none. Its binary phenotype has its minimum near
  ``y = 0.71`` (GLO paper §V-A).

  Args:
    logits: ``float[..., n]``.
    labels: ``float[..., n]``.
    class_reduction: ``"mean"`` (default) or ``"sum"``.

  Returns:
    ``float[...]`` per-example loss.

  Raises:
    ValueError: for mismatched shapes or an unknown ``class_reduction``.

  References:
    Gonzalez & Miikkulainen 2020 (GLO), eq. (1); dissertation eq. 4.1.
  """
  return _tree_form(BAIKAL_TREE, logits, labels, class_reduction, "baikal")


def baikal_cma(logits: jax.Array, labels: jax.Array,
               class_reduction: str = "mean") -> jax.Array:
  r"""BaikalCMA: Baikal with CMA-ES-tuned coefficients, per example.

  .. math:: L = -\frac{1}{n} \sum_i c_0 \left(c_1 \log(c_2 y_i)
            - c_3 \frac{c_4 x_i}{c_5 y_i}\right)

  with ``c = (2.7279, 0.9863, 1.5352, -1.1135, 1.3716, -0.8411)``
  (:data:`BAIKAL_CMA_COEFFICIENTS`). Binary phenotype minimum near ``y = 0.77``.

  Args:
    logits: ``float[..., n]``.
    labels: ``float[..., n]``.
    class_reduction: ``"mean"`` (default) or ``"sum"``.

  Returns:
    ``float[...]`` per-example loss.

  Raises:
    ValueError: for mismatched shapes or an unknown ``class_reduction``.

  References:
    GLO paper eq. (2); dissertation eq. 4.2.
  """
  return _tree_form(_baikal_cma_tree(), logits, labels, class_reduction, "baikal_cma")


def fast_logit(logits: jax.Array, labels: jax.Array,
               class_reduction: str = "mean") -> jax.Array:
  r"""FastLogit loss (GLO with the logits as an extra leaf), per example.

  .. math:: L = -\frac{1}{n} \sum_i (\tilde y_i - x_i)
            \left(\frac{x_i}{y_i} - (\tilde y_i - (-2))\right)

  Args:
    logits: ``float[..., n]`` (the formula uses them directly, so it is not invariant to
      shifting the logits, unlike softmax-only losses).
    labels: ``float[..., n]``.
    class_reduction: ``"mean"`` (default) or ``"sum"``.

  Returns:
    ``float[...]`` per-example loss.

  Raises:
    ValueError: for mismatched shapes or an unknown ``class_reduction``.

  References:
    Dissertation §4.4, eq. 4.5.
  """
  return _tree_form(FAST_LOGIT_TREE, logits, labels, class_reduction, "fast_logit")


def _nlfs_scaled(x, y):
  """NLFS's recurring node ``ŷ / sqrt(1 + (ŷ / (y + ε))²)`` in our notation."""
  return y / jnp.sqrt(1.0 + jnp.square(y / (x + NLFS_EPSILON)))


def neuroloss1(logits: jax.Array, labels: jax.Array,
               class_reduction: str = "mean") -> jax.Array:
  r"""NeuroLoss1, per example.

  With :math:`a_i = y_i / \sqrt{1 + (y_i / (x_i + \epsilon))^2}` and ``ε = 1e-7``:

  .. math:: L = -\frac{1}{n} \sum_i \left(\ln(|a_i| + \epsilon) + a_i\right)

  Reading of the paper: the text of Table 5 we have shows the second term as
  ``ŷ·sqrt(1 + (ŷ/(y+ε))²)``, a product; we read it as the fraction
  ``ŷ / sqrt(1 + (ŷ/(y+ε))²)`` (= :math:`a_i`, the search space's binary op
  ``x1/sqrt(1+x2²)`` of Table 2), because (1) only that reading reproduces the paper's
  §4.5 statement that every NeuroLoss's binary phenotype has its minimum at
  ``ŷ = 0.99998`` (the product reading is about ``-(1-p)²/(2ε)``, unbounded below
  as the *wrong* class's probability grows: its minimum is at ``p → 0``), and (2) it
  matches the
  ``ln(|a|+ε) + g(a)`` pattern of NeuroLoss2 and of the Table 6 runners-up. See
  ``docs/losses.md``.

  Args:
    logits: ``float[..., n]``.
    labels: ``float[..., n]`` (target :math:`x`, the paper's :math:`y`).
    class_reduction: ``"mean"`` (default; the paper's ``-(1/n) Σ_i`` over classes) or
      ``"sum"``.

  Returns:
    ``float[...]`` per-example loss.

  Raises:
    ValueError: for mismatched shapes or an unknown ``class_reduction``.

  References:
    Morgan & Hougen 2024 (NLFS), Table 5 (NL1), ε from Tables 1–2.
  """
  def terms(x, y):
    a = _nlfs_scaled(x, y)
    return jnp.log(jnp.abs(a) + NLFS_EPSILON) + a
  return _glo_form(terms, logits, labels, class_reduction, "neuroloss1")


def neuroloss2(logits: jax.Array, labels: jax.Array,
               class_reduction: str = "mean") -> jax.Array:
  r"""NeuroLoss2, per example.

  With :math:`a_i = y_i / \sqrt{1 + (y_i / (x_i + \epsilon))^2}` and ``ε = 1e-7``:

  .. math:: L = -\frac{1}{n} \sum_i \left(\log_{10}(|a_i| + \epsilon) + \sin a_i\right)

  Args:
    logits: ``float[..., n]``.
    labels: ``float[..., n]``.
    class_reduction: ``"mean"`` (default) or ``"sum"``.

  Returns:
    ``float[...]`` per-example loss.

  Raises:
    ValueError: for mismatched shapes or an unknown ``class_reduction``.

  References:
    NLFS paper, Table 5 (NL2).
  """
  def terms(x, y):
    a = _nlfs_scaled(x, y)
    return jnp.log10(jnp.abs(a) + NLFS_EPSILON) + jnp.sin(a)
  return _glo_form(terms, logits, labels, class_reduction, "neuroloss2")


def neuroloss3(logits: jax.Array, labels: jax.Array,
               class_reduction: str = "mean") -> jax.Array:
  r"""NeuroLoss3, per example.

  With :math:`a_i = y_i / \sqrt{1 + (y_i / (x_i + \epsilon))^2}` and ``ε = 1e-7``:

  .. math:: L = -\frac{1}{n} \sum_i \left(\ln(|a_i| + \epsilon)
            + \min\left(x_i, \frac{y_i}{x_i + \epsilon}\right)\right)

  Args:
    logits: ``float[..., n]``.
    labels: ``float[..., n]``.
    class_reduction: ``"mean"`` (default) or ``"sum"``.

  Returns:
    ``float[...]`` per-example loss.

  Raises:
    ValueError: for mismatched shapes or an unknown ``class_reduction``.

  References:
    NLFS paper, Table 5 (NL3).
  """
  def terms(x, y):
    a = _nlfs_scaled(x, y)
    return (jnp.log(jnp.abs(a) + NLFS_EPSILON)
            + jnp.minimum(x, y / (x + NLFS_EPSILON)))
  return _glo_form(terms, logits, labels, class_reduction, "neuroloss3")


def bessel(logits: jax.Array, labels: jax.Array, class_reduction: str = "mean") -> jax.Array:
  r"""The Bessel loss of NLFS's initial run, per example.

  .. math:: L = \frac{1}{n} \sum_i \left(\min(I_{0e}(y_i), x_i) + I_{0e}(y_i)\right)

  where :math:`I_{0e}(v) = e^{-|v|} I_0(v)` is the exponentially scaled modified Bessel
  function of order 0 (``jax.scipy.special.i0e``). The sign is as printed (a
  ``+``, unlike the NeuroLosses): :math:`I_{0e}` decreases on ``[0, 1]``, so the loss
  falls as the true class's ``y`` rises. No ``ε`` appears in it.

  Args:
    logits: ``float[..., n]``.
    labels: ``float[..., n]``.
    class_reduction: ``"mean"`` (default) or ``"sum"``.

  Returns:
    ``float[...]`` per-example loss.

  Raises:
    ValueError: for mismatched shapes or an unknown ``class_reduction``.

  References:
    NLFS paper, §3.6.
  """
  def terms(x, y):
    b = jax.scipy.special.i0e(y)
    return -(jnp.minimum(b, x) + b)
  return _glo_form(terms, logits, labels, class_reduction, "bessel")
