"""Core losses: cross-entropy and the TaylorGLO polynomial loss.

Every loss follows the project signature (``docs/losses.md``):

* ``loss(logits, labels) -> per_example_loss`` for fixed losses,
* ``loss(theta, logits, labels) -> per_example_loss`` for parameterized ones,

with ``logits, labels: float[..., n]`` and a result of shape ``float[...]``. The caller
takes the batch mean (optax's convention).
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from glojax.expr import extended

TAYLORGLO_NUM_PARAMS = 8
CLASS_REDUCTIONS = ("mean", "sum")


def _check_shapes(logits, labels, name):
  if jnp.shape(logits) != jnp.shape(labels):
    raise ValueError(
        f"{name}: logits and labels must have the same shape [..., n], got "
        f"logits{tuple(jnp.shape(logits))} and labels{tuple(jnp.shape(labels))}.")


def _reduce_classes(values, class_reduction: str, name: str):
  if class_reduction == "mean":
    return jnp.mean(values, axis=-1)
  if class_reduction == "sum":
    return jnp.sum(values, axis=-1)
  raise ValueError(f"{name}: class_reduction={class_reduction!r} is not one of "
                   f"{CLASS_REDUCTIONS}.")


def _compute_dtype(*arrays):
  """Losses compute in at least float32 (bfloat16 has 8 mantissa bits)."""
  return jnp.result_type(*arrays, jnp.float32)


def upcast(logits, labels):
  """``(logits, labels, out_dtype)``: inputs in the compute dtype, and the dtype the
  per-example loss is returned in (``result_type(logits, labels)``)."""
  dtype = _compute_dtype(logits, labels)
  return (jnp.asarray(logits).astype(dtype), jnp.asarray(labels).astype(dtype),
          jnp.result_type(logits, labels))


def log_softmax(logits: jax.Array) -> jax.Array:
  r"""``log softmax(logits)`` over the last axis, with the limits at ``±inf`` logits.

  Logits of ``-inf`` (masked classes) get ``-inf``; if a row has logits of ``+inf``,
  those classes share the probability (``-log k`` each for ``k`` of them) and every
  other class gets ``-inf`` (all infinities have the same size, the convention of
  :mod:`glojax.expr.extended`). Finite rows: ``jax.nn.log_softmax``'s value.
  Gradients are finite everywhere (zero w.r.t. infinite logits).

  Args:
    logits: ``float[..., n]``.

  Returns:
    ``float[..., n]``.
  """
  order, finite = extended.log_softmax_parts(logits)
  return jnp.where(order == 0, finite, -jnp.inf)


def softmax(logits: jax.Array) -> jax.Array:
  """``softmax(logits)`` with the limits of :func:`log_softmax` (``float[..., n]``)."""
  return extended.softmax(logits)


def xlogy_sum(labels: jax.Array, log_probs: jax.Array) -> jax.Array:
  """``Σ_i x_i log y_i`` with ``0 · log 0 = 0`` (a label of exactly 0 contributes 0,
  also at a masked class), over the last axis; gradient-safe."""
  zero = labels == 0
  safe = jnp.where(zero, 0.0, log_probs)
  return jnp.sum(jnp.where(zero, 0.0, labels * safe), axis=-1)


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  r"""Softmax cross-entropy, per example.

  .. math:: L(x, \tilde y) = -\sum_i x_i \log \mathrm{softmax}(\tilde y)_i

  Args:
    logits: ``float[..., n]`` unnormalized scores :math:`\tilde y`; ``-inf`` masks a
      class, ``+inf`` makes it certain (see :func:`log_softmax`).
    labels: ``float[..., n]`` target distribution :math:`x` (one-hot or soft).

  Returns:
    ``float[...]`` per-example loss (nats), in ``result_type(logits, labels)``
    (computed in at least float32). Equals ``optax.softmax_cross_entropy`` wherever
    that is finite; a masked class with label 0 contributes 0 (optax 0.2.8 gives NaN
    there), one with a label > 0 makes the loss ``+inf``.

  Raises:
    ValueError: if ``logits`` and ``labels`` shapes differ.

  References:
    Standard; dissertation (Gonzalez 2020) eq. 2.1.
  """
  _check_shapes(logits, labels, "cross_entropy")
  logits, labels, out = upcast(logits, labels)
  return (-xlogy_sum(labels, log_softmax(logits))).astype(out)


def taylorglo(theta: jax.Array,
              logits: jax.Array,
              labels: jax.Array,
              class_reduction: str = "mean") -> jax.Array:
  r"""TaylorGLO loss: third-order bivariate Taylor polynomial, per example.

  With :math:`y = \mathrm{softmax}(\text{logits})`, :math:`x` = labels and the
  project's factorial-free layout ``theta = [θ0 … θ7]`` (``docs/losses.md``, dissertation ch. 6
  λ0…λ7):

  .. math::
     f(x, y) = θ_2 (y-θ_1) + θ_3 (y-θ_1)^2 + θ_4 (y-θ_1)^3 + θ_5 (x-θ_0)(y-θ_1)
               + θ_6 (x-θ_0)(y-θ_1)^2 + θ_7 (x-θ_0)^2 (y-θ_1)

     L = -\frac{1}{n} \sum_{i=1}^{n} f(x_i, y_i)

  (``class_reduction="sum"`` drops the ``1/n``, as the authors' code does; this is
  a constant learning-rate scale.)

  Args:
    theta: ``float[8]`` parameters ``[θ0, …, θ7]`` (θ0, θ1 the expansion centre).
    logits: ``float[..., n]``.
    labels: ``float[..., n]`` target distribution (one-hot or soft).
    class_reduction: ``"mean"`` (default, the papers' ``-(1/n) Σ``) or ``"sum"``.

  Returns:
    ``float[...]`` per-example loss, finite for finite θ whatever the logits (``y``
    is the limit softmax, :func:`softmax`, so it stays in ``[0, 1]``).

  Raises:
    ValueError: if ``theta`` does not have shape ``[8]``, shapes of ``logits`` and
      ``labels`` differ, or ``class_reduction`` is unknown.

  References:
    Gonzalez & Miikkulainen, "Optimizing Loss Functions Through Multivariate Taylor
    Polynomial Parameterization" (TaylorGLO); dissertation eq. 5.7 (with the ½, ⅙
    factors folded into θ3, θ4, θ6, θ7, see :func:`theta_from_eq57`) and ch. 6.
  """
  if jnp.shape(theta) != (TAYLORGLO_NUM_PARAMS,):
    raise ValueError(f"taylorglo: theta must have shape ({TAYLORGLO_NUM_PARAMS},), "
                     f"got {tuple(jnp.shape(theta))}.")
  _check_shapes(logits, labels, "taylorglo")
  logits, labels, out = upcast(logits, labels)
  y = softmax(logits)   # in [0, 1], limits at ±inf logits: the polynomial is finite
  x = labels
  dx = x - theta[0]
  dy = y - theta[1]
  f = (theta[2] * dy + theta[3] * dy**2 + theta[4] * dy**3 + theta[5] * dx * dy
       + theta[6] * dx * dy**2 + theta[7] * dx**2 * dy)
  return (-_reduce_classes(f, class_reduction, "taylorglo")).astype(out)


# Eq. 5.7 prints ½θ3, ⅙θ4, ½θ6, ½θ7; factorial-free θ_k = eq57_k * factor_k.
_EQ57_FACTORS = np.array([1.0, 1.0, 1.0, 0.5, 1.0 / 6.0, 1.0, 0.5, 0.5])


def theta_from_eq57(theta_eq57: Sequence[float] | jax.Array) -> jax.Array:
  r"""Converts coefficients printed with eq. 5.7's factorials to the project layout.

  Eq. 5.7 writes ``½θ3 (y-θ1)² + ⅙θ4 (y-θ1)³ + ½θ6 (x-θ0)(y-θ1)² + ½θ7 (x-θ0)²(y-θ1)``;
  the project (and ch. 6 / the authors' code) folds these constants into θ.

  Args:
    theta_eq57: ``float[8]`` coefficients in eq. 5.7's convention.

  Returns:
    ``float[8]`` in the factorial-free layout of :func:`taylorglo`.

  Raises:
    ValueError: if the input does not have 8 entries.
  """
  theta_eq57 = jnp.asarray(theta_eq57, dtype=jnp.float32)
  if theta_eq57.shape != (TAYLORGLO_NUM_PARAMS,):
    raise ValueError(f"theta_from_eq57: expected 8 coefficients, got shape "
                     f"{tuple(theta_eq57.shape)}.")
  return theta_eq57 * _EQ57_FACTORS


def theta_to_eq57(theta: Sequence[float] | jax.Array) -> jax.Array:
  """Inverse of :func:`theta_from_eq57` (``float[8]`` → ``float[8]``)."""
  theta = jnp.asarray(theta, dtype=jnp.float32)
  if theta.shape != (TAYLORGLO_NUM_PARAMS,):
    raise ValueError(f"theta_to_eq57: expected 8 coefficients, got shape "
                     f"{tuple(theta.shape)}.")
  return theta / _EQ57_FACTORS


def taylorglo_spec(theta: Sequence[float] | jax.Array) -> str:
  """The spec string of a TaylorGLO loss, loadable with ``glojax.losses.get``.

  Args:
    theta: ``float[8]`` in the project layout.

  Returns:
    e.g. ``"taylorglo(theta=[0.1, -2.5, ...])"`` with ``repr``-exact floats, so the
    round trip is lossless.
  """
  values = np.asarray(theta, dtype=np.float64).reshape(-1)
  if values.shape != (TAYLORGLO_NUM_PARAMS,):
    raise ValueError(f"taylorglo_spec: expected 8 coefficients, got {values.shape}.")
  return "taylorglo(theta=[" + ", ".join(repr(float(v)) for v in values) + "])"
