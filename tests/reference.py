"""High-precision references for the losses (mpmath, 50 digits), shared by tests.

Independent of glojax's arithmetic: softmax in mpmath (no underflow at any spread),
each published loss written out from its paper's formula, GLO trees evaluated
recursively. Logits of ``±inf`` are references too: the loss at ``±T`` for growing
``T`` (:func:`limit`).
"""

import mpmath
import numpy as np

from glojax.expr import tree as T

mp = mpmath.mp
mp.dps = 50

BAIKAL_CMA = (2.7279, 0.9863, 1.5352, -1.1135, 1.3716, -0.8411)
NLFS_EPSILON = 1e-7
TAYLORGLO_THETA = (0.3, 0.4, -1.5, 0.8, -0.2, 1.1, 0.6, -0.7)
LABEL_SMOOTHING = 0.1
POLY_EPSILON = 2.0
# Spec strings of the registered losses with the parameter values the references use.
SPECS = {
    "cross_entropy": "cross_entropy",
    "label_smoothing": f"label_smoothing(alpha={LABEL_SMOOTHING})",
    "polyloss": f"polyloss(epsilon={POLY_EPSILON})",
    "mse": "mse", "baikal": "baikal", "baikal_cma": "baikal_cma",
    "fast_logit": "fast_logit",
    "taylorglo": f"taylorglo(theta={list(TAYLORGLO_THETA)})",
    "neuroloss1": "neuroloss1", "neuroloss2": "neuroloss2", "neuroloss3": "neuroloss3",
    "bessel": "bessel",
}


def softmax(z):
  top = max(z)
  w = [mp.exp(v - top) for v in z]
  total = mp.fsum(w)
  return [v / total for v in w]


def _nlfs_a(x, y):
  return y / mp.sqrt(1 + (y / (x + NLFS_EPSILON)) ** 2)


def _i0e(v):
  return mp.besseli(0, v) * mp.exp(-abs(v))


def _terms(name, x, y, z):
  """Summand f of L = -(1/n) Σ f for the GLO-form losses."""
  if name == "mse":
    return -(x - y) ** 2
  if name == "baikal":
    return mp.log(y) - x / y
  if name == "baikal_cma":
    c0, c1, c2, c3, c4, c5 = (mp.mpf(c) for c in BAIKAL_CMA)
    return c0 * (c1 * mp.log(c2 * y) - c3 * (c4 * x) / (c5 * y))
  if name == "fast_logit":
    return (z - x) * (x / y - (z + 2))
  if name == "taylorglo":
    t = [mp.mpf(v) for v in TAYLORGLO_THETA]
    dx, dy = x - t[0], y - t[1]
    return (t[2] * dy + t[3] * dy ** 2 + t[4] * dy ** 3 + t[5] * dx * dy
            + t[6] * dx * dy ** 2 + t[7] * dx ** 2 * dy)
  if name in ("neuroloss1", "neuroloss2", "neuroloss3"):
    a = _nlfs_a(x, y)
    if name == "neuroloss1":
      return mp.log(abs(a) + NLFS_EPSILON) + a
    if name == "neuroloss2":
      return mp.log10(abs(a) + NLFS_EPSILON) + mp.sin(a)
    return mp.log(abs(a) + NLFS_EPSILON) + min(x, y / (x + NLFS_EPSILON))
  if name == "bessel":
    b = _i0e(y)
    return -(min(b, x) + b)
  raise KeyError(name)


def _xlogy_sum(weights, y):
  return mp.fsum(w * mp.log(p) for w, p in zip(weights, y) if w != 0)


def loss(name, logits, labels):
  """The per-example loss of registered loss ``name`` at finite ``logits`` (mpf)."""
  z = [mp.mpf(v) for v in logits]
  x = [mp.mpf(v) for v in labels]
  y = softmax(z)
  n = len(z)
  if name == "cross_entropy":
    return -_xlogy_sum(x, y)
  if name == "label_smoothing":
    a = mp.mpf(LABEL_SMOOTHING)
    return -_xlogy_sum([v * (1 - a) + a / n for v in x], y)
  if name == "polyloss":
    return -_xlogy_sum(x, y) + POLY_EPSILON * (1 - mp.fsum(a * b for a, b in zip(x, y)))
  return -mp.fsum(_terms(name, a, b, c) for a, b, c in zip(x, y, z)) / n


def _real(fn):
  """mpmath functions with real-valued semantics: NaN off the domain, IEEE 1/0."""
  def wrapped(*args):
    try:
      out = fn(*args)
    except ZeroDivisionError:
      a = args[0]
      return mp.nan if a == 0 or mp.isnan(a) else mp.inf * mp.sign(a)
    if isinstance(out, mpmath.mpc):
      return mp.nan
    return out
  return wrapped


_UNARY = {"log": _real(lambda a: mp.nan if a < 0 else (-mp.inf if a == 0 else mp.log(a))),
          "sqrt": _real(lambda a: mp.nan if a < 0 else mp.sqrt(a)),
          "square": lambda a: a * a, "neg": lambda a: -a}
_BINARY = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
           "/": _real(lambda a, b: a / b)}


def tree_value(tree, x, y, z):
  if isinstance(tree, T.Leaf):
    if isinstance(tree.value, str):
      return {"x": x, "y": y, "logits": z}[tree.value]
    return mp.mpf(tree.value)
  args = [tree_value(c, x, y, z) for c in tree.children]
  if any(mp.isnan(a) for a in args):
    return mp.nan
  if tree.op in _UNARY:
    return _UNARY[tree.op](*args)
  return _BINARY[tree.op](*args)


def tree_loss(tree, logits, labels):
  z = [mp.mpf(v) for v in logits]
  x = [mp.mpf(v) for v in labels]
  y = softmax(z)
  return -mp.fsum(tree_value(tree, a, b, c) for a, b, c in zip(x, y, z)) / len(z)


def limit(fn, logits, labels, sizes=(1e4, 1e5, 1e6)):
  """``fn`` at logits whose ``±inf`` entries are ``±T`` for growing ``T``: the limit
  (an mpf), ``±inf``, or ``None`` when the three values do not settle either way."""
  values = []
  for size in sizes:
    z = [size * (1 if v > 0 else -1) if np.isinf(v) else v for v in logits]
    values.append(fn(z, labels))
  a, b, c = values
  if any(mp.isnan(v) for v in values):
    return mp.nan
  if abs(c - b) <= mp.mpf("1e-12") * (1 + abs(c)):
    return c
  if abs(c) > abs(b) > abs(a) and mp.sign(a) == mp.sign(b) == mp.sign(c):
    return mp.inf * mp.sign(c)
  return None


def gradient(fn, logits, labels):
  """``∂fn/∂logits`` (mpf list; 0 for infinite logits, whose value is a limit),
  by mpmath's numerical differentiation at 50 digits (at ``T = 10^6`` for the
  infinite entries)."""
  z0 = [1e6 * (1 if v > 0 else -1) if np.isinf(v) else v for v in logits]
  out = []
  for j, v in enumerate(logits):
    if np.isinf(v):
      out.append(mp.mpf(0))
      continue

    def along(t, j=j):
      z = list(z0)
      z[j] = t
      return fn(z, labels)
    out.append(mp.diff(along, mp.mpf(z0[j])))
  return out


def to_float(value, dtype=np.float32):
  """An mpf as ``dtype`` (rounded once; overflow → ±inf)."""
  with np.errstate(over="ignore"):
    return np.asarray(float(value), np.float64).astype(dtype)
