"""GLO's genetic operators on trees: random trees, subtree crossover, mutations.

All functions take a NumPy ``np.random.Generator`` and return new (immutable) trees.
The primitive set, weights and rates are the GLO paper's (§III-A; ``docs/glo.md``):

* elements ``log, square, sqrt, +, -, *, /`` and leaves ``x, y, 1, -1`` (``logits``
  optional), drawn with weights log/x/y = 3, sqrt = 2, everything else 1. The paper
  does not state the weight of ``square``; we use 1.
* crossover: a uniformly random node in each parent, the two subtrees swapped, both
  children kept; applied to a pair with probability 0.8.
* mutations, bottom-up (children before their parent), at most one per node:
  integer constant ±1 (5 %), replacement by a different weighted-random element of the
  same arity (5 %), an operator node with its subtree replaced by a random leaf
  (2.5 %), a leaf replaced by a random operator with random leaf children (2.5 %).

Where the paper is silent we chose (and test): replacements never draw the element they
replace (so every mutation that fires changes the tree), a node undergoes at most one
mutation per pass (the rates are then exact, mutually exclusive probabilities), and
"same arity" includes leaves (a leaf may become another leaf).
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

import numpy as np

from glojax.expr.tree import BINARY_OPS, GLO_BINARY, GLO_UNARY, UNARY_OPS, Leaf, Node, Tree

# GLO paper §III-A: log, x, y three times, sqrt two times as likely as + * - / 1 -1.
# square is not stated there: weight 1 (docs/glo.md).
DEFAULT_WEIGHTS: Mapping[str, float] = {
    "log": 3.0, "sqrt": 2.0, "square": 1.0,
    "+": 1.0, "-": 1.0, "*": 1.0, "/": 1.0,
    "x": 3.0, "y": 3.0, "1": 1.0, "-1": 1.0,
}
LOGITS_WEIGHT = 1.0


@dataclasses.dataclass(frozen=True)
class MutationRates:
  """Per-node mutation probabilities (GLO paper §III-A).

  Attributes:
    integer: an integer constant leaf is incremented or decremented (equal odds).
    swap: a node is replaced by a different element of the same arity.
    shrink: an operator node and its subtree are replaced by a random leaf.
    grow: a leaf is replaced by a random operator with random leaf children.
  """
  integer: float = 0.05
  swap: float = 0.05
  shrink: float = 0.025
  grow: float = 0.025

  def __post_init__(self):
    for name in ("integer", "swap", "shrink", "grow"):
      value = getattr(self, name)
      if not 0.0 <= value <= 1.0:
        raise ValueError(f"MutationRates.{name} must be in [0, 1], got {value!r}")
    if self.integer + self.swap + self.grow > 1.0 or self.swap + self.shrink > 1.0:
      raise ValueError(f"mutation rates of one node sum to more than 1: {self}")


@dataclasses.dataclass(frozen=True)
class Primitives:
  """The weighted primitive set trees are built from.

  Attributes:
    weights: weight of each element: unary ops, binary ops, leaves ``"x"``, ``"y"``,
      ``"logits"`` and constants written as strings (``"1"``, ``"-1"``).
  """
  weights: Mapping[str, float] = dataclasses.field(
      default_factory=lambda: dict(DEFAULT_WEIGHTS))

  def __post_init__(self):
    for name, w in self.weights.items():
      # GLO's operators only: its programs run with the interpreter's "glo" op set.
      if name in GLO_UNARY or name in GLO_BINARY or name in ("x", "y", "logits"):
        pass
      else:
        try:
          float(name)
        except ValueError:
          raise ValueError(f"unknown primitive {name!r} in weights") from None
      if not w > 0:
        raise ValueError(f"weight of {name!r} must be > 0, got {w!r}")
    if not self.leaves:
      raise ValueError("the primitive set has no leaves")

  @classmethod
  def glo(cls, allow_logits: bool = False) -> "Primitives":
    """The GLO primitive set; ``allow_logits`` adds the ``logits`` leaf (weight 1)."""
    weights = dict(DEFAULT_WEIGHTS)
    if allow_logits:
      weights["logits"] = LOGITS_WEIGHT
    return cls(weights)

  @property
  def unary(self) -> list[str]:
    return [k for k in self.weights if k in UNARY_OPS]

  @property
  def binary(self) -> list[str]:
    return [k for k in self.weights if k in BINARY_OPS]

  @property
  def leaves(self) -> list[str]:
    return [k for k in self.weights if k not in UNARY_OPS and k not in BINARY_OPS]

  def draw(self, rng: np.random.Generator, names: list[str],
           exclude: str | None = None) -> str:
    """Weighted draw among ``names`` (minus ``exclude``)."""
    names = [n for n in names if n != exclude]
    if not names:
      raise ValueError(f"nothing to draw from after excluding {exclude!r}")
    w = np.array([self.weights[n] for n in names], np.float64)
    return names[int(rng.choice(len(names), p=w / w.sum()))]

  def make_leaf(self, name: str) -> Leaf:
    return Leaf(name) if name in ("x", "y", "logits") else Leaf(float(name))

  def random_leaf(self, rng: np.random.Generator, exclude: str | None = None) -> Leaf:
    return self.make_leaf(self.draw(rng, self.leaves, exclude))


def _symbol(tree: Tree) -> str:
  """The primitive name of a tree's root (constants as their integer text)."""
  if isinstance(tree, Node):
    return tree.op
  if isinstance(tree.value, str):
    return tree.value
  v = float(tree.value)
  return str(int(v)) if v.is_integer() else repr(v)


