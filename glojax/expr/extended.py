r"""Extended-real arithmetic for loss expressions: exact at saturation, limits at ±∞.

A loss written on probabilities meets two kinds of extreme input:

* **Saturation** — finite logits far apart (a confident prediction). ``softmax`` then
  underflows (``exp(-88)`` is 0 in float32) although the true ``y`` is positive, and
  ``x / y``, ``log y``, ``y * (1 / y)`` turn into ``0/0``, ``-inf``, ``0 * inf``.
* **Masking** — logits of ``±inf``. Their value is a *limit*: ``y → 0`` (or ``1``), and
  the loss must be the limit of the formula, never an IEEE accident.

This module evaluates the operators of a GLO tree on numbers that cannot underflow or
overflow by accident. Each value is an :class:`Ext` ``v · 2^(64 e)``: a float mantissa
``v`` kept in ``2^-32 ≤ |v| < 2^32`` and a float block exponent ``e``. On finite
inputs this is IEEE arithmetic with an unbounded exponent: ``y = exp(log_softmax)``
keeps its true magnitude ``e^{-2000}``, ``y / y`` is 1, ``x * log(y)`` is 0 where
``x = 0``, and a result is ``±inf`` only where the final value truly overflows.

**Infinite logits.** A logit of ``-inf`` is read as ``-T`` and one of ``+inf`` as
``+T``, ``T → ∞`` (all infinities the same ``T``). Growth in ``T`` is folded into the
block exponent, far beyond any finite value: ``e^{aT} T^b`` is ``e = a·2^60 +
b·2^40``, and ``log T`` counts as ``T^(2^-10)``. Products and quotients add
exponents, a sum keeps its higher order, so the arithmetic is leading-order
asymptotics for free: ``y·log y → 0``, ``y / y → 1``, ``log y → -∞``, ``0 · log y =
0``. Only :func:`log` (``log(e^{aT}) = aT``) and the leaves need to know. Finite values
keep ``|e| < 2^29`` (logit spreads up to about ``4·10^10``; larger ones count as
infinite).

Rules (``docs/losses.md`` lists them for users):

* **IEEE at finite order.** ``v / 0 = ±inf``, ``log 0 = -inf``; ``0 · inf``, ``0 /
  0`` and ``log``/``sqrt`` of a negative value are NaN (a label or constant that is
  exactly 0 against a genuine infinity such as ``log x`` at ``x = 0``).
* **Exact zeros beat divergence.** A label or constant that is exactly 0 times a
  quantity that only diverges as ``T → ∞`` is exactly 0 (it is 0 at every ``T``).
* **Indeterminate limits are NaN.** Leading terms that cancel at a divergent order
  (``∞ − ∞``): leading order cannot resolve them (e.g. ``log(y) - logits`` at a masked
  class, whose limit, minus the logsumexp of the other logits, sits in the dropped
  constant). Leading terms that cancel at a vanishing order give 0, the limit.
  ``log log T`` is not told apart from ``log T``.

Everything is elementwise ``jnp`` (jit/vmap-safe) and cheap (one transcendental
function per operator at most). The functions are not meant to be differentiated by
JAX: the interpreter (:mod:`glojax.expr.program`) carries derivatives forward as
:class:`Ext` values and uses a custom VJP.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

_UP, _DOWN = 2.0 ** 64, 2.0 ** -64     # one block: 2^64
_HIGH, _LOW = 2.0 ** 32, 2.0 ** -32    # the mantissa window
_LN_BLOCK = 64 * math.log(2.0)
_INF = float("inf")
# Orders in T, in blocks (far beyond any finite value's exponent).
EXP_T = 2.0 ** 60          # e^T
POWER_T = 2.0 ** 40        # T
LOG_T = 2.0 ** 30          # log T (as T^(2^-10))
FINITE_LIMIT = 2.0 ** 29   # |e| below: a finite value
_EXP_LIMIT = 2.0 ** 59     # |e| above: exponential order


class Ext(NamedTuple):
  """An extended real ``v · 2^(64 e)`` (elementwise arrays of one shape).

  Attributes:
    v: mantissa, ``2^-32 ≤ |v| < 2^32``, or 0, or ``±inf`` (a genuine infinity:
      ``1/0``, ``log 0``), or NaN (undefined).
    e: block exponent (integer-valued for finite values; orders in ``T`` beyond
      ``FINITE_LIMIT``; meaningless for 0 and ``±inf``).
  """
  v: jax.Array
  e: jax.Array


def _renorm(v, e):
  """One step back into ``2^-32 ≤ |v| < 2^32`` (enough after any single operation).
  A zero's ``e`` is meaningless (:func:`add` and :func:`value` ignore it)."""
  mag = jnp.abs(v)
  big, small = mag >= _HIGH, mag < _LOW
  one = jnp.ones_like(v)
  factor = jnp.where(big, _DOWN * one, jnp.where(small, _UP * one, one))
  step = jnp.where(big, one, jnp.where(small, -one, 0.0 * one))
  return v * factor, e + step


