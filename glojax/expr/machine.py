"""The evaluation of a postfix program on extended reals, with forward derivatives.

One definition of what every opcode computes — its value and its derivative, in
:mod:`glojax.expr.extended` arithmetic — used two ways:

* :func:`interpret` runs a *traced* program (``opcodes``, ``constants``, ``scales`` as
  arrays) in a ``while_loop``: GLO's population programs, any tree without recompiling.
  Each step computes a handful of shared operations (one reciprocal, two products, a
  sum, a log, a square root) whose operands the opcode selects: a small program to
  compile, and the same work with or without ``vmap``.
* :func:`run_slots` runs a *static* program (a Python tuple of slots): only the ops the
  tree has, no loop, a quick compile. ``glojax.losses.get("expr:...")`` and the
  tree-shaped published losses use it.

Both call :func:`operation` for each slot, the first with a traced opcode, the second
with a Python int, so they compute the same values with the same arithmetic (a
randomized test checks it, NaN pattern included).

Derivatives are carried forward as dual numbers in ``lanes`` tangent lanes (lane 0:
``∂/∂u`` where the ``y`` leaf's tangent is supplied — ``y`` itself for ``u = log y`` —
lane 1: ``∂/∂logits``). The loss is elementwise in ``(x_i, y_i, logits_i)``, so these
lanes are the whole gradient and nothing is ever reverse-differentiated through a
select (the ``jnp.where`` gradient trap cannot occur). A tangent that is exactly 0
stays 0 whatever it is multiplied by: the variable does not enter (``sqrt(x)`` has no
``y``-derivative, even at ``x = 0`` where ``sqrt'`` is infinite).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

import numpy as np

from glojax.expr import extended as ext
from glojax.expr import ops as ops_lib
from glojax.expr.extended import Ext

NOP, X, Y, LOGITS, CONST, LOG, SQUARE, SQRT, NEG, ADD, SUB, MUL, DIV = range(13)
NUM_GLO_OPCODES = 13
NOP_KIND, PUSH, UNARY, BINARY = range(4)
_GLO_KINDS = [0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]
# NLFS's operations (Tables 1–2, glojax.expr.ops) beyond GLO's, numbered after them.
EXTRA_UNARY = tuple(k for k in ops_lib.NLFS_UNARY if k not in ("neg", "square", "sqrt"))
EXTRA_BINARY = tuple(k for k in ops_lib.NLFS_BINARY if k not in ("+", "-", "*"))
EXTRA_OPCODES = {name: NUM_GLO_OPCODES + i
                 for i, name in enumerate(EXTRA_UNARY + EXTRA_BINARY)}
NUM_OPCODES = NUM_GLO_OPCODES + len(EXTRA_OPCODES)
# Kind and stack-pointer change of each opcode.
KIND = np.array(_GLO_KINDS + [UNARY] * len(EXTRA_UNARY) + [BINARY] * len(EXTRA_BINARY),
                np.int32)
DELTA = np.array([{NOP_KIND: 0, PUSH: 1, UNARY: 0, BINARY: -1}[int(k)] for k in KIND],
                 np.int32)
# Static op sets of the traced interpreter (its ``op_set``): the ops it builds. GLO's
# programs use "glo" (13 opcodes, the cheapest); "all" adds NLFS's.
OP_SETS = ("glo", "all")
# Cost groups of the NLFS ops' dispatch (lax.switch: a program that is not vmapped runs
# only its slot's group): cheap ones; transcendental activations; erf/erfc; Bessel.
_EXTRA_GROUPS = (
    ("abs", "max0", "min0", "recip_eps", "log_eps", "log10_eps", "exp", "div_eps",
     "div_hypot", "max", "min"),
    ("sigmoid", "dsigmoid", "softsign", "dsoftsign", "softplus", "sin", "sinh",
     "arcsinh", "tanh", "dtanh", "arctanh"),
    ("erf", "erfc"),
    ("i0", "i1", "i0e", "i1e"),
)
assert sorted(sum(_EXTRA_GROUPS, ())) == sorted(EXTRA_OPCODES)


class Leaves(NamedTuple):
  """The program's inputs as extended reals, with their tangents.

  Attributes:
    x, y, logits: :class:`Ext` of the evaluation shape ``S``.
    y_tangent, logits_tangent: :class:`Ext` ``[lanes, *S]``.
    lanes: number of tangent lanes (0, 1 or 2).
  """
  x: Ext
  y: Ext
  logits: Ext
  y_tangent: Ext
  logits_tangent: Ext
  lanes: int


def make_leaves(x: Ext, y: Ext, dy: Ext, logits: Ext, lanes: int) -> Leaves:
  """Leaves with lane 0 = the ``y`` tangent ``dy`` and lane 1 = ``∂logits = 1``."""
  shape, dtype = jnp.shape(x.v), x.v.dtype
  zero, one = ext.zeros(shape, dtype), ext.ones(shape, dtype)

  def lanes_of(*parts):
    parts = parts[:lanes]
    if not parts:
      return ext.zeros((0,) + shape, dtype)
    return Ext(*(jnp.stack(field) for field in zip(*parts)))

  return Leaves(x, y, logits, lanes_of(dy, zero), lanes_of(zero, one), lanes)


def _scalar(c, like: Ext) -> Ext:
  shape, dtype = jnp.shape(like.v), like.v.dtype
  return Ext(*(jnp.broadcast_to(u, shape) for u in ext.const(jnp.asarray(c, dtype))))


def tangent_mul(t: Ext, factor: Ext) -> Ext:
  """``t · factor`` where a tangent that is exactly 0 stays 0 (also against inf/NaN)."""
  out = ext.mul(t, factor)
  return Ext(jnp.where(t.v == 0, 0.0, out.v), out.e)


def _select(op, cases: dict, default):
  """``cases[op]`` (pytrees per opcode), ``default`` otherwise: one ``lax.select_n`` per
  array, indexed by a static opcode → case table."""
  table = np.zeros(NUM_OPCODES, np.int32)
  for i, code in enumerate(cases):
    table[code] = i + 1
  index = jnp.asarray(table)[op]
  return jax.tree_util.tree_map(lambda d, *xs: jax.lax.select_n(index, d, *xs), default,
                                *cases.values())


def operation(op, a: Ext, b: Ext, ta: Ext, tb: Ext, constant, leaves: Leaves,
              op_set: str = "glo") -> tuple[Ext, Ext]:
  """Value and tangents of one slot: ``b`` is the stack top, ``a`` the entry below.

  ``op`` is a Python int (static: only that op is built) or a traced int32 (all ops of
  ``op_set``, selected; an opcode outside the set gives NaN). The tangent is ``ta·U +
  tb·V`` (sum, product and chain rules) in both. NLFS's ops: :func:`extra_operation`.
  """
  zero_t = ext.zeros(jnp.shape(tb.v), tb.v.dtype)
  one, minus_one = _scalar(1.0, b), _scalar(-1.0, b)
  if isinstance(op, (int, np.integer)):
    if op >= NUM_GLO_OPCODES:
      return extra_operation(int(op), a, b, ta, tb)
    return _static_operation(int(op), a, b, ta, tb, constant, leaves, zero_t, one,
                             minus_one)
  value, tangent = _glo_operation(op, a, b, ta, tb, constant, leaves, zero_t, one,
                                  minus_one)
  if op_set == "glo":
    extra = (_scalar(jnp.nan, b), Ext(*(jnp.full_like(u, jnp.nan) for u in tangent)))
  elif op_set == "all":
    groups = [tuple(EXTRA_OPCODES[n] for n in g) for g in _EXTRA_GROUPS]
    lut = np.zeros(NUM_OPCODES, np.int32)
    for i, codes in enumerate(groups):
      lut[list(codes)] = i
    extra = jax.lax.switch(
        jnp.asarray(lut)[op],
        [functools.partial(_traced_extra, codes) for codes in groups], op, a, b, ta, tb)
  else:
    raise ValueError(f"op_set={op_set!r} is not one of {OP_SETS}")
  is_extra = op >= NUM_GLO_OPCODES
  return jax.tree_util.tree_map(lambda e, g: jnp.where(is_extra, e, g), extra,
                                (value, tangent))


def _traced_extra(codes, op, a, b, ta, tb):
  """:func:`extra_operation` of the traced ``op`` among ``codes`` (a select)."""
  outs = [extra_operation(code, a, b, ta, tb) for code in codes]
  index = jnp.zeros((), jnp.int32)
  for i, code in enumerate(codes):
    index = jnp.where(op == code, i, index)
  return jax.tree_util.tree_map(lambda *xs: jax.lax.select_n(index, *xs), *outs)


def extra_operation(op: int, a: Ext, b: Ext, ta: Ext, tb: Ext) -> tuple[Ext, Ext]:
  """Value and tangents of one of NLFS's ops (:data:`EXTRA_OPCODES`, static ``op``).

  The op's jnp function (:mod:`glojax.expr.ops`) runs on the *rounded* operands
  (:func:`extended.value`: the float, ``±inf``, or 0 for a vanishing order) and its
  derivatives come from ``jax.jvp`` of the same function. So the value at an infinite
  logit is the op's own limit at the operand's limit (``tanh(-inf) = -1``,
  ``exp(log y) = 0`` at a masked class, ``sin(±inf)`` NaN: no limit); growth orders
  do not pass through these ops (``docs/nlfs.md``, "Limits").
  """
  name = _EXTRA_NAMES[op]
  fb = ext.value(b)
  one = jnp.ones_like(fb)
  if name in ops_lib.NLFS_UNARY:
    fn = ops_lib.NLFS_UNARY[name]
    value, db = jax.jvp(fn, (fb,), (one,))
    return ext.const(value), tangent_mul(tb, ext.const(db))
  fn = ops_lib.NLFS_BINARY[name]
  fa = ext.value(a)
  value, da = jax.jvp(lambda u: fn(u, fb), (fa,), (one,))
  _, db = jax.jvp(lambda w: fn(fa, w), (fb,), (one,))
  return ext.const(value), ext.add(tangent_mul(ta, ext.const(da)),
                                   tangent_mul(tb, ext.const(db)))


_EXTRA_NAMES = {code: name for name, code in EXTRA_OPCODES.items()}


def _glo_operation(op, a, b, ta, tb, constant, leaves, zero_t, one, minus_one):
  """:func:`operation` of a traced op among GLO's 13 (shared operations, selected)."""
  binary = jnp.asarray(KIND)[op] == BINARY
  r = ext.reciprocal(b)
  # Products: a·b (MUL), b·b (SQUARE), a·(1/b) (DIV), one multiplication.
  first = Ext(*(jnp.where(binary, u, w) for u, w in zip(a, b)))
  product = ext.mul(first, _select(op, {DIV: r}, b))
  total = ext.add(a, _select(op, {SUB: ext.neg(b)}, b))
  log_b, sqrt_b = ext.log(b), ext.sqrt(b)
  # d/db of DIV (-q/b) and SQRT (1/(2 sqrt b)), one more multiplication.
  w = ext.mul(_select(op, {DIV: ext.neg(product)}, sqrt_b._replace(v=sqrt_b.v * 0.5)), r)
  value = _select(op, {X: leaves.x, Y: leaves.y, LOGITS: leaves.logits,
                       CONST: _scalar(constant, b), LOG: log_b, SQUARE: product,
                       SQRT: sqrt_b, NEG: ext.neg(b), ADD: total, SUB: total,
                       MUL: product, DIV: product}, b)
  ta_used = _select(op, {ADD: ta, SUB: ta, MUL: ta, DIV: ta, SQUARE: tb}, zero_t)
  u_factor = _select(op, {MUL: b, SQUARE: b, DIV: r}, one)
  v_factor = _select(op, {NEG: minus_one, SUB: minus_one, MUL: a, SQUARE: b, DIV: w,
                          LOG: r, SQRT: w}, one)
  tangent = ext.add(tangent_mul(ta_used, u_factor), tangent_mul(tb, v_factor))
  tangent = _select(op, {X: zero_t, CONST: zero_t, Y: leaves.y_tangent,
                         LOGITS: leaves.logits_tangent}, tangent)
  return value, tangent


