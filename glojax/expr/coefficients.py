"""Coefficients of a GLO tree: one per node, absorbable ones pruned (GLO paper §III-B).

After the genetic search GLO tunes a coefficient vector with CMA-ES: every node's
output is multiplied by a coefficient (all ones reproduce the tree), and coefficients
that others can absorb are pruned, e.g. ``3 (5x + 2y) = 15x + 6y``. Coefficients are
addressed by the node's preorder index (root 0), the numbering of
:func:`glojax.expr.program.encode`'s ``scales`` and of
:func:`glojax.expr.variation.paths`.

Pruning rules (multiplicative absorption only), applied bottom-up; a subtree's scale
either sits in one "top" coefficient or is spread over several (a sum):

* leaf (variable or constant): keeps its coefficient, which is its top;
* ``log``, ``sqrt``: keep their own (the argument's scale is not absorbable);
* ``square``: keeps its own and absorbs the argument's top (``c (a u)^2 = (c a^2) u^2``);
* ``neg``, ``+``, ``-``: drop their own; the children carry the scale;
* ``*``, ``/``: one scale for the whole product: if a factor's scale is spread, the
  node's own and the other factor's top are dropped; otherwise the node keeps its own
  and both factors' tops are dropped (``c (a u) / (b v) = (c a / b) u / v``).

Additive absorption (``log(c u) = log c + log u`` next to a constant) is not pruned.
With these rules Baikal ``log(y) - x/y`` keeps 3 coefficients, ``c1 log(c2 y) - c3 x/y``;
the paper's BaikalCMA prints 6 (its eq. 2), a parameterization of the same family.
"""

from __future__ import annotations

import numpy as np

from glojax.expr.tree import Leaf, Node, Tree


def coefficient_indices(tree: Tree, prune: bool = True) -> list[int]:
  """Preorder indices of the nodes that carry a tunable coefficient.

  Args:
    tree: the expression.
    prune: drop absorbable coefficients (module docstring); ``False`` keeps one per
      node, as in the paper's BaikalCMA.

  Returns:
    Sorted preorder indices (root 0).
  """
  counter = [0]
  kept: set[int] = set()

  def visit(t: Tree):
    """Returns the index of the subtree's top coefficient, or None if spread."""
    index = counter[0]
    counter[0] += 1
    if isinstance(t, Leaf):
      kept.add(index)
      return index
    tops = [visit(c) for c in t.children]
    if not prune:
      kept.add(index)
      return index
    op = t.op
    if op in ("log", "sqrt"):
      kept.add(index)
      return index
    if op == "square":
      if tops[0] is not None:
        kept.discard(tops[0])
      kept.add(index)
      return index
    if op == "neg":
      return tops[0]
    if op in ("+", "-"):
      return None
    # "*" and "/": one scale for the product.
    if any(top is None for top in tops):
      for top in tops:
        if top is not None:
          kept.discard(top)
      return None
    for top in tops:
      kept.discard(top)
    kept.add(index)
    return index

  visit(tree)
  return sorted(kept)


def scales_dict(indices, values) -> dict[int, float]:
  """``{index: value}`` for :func:`glojax.expr.program.encode` (shapes must match).

  Raises:
    ValueError: if ``values`` does not have one entry per index.
  """
  values = np.asarray(values, np.float64).reshape(-1)
  indices = list(indices)
  if values.shape[0] != len(indices):
    raise ValueError(f"got {values.shape[0]} coefficients for {len(indices)} slots")
  return {int(i): float(v) for i, v in zip(indices, values)}


def with_coefficients(tree: Tree, scales: dict[int, float]) -> Tree:
  """The tree with coefficients written out: constant leaves scaled, other nodes
  wrapped in ``c * (...)`` (coefficient 1 is left out). The result is a plain tree,
  printable as an ``expr:`` spec, and agrees with the scaled program.
  """
  counter = [0]

  def visit(t: Tree) -> Tree:
    index = counter[0]
    counter[0] += 1
    c = float(scales.get(index, 1.0))
    if isinstance(t, Leaf):
      if not isinstance(t.value, str):
        return Leaf(float(t.value) * c)
      out: Tree = t
    else:
      out = Node(t.op, tuple(visit(child) for child in t.children))
    return out if c == 1.0 else Node("*", (Leaf(c), out))

  return visit(tree)
