"""Expression trees over ``x`` (labels), ``y`` (softmax outputs) and ``logits``.

A tree is the GLO genome (``docs/glo.md``) and the body of an ``"expr:..."`` loss spec.
It is an immutable value: :class:`Leaf` (a variable or a constant) or :class:`Node` (an
operator applied to child trees). Trees are parsed from text with :mod:`ast` (never
``eval``), printed back with :func:`to_string`, and compiled with :func:`compile_jnp`
(the tree's fixed-size program, :mod:`glojax.expr.program`: one compilation for every
use).
"""

from __future__ import annotations

import ast
import dataclasses
import math
from typing import Callable, Union

import jax
import jax.numpy as jnp

from glojax.expr import ops as ops_lib

VARIABLES = ("x", "y", "logits")
# GLO's operators (GLO paper §III-A)
GLO_UNARY = ("log", "square", "sqrt", "neg")
GLO_BINARY = ("+", "-", "*", "/")
UNARY_OPS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "log": jnp.log,
    "square": jnp.square,
    "sqrt": jnp.sqrt,
    "neg": jnp.negative,
}
BINARY_OPS: dict[str, Callable[[jax.Array, jax.Array], jax.Array]] = {
    "+": jnp.add,
    "-": jnp.subtract,
    "*": jnp.multiply,
    "/": jnp.divide,
}
# ... and NLFS's (Tables 1–2, :mod:`glojax.expr.ops`); shared names are the same function.
UNARY_OPS.update(ops_lib.NLFS_UNARY)
BINARY_OPS.update(ops_lib.NLFS_BINARY)
# Binary ops spelled as calls, ``max(a, b)``; the rest are infix.
BINARY_FUNCTIONS = ops_lib.BINARY_FUNCTIONS
_AST_BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}


@dataclasses.dataclass(frozen=True)
class Leaf:
  """A variable (``"x"``, ``"y"``, ``"logits"``) or a float constant."""
  value: Union[str, float]

  def __post_init__(self):
    if isinstance(self.value, str) and self.value not in VARIABLES:
      raise ValueError(f"unknown variable {self.value!r}; known: {VARIABLES}")


@dataclasses.dataclass(frozen=True)
class Node:
  """Operator ``op`` applied to ``children`` (1 for unary ops, 2 for binary)."""
  op: str
  children: tuple

  def __post_init__(self):
    if self.op in UNARY_OPS:
      arity = 1
    elif self.op in BINARY_OPS:
      arity = 2
    else:
      raise ValueError(f"unknown operator {self.op!r}; known: "
                       f"{sorted(UNARY_OPS) + sorted(BINARY_OPS)}")
    if len(self.children) != arity:
      raise ValueError(f"operator {self.op!r} takes {arity} argument(s), "
                       f"got {len(self.children)}")


Tree = Union[Leaf, Node]


def parse(text: str, *, allow_logits: bool = True) -> Tree:
  """Parses an expression such as ``"log(y) - x / y"`` into a tree.

  Grammar: numbers, the variables ``x``, ``y`` (and ``logits`` if allowed), the
  unary functions ``log``, ``square``, ``sqrt`` and NLFS's (``exp``, ``log_eps``,
  ``i0e``, ...: :mod:`glojax.expr.ops`), the binary functions ``max``, ``min``,
  ``div_eps``, ``div_hypot``, unary minus, ``+ - * /`` and ``**2`` (read as
  ``square``), with parentheses.

  Args:
    text: the expression.
    allow_logits: whether the ``logits`` variable may appear.

  Returns:
    The tree.

  Raises:
    ValueError: naming the offending part, for any syntax error, unknown name,
      unsupported construct, wrong number of arguments, non-finite constant
      (``1e400``), or nesting deeper than ``MAX_DEPTH``.
  """
  if not isinstance(text, str) or not text.strip():
    raise ValueError(f"empty expression: {text!r}")
  try:
    module = ast.parse(text.strip(), mode="eval")
  except SyntaxError as e:
    raise ValueError(f"cannot parse expression {text!r}: {e.msg}") from None
  except (RecursionError, MemoryError):  # ast's own nesting limits
    raise ValueError(f"cannot parse expression {text!r}: nested too deeply "
                     f"(at most {MAX_DEPTH} levels)") from None
  return _from_ast(module.body, text, allow_logits)


