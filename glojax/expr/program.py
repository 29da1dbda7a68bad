"""Fixed-size postfix programs: many different trees, one compiled loss.

A GLO population holds trees of different shapes. To train them as one compiled program
each tree is encoded as a padded postfix program of a fixed length ``L``
(``docs/design.md``, "Programs for trees"):

* ``opcodes: int32[L]`` — one of :data:`OPCODES` per slot, ``NOP`` padding at the end;
* ``constants: float32[L]`` — the value pushed by a ``CONST`` slot (0 elsewhere);
* ``scales: float32[L]`` — a multiplier on each slot's result (1 for a plain tree; the
  coefficient phase of GLO puts its coefficients here, GLO paper §III-B).

:func:`program_loss` interprets a program with a small stack machine inside ``jit``; the
program is a traced argument, so changing the trees never recompiles, and a population
is just a :class:`Program` whose arrays have a leading axis ``K``. It is the one
compilation of a tree: GLO trains with it, and ``glojax.losses.get("expr:...")``,
:func:`glojax.expr.compile_jnp` and the tree-shaped published losses run it too, so a
loss reloaded from ``best_loss.txt`` computes exactly what the search trained.

Values are :mod:`glojax.expr.extended` numbers (sign, log-magnitude, growth at
infinite logits): ``y`` enters as ``exp(log_softmax)``, so ``x / y``, ``log y``,
``y * (1 / y)`` stay exact when the softmax saturates, and logits of ``±inf`` give the
limit of the loss. Each slot's op is chosen with ``lax.switch`` (a real branch for one
program; a select over all ops under ``vmap``). Reverse-mode differentiation through such
a select is the ``jnp.where`` gradient trap (an unselected ``log(0)`` turns its zero
cotangent into ``0 * inf = nan``); the interpreter avoids it by construction: the loss
is elementwise in ``(x_i, y_i, logits_i)``, so each stack value carries its partial
derivatives w.r.t. ``log y`` and ``logits`` forward (dual numbers, in the same
arithmetic) and a custom VJP returns ``cotangent * partials``; nothing is ever
differentiated through a select. A selected op that is undefined on the data yields NaN
(see :mod:`glojax.expr.extended`); the trainer then gives that candidate fitness 0, and
no other candidate is affected.

The stack has a fixed number of rows (``stack_depth``, default 8) with the top always in
row 0, so every read is a static slice; :func:`encode` rejects trees that need more.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from glojax.expr import extended as ext
from glojax.expr import machine
from glojax.expr.machine import (ADD, BINARY, CONST, DELTA, DIV, KIND, LOG, LOGITS, MUL,
                                 NEG, NOP, OP_SETS, SQRT, SQUARE, SUB, UNARY, X, Y)
from glojax.expr.tree import BINARY_OPS, UNARY_OPS, Leaf, Node, Tree

OPCODES = {"nop": NOP, "x": X, "y": Y, "logits": LOGITS, "const": CONST, "log": LOG,
           "square": SQUARE, "sqrt": SQRT, "neg": NEG, "+": ADD, "-": SUB, "*": MUL,
           "/": DIV, **machine.EXTRA_OPCODES}
_OP_NAMES = {v: k for k, v in OPCODES.items()}
_LEAF_CODES = {"x": X, "y": Y, "logits": LOGITS}
assert set(UNARY_OPS) == {k for k, c in OPCODES.items() if KIND[c] == UNARY}
assert set(BINARY_OPS) == {k for k, c in OPCODES.items() if KIND[c] == BINARY}

DEFAULT_MAX_LEN = 32
DEFAULT_STACK_DEPTH = 8


class Program(NamedTuple):
  """A padded postfix program (a pytree; stack along a leading axis for a population).

  Attributes:
    opcodes: ``int32[..., L]`` values of :data:`OPCODES`, ``NOP`` after the end.
    constants: ``float32[..., L]`` value pushed by each ``CONST`` slot.
    scales: ``float32[..., L]`` multiplier applied to each slot's result.
  """
  opcodes: jax.Array
  constants: jax.Array
  scales: jax.Array

  @property
  def max_len(self) -> int:
    return int(np.shape(self.opcodes)[-1])


def postfix(tree: Tree, scales: dict | None = None) -> list[tuple[int, float, float]]:
  """The postfix slots ``(opcode, constant, scale)`` of ``tree`` (no padding).

  Args:
    tree: the expression.
    scales: optional ``{preorder_index: scale}``; nodes are numbered in preorder
      (root 0, then the left subtree, then the right), as :func:`glojax.expr.tree`'s
      traversal helpers do. Missing indices get scale 1.
  """
  scales = scales or {}
  out: list[tuple[int, float, float]] = []
  counter = [0]

  def visit(t: Tree):
    index = counter[0]
    counter[0] += 1
    scale = float(scales.get(index, 1.0))
    if isinstance(t, Leaf):
      if isinstance(t.value, str):
        slot = (_LEAF_CODES[t.value], 0.0)
      else:
        # A constant's coefficient is folded in (float64 product), exactly as
        # coefficients.with_coefficients writes it: the exported spec is this program.
        slot, scale = (CONST, float(t.value) * scale), 1.0
    else:
      for child in t.children:
        visit(child)
      slot = (OPCODES[t.op], 0.0)
    out.append((slot[0], slot[1], scale))

  visit(tree)
  return out


def required_stack(tree: Tree) -> int:
  """Largest number of values on the stack while evaluating ``tree`` in postfix."""
  sp = peak = 0
  for op, _, _ in postfix(tree):
    sp += int(DELTA[op])
    peak = max(peak, sp)
  return peak


def encode(tree: Tree, max_len: int = DEFAULT_MAX_LEN, scales: dict | None = None,
           stack_depth: int = DEFAULT_STACK_DEPTH) -> Program:
  """Encodes one tree as a padded :class:`Program` of NumPy arrays.

  Args:
    tree: the expression (any :class:`~glojax.expr.tree.Leaf`/``Node`` tree).
    max_len: program length ``L``.
    scales: optional per-node multipliers ``{preorder_index: value}`` (the GLO
      coefficients); see :func:`postfix`.
    stack_depth: the interpreter's stack rows; the tree must fit.

  Returns:
    ``Program(opcodes int32[L], constants float32[L], scales float32[L])``.

  Raises:
    ValueError: if the tree has more than ``max_len`` nodes or needs more than
      ``stack_depth`` stack rows.
  """
  slots = postfix(tree, scales)
  if len(slots) > max_len:
    raise ValueError(f"tree has {len(slots)} nodes, more than max_len={max_len}")
  if required_stack(tree) > stack_depth:
    raise ValueError(f"tree needs {required_stack(tree)} stack rows, more than "
                     f"stack_depth={stack_depth}")
  opcodes = np.full(max_len, NOP, np.int32)
  constants = np.zeros(max_len, np.float32)
  scale_arr = np.ones(max_len, np.float32)
  for i, (op, c, s) in enumerate(slots):
    opcodes[i], constants[i], scale_arr[i] = op, c, s
  return Program(opcodes, constants, scale_arr)


def encode_population(trees, max_len: int = DEFAULT_MAX_LEN, scales=None,
                      stack_depth: int = DEFAULT_STACK_DEPTH) -> Program:
  """Encodes ``K`` trees as one :class:`Program` with arrays of shape ``[K, L]``.

  Args:
    trees: sequence of ``K`` trees.
    max_len: program length ``L``.
    scales: optional sequence of ``K`` per-node multiplier dicts (see :func:`encode`).
    stack_depth: the interpreter's stack rows.

  Raises:
    ValueError: for an empty population or a tree that does not fit (:func:`encode`).
  """
  trees = list(trees)
  if not trees:
    raise ValueError("cannot encode an empty population")
  scales = list(scales) if scales is not None else [None] * len(trees)
  if len(scales) != len(trees):
    raise ValueError(f"got {len(trees)} trees but {len(scales)} scale dicts")
  progs = [encode(t, max_len, s, stack_depth) for t, s in zip(trees, scales)]
  return Program(*(np.stack(parts) for parts in zip(*progs)))


def decode(program: Program) -> Tree:
  """Rebuilds the tree of one (unbatched) program; scales ≠ 1 become ``c * (...)``.

  Raises:
    ValueError: if the program is not a well-formed postfix program.
  """
  opcodes = np.asarray(program.opcodes)
  if opcodes.ndim != 1:
    raise ValueError(f"decode takes one program, got opcodes of shape {opcodes.shape}")
  constants = np.asarray(program.constants)
  scales = np.asarray(program.scales)
  stack: list[Tree] = []
  ended = False
  for i, op in enumerate(opcodes.tolist()):
    if op == NOP:
      ended = True
      continue
    if ended:
      raise ValueError(f"opcode {op} at slot {i} follows padding")
    if op in (X, Y, LOGITS):
      t: Tree = Leaf(_OP_NAMES[op])
    elif op == CONST:
      t = Leaf(float(constants[i]))
    elif 0 <= op < len(KIND) and KIND[op] == UNARY:
      if not stack:
        raise ValueError(f"slot {i}: unary {_OP_NAMES[op]!r} on an empty stack")
      t = Node(_OP_NAMES[op], (stack.pop(),))
    elif 0 <= op < len(KIND) and KIND[op] == BINARY:
      if len(stack) < 2:
        raise ValueError(f"slot {i}: binary {_OP_NAMES[op]!r} needs two values")
      right = stack.pop()
      t = Node(_OP_NAMES[op], (stack.pop(), right))
    else:
      raise ValueError(f"slot {i}: unknown opcode {op}")
    if scales[i] != 1.0:
      t = Node("*", (Leaf(float(scales[i])), t))
    stack.append(t)
  if len(stack) != 1:
    raise ValueError(f"program leaves {len(stack)} values on the stack, expected 1")
  return stack[0]


def _compute_dtype(*arrays):
  """Losses compute in at least float32 (bfloat16 log-magnitudes are too coarse)."""
  return jnp.result_type(*arrays, jnp.float32)


def _zero_cotangents(program):
  return jax.tree_util.tree_map(
      lambda p: np.zeros(p.shape, jax.dtypes.float0)
      if not jnp.issubdtype(p.dtype, jnp.floating) else jnp.zeros_like(p), program)


# ---- elementwise values: f(x, y, logits) ----------------------------------------------


def _elementwise_leaves(x, y, logits, use_logits, lanes):
  z = ext.logit(logits) if use_logits else ext.zeros(jnp.shape(x), x.dtype)
  return machine.make_leaves(ext.const(x), ext.const(y), ext.ones(jnp.shape(x), x.dtype),
                             z, lanes)


def _run(program, leaves, stack_depth, op_set):
  return machine.interpret(program.opcodes, program.constants, program.scales, leaves,
                           stack_depth, op_set)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5, 6))
def _tree_values(program, x, y, logits, stack_depth, use_logits, op_set):
  f, _ = _run(program, _elementwise_leaves(x, y, logits, use_logits, 0), stack_depth,
              op_set)
  return ext.value(f)


def _tree_values_fwd(program, x, y, logits, stack_depth, use_logits, op_set):
  leaves = _elementwise_leaves(x, y, logits, use_logits, 2 if use_logits else 1)
  f, t = _run(program, leaves, stack_depth, op_set)
  return ext.value(f), (ext.value(t), program, x)


def _tree_values_bwd(stack_depth, use_logits, op_set, residuals, g):
  partials, program, x = residuals
  # Labels get no gradient (GLO never differentiates the loss w.r.t. the labels).
  d_logits = g * partials[1] if use_logits else jnp.zeros_like(g)
  return _zero_cotangents(program), jnp.zeros_like(x), g * partials[0], d_logits


_tree_values.defvjp(_tree_values_fwd, _tree_values_bwd)


def run_program(program: Program, x: jax.Array, y: jax.Array,
                logits: jax.Array | None = None, stack_depth: int = DEFAULT_STACK_DEPTH,
                use_logits: bool = True, op_set: str = "glo") -> jax.Array:
  """Evaluates one program elementwise on given ``x``, ``y`` (and ``logits``).

  The arithmetic is :mod:`glojax.expr.extended`'s (exact zeros annihilate, ``v/0``
  is ``±inf``, domain errors NaN). Differentiable w.r.t. ``y`` and ``logits`` (a
  custom VJP whose partials are carried forward through the stack machine); the
  gradient w.r.t. ``x`` (labels), the constants and the scales is defined as 0.

  Args:
    program: an unbatched :class:`Program` (``[L]`` arrays; ``vmap`` for a population).
    x: labels ``float[..., n]``.
    y: predictions (probabilities) ``float[..., n]``.
    logits: raw logits ``float[..., n]`` (zeros if omitted; only ``LOGITS`` reads them).
    stack_depth: rows of the machine's stack (static); encode with the same bound.
    use_logits: whether programs may read ``logits`` (static). ``False`` drops the
      logits tangent lane (cheaper); a ``LOGITS`` slot then reads zeros.
    op_set: the opcodes the interpreter builds (static): ``"glo"`` (GLO's 13, the
      cheapest; NLFS's opcodes give NaN) or ``"all"`` (NLFS's ops too,
      :mod:`glojax.expr.ops`).

  Returns:
    ``f(x, y[, logits])`` with the broadcast shape of the inputs, in at least float32.

  Raises:
    ValueError: for an unknown ``op_set``.
  """
  _check_op_set(op_set)
  shape = jnp.broadcast_shapes(jnp.shape(x), jnp.shape(y))
  dtype = _compute_dtype(x, y)
  x = jnp.broadcast_to(x, shape).astype(dtype)
  y = jnp.broadcast_to(y, shape).astype(dtype)
  logits = (jnp.zeros(shape, dtype) if logits is None or not use_logits
            else jnp.broadcast_to(logits, shape).astype(dtype))
  return _tree_values(program, x, y, logits, stack_depth, bool(use_logits), op_set)


def _check_op_set(op_set):
  if op_set not in OP_SETS:
    raise ValueError(f"op_set={op_set!r} is not one of {OP_SETS}")


# ---- the loss: L = -reduce_i f(x_i, softmax(logits)_i, logits_i) ------------------------


def _loss_leaves(x, order, u, logits, use_logits, lanes):
  y = ext.exp_of(u, order)
  z = ext.logit(logits) if use_logits else ext.zeros(jnp.shape(x), x.dtype)
  return machine.make_leaves(ext.const(x), y, y, z, lanes)


def _reduce(f: ext.Ext, class_reduction: str) -> jax.Array:
  """``-(1/n) Σ_i f_i`` (or ``-Σ``) in extended arithmetic, rounded once at the end."""
  n = jnp.shape(f.v)[-1]
  factor = -1.0 / n if class_reduction == "mean" else -1.0
  total = ext.sum_last_axis(f)
  return ext.value(ext.mul(ext.const(jnp.full(jnp.shape(total.v), factor, f.v.dtype)),
                           total))


def _loss_forward(run, x, order, u, logits, use_logits, class_reduction):
  """``(loss, residual partials)`` with the tangents of ``run(leaves) -> (f, t)``."""
  leaves = _loss_leaves(x, order, u, logits, use_logits, 2 if use_logits else 1)
  f, t = run(leaves)
  scale = -1.0 / jnp.shape(x)[-1] if class_reduction == "mean" else -1.0
  # Scaled before rounding: a partial near the float range stays finite after 1/n.
  factor = ext.const(jnp.full(jnp.shape(f.v), scale, f.v.dtype))
  return _reduce(f, class_reduction), ext.value(ext.mul(factor, t))


def _loss_backward(partials, x, order, logits, use_logits, g):
  """Cotangents of ``(x, order, u, logits)``."""
  g = g[..., None]
  # The logits lane: the direct dependence on logits (none on an infinite logit,
  # whose value is a limit; u's path is masked the same way in log_softmax_parts).
  d_logits = (jnp.where(jnp.isinf(logits), 0.0, g * partials[1]) if use_logits
              else jnp.zeros_like(x))
  return jnp.zeros_like(x), jnp.zeros_like(order), g * partials[0], d_logits


@functools.partial(jax.custom_vjp, nondiff_argnums=(5, 6, 7, 8))
def _loss_values(program, x, order, u, logits, stack_depth, use_logits,
                 class_reduction, op_set):
  f, _ = _run(program, _loss_leaves(x, order, u, logits, use_logits, 0), stack_depth,
              op_set)
  return _reduce(f, class_reduction)


def _loss_values_fwd(program, x, order, u, logits, stack_depth, use_logits,
                     class_reduction, op_set):
  run = lambda leaves: _run(program, leaves, stack_depth, op_set)
  loss, partials = _loss_forward(run, x, order, u, logits, use_logits, class_reduction)
  return loss, (partials, program, x, order, logits)


def _loss_values_bwd(stack_depth, use_logits, class_reduction, op_set, residuals, g):
  partials, program, x, order, logits = residuals
  return (_zero_cotangents(program),
          *_loss_backward(partials, x, order, logits, use_logits, g))


_loss_values.defvjp(_loss_values_fwd, _loss_values_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5, 6))
def _static_loss_values(x, order, u, logits, slots, use_logits, class_reduction):
  f, _ = machine.run_slots(slots, _loss_leaves(x, order, u, logits, use_logits, 0))
  return _reduce(f, class_reduction)


def _static_loss_values_fwd(x, order, u, logits, slots, use_logits, class_reduction):
  run = lambda leaves: machine.run_slots(slots, leaves)
  loss, partials = _loss_forward(run, x, order, u, logits, use_logits, class_reduction)
  return loss, (partials, x, order, logits)


def _static_loss_values_bwd(slots, use_logits, class_reduction, residuals, g):
  partials, x, order, logits = residuals
  return _loss_backward(partials, x, order, logits, use_logits, g)


_static_loss_values.defvjp(_static_loss_values_fwd, _static_loss_values_bwd)


def _loss_inputs(logits, labels, class_reduction):
  if class_reduction not in ("mean", "sum"):
    raise ValueError(f"class_reduction={class_reduction!r} is not one of "
                     "('mean', 'sum')")
  out_dtype = jnp.result_type(logits, labels)
  dtype = _compute_dtype(logits, labels)
  logits = jnp.asarray(logits).astype(dtype)
  labels = jnp.broadcast_to(jnp.asarray(labels), jnp.shape(logits)).astype(dtype)
  order, u = ext.log_softmax_parts(logits)
  return labels, order, u, logits, out_dtype


def program_loss(program: Program, logits: jax.Array, labels: jax.Array, *,
                 stack_depth: int = DEFAULT_STACK_DEPTH, use_logits: bool = True,
                 class_reduction: str = "mean", op_set: str = "glo") -> jax.Array:
  r"""The GLO loss of a program: ``loss_fn(loss_params, logits, labels)`` for a Trainer.

  .. math:: L = -\frac{1}{n} \sum_{i=1}^n f(x_i, y_i[, \tilde y_i]),\quad
            y = \mathrm{softmax}(\tilde y)

  (GLO paper §III; ``docs/glo.md``.) This is the one compilation of a tree: GLO's
  trainer, ``glojax.losses.get("expr:...")`` and the tree-shaped published losses
  (Baikal, BaikalCMA, FastLogit) all run it. ``y`` enters as ``exp(log_softmax)`` in
  :mod:`glojax.expr.extended` arithmetic, so saturated softmax entries keep their true
  magnitude and logits of ``±inf`` give the loss's limit (``docs/losses.md``).

  Args:
    program: an unbatched :class:`Program` (traced: any tree, no recompile).
    logits: ``float[..., n]`` (``±inf`` allowed: masked / certain classes).
    labels: ``float[..., n]`` (one-hot or soft).
    stack_depth, use_logits: static interpreter options (see :func:`run_program`);
      bind them with ``functools.partial`` to get a Trainer ``loss_fn``.
    class_reduction: ``"mean"`` (the papers' ``-(1/n) Σ``) or ``"sum"``.
    op_set: ``"glo"`` or ``"all"`` (static; see :func:`run_program`).

  Returns:
    Per-example loss ``float[...]`` (float32 for bfloat16/float16 inputs' internals,
    returned in ``result_type(logits, labels)``). NaN only where the tree is undefined
    or its limit is indeterminate (:mod:`glojax.expr.extended`).

  Raises:
    ValueError: for an unknown ``class_reduction`` or ``op_set``.
  """
  _check_op_set(op_set)
  labels, order, u, logits, out_dtype = _loss_inputs(logits, labels, class_reduction)
  loss = _loss_values(program, labels, order, u, logits, stack_depth, bool(use_logits),
                      class_reduction, op_set)
  return loss.astype(out_dtype)


def encode_exact(tree: Tree, scales: dict | None = None) -> Program:
  """:func:`encode` with ``max_len`` = the tree's size and room for its stack."""
  return encode(tree, max_len=len(postfix(tree)), scales=scales,
                stack_depth=max(1, required_stack(tree)))


def tree_loss(tree: Tree, class_reduction: str = "mean"):
  """``loss(logits, labels) -> float[...]``: the loss of one tree, compiled directly.

  The tree's postfix slots run through the same per-slot :func:`machine.operation`
  as the interpreter of :func:`program_loss`, with the opcodes known: the same values
  and derivatives (a randomized test checks it, NaN pattern included), a much smaller
  program to compile, any tree size. ``logits`` are read only if the tree uses them.

  Raises:
    ValueError: for an unknown ``class_reduction`` (when called).
  """
  slots = tuple((int(op), float(np.float32(c)), float(np.float32(sc)))
                for op, c, sc in postfix(tree))
  use_logits = "logits" in _variables(tree)

  def loss(logits: jax.Array, labels: jax.Array) -> jax.Array:
    labels, order, u, logits, out_dtype = _loss_inputs(logits, labels, class_reduction)
    return _static_loss_values(labels, order, u, logits, slots, use_logits,
                               class_reduction).astype(out_dtype)
  return loss


def op_set_of(tree: Tree) -> str:
  """The cheapest interpreter op set that runs ``tree``: ``"glo"`` or ``"all"``."""
  if isinstance(tree, Leaf):
    return "glo"
  if OPCODES[tree.op] >= machine.NUM_GLO_OPCODES:
    return "all"
  return max((op_set_of(c) for c in tree.children), key=OP_SETS.index)


def _variables(tree: Tree) -> set:
  if isinstance(tree, Leaf):
    return {tree.value} if isinstance(tree.value, str) else set()
  return set().union(*(_variables(c) for c in tree.children))
