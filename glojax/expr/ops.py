r"""The NLFS operation set (Morgan & Hougen 2024, Tables 1–2), as elementwise jnp functions.

NLFS builds losses from 27 unary and 7 binary operations with ``ε = 1e-7`` "for numerical
stability". Each is defined here once, as a jnp function; the expression trees
(:mod:`glojax.expr.tree`), the fixed-size program interpreter (:mod:`glojax.expr.program`)
and the graph genome (:mod:`glojax.expr.graph`) all use these definitions, so a graph's
direct compile and its program agree by construction (the interpreter takes each op's
derivative with ``jax.jvp`` of the same function).

Names, as they appear in ``expr:`` specs (``v`` the argument; ``a, b`` the arguments of a
binary op, in order):

=================  ========================  =================  =========================
name               Table 1                   name               Table 1
=================  ========================  =================  =========================
``neg``  (``-v``)  :math:`-x`                ``log_eps``        :math:`\ln(|x| + ε)`
``exp``            :math:`e^x`               ``log10_eps``      :math:`\log_{10}(|x| + ε)`
``sigmoid``        :math:`σ(x)`              ``dsigmoid``       :math:`σ'(x) = σ(1-σ)`
``softsign``       :math:`x / (1 + |x|)`     ``dsoftsign``      :math:`1 / (1 + |x|)^2`
``softplus``       :math:`\ln(1 + e^x)`      ``erf``            :math:`\mathrm{erf}(x)`
``erfc``           :math:`\mathrm{erfc}(x)`  ``sin``            :math:`\sin x`
``sinh``           :math:`\sinh x`           ``arcsinh``        :math:`\sinh^{-1} x`
``tanh``           :math:`\tanh x`           ``dtanh``          :math:`1 - \tanh^2 x`
``arctanh``        :math:`\tanh^{-1} x`      ``recip_eps``      :math:`1 / (x + ε)`
``abs``            :math:`|x|`               ``square``         :math:`x^2`
``i0``             :math:`I_0(x)`            ``sqrt``           :math:`\sqrt x`
``i1``             :math:`I_1(x)`            ``max0``           :math:`\max(x, 0)`
``i1e``            :math:`e^{-|x|} I_1(x)`   ``min0``           :math:`\min(x, 0)`
``i0e``            :math:`e^{-|x|} I_0(x)`
=================  ========================  =================  =========================

Binary (Table 2): ``a + b``, ``a - b``, ``a * b``, ``div_eps(a, b)`` = :math:`a / (b + ε)`,
``div_hypot(a, b)`` = :math:`a / \sqrt{1 + b^2}`, ``max(a, b)``, ``min(a, b)``.

**The logarithms are protected: ``ln(|x| + ε)``.** Table 1 prints ``ln(x + ε)``, but every
evolved loss the paper prints (Table 5, Table 6) shows ``ln(|·| + ε)``, and NeuroLoss2 and
NeuroLoss3 fit the genome's four hidden nodes only if the absolute value is part of the
logarithm (``y/(x+ε)``, ``div_hypot``, the log and a fourth term already take four). For
the arguments the paper's losses feed it (``|·|`` or products of probabilities) both
readings agree; ``abs`` itself remains one of the 27 ops.

``bessel_{i0}``, ``bessel_{i1}``, ``bessel_{i0e}``, ``bessel_{i1e}`` of Table 1 are the
modified Bessel functions of the first kind (TensorFlow's ``tf.math.bessel_*``), here
``jax.scipy.special.i0/i1/i0e/i1e``. ``max``/``min`` (and ``max0``/``min0``) follow
``jnp.maximum``/``jnp.minimum``: at a tie each argument gets half the gradient.

Saturation policy: every op is evaluated exactly as printed, in the input dtype. The
``ε`` ops stay finite at 0 (``log_eps(0) = ln ε ≈ -16.1``); ops that are undefined on
part of the line (``sqrt`` of a negative, ``arctanh`` beyond ±1) give NaN there, and
ops that overflow (``exp``, ``sinh``, ``i0``, ``i1`` beyond ≈ 88 in float32) give inf; a
candidate whose training meets NaN/inf gets fitness 0 (the trainer's rule).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import jax.scipy.special as jsp
import numpy as np
import scipy.special as sp

# NLFS paper, Tables 1–2: "ε = 10^-7 for numerical stability".
EPSILON = 1e-7

UnaryFn = Callable[[jax.Array], jax.Array]
BinaryFn = Callable[[jax.Array, jax.Array], jax.Array]


def _dsigmoid(v):
  s = jax.nn.sigmoid(v)
  return s * (1.0 - s)


def _dtanh(v):
  return 1.0 - jnp.square(jnp.tanh(v))


# The 27 unary operations of Table 1, in the table's reading order.
NLFS_UNARY: dict[str, UnaryFn] = {
    "neg": jnp.negative,
    "log_eps": lambda v: jnp.log(jnp.abs(v) + EPSILON),
    "exp": jnp.exp,
    "log10_eps": lambda v: jnp.log10(jnp.abs(v) + EPSILON),
    "sigmoid": jax.nn.sigmoid,
    "dsigmoid": _dsigmoid,
    "softsign": lambda v: jnp.where(jnp.isinf(v), jnp.sign(v), v / (1.0 + jnp.abs(v))),
    "dsoftsign": lambda v: 1.0 / jnp.square(1.0 + jnp.abs(v)),
    "softplus": jax.nn.softplus,
    "erf": jsp.erf,
    "erfc": jsp.erfc,
    "sin": jnp.sin,
    "sinh": jnp.sinh,
    "arcsinh": jnp.arcsinh,
    "tanh": jnp.tanh,
    "dtanh": _dtanh,
    "arctanh": jnp.arctanh,
    "recip_eps": lambda v: 1.0 / (v + EPSILON),
    "abs": jnp.abs,
    "square": jnp.square,
    "i0": lambda v: jnp.where(jnp.isinf(v), jnp.inf, jsp.i0(v)),   # jsp.i0(±inf) is NaN
    "sqrt": jnp.sqrt,
    "i1": lambda v: jnp.where(jnp.isinf(v), v, jsp.i1(v)),
    "max0": lambda v: jnp.maximum(v, 0.0),
    "i1e": jsp.i1e,
    "min0": lambda v: jnp.minimum(v, 0.0),
    "i0e": jsp.i0e,
}

# The 7 binary operations of Table 2.
NLFS_BINARY: dict[str, BinaryFn] = {
    "+": jnp.add,
    "-": jnp.subtract,
    "*": jnp.multiply,
    "div_eps": lambda a, b: a / (b + EPSILON),
    "div_hypot": lambda a, b: a / jnp.sqrt(1.0 + jnp.square(b)),
    "max": jnp.maximum,
    "min": jnp.minimum,
}

assert len(NLFS_UNARY) == 27 and len(NLFS_BINARY) == 7

# Binary ops written as functions in expressions (the others are infix operators).
BINARY_FUNCTIONS = ("div_eps", "div_hypot", "max", "min")


# The same operations in float64 NumPy/SciPy: the probe grid of glojax.expr.canonical.
NUMPY_UNARY: dict[str, Callable] = {
    "neg": np.negative,
    "log_eps": lambda v: np.log(np.abs(v) + EPSILON),
    "exp": np.exp,
    "log10_eps": lambda v: np.log10(np.abs(v) + EPSILON),
    "sigmoid": sp.expit,
    "dsigmoid": lambda v: sp.expit(v) * (1.0 - sp.expit(v)),
    "softsign": lambda v: np.where(np.isinf(v), np.sign(v), v / (1.0 + np.abs(v))),
    "dsoftsign": lambda v: 1.0 / np.square(1.0 + np.abs(v)),
    "softplus": lambda v: np.logaddexp(0.0, v),
    "erf": sp.erf,
    "erfc": sp.erfc,
    "sin": np.sin,
    "sinh": np.sinh,
    "arcsinh": np.arcsinh,
    "tanh": np.tanh,
    "dtanh": lambda v: 1.0 - np.square(np.tanh(v)),
    "arctanh": np.arctanh,
    "recip_eps": lambda v: 1.0 / (v + EPSILON),
    "abs": np.abs,
    "square": np.square,
    "i0": lambda v: np.where(np.isinf(v), np.inf, sp.i0(v)),
    "sqrt": np.sqrt,
    "i1": lambda v: np.where(np.isinf(v), v, sp.i1(v)),
    "max0": lambda v: np.maximum(v, 0.0),
    "i1e": sp.i1e,
    "min0": lambda v: np.minimum(v, 0.0),
    "i0e": sp.i0e,
}
NUMPY_BINARY: dict[str, Callable] = {
    "+": np.add,
    "-": np.subtract,
    "*": np.multiply,
    "div_eps": lambda a, b: a / (b + EPSILON),
    "div_hypot": lambda a, b: a / np.sqrt(1.0 + np.square(b)),
    "max": np.maximum,
    "min": np.minimum,
}
assert set(NUMPY_UNARY) == set(NLFS_UNARY) and set(NUMPY_BINARY) == set(NLFS_BINARY)