def random_tree(rng: np.random.Generator, max_depth: int = 2,
                primitives: Primitives | None = None) -> Tree:
  """A random tree of depth ≤ ``max_depth`` (GLO's initial population, §III-A).

  Recursively from the root, each element is drawn from all primitives (operators and
  leaves) by weight; at depth ``max_depth`` only leaves are drawn.

  Args:
    rng: NumPy random generator.
    max_depth: maximum depth (a leaf has depth 0); GLO uses 2.
    primitives: the weighted primitive set (default :meth:`Primitives.glo`).

  Raises:
    ValueError: for a negative ``max_depth``.
  """
  if max_depth < 0:
    raise ValueError(f"max_depth must be >= 0, got {max_depth}")
  prims = primitives or Primitives.glo()

  def grow(depth: int) -> Tree:
    names = prims.leaves if depth >= max_depth else list(prims.weights)
    name = prims.draw(rng, names)
    if name in UNARY_OPS:
      return Node(name, (grow(depth + 1),))
    if name in BINARY_OPS:
      return Node(name, (grow(depth + 1), grow(depth + 1)))
    return prims.make_leaf(name)

  return grow(0)


def paths(tree: Tree) -> list[tuple[int, ...]]:
  """Paths (child-index tuples) of every node of ``tree`` in preorder; root is ``()``."""
  out: list[tuple[int, ...]] = []

  def visit(t: Tree, path: tuple[int, ...]):
    out.append(path)
    if isinstance(t, Node):
      for i, c in enumerate(t.children):
        visit(c, path + (i,))

  visit(tree, ())
  return out


def subtree(tree: Tree, path: tuple[int, ...]) -> Tree:
  """The subtree of ``tree`` at ``path``.

  Raises:
    ValueError: if ``path`` does not exist in ``tree``.
  """
  t = tree
  for i in path:
    if not isinstance(t, Node) or not 0 <= i < len(t.children):
      raise ValueError(f"path {path} does not exist in the tree")
    t = t.children[i]
  return t


def replace(tree: Tree, path: tuple[int, ...], new: Tree) -> Tree:
  """A copy of ``tree`` with the subtree at ``path`` replaced by ``new``."""
  if not path:
    return new
  if not isinstance(tree, Node) or not 0 <= path[0] < len(tree.children):
    raise ValueError(f"path {path} does not exist in the tree")
  children = list(tree.children)
  children[path[0]] = replace(children[path[0]], path[1:], new)
  return Node(tree.op, tuple(children))


