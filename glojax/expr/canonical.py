"""Canonical form of a tree (sympy), the key of GLO's fitness cache; the validity rule.

GLO caches fitness under "a canonicalized version" of each tree so that equivalent
trees train once (GLO paper §III-A; ``docs/glo.md``). Two trees may share a key only
if they are **equal as real functions on the domain where they are evaluated**:
``x ∈ [0, 1]`` (labels), ``y ∈ (0, 1)`` (softmax outputs), ``logits`` real.

sympy alone does not guarantee that: it simplifies over the complex numbers (``sqrt(-y)
* sqrt(-y)`` becomes ``-y``, although on real inputs it is NaN everywhere) and cancels
``x / x`` to 1 (NaN at ``x = 0``). So a key is *verified*: the candidate sympy form
(``sympy.simplify``'s, else sympy's automatic canonical ordering) is evaluated against
the tree itself in float64 on a probe grid of the domain, and accepted only if both
give the same values, the same infinities and the same NaN pattern there. Otherwise —
and whenever sympy raises — the key is the tree's own text (``"tree:..."``): a cache
miss, never a wrong hit. Accepted forms still merge what the paper's cache merges:
``x*y`` / ``y*x``, ``log(y) - x/y`` / ``-(x/y) + log(y)``, ``y*y`` / ``square(y)``,
``x*y/y`` / ``x``.

:func:`trainability_error` is the one validity rule for a tree used as a loss: it must
depend on the labels ``x`` and on a prediction (``y`` or ``logits``), read semantically
(``x * x + y - y`` does not depend on ``y``: its gradient is always zero). GLO's
evaluator and ``glojax.losses.get("expr:...")`` both apply it.
"""

from __future__ import annotations

import functools
from typing import Optional

import numpy as np
import sympy

from glojax.expr import ops as ops_lib
from glojax.expr.tree import Leaf, Tree, parse, size, to_string, variables

X = sympy.Symbol("x", nonnegative=True)
Y = sympy.Symbol("y", positive=True)
LOGITS = sympy.Symbol("logits", real=True)
_SYMBOLS = {"x": X, "y": Y, "logits": LOGITS}
SIMPLIFY_MAX_SIZE = 25
STRUCTURAL_PREFIX = "tree:"

# The probe grid: the evaluation domain's edges (x = 0 and 1, y near 0 and 1) and
# interior points that are not special (no accidental identities at 0.5, 1, 2);
# y also takes x's values (x == y is where x - y vanishes) and 1, which float32 softmax
# reaches at saturation.
_PROBE_X = np.array([0.0, 1.0, 0.03, 0.37, 0.71])
_PROBE_Y = np.array([1e-30, 1e-9, 0.0013, 0.03, 0.071, 0.29, 0.37, 0.53, 0.71, 0.83,
                     0.999, 1 - 1e-12, 1.0])
_PROBE_LOGITS = np.array([-61.0, -3.3, -0.41, 0.0, 0.77, 2.9, 47.0])


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
  if len(args) == 1:
    return _nlfs_sympy(op, args[0], None)
  a, b = args
  if op == "+":
    return a + b
  if op == "-":
    return a - b
  if op == "*":
    return a * b
  if op == "/":
    return a / b
  return _nlfs_sympy(op, a, b)


_EPS = sympy.Float(ops_lib.EPSILON)
# NLFS's ops (glojax.expr.ops) that sympy knows; the Bessel ops get no sympy form (the
# tree's own text is then its key).
_SYMPY_UNARY = {
    "exp": sympy.exp, "abs": sympy.Abs, "sin": sympy.sin, "sinh": sympy.sinh,
    "tanh": sympy.tanh, "arcsinh": sympy.asinh, "arctanh": sympy.atanh, "erf": sympy.erf,
    "erfc": sympy.erfc,
    "log_eps": lambda v: sympy.log(sympy.Abs(v) + _EPS),
    "log10_eps": lambda v: sympy.log(sympy.Abs(v) + _EPS, 10),
    "sigmoid": lambda v: 1 / (1 + sympy.exp(-v)),
    "dsigmoid": lambda v: sympy.exp(-v) / (1 + sympy.exp(-v)) ** 2,
    "softsign": lambda v: v / (1 + sympy.Abs(v)),
    "dsoftsign": lambda v: 1 / (1 + sympy.Abs(v)) ** 2,
    "softplus": lambda v: sympy.log(1 + sympy.exp(v)),
    "dtanh": lambda v: 1 - sympy.tanh(v) ** 2,
    "recip_eps": lambda v: 1 / (v + _EPS),
    "max0": lambda v: sympy.Max(v, 0), "min0": lambda v: sympy.Min(v, 0),
}
_SYMPY_BINARY = {
    "div_eps": lambda a, b: a / (b + _EPS),
    "div_hypot": lambda a, b: a / sympy.sqrt(1 + b ** 2),
    "max": sympy.Max, "min": sympy.Min,
}


def _nlfs_sympy(op, a, b):
  if b is None and op in _SYMPY_UNARY:
    return _SYMPY_UNARY[op](a)
  if b is not None and op in _SYMPY_BINARY:
    return _SYMPY_BINARY[op](a, b)
  raise ValueError(f"operator {op!r} has no sympy form")


def _grid(names) -> dict[str, np.ndarray]:
  axes = [_PROBE_X, _PROBE_Y] + ([_PROBE_LOGITS] if "logits" in names else [])
  mesh = np.meshgrid(*axes, indexing="ij")
  grid = {"x": mesh[0].ravel(), "y": mesh[1].ravel()}
  grid["logits"] = mesh[2].ravel() if "logits" in names else np.zeros_like(grid["x"])
  return grid