# Deeper trees would overflow Python's recursion in to_string/compile_jnp; GLO trees
# are a few levels deep.
MAX_DEPTH = 100


def _from_ast(node: ast.AST, text: str, allow_logits: bool, depth: int = 0) -> Tree:
  where = ast.get_source_segment(text.strip(), node) or ast.dump(node)
  if depth > MAX_DEPTH:
    raise ValueError(f"in {text!r}: expression nested too deeply (at most {MAX_DEPTH} "
                     "levels)")
  if isinstance(node, ast.Constant):
    if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
      raise ValueError(f"in {text!r}: constant {where!r} is not a number")
    try:
      value = float(node.value)
    except OverflowError:  # an integer literal beyond the float range
      value = float("inf")
    if not math.isfinite(value):
      raise ValueError(f"in {text!r}: constant {where!r} is not finite")
    return Leaf(value)
  if isinstance(node, ast.Name):
    if node.id not in VARIABLES or (node.id == "logits" and not allow_logits):
      allowed = VARIABLES if allow_logits else ("x", "y")
      raise ValueError(f"in {text!r}: unknown variable {node.id!r}; allowed: {allowed}")
    return Leaf(node.id)
  if isinstance(node, ast.UnaryOp):
    operand = _from_ast(node.operand, text, allow_logits, depth + 1)
    if isinstance(node.op, ast.USub):
      if isinstance(operand, Leaf) and isinstance(operand.value, float):
        return Leaf(-operand.value)
      return Node("neg", (operand,))
    if isinstance(node.op, ast.UAdd):
      return operand
    raise ValueError(f"in {text!r}: unsupported unary operator in {where!r}")
  if isinstance(node, ast.BinOp):
    if isinstance(node.op, ast.Pow):
      if isinstance(node.right, ast.Constant) and node.right.value == 2:
        return Node("square", (_from_ast(node.left, text, allow_logits, depth + 1),))
      raise ValueError(f"in {text!r}: only '**2' is supported, got {where!r}")
    op = _AST_BINOPS.get(type(node.op))
    if op is None:
      raise ValueError(f"in {text!r}: unsupported operator in {where!r}")
    return Node(op, (_from_ast(node.left, text, allow_logits, depth + 1),
                     _from_ast(node.right, text, allow_logits, depth + 1)))
  if isinstance(node, ast.Call):
    name = node.func.id if isinstance(node.func, ast.Name) else None
    arity = 2 if name in BINARY_FUNCTIONS else 1
    if name is None or (name not in UNARY_OPS and arity == 1) or name == "neg":
      raise ValueError(f"in {text!r}: unknown function in {where!r}; known: "
                       f"{sorted(k for k in UNARY_OPS if k != 'neg')} and binary "
                       f"{sorted(BINARY_FUNCTIONS)}")
    if node.keywords or len(node.args) != arity:
      raise ValueError(f"in {text!r}: {name}() takes exactly {arity} argument"
                       f"{'s' if arity > 1 else ''}, got {where!r}")
    return Node(name, tuple(_from_ast(a, text, allow_logits, depth + 1)
                            for a in node.args))
  raise ValueError(f"in {text!r}: unsupported construct {where!r}")


def _format_constant(value: float) -> str:
  return repr(int(value)) if float(value).is_integer() and abs(value) < 1e15 else repr(value)