def zeros(shape, dtype=jnp.float32) -> Ext:
  """Exact zeros."""
  return Ext(jnp.zeros(shape, dtype), jnp.zeros(shape, dtype))


def ones(shape, dtype=jnp.float32) -> Ext:
  """Exact ones."""
  return Ext(jnp.ones(shape, dtype), jnp.zeros(shape, dtype))


def const(x: jax.Array) -> Ext:
  """A finite value from floats (``0`` is an exact zero, ``±inf`` genuine)."""
  x = jnp.asarray(x)
  return Ext(*_renorm(*_renorm(x, jnp.zeros_like(x))))   # |x| < 2^128: two steps


def exp_of(u: jax.Array, order: jax.Array | None = None) -> Ext:
  """``e^{u + order·T}`` from its finite part ``u`` (finite) and its order."""
  u = jnp.asarray(u)
  e = jnp.floor(u / _LN_BLOCK + 0.5)
  v, e = _renorm(jnp.exp(u - e * _LN_BLOCK), e)
  return Ext(v, e if order is None else e + order * EXP_T)


def logit(logits: jax.Array) -> Ext:
  """A logit: finite as is, ``±inf`` as ``±T``."""
  finite = const(jnp.where(jnp.isinf(logits), 0.0, logits))
  inf = jnp.isinf(logits)
  return Ext(jnp.where(inf, jnp.sign(logits), finite.v),
             jnp.where(inf, POWER_T, finite.e).astype(finite.e.dtype))


def value(p: Ext) -> jax.Array:
  """The float of ``p`` (its limit at infinite inputs): ``v·2^(64 e)`` rounded once,
  ``0``, ``±inf`` or NaN."""
  first = jnp.clip(p.e, -1, 1)
  second = jnp.clip(p.e - first, -1, 1)
  scale = lambda k: jnp.where(k > 0, _UP, jnp.where(k < 0, _DOWN, 1.0)).astype(p.v.dtype)
  out = p.v * scale(first) * scale(second)
  out = jnp.where(p.e >= 3, p.v * _INF, jnp.where(p.e <= -3, 0.0 * p.v, out))
  # Zeros and genuine infinities are what they are, whatever their e.
  return jnp.where((p.v == 0) | jnp.isinf(p.v), p.v, out)


def neg(p: Ext) -> Ext:
  return p._replace(v=-p.v)


def mul(p: Ext, q: Ext) -> Ext:
  """``p · q`` (IEEE for ``0 · inf``; an exact zero beats divergence in ``T``)."""
  return Ext(*_renorm(p.v * q.v, p.e + q.e))


def reciprocal(q: Ext) -> Ext:
  """``1 / q``: ``1/0 = ±inf`` (genuine), ``1/±inf = 0``."""
  return Ext(*_renorm(1.0 / q.v, -q.e))


def div(p: Ext, q: Ext) -> Ext:
  return mul(p, reciprocal(q))


def add(p: Ext, q: Ext) -> Ext:
  """``p + q``: the larger block exponent wins (a higher order in ``T``); equal ones
  add their mantissas. An exact cancellation is 0, or NaN at a divergent order."""
  # A zero's e is meaningless: it must not decide the alignment.
  top = jnp.maximum(jnp.where(p.v == 0, -_INF, p.e), jnp.where(q.v == 0, -_INF, q.e))

  def aligned(x: Ext):
    d = x.e - top
    scale = jnp.where(d == 0, 1.0, jnp.where(d == -1, _DOWN, 0.0)).astype(x.v.dtype)
    return jnp.where(jnp.isinf(x.v), x.v, x.v * scale)

  v, e = _renorm(aligned(p) + aligned(q), top)
  divergent = (v == 0) & (top >= FINITE_LIMIT) & (p.v != 0) & (q.v != 0)
  return Ext(jnp.where(divergent, jnp.nan, v), e)