_NUMPY_UNARY = {**ops_lib.NUMPY_UNARY, "log": np.log, "sqrt": np.sqrt, "square": np.square,
                "neg": np.negative}
_NUMPY_BINARY = {**ops_lib.NUMPY_BINARY, "+": np.add, "-": np.subtract, "*": np.multiply,
                 "/": np.divide}


def _tree_numpy(tree: Tree, grid: dict) -> np.ndarray:
  """The tree as a real function in float64 IEEE arithmetic (NaN off its domain)."""
  if isinstance(tree, Leaf):
    if isinstance(tree.value, str):
      return grid[tree.value]
    return np.full_like(grid["x"], float(tree.value))
  args = [_tree_numpy(c, grid) for c in tree.children]
  if tree.op in _NUMPY_UNARY:
    return _NUMPY_UNARY[tree.op](*args)
  return _NUMPY_BINARY[tree.op](*args)


def _sympy_numpy(expr: sympy.Expr, grid: dict) -> np.ndarray:
  """``expr`` on the grid in float64; complex results count as NaN (not real)."""
  fn = sympy.lambdify([X, Y, LOGITS], expr, modules="numpy")
  out = np.asarray(fn(grid["x"], grid["y"], grid["logits"]))
  if np.iscomplexobj(out):
    out = np.where(np.imag(out) == 0, np.real(out), np.nan)
  return np.broadcast_to(out.astype(np.float64), grid["x"].shape)


def same_real_function(a: np.ndarray, b: np.ndarray, rtol: float = 1e-9) -> bool:
  """Whether two probe evaluations agree: NaN where NaN, ``±inf`` where ``±inf``
  (same sign), finite values within ``rtol`` (relative to ``1 + |a| + |b|``)."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  if not np.array_equal(np.isnan(a), np.isnan(b)):
    return False
  if not np.array_equal(np.isposinf(a), np.isposinf(b)) or \
      not np.array_equal(np.isneginf(a), np.isneginf(b)):
    return False
  ok = np.isfinite(a)
  scale = 1.0 + np.abs(a[ok]) + np.abs(b[ok])
  return bool(np.all(np.abs(a[ok] - b[ok]) <= rtol * scale))


def probe(tree: Tree) -> np.ndarray:
  """``tree`` on the probe grid of the evaluation domain (float64; the grid covers
  ``logits`` too if the tree uses them)."""
  with np.errstate(all="ignore"):
    return _tree_numpy(tree, _grid(variables(tree)))


@functools.lru_cache(maxsize=100_000)
def _canonical_text(text: str, simplify: bool) -> tuple[str, frozenset]:
  # Keyed by the printed tree (trees print and parse back exactly): memoized per text.
  tree = parse(text)
  names = variables(tree)
  with np.errstate(all="ignore"):
    reference = _tree_numpy(tree, _grid(names))
    candidates = []
    try:
      expr = to_sympy(tree)
      if simplify:
        candidates.append(lambda: sympy.simplify(expr))
      candidates.append(lambda: expr)
      for make in candidates:
        try:
          form = make()
          free = {str(s) for s in form.free_symbols}
          if not free <= names:   # sympy never adds variables; be safe anyway
            continue
          if same_real_function(reference, _sympy_numpy(form, _grid(names))):
            return sympy.srepr(form), frozenset(free)
        except Exception:  # noqa: BLE001 — any sympy failure: try the next form
          continue
    except Exception:  # noqa: BLE001 — to_sympy itself failed: structural key
      pass
  return STRUCTURAL_PREFIX + text, frozenset(names)


def canonical(tree: Tree, simplify_max_size: int = SIMPLIFY_MAX_SIZE) -> str:
  """The cache key of ``tree`` (never raises).

  Args:
    tree: the expression.
    simplify_max_size: trees with more nodes skip ``sympy.simplify`` (only sympy's
      automatic canonical ordering applies), bounding the cost per tree.

  Returns:
    ``sympy.srepr`` of a sympy form verified equal to the tree on the probe grid
    (module docstring), or ``"tree:" + to_string(tree)``. Equal keys mean equal real
    functions on the domain (to the probe grid's resolution, in float64).
  """
  return _canonical_text(to_string(tree), size(tree) <= simplify_max_size)[0]


def canonical_variables(tree: Tree, simplify_max_size: int = SIMPLIFY_MAX_SIZE
                        ) -> frozenset:
  """Variables the canonical form still depends on (``x - x + y`` → ``{"y"}``)."""
  return _canonical_text(to_string(tree), size(tree) <= simplify_max_size)[1]


def trainability_error(tree: Tree, simplify_max_size: int = SIMPLIFY_MAX_SIZE
                       ) -> Optional[str]:
  """Why ``tree`` cannot be a loss, or ``None`` if it can (module docstring).

  The rule: the tree's canonical form must depend on ``x`` (a loss that ignores the
  labels cannot fit them) and on ``y`` or ``logits`` (else its gradient w.r.t. the
  network is zero). The GLO evaluator gives such trees fitness 0 without training;
  ``glojax.losses.get`` rejects them.

  Args:
    tree: the expression.
    simplify_max_size: as for :func:`canonical`.

  Returns:
    ``None`` or a one-line reason naming what the tree does not depend on.
  """
  used = canonical_variables(tree, simplify_max_size)
  if "x" not in used:
    return (f"{to_string(tree)!r} does not depend on the labels x, so it cannot "
            "train a model")
  if not used & {"y", "logits"}:
    return (f"{to_string(tree)!r} does not depend on y or logits (its gradient is "
            "always zero), so it cannot train a model")
  return None