def crossover(rng: np.random.Generator, parent_a: Tree, parent_b: Tree,
              probability: float = 0.8) -> tuple[Tree, Tree, bool]:
  """Subtree-swap crossover (GLO paper §III-A).

  With probability ``probability`` a uniformly random node is chosen in each parent
  (the root included) and the two subtrees are swapped; otherwise the parents are
  returned unchanged.

  Returns:
    ``(child_a, child_b, crossed)``; both children go to the next generation.

  Raises:
    ValueError: for a probability outside [0, 1].
  """
  if not 0.0 <= probability <= 1.0:
    raise ValueError(f"crossover probability must be in [0, 1], got {probability!r}")
  if rng.random() >= probability:
    return parent_a, parent_b, False
  pa = paths(parent_a)
  pb = paths(parent_b)
  path_a = pa[int(rng.integers(len(pa)))]
  path_b = pb[int(rng.integers(len(pb)))]
  sub_a, sub_b = subtree(parent_a, path_a), subtree(parent_b, path_b)
  return replace(parent_a, path_a, sub_b), replace(parent_b, path_b, sub_a), True


MUTATIONS = ("integer", "swap", "shrink", "grow")


def mutate(rng: np.random.Generator, tree: Tree, rates: MutationRates | None = None,
           primitives: Primitives | None = None) -> tuple[Tree, dict[str, int]]:
  """Applies GLO's four mutations bottom-up (GLO paper §III-A; module docstring).

  Each node is visited after its children; one uniform draw per node decides which (at
  most one) mutation applies:

  * integer constant leaf: ``integer`` → ±1; else ``swap`` → a different leaf;
    else ``grow`` → a random operator with random leaf children;
  * other leaf: ``swap`` or ``grow`` as above;
  * operator node: ``swap`` → a different operator of the same arity (children kept);
    else ``shrink`` → a random leaf replacing the node and its subtree.

  Subtrees created by a mutation are not visited again.

  Args:
    rng: NumPy random generator.
    tree: the tree to mutate.
    rates: :class:`MutationRates` (default: the paper's 5 / 5 / 2.5 / 2.5 %).
    primitives: weighted primitive set (default :meth:`Primitives.glo`).

  Returns:
    ``(mutated_tree, counts)`` with ``counts[name]`` the number of times each of
    :data:`MUTATIONS` fired, and ``counts["eligible_<name>"]`` the nodes it could
    have fired on.
  """
  rates = rates or MutationRates()
  prims = primitives or Primitives.glo()
  counts = {name: 0 for name in MUTATIONS}
  counts.update({f"eligible_{name}": 0 for name in MUTATIONS})

  def fire(name: str):
    counts[name] += 1

  def visit(t: Tree) -> Tree:
    u = rng.random()
    if isinstance(t, Leaf):
      is_int = not isinstance(t.value, str) and float(t.value).is_integer()
      p_int = rates.integer if is_int else 0.0
      if is_int:
        counts["eligible_integer"] += 1
      counts["eligible_swap"] += 1
      counts["eligible_grow"] += 1
      if u < p_int:
        fire("integer")
        return Leaf(float(t.value) + (1.0 if rng.random() < 0.5 else -1.0))
      if u < p_int + rates.swap:
        fire("swap")
        return prims.random_leaf(rng, exclude=_symbol(t))
      if u < p_int + rates.swap + rates.grow:
        fire("grow")
        op = prims.draw(rng, prims.unary + prims.binary)
        arity = 1 if op in UNARY_OPS else 2
        return Node(op, tuple(prims.random_leaf(rng) for _ in range(arity)))
      return t
    children = tuple(visit(c) for c in t.children)
    counts["eligible_swap"] += 1
    counts["eligible_shrink"] += 1
    if u < rates.swap:
      fire("swap")
      same = prims.unary if len(children) == 1 else prims.binary
      return Node(prims.draw(rng, same, exclude=t.op), children)
    if u < rates.swap + rates.shrink:
      fire("shrink")
      return prims.random_leaf(rng)
    return Node(t.op, children)

  return visit(tree), counts
