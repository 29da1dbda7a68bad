"""Canonical form of a tree (sympy), the key of GLO's fitness cache.

GLO caches fitness under "a canonicalized version" of each tree so that equivalent
trees train once (GLO paper §III-A; SPEC §4). We map a tree to a sympy expression over
``x`` (labels, nonnegative), ``y`` (softmax outputs, positive) and ``logits`` (real),
simplify it, and use ``sympy.srepr`` of the result as the key. sympy orders the terms
of sums and products canonically, so ``x*y`` and ``y*x``, or ``log(y) - x/y`` and
``-(x/y) + log(y)``, share one key; ``sympy.simplify`` (skipped above
``simplify_max_size`` nodes, where it gets slow) catches more, e.g. ``y*y`` and
``square(y)``. Equality is as real functions on the stated domains: two trees may
share a key although one is undefined at points where the other is not (``x*y/y``
and ``x``); the paper's cache makes the same identification.
"""

from __future__ import annotations

import functools

import sympy

from glojax.expr.tree import Leaf, Tree, parse, size, to_string

X = sympy.Symbol("x", nonnegative=True)
Y = sympy.Symbol("y", positive=True)
LOGITS = sympy.Symbol("logits", real=True)
_SYMBOLS = {"x": X, "y": Y, "logits": LOGITS}
SIMPLIFY_MAX_SIZE = 25


def to_sympy(tree: Tree) -> sympy.Expr:
  """The sympy expression of ``tree`` (integers stay exact, other constants Float)."""
  if isinstance(tree, Leaf):
    if isinstance(tree.value, str):
      return _SYMBOLS[tree.value]
    v = float(tree.value)
    return sympy.Integer(int(v)) if v.is_integer() else sympy.Float(v)
  args = [to_sympy(c) for c in tree.children]
  op = tree.op
  if op == "log":
    return sympy.log(args[0])
  if op == "sqrt":
    return sympy.sqrt(args[0])
  if op == "square":
    return args[0] ** 2
  if op == "neg":
    return -args[0]
  a, b = args
  if op == "+":
    return a + b
  if op == "-":
    return a - b
  if op == "*":
    return a * b
  if op == "/":
    return a / b
  raise ValueError(f"unknown operator {op!r}")


@functools.lru_cache(maxsize=100_000)
def _canonical_text(text: str, simplify: bool) -> tuple[str, frozenset]:
  # Keyed by the printed tree (trees print and parse back exactly): memoized per text.
  expr = to_sympy(parse(text))
  if simplify:
    expr = sympy.simplify(expr)
  return sympy.srepr(expr), frozenset(str(s) for s in expr.free_symbols)


def canonical(tree: Tree, simplify_max_size: int = SIMPLIFY_MAX_SIZE) -> str:
  """The cache key of ``tree``: ``srepr`` of its (simplified) sympy form.

  Args:
    tree: the expression.
    simplify_max_size: trees with more nodes skip ``sympy.simplify`` (only sympy's
      automatic canonical ordering applies), bounding the cost per tree.

  Returns:
    A string; equal strings mean equal functions (module docstring).
  """
  return _canonical_text(to_string(tree), size(tree) <= simplify_max_size)[0]


def canonical_variables(tree: Tree, simplify_max_size: int = SIMPLIFY_MAX_SIZE
                        ) -> frozenset:
  """Variables the canonical form still depends on (``x - x + y`` → ``{"y"}``)."""
  return _canonical_text(to_string(tree), size(tree) <= simplify_max_size)[1]
