r"""Published classification losses (SPEC §2), as pure per-example functions.

Every function here follows the project signature (SPEC §1):
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
gives one (the NLFS losses use ``ε = 1e-7``). ``log(y)`` is computed as
``log_softmax(logits)`` (the same value, without the ``-inf`` of an underflowed ``y``).
Formulas that divide by ``y`` still overflow for very confident wrong predictions, as
the papers' do; searches treat the resulting NaN/inf as a failed candidate.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from glojax.losses.core import _check_shapes, _reduce_classes

# NLFS paper (Morgan & Hougen 2024), Tables 1–2: ε for numerical stability.
NLFS_EPSILON = 1e-7
# GLO paper eq. (2) / dissertation eq. 4.2: BaikalCMA's coefficients c0…c5.
BAIKAL_CMA_COEFFICIENTS = (2.7279, 0.9863, 1.5352, -1.1135, 1.3716, -0.8411)

# f(x, y, log_y, logits) -> float[..., n]: the summand of L = -(1/n) Σ_i f.
_Terms = Callable[[jax.Array, jax.Array, jax.Array, jax.Array], jax.Array]


def _glo_form(terms: _Terms, logits, labels, class_reduction: str, name: str):
  """``L = -reduce_i f(x_i, y_i, log y_i, logits_i)`` with the checks every loss needs."""
  _check_shapes(logits, labels, name)
  log_y = jax.nn.log_softmax(logits, axis=-1)
  y = jnp.exp(log_y)
  return -_reduce_classes(terms(labels, y, log_y, logits), class_reduction, name)


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
    ``float[...]`` per-example loss (nats). Delegates to ``optax.smooth_labels`` and
    ``optax.softmax_cross_entropy``.

  Raises:
    ValueError: if the shapes of ``logits`` and ``labels`` differ.

  References:
    Szegedy et al. 2016, "Rethinking the Inception Architecture" §7; dissertation
    eqs. 6.77–6.82 (label smoothing as a TaylorGLO reparameterization).
  """
  import optax
  _check_shapes(logits, labels, "label_smoothing")
  return optax.softmax_cross_entropy(logits, optax.smooth_labels(labels, alpha))


def polyloss(logits: jax.Array, labels: jax.Array,
             epsilon: float | jax.Array = 2.0) -> jax.Array:
  r"""Poly-1 loss: cross-entropy plus a first-order polynomial term, per example.

  .. math:: L = -\sum_i x_i \log y_i + \epsilon \left(1 - \sum_i x_i y_i\right)

  Args:
    logits: ``float[..., n]``.
    labels: ``float[..., n]`` target distribution.
    epsilon: coefficient of the polynomial term (optax's default 2.0; may be traced).

  Returns:
    ``float[...]``. Delegates to ``optax.losses.poly_loss_cross_entropy``.

  Raises:
    ValueError: if the shapes of ``logits`` and ``labels`` differ.

  References:
    Leng et al. 2022, "PolyLoss: A Polynomial Expansion Perspective of Classification
    Loss Functions", eq. 2 (Poly-1).
  """
  import optax
  _check_shapes(logits, labels, "polyloss")
  return optax.losses.poly_loss_cross_entropy(logits, labels, epsilon=epsilon)


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
  return _glo_form(lambda x, y, log_y, z: -jnp.square(x - y), logits, labels,
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
  return _glo_form(lambda x, y, log_y, z: log_y - x / y, logits, labels,
                   class_reduction, "baikal")


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
  c0, c1, c2, c3, c4, c5 = BAIKAL_CMA_COEFFICIENTS
  # log(c2 y) = log(c2) + log(y); c2 > 0.
  terms = lambda x, y, log_y, z: c0 * (c1 * (jnp.log(c2) + log_y) - c3 * (c4 * x) / (c5 * y))
  return _glo_form(terms, logits, labels, class_reduction, "baikal_cma")


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
  terms = lambda x, y, log_y, z: (z - x) * (x / y - (z + 2.0))
  return _glo_form(terms, logits, labels, class_reduction, "fast_logit")


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
  def terms(x, y, log_y, z):
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
  def terms(x, y, log_y, z):
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
  def terms(x, y, log_y, z):
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
  def terms(x, y, log_y, z):
    b = jax.scipy.special.i0e(y)
    return -(jnp.minimum(b, x) + b)
  return _glo_form(terms, logits, labels, class_reduction, "bessel")