def _static_operation(op, a, b, ta, tb, constant, leaves, zero_t, one, minus_one):
  """:func:`operation` for a known opcode: the same formulas, only the needed ones."""
  if op == X:
    return leaves.x, zero_t
  if op == Y:
    return leaves.y, leaves.y_tangent
  if op == LOGITS:
    return leaves.logits, leaves.logits_tangent
  if op == CONST:
    return _scalar(constant, b), zero_t
  if op == NOP:
    return b, tb
  if op in (LOG, SQRT):
    r = ext.reciprocal(b)
    if op == LOG:
      value, ta_used, u, v = ext.log(b), zero_t, one, r
    else:
      value = ext.sqrt(b)
      ta_used, u, v = zero_t, one, ext.mul(value._replace(v=value.v * 0.5), r)
  elif op == NEG:
    value, ta_used, u, v = ext.neg(b), zero_t, one, minus_one
  elif op in (ADD, SUB):
    second = ext.neg(b) if op == SUB else b
    value, ta_used, u, v = ext.add(a, second), ta, one, (minus_one if op == SUB else one)
  elif op in (MUL, SQUARE):
    first = a if op == MUL else b
    value = ext.mul(first, b)
    ta_used, u, v = (ta, b, a) if op == MUL else (tb, b, b)
  elif op == DIV:
    r = ext.reciprocal(b)
    value = ext.mul(a, r)
    ta_used, u, v = ta, r, ext.mul(ext.neg(value), r)
  else:
    raise ValueError(f"unknown opcode {op}")
  return value, ext.add(tangent_mul(ta_used, u), tangent_mul(tb, v))


