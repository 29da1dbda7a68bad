"""Fixed-size postfix programs: many different trees, one compiled loss.

A GLO population holds trees of different shapes. To train them as one compiled program
(DESIGN.md, "Programs for trees") each tree is encoded as a padded postfix program of a
fixed length ``L``:

* ``opcodes: int32[L]`` — one of :data:`OPCODES` per slot, ``NOP`` padding at the end;
* ``constants: float32[L]`` — the value pushed by a ``CONST`` slot (0 elsewhere);
* ``scales: float32[L]`` — a multiplier on each slot's result (1 for a plain tree; the
  coefficient phase of GLO puts its coefficients here, GLO paper §III-B).

:func:`run_program` interprets a program with a small stack machine inside ``jit``; the
program is a traced argument, so changing the trees never recompiles, and a population
is just a :class:`Program` whose arrays have a leading axis ``K``.

Every op is computed for every slot and the right one is selected (that is what
``lax.switch`` becomes under ``vmap`` anyway). The inputs of the ops *not* selected are
replaced by 1 before the op ("double where"), so an unselected ``log(0)``, ``sqrt(0)``
or ``x / 0`` never turns a zero cotangent into ``0 * inf = nan``. A selected op that is
undefined on the data yields NaN/inf exactly as :func:`glojax.expr.compile_jnp` does;
the trainer then gives that candidate fitness 0 and no other candidate is affected.
"""

from __future__ import annotations

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
assert set(UNARY_OPS) == {"log", "square", "sqrt", "neg"}
assert set(BINARY_OPS) == {"+", "-", "*", "/"}

DEFAULT_MAX_LEN = 32


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