def to_string(tree: Tree) -> str:
  """Prints a tree as an expression that :func:`parse` maps back to the same tree."""
  if isinstance(tree, Leaf):
    if isinstance(tree.value, str):
      return tree.value
    text = _format_constant(tree.value)
    return f"({text})" if tree.value < 0 else text
  if tree.op == "neg":
    return f"-({to_string(tree.children[0])})"
  if tree.op in UNARY_OPS:
    return f"{tree.op}({to_string(tree.children[0])})"
  if tree.op in BINARY_FUNCTIONS:
    return f"{tree.op}({to_string(tree.children[0])}, {to_string(tree.children[1])})"
  left, right = tree.children
  left_s, right_s = to_string(left), to_string(right)
  prec = _PRECEDENCE[tree.op]
  if isinstance(left, Node) and left.op in _PRECEDENCE and _PRECEDENCE[left.op] < prec:
    left_s = f"({left_s})"
  # Right operand: parenthesize equal precedence too (a - (b - c), a / (b * c)).
  if isinstance(right, Node) and right.op in _PRECEDENCE and _PRECEDENCE[right.op] <= prec:
    right_s = f"({right_s})"
  return f"{left_s} {tree.op} {right_s}"


def variables(tree: Tree) -> set[str]:
  """The set of variable names used by ``tree``."""
  if isinstance(tree, Leaf):
    return {tree.value} if isinstance(tree.value, str) else set()
  out: set[str] = set()
  for child in tree.children:
    out |= variables(child)
  return out


def size(tree: Tree) -> int:
  """Number of nodes and leaves in ``tree``."""
  if isinstance(tree, Leaf):
    return 1
  return 1 + sum(size(c) for c in tree.children)


def depth(tree: Tree) -> int:
  """Depth of ``tree`` (a leaf has depth 0)."""
  if isinstance(tree, Leaf):
    return 0
  return 1 + max(depth(c) for c in tree.children)


def evaluate(tree: Tree, x: jax.Array, y: jax.Array, logits: jax.Array | None = None
             ) -> jax.Array:
  """Evaluates ``tree`` elementwise on arrays ``x``, ``y`` (and ``logits``).

  Runs the tree's program (:func:`glojax.expr.program.run_program`), i.e. the same
  arithmetic as every other evaluation of a tree (:mod:`glojax.expr.extended`).

  Args:
    tree: the expression.
    x, y, logits: arrays of one broadcastable shape ``[..., n]``.

  Returns:
    ``f(x, y[, logits])`` with the broadcast shape (at least float32).

  Raises:
    ValueError: if the tree uses ``logits`` and none were given.
  """
  from glojax.expr import program  # program imports this module
  uses_logits = "logits" in variables(tree)
  if uses_logits and logits is None:
    raise ValueError("the expression uses 'logits' but none were given")
  return program.run_program(program.encode_exact(tree), x, y, logits,
                             stack_depth=max(1, program.required_stack(tree)),
                             use_logits=uses_logits, op_set=program.op_set_of(tree))


def compile_jnp(tree: Tree) -> Callable[[jax.Array, jax.Array], jax.Array]:
  r"""Compiles a GLO tree to a loss ``(logits, labels) -> per_example_loss``.

  .. math:: L = -\frac{1}{n} \sum_{i=1}^n f(x_i, y_i[, \tilde y_i]),\quad
            y = \mathrm{softmax}(\tilde y)

  (GLO paper §III; ``docs/glo.md``.) The tree's own program run by
  :func:`glojax.expr.program.program_loss` — the one compilation of a tree that the GLO
  trainer and ``glojax.losses.get("expr:...")`` use too.

  Args:
    tree: the expression ``f``.

  Returns:
    A pure function of ``logits, labels: float[..., n]`` returning ``float[...]``.
  """
  from glojax.expr import program  # program imports this module
  loss = program.tree_loss(tree)
  loss.__name__ = "expr_loss"
  loss.__doc__ = f"GLO expression loss: L = -(1/n) sum_i [{to_string(tree)}]"
  return loss
