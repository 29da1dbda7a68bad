"""Fixed-size postfix programs: many different trees, one compiled loss.

A GLO population holds trees of different shapes. To train them as one compiled program
(docs/glo.md) each tree is encoded as a padded postfix program of a
fixed length ``L``:

* ``opcodes: int32[L]`` — one of :data:`OPCODES` per slot, ``NOP`` padding at the end;
* ``constants: float32[L]`` — the value pushed by a ``CONST`` slot (0 elsewhere);
* ``scales: float32[L]`` — a multiplier on each slot's result (1 for a plain tree; the
  coefficient phase of GLO puts its coefficients here, GLO paper §III-B).

:func:`run_program` interprets a program with a small stack machine inside ``jit``; the
program is a traced argument, so changing the trees never recompiles, and a population
is just a :class:`Program` whose arrays have a leading axis ``K``.

Every op is computed for every slot and the right one is selected (what ``lax.switch``
becomes under ``vmap`` anyway). Reverse-mode differentiation through such a select is the
``jnp.where`` gradient trap: an unselected ``log(0)``, ``sqrt(0)`` or ``x / 0`` turns its
zero cotangent into ``0 * inf = nan``. The interpreter avoids it by construction: the
loss is elementwise in ``(x_i, y_i, logits_i)``, so each stack value carries its partial
derivatives w.r.t. ``y`` and ``logits`` forward (dual numbers) and a custom VJP returns
``cotangent * partials``; nothing is ever differentiated through a select, and the
unselected entries' NaN/inf are simply dropped. This is also ~3× cheaper than
reverse-mode through a ``lax.scan`` of selects (no per-slot residual stacks). A selected
op that is undefined on the data yields NaN/inf exactly as
:func:`glojax.expr.compile_jnp` does; the trainer then gives that candidate fitness 0,
and no other candidate is affected.

The stack has a fixed number of rows (``stack_depth``, default 8) with the top always in
row 0, so every read is a static slice; :func:`encode` rejects trees that need more.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from glojax.expr.tree import BINARY_OPS, UNARY_OPS, Leaf, Node, Tree

NOP, X, Y, LOGITS, CONST, LOG, SQUARE, SQRT, NEG, ADD, SUB, MUL, DIV = range(13)
OPCODES = {"nop": NOP, "x": X, "y": Y, "logits": LOGITS, "const": CONST, "log": LOG,
           "square": SQUARE, "sqrt": SQRT, "neg": NEG, "+": ADD, "-": SUB, "*": MUL,
           "/": DIV}
_OP_NAMES = {v: k for k, v in OPCODES.items()}
_LEAF_CODES = {"x": X, "y": Y, "logits": LOGITS}
# Stack-pointer change of each opcode.
_DELTA = np.array([0, 1, 1, 1, 1, 0, 0, 0, 0, -1, -1, -1, -1], np.int32)
_NOP_KIND, _PUSH, _UNARY, _BINARY = range(4)
_KIND = np.array([0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3], np.int32)
assert set(UNARY_OPS) == {"log", "square", "sqrt", "neg"}
assert set(BINARY_OPS) == {"+", "-", "*", "/"}

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
    if isinstance(t, Leaf):
      if isinstance(t.value, str):
        slot = (_LEAF_CODES[t.value], 0.0)
      else:
        slot = (CONST, float(t.value))
    else:
      for child in t.children:
        visit(child)
      slot = (OPCODES[t.op], 0.0)
    out.append((slot[0], slot[1], float(scales.get(index, 1.0))))

  visit(tree)
  return out


def required_stack(tree: Tree) -> int:
  """Largest number of values on the stack while evaluating ``tree`` in postfix."""
  sp = peak = 0
  for op, _, _ in postfix(tree):
    sp += int(_DELTA[op])
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
    elif op in (LOG, SQUARE, SQRT, NEG):
      if not stack:
        raise ValueError(f"slot {i}: unary {_OP_NAMES[op]!r} on an empty stack")
      t = Node(_OP_NAMES[op], (stack.pop(),))
    elif op in (ADD, SUB, MUL, DIV):
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


def _interpret(program: Program, x, y, logits, stack_depth: int, lanes: int):
  """Runs the stack machine; returns ``f`` and (optionally) ``∂f/∂y``, ``∂f/∂logits``.

  The partial derivatives are carried forward with each stack value (dual numbers):
  ``f`` is elementwise in ``(x_i, y_i, logits_i)``, so two tangent lanes give the
  whole gradient and no reverse pass through the interpreter is needed.
  """
  shape = x.shape
  dtype = x.dtype
  n_lanes = lanes
  kind = jnp.asarray(_KIND)
  zero = jnp.zeros(shape, dtype)
  one = jnp.ones(shape, dtype)

  def step(carry, slot):
    values, tangents = carry            # [D, *shape], [D, lanes, *shape]
    op, const, scale = slot
    # The top of the stack is always row 0: reads are static slices, no gathers.
    a, b = values[1], values[0]         # binary: a (op) b; unary: b
    ta, tb = tangents[1], tangents[0]
    no_tangent = jnp.zeros((n_lanes,) + shape, dtype)

    def lane(i):   # d(variable)/d(lane variable): a one-hot lane
      if not n_lanes:
        return no_tangent
      return jnp.stack([one if j == i else zero for j in range(n_lanes)])

    sqrt_b = jnp.sqrt(b)
    quotient = a / b
    # (opcode, value, tangent). sqrt keeps a zero tangent zero (sqrt of a constant 0
    # has a finite value, and reverse mode gives it no gradient either). Unselected
    # entries may be NaN/inf: the forward select drops them and they are never
    # differentiated (the VJP is custom), so the jnp.where gradient trap cannot occur.
    table = [
        (X, x, no_tangent),
        (Y, y, lane(0)),
        (LOGITS, logits, lane(1)),
        (CONST, jnp.full(shape, const, dtype), no_tangent),
        (LOG, jnp.log(b), tb / b),
        (SQUARE, b * b, 2 * b * tb),
        (SQRT, sqrt_b, jnp.where(tb == 0, 0.0, tb / (2 * sqrt_b))),
        (NEG, -b, -tb),
        (ADD, a + b, ta + tb),
        (SUB, a - b, ta - tb),
        (MUL, a * b, ta * b + a * tb),
        (DIV, quotient, (ta - quotient * tb) / b),
    ]
    pred = [op == code for code, _, _ in table]
    value = jnp.select(pred, [v for _, v, _ in table], zero) * scale
    tangent = jnp.select(pred, [t for _, _, t in table], no_tangent) * scale
    k = kind[op]

    def update(stack, top):
      # Rows 1.. shift down on a push, up on a binary op; row 0 takes the result.
      pad = jnp.zeros_like(stack[:1])
      rest = jnp.where(k == _PUSH, stack[:-1],
                       jnp.where(k == _BINARY, jnp.concatenate([stack[2:], pad]),
                                 stack[1:]))
      head = jnp.where(k == _NOP_KIND, stack[0], top)
      return jnp.concatenate([head[None], rest])

    return (update(values, value), update(tangents, tangent)), None

  init = (jnp.zeros((stack_depth,) + shape, dtype),
          jnp.zeros((stack_depth, n_lanes) + shape, dtype))
  (values, tangents), _ = jax.lax.scan(
      step, init,
      (jnp.asarray(program.opcodes, jnp.int32), jnp.asarray(program.constants, dtype),
       jnp.asarray(program.scales, dtype)))
  return values[0], tangents[0]


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5))
def _tree_values(program, x, y, logits, stack_depth, use_logits):
  return _interpret(program, x, y, logits, stack_depth, 0)[0]


def _tree_values_fwd(program, x, y, logits, stack_depth, use_logits):
  value, partials = _interpret(program, x, y, logits, stack_depth, 2 if use_logits else 1)
  return value, (partials, program, x)


def _tree_values_bwd(stack_depth, use_logits, residuals, g):
  partials, program, x = residuals
  zeros = jax.tree_util.tree_map(
      lambda p: np.zeros(p.shape, jax.dtypes.float0)
      if not jnp.issubdtype(p.dtype, jnp.floating) else jnp.zeros_like(p), program)
  # Labels get no gradient (GLO never differentiates the loss w.r.t. the labels).
  d_logits = g * partials[1] if use_logits else jnp.zeros_like(g)
  return zeros, jnp.zeros_like(x), g * partials[0], d_logits


_tree_values.defvjp(_tree_values_fwd, _tree_values_bwd)


def run_program(program: Program, x: jax.Array, y: jax.Array,
                logits: jax.Array | None = None, stack_depth: int = DEFAULT_STACK_DEPTH,
                use_logits: bool = True) -> jax.Array:
  """Evaluates one program elementwise: the interpreter counterpart of ``evaluate``.

  Differentiable w.r.t. ``y`` and ``logits`` (a custom VJP whose partials are carried
  forward through the stack machine); the gradient w.r.t. ``x`` (labels), the
  constants and the scales is defined as 0.

  Args:
    program: an unbatched :class:`Program` (``[L]`` arrays; ``vmap`` for a population).
    x: labels ``float[..., n]``.
    y: predictions (softmax) ``float[..., n]``.
    logits: raw logits ``float[..., n]`` (zeros if omitted; only ``LOGITS`` reads them).
    stack_depth: rows of the machine's stack (static); encode with the same bound.
    use_logits: whether programs may read ``logits`` (static). ``False`` drops the
      logits tangent lane (cheaper); a ``LOGITS`` slot then reads zeros.

  Returns:
    ``f(x, y[, logits])`` with the broadcast shape of the inputs. NaN/inf exactly where
    the tree's own arithmetic produces them; never from an op the program does not use.
  """
  shape = jnp.broadcast_shapes(jnp.shape(x), jnp.shape(y))
  dtype = jnp.result_type(x, y, jnp.float32)
  x = jnp.broadcast_to(x, shape).astype(dtype)
  y = jnp.broadcast_to(y, shape).astype(dtype)
  logits = (jnp.zeros(shape, dtype) if logits is None or not use_logits
            else jnp.broadcast_to(logits, shape).astype(dtype))
  return _tree_values(program, x, y, logits, stack_depth, bool(use_logits))


def program_loss(program: Program, logits: jax.Array, labels: jax.Array, *,
                 stack_depth: int = DEFAULT_STACK_DEPTH, use_logits: bool = True
                 ) -> jax.Array:
  r"""The GLO loss of a program: ``loss_fn(loss_params, logits, labels)`` for a Trainer.

  .. math:: L = -\frac{1}{n} \sum_{i=1}^n f(x_i, y_i[, \tilde y_i]),\quad
            y = \mathrm{softmax}(\tilde y)

  (GLO paper §III; SPEC §4.) Agrees with ``compile_jnp(decode(program))`` in values
  and gradients wherever the latter is finite.

  Args:
    program: an unbatched :class:`Program` (traced: any tree, no recompile).
    logits: ``float[..., n]``.
    labels: ``float[..., n]`` (one-hot or soft).
    stack_depth, use_logits: static interpreter options (see :func:`run_program`);
      bind them with ``functools.partial`` to get a Trainer ``loss_fn``.

  Returns:
    Per-example loss ``float[...]``.
  """
  y = jax.nn.softmax(logits, axis=-1)
  return -jnp.mean(run_program(program, labels, y, logits, stack_depth, use_logits),
                   axis=-1)