def _scaled(value: Ext, tangent: Ext, scale) -> tuple[Ext, Ext]:
  c = _scalar(scale, value)
  return ext.mul(c, value), ext.mul(c, tangent)


def interpret(opcodes, constants, scales, leaves: Leaves, stack_depth: int,
              op_set: str = "glo") -> tuple[Ext, Ext]:
  """Runs a traced program; returns ``(f, tangents [lanes, ...])`` (module docstring).

  ``op_set`` (static, one of :data:`OP_SETS`): ``"glo"`` builds GLO's 13 opcodes only
  (NLFS's give NaN), ``"all"`` NLFS's too.

  The program ends at its first ``NOP`` (a ``while_loop`` over its slots; under
  ``vmap``, to the longest program of the batch). The stack grows from row 0 with a
  stack pointer: O(1) rows read and written per slot.
  """
  shape, dtype = jnp.shape(leaves.x.v), leaves.x.v.dtype
  delta = jnp.asarray(DELTA)
  opcodes = jnp.asarray(opcodes, jnp.int32)
  constants = jnp.asarray(constants, dtype)
  scales = jnp.asarray(scales, dtype)
  length = jnp.sum(opcodes != NOP)
  row = lambda tree, i: jax.tree_util.tree_map(
      lambda u: jax.lax.dynamic_index_in_dim(u, i, keepdims=False), tree)

  def step(carry):
    i, sp, values, tangents = carry     # Ext of [D, ...] and [D, lanes, ...]
    op = opcodes[i]
    top, second = jnp.maximum(sp - 1, 0), jnp.maximum(sp - 2, 0)
    value, tangent = operation(op, row(values, second), row(values, top),
                               row(tangents, second), row(tangents, top), constants[i],
                               leaves, op_set)
    value, tangent = _scaled(value, tangent, scales[i])
    new_sp = sp + delta[op]
    put = lambda stack, new: jax.lax.dynamic_update_index_in_dim(stack, new, new_sp - 1, 0)
    return (i + 1, new_sp, jax.tree_util.tree_map(put, values, value),
            jax.tree_util.tree_map(put, tangents, tangent))

  init = (jnp.int32(0), jnp.int32(0), ext.zeros((stack_depth,) + shape, dtype),
          ext.zeros((stack_depth, leaves.lanes) + shape, dtype))
  _, _, values, tangents = jax.lax.while_loop(lambda c: c[0] < length, step, init)
  return row(values, 0), row(tangents, 0)


def run_slots(slots: tuple, leaves: Leaves) -> tuple[Ext, Ext]:
  """Runs a static program ``((opcode, constant, scale), ...)``; returns ``(f,
  tangents)``. A scale of exactly 1 is skipped (multiplying by 1 changes no bit)."""
  shape, dtype = jnp.shape(leaves.x.v), leaves.x.v.dtype
  filler = (ext.zeros(shape, dtype), ext.zeros((leaves.lanes,) + shape, dtype))
  stack: list[tuple[Ext, Ext]] = []
  for op, constant, scale in slots:
    if op == NOP:
      break
    b, tb = stack[-1] if stack else filler
    a, ta = stack[-2] if len(stack) > 1 else filler
    value, tangent = operation(int(op), a, b, ta, tb, constant, leaves)
    if scale != 1.0:
      value, tangent = _scaled(value, tangent, scale)
    del stack[len(stack) - {PUSH: 0, UNARY: 1, BINARY: 2}[int(KIND[op])]:]
    stack.append((value, tangent))
  if len(stack) != 1:
    raise ValueError(f"program leaves {len(stack)} values on the stack, expected 1")
  return stack[0]