def sub(p: Ext, q: Ext) -> Ext:
  return add(p, neg(q))


def log(p: Ext) -> Ext:
  """``log p``: ``-inf`` at 0, NaN below; ``a·T`` for ``e^{aT}`` and ``b·log T`` for
  ``T^b`` (leading order)."""
  mag = jnp.abs(p.e)
  infinite = (mag >= FINITE_LIMIT) & jnp.isfinite(p.e) & (p.v > 0)
  exponential = mag >= _EXP_LIMIT
  # |log| < 2^35 for a finite value: one renorm step. Orders: a (or b) is a mantissa
  # within the window already.
  finite = jnp.where(infinite, 1.0, jnp.log(p.v) + p.e * _LN_BLOCK)
  v, e = _renorm(finite, jnp.zeros_like(finite))
  v = jnp.where(infinite, p.e / jnp.where(exponential, EXP_T, POWER_T), v)
  e = jnp.where(infinite, jnp.where(exponential, POWER_T, LOG_T), e)
  return Ext(jnp.where(jnp.isnan(p.v), jnp.nan, v), e)


def sqrt(p: Ext) -> Ext:
  """``sqrt p`` (NaN below 0): halves the exponent."""
  odd = jnp.remainder(p.e, 2.0) == 1
  return Ext(*_renorm(jnp.sqrt(jnp.where(odd, p.v * _UP, p.v)),
                      jnp.where(odd, p.e - 1, p.e) / 2))


def square(p: Ext) -> Ext:
  return mul(p, p)


def sum_last_axis(p: Ext) -> Ext:
  """``Σ`` over the last axis with :func:`add` (a pairwise tree of additions)."""
  n = jnp.shape(p.v)[-1]
  size = 1
  while size < n:
    size *= 2
  if size != n:
    pad = zeros(jnp.shape(p.v)[:-1] + (size - n,), p.v.dtype)
    p = Ext(*(jnp.concatenate([u, w], axis=-1) for u, w in zip(p, pad)))
  while size > 1:
    size //= 2
    p = add(Ext(*(u[..., :size] for u in p)), Ext(*(u[..., size:] for u in p)))
  return Ext(*(u[..., 0] for u in p))


def log_softmax_parts(logits: jax.Array) -> tuple[jax.Array, jax.Array]:
  r"""``log softmax(logits) = order·T + finite`` with infinite logits read as ``±T``.

  Args:
    logits: ``float[..., n]``; entries may be ``±inf``.

  Returns:
    ``(order, finite)``, both ``float[..., n]``: ``order ∈ {0, -1, -2}`` is the
    exponent of ``e^T`` of the softmax, ``finite`` the rest of the log-probability.
    Rows without infinities: ``order = 0`` and ``finite = log_softmax(logits)``.
    A row's top group (its ``+inf`` entries, else its finite ones, else all) shares
    the probability mass; ``finite`` is differentiable (JAX) w.r.t. the finite logits.
  """
  order, shifted, total = _softmax_parts(logits)
  return order, shifted - jnp.log(total)


def softmax(logits: jax.Array) -> jax.Array:
  """``softmax(logits)`` over the last axis with the limits of
  :func:`log_softmax_parts` (the top group shares the mass; ``float[..., n]``).
  Finite rows: ``jax.nn.softmax``'s formula and value."""
  order, shifted, total = _softmax_parts(logits)
  return jnp.where(order == 0, jnp.exp(jnp.where(order == 0, shifted, 0.0)) / total, 0.0)


def _softmax_parts(logits):
  logits = jnp.asarray(logits)
  alpha = jnp.where(logits == jnp.inf, 1.0, jnp.where(logits == -jnp.inf, -1.0, 0.0))
  alpha = alpha.astype(logits.dtype)
  phi = jnp.where(jnp.isinf(logits), 0.0, logits)
  top = jnp.max(alpha, axis=-1, keepdims=True)
  group = alpha == top
  shift = jax.lax.stop_gradient(
      jnp.max(jnp.where(group, phi, -jnp.inf), axis=-1, keepdims=True))
  shift = jnp.where(jnp.isfinite(shift), shift, 0.0)
  shifted = phi - shift
  total = jnp.sum(jnp.where(group, jnp.exp(jnp.where(group, shifted, 0.0)), 0.0),
                  axis=-1, keepdims=True)
  return alpha - top, shifted, total