def stack_size(max_len: int) -> int:
  """Stack depth the interpreter allocates for programs of length ``max_len``.

  A postfix program of ``L`` slots has at most ``(L + 1) // 2`` leaves, and the stack
  never holds more values than leaves, so any encodable tree fits.
  """
  return max(1, (max_len + 1) // 2)


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


def encode(tree: Tree, max_len: int = DEFAULT_MAX_LEN, scales: dict | None = None
           ) -> Program:
  """Encodes one tree as a padded :class:`Program` of NumPy arrays.

  Args:
    tree: the expression (any :class:`~glojax.expr.tree.Leaf`/``Node`` tree).
    max_len: program length ``L``.
    scales: optional per-node multipliers ``{preorder_index: value}`` (the GLO
      coefficients); see :func:`postfix`.

  Returns:
    ``Program(opcodes int32[L], constants float32[L], scales float32[L])``.

  Raises:
    ValueError: if the tree has more than ``max_len`` nodes.
  """
  slots = postfix(tree, scales)
  if len(slots) > max_len:
    raise ValueError(f"tree has {len(slots)} nodes, more than max_len={max_len}")
  opcodes = np.full(max_len, NOP, np.int32)
  constants = np.zeros(max_len, np.float32)
  scale_arr = np.ones(max_len, np.float32)
  for i, (op, c, s) in enumerate(slots):
    opcodes[i], constants[i], scale_arr[i] = op, c, s
  return Program(opcodes, constants, scale_arr)


def encode_population(trees, max_len: int = DEFAULT_MAX_LEN, scales=None) -> Program:
  """Encodes ``K`` trees as one :class:`Program` with arrays of shape ``[K, L]``.

  Args:
    trees: sequence of ``K`` trees.
    max_len: program length ``L``.
    scales: optional sequence of ``K`` per-node multiplier dicts (see :func:`encode`).

  Raises:
    ValueError: for an empty population or a tree longer than ``max_len``.
  """
  trees = list(trees)
  if not trees:
    raise ValueError("cannot encode an empty population")
  scales = list(scales) if scales is not None else [None] * len(trees)
  if len(scales) != len(trees):
    raise ValueError(f"got {len(trees)} trees but {len(scales)} scale dicts")
  progs = [encode(t, max_len, s) for t, s in zip(trees, scales)]
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


def run_program(program: Program, x: jax.Array, y: jax.Array,
                logits: jax.Array | None = None) -> jax.Array:
  """Evaluates one program elementwise: the interpreter counterpart of ``evaluate``.

  Args:
    program: an unbatched :class:`Program` (``[L]`` arrays; ``vmap`` for a population).
    x: labels ``float[..., n]``.
    y: predictions (softmax) ``float[..., n]``.
    logits: raw logits ``float[..., n]`` (zeros if omitted; only ``LOGITS`` reads them).

  Returns:
    ``f(x, y[, logits])`` with the broadcast shape of the inputs. NaN/inf exactly where
    the tree's own arithmetic produces them; never from an op the program does not use.
  """
  shape = jnp.broadcast_shapes(jnp.shape(x), jnp.shape(y))
  dtype = jnp.result_type(x, y)
  x = jnp.broadcast_to(x, shape).astype(dtype)
  y = jnp.broadcast_to(y, shape).astype(dtype)
  logits = (jnp.zeros(shape, dtype) if logits is None
            else jnp.broadcast_to(logits, shape).astype(dtype))
  depth = stack_size(program.opcodes.shape[-1])
  positions = jnp.arange(depth).reshape((depth,) + (1,) * len(shape))
  delta = jnp.asarray(_DELTA)

  def step(carry, slot):
    stack, sp = carry
    op, const, scale = slot
    top = stack[jnp.clip(sp - 1, 0, depth - 1)]
    second = stack[jnp.clip(sp - 2, 0, depth - 1)]

    def arg(value, code):
      # Inputs of ops not selected are replaced by 1 ("double where").
      return jnp.where(op == code, value, jnp.ones_like(value))

    choices = [
        (X, x), (Y, y), (LOGITS, logits), (CONST, jnp.full(shape, const, dtype)),
        (LOG, jnp.log(arg(top, LOG))),
        (SQUARE, jnp.square(arg(top, SQUARE))),
        (SQRT, jnp.sqrt(arg(top, SQRT))),
        (NEG, -arg(top, NEG)),
        (ADD, arg(second, ADD) + arg(top, ADD)),
        (SUB, arg(second, SUB) - arg(top, SUB)),
        (MUL, arg(second, MUL) * arg(top, MUL)),
        (DIV, arg(second, DIV) / arg(top, DIV)),
    ]
    result = jnp.select([op == code for code, _ in choices], [v for _, v in choices],
                        jnp.zeros(shape, dtype)) * scale
    new_sp = sp + delta[op]
    # NOP writes nowhere (position -1); other ops write their result at new_sp - 1.
    write_at = jnp.where(op == NOP, -1, new_sp - 1)
    stack = jnp.where(positions == write_at, result[None], stack)
    return (stack, new_sp), None

  stack0 = jnp.zeros((depth,) + shape, dtype)
  (stack, _), _ = jax.lax.scan(
      step, (stack0, jnp.zeros((), jnp.int32)),
      (jnp.asarray(program.opcodes, jnp.int32), jnp.asarray(program.constants, dtype),
       jnp.asarray(program.scales, dtype)))
  return stack[0]


def program_loss(program: Program, logits: jax.Array, labels: jax.Array) -> jax.Array:
  r"""The GLO loss of a program: ``loss_fn(loss_params, logits, labels)`` for a Trainer.

  .. math:: L = -\frac{1}{n} \sum_{i=1}^n f(x_i, y_i[, \tilde y_i]),\quad
            y = \mathrm{softmax}(\tilde y)

  (GLO paper §III; SPEC §4.) Agrees with ``compile_jnp(decode(program))`` in values
  and gradients wherever the latter is finite.

  Args:
    program: an unbatched :class:`Program` (traced: any tree, no recompile).
    logits: ``float[..., n]``.
    labels: ``float[..., n]`` (one-hot or soft).

  Returns:
    Per-example loss ``float[...]``.
  """
  y = jax.nn.softmax(logits, axis=-1)
  return -jnp.mean(run_program(program, labels, y, logits), axis=-1)
