"""NLFS's 34 operations: definitions, expr specs, and interpreter = direct compile.

Every op is checked (1) against an independent NumPy/SciPy formula, and (2) inside the
fixed-size program interpreter against the direct jnp compile of the same tree, values
and gradients, at edge inputs: 0, 1, ε, a saturated softmax (probabilities exactly 0
and 1), and large arguments.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special as sp

from glojax import losses
from glojax.expr import ops
from glojax.expr import program as P
from glojax.expr import tree as T

EPS = 1e-7
_sig = lambda v: 1 / (1 + np.exp(-v))
REFERENCE_UNARY = {
    "neg": lambda v: -v, "log_eps": lambda v: np.log(np.abs(v) + EPS),
    "exp": np.exp, "log10_eps": lambda v: np.log10(np.abs(v) + EPS), "sigmoid": _sig,
    "dsigmoid": lambda v: _sig(v) * (1 - _sig(v)), "softsign": lambda v: v / (1 + np.abs(v)),
    "dsoftsign": lambda v: 1 / (1 + np.abs(v)) ** 2, "softplus": lambda v: np.log1p(np.exp(v)),
    "erf": sp.erf, "erfc": sp.erfc, "sin": np.sin, "sinh": np.sinh, "arcsinh": np.arcsinh,
    "tanh": np.tanh, "dtanh": lambda v: 1 / np.cosh(v) ** 2,
    "arctanh": lambda v: np.arctanh(np.clip(v, -0.999, 0.999)),
    "recip_eps": lambda v: 1 / (v + EPS), "abs": np.abs, "square": np.square, "i0": sp.i0,
    "sqrt": lambda v: np.sqrt(np.abs(v)), "i1": sp.i1, "max0": lambda v: np.maximum(v, 0),
    "i1e": sp.i1e, "min0": lambda v: np.minimum(v, 0), "i0e": sp.i0e,
}
REFERENCE_BINARY = {
    "+": np.add, "-": np.subtract, "*": np.multiply, "div_eps": lambda a, b: a / (b + EPS),
    "div_hypot": lambda a, b: a / np.sqrt(1 + b * b), "max": np.maximum, "min": np.minimum,
}


def test_the_op_set_is_tables_1_and_2():
  assert len(ops.NLFS_UNARY) == 27 and len(ops.NLFS_BINARY) == 7
  assert set(REFERENCE_UNARY) == set(ops.NLFS_UNARY)
  assert set(REFERENCE_BINARY) == set(ops.NLFS_BINARY)
  assert ops.EPSILON == losses.zoo.NLFS_EPSILON == 1e-7


@pytest.mark.parametrize("name", sorted(REFERENCE_UNARY))
def test_unary_op_matches_independent_formula(name):
  v = np.array([-2.0, -0.5, -1e-7, 0.0, 1e-7, 0.3, 1.0, 3.0])
  if name == "arctanh":
    v = np.array([-0.9, -0.5, 0.0, 1e-7, 0.5, 0.9])
  if name == "sqrt":
    v = np.abs(v)
  got = np.asarray(ops.NLFS_UNARY[name](jnp.asarray(v, jnp.float32)), np.float64)
  np.testing.assert_allclose(got, REFERENCE_UNARY[name](v), rtol=2e-5, atol=1e-6,
                             err_msg=name)


@pytest.mark.parametrize("name", sorted(REFERENCE_BINARY))
def test_binary_op_matches_independent_formula(name):
  a = np.array([-2.0, 0.0, 0.0, 1e-7, 0.5, 1.0, 3.0])
  b = np.array([1.0, 0.0, -1.0, 1e-7, 0.5, -0.5, 2.0])
  got = np.asarray(ops.NLFS_BINARY[name](jnp.asarray(a, jnp.float32),
                                          jnp.asarray(b, jnp.float32)), np.float64)
  np.testing.assert_allclose(got, REFERENCE_BINARY[name](a, b), rtol=2e-5, atol=1e-6,
                             err_msg=name)


def test_ties_and_kinks_follow_jnp_gradients():
  # max/min give each argument half the gradient at a tie; |v| and max0 as jax does.
  g = jax.grad(lambda v: ops.NLFS_BINARY["max"](v, 1.0))(1.0)
  assert g == 0.5
  assert jax.grad(ops.NLFS_UNARY["max0"])(0.0) == 0.5
  assert jax.grad(ops.NLFS_UNARY["dtanh"])(0.5) == pytest.approx(
      -2 * np.tanh(0.5) / np.cosh(0.5) ** 2, rel=1e-5)


def _edge_batch():
  """Logits/labels whose softmax hits 0, 1, ε-sized and ordinary probabilities."""
  n = 5
  logits = np.zeros((5, n), np.float32)
  logits[1, 0] = 200.0                      # saturated: y = [1, 0, 0, 0, 0] exactly
  logits[2] = [-16.1, 0, 0, 0, 0]           # y[0] ≈ 1e-7 (ε-sized)
  logits[3] = [3.0, -2.0, 0.5, 1.0, -0.3]
  logits[4, 1] = -200.0                     # one probability exactly 0
  labels = np.zeros((5, n), np.float32)
  labels[:, 0] = 1.0
  labels[3] = [0.7, 0.1, 0.1, 0.05, 0.05]   # soft labels
  return jnp.asarray(logits), jnp.asarray(labels)


def _trees(name):
  """Trees applying ``name`` to arguments that take the edge values above."""
  if name in ops.NLFS_UNARY:
    call = lambda a: f"-({a})" if name == "neg" else f"{name}({a})"
    args = ["y", "y - x", "y * 40 - 20", "y - 1e-07"]
    return [call(a) for a in args]
  fmt = (lambda a, b: f"{name}({a}, {b})") if name in ops.BINARY_FUNCTIONS else \
      (lambda a, b: f"({a}) {name} ({b})")
  pairs = [("y", "x"), ("x", "y"), ("y", "y"), ("-1", "y"), ("y - x", "y"),
           ("y * 40 - 20", "y")]
  return [fmt(a, b) for a, b in pairs]


ALL_OPS = sorted(ops.NLFS_UNARY) + sorted(ops.NLFS_BINARY)


def _direct(tree, x, y):
  """The tree in plain jnp float32 (no extended arithmetic): the independent reference."""
  if isinstance(tree, T.Leaf):
    if isinstance(tree.value, str):
      return {"x": x, "y": y}[tree.value]
    return jnp.full_like(x, tree.value)
  args = [_direct(c, x, y) for c in tree.children]
  table = T.UNARY_OPS if len(args) == 1 else T.BINARY_OPS
  return table[tree.op](*args)


def test_every_op_interpreter_matches_direct_compile_values_and_gradients():
  """The traced interpreter (op set "all") against a direct jnp compile of each tree,
  on edge inputs; the static compilation (``losses.get``'s) against the interpreter."""
  logits, labels = _edge_batch()
  texts = [t for name in ALL_OPS for t in _trees(name)]
  trees = [T.parse(t) for t in texts]
  programs = P.encode_population(trees, max_len=16, stack_depth=4)

  def interp(program, lg):
    return P.program_loss(program, lg, labels, stack_depth=4, use_logits=False,
                          op_set="all")

  # Per-example loss and the gradient of its batch sum (rows are independent).
  vg = jax.jit(jax.vmap(lambda pr: (interp(pr, logits),
                                    jax.grad(lambda lg: jnp.sum(interp(pr, lg)))(logits))))
  values, grads = vg(programs)
  y = jax.nn.softmax(logits)

  def reference(t):
    loss = lambda lg: -jnp.mean(_direct(t, labels, jax.nn.softmax(lg)), axis=-1)
    return (loss(logits), jax.grad(lambda lg: jnp.sum(loss(lg)))(logits),
            jax.grad(lambda yy: jnp.sum(_direct(t, labels, yy)))(y))
  refs = jax.jit(lambda: [reference(t) for t in trees])()
  compared = 0
  for i, (text, (v, g, dfdy)) in enumerate(zip(texts, refs)):
    v, g = np.asarray(v), np.asarray(g)
    np.testing.assert_array_equal(np.isfinite(values[i]), np.isfinite(v), err_msg=text)
    np.testing.assert_allclose(values[i], v, rtol=1e-5, atol=1e-6, err_msg=text)
    rows = np.all(np.isfinite(g), axis=-1)          # examples whose reference is finite
    # Through a saturated softmax, g = y ⊙ (∂f/∂y - <∂f/∂y, y>) cancels exactly; float
    # rounding of a huge ∂f/∂y leaves ~1 ulp of it.
    scale = np.max(np.abs(np.where(np.isfinite(dfdy), dfdy, 0.0)), axis=-1, keepdims=True)
    atol = 1e-6 + 1e-6 * scale[rows]
    np.testing.assert_array_less(np.abs(np.asarray(grads[i])[rows] - g[rows]),
                                 atol + 1e-4 * np.abs(g[rows]), err_msg=text)
    compared += int(rows.sum())
  assert compared > 0.9 * len(texts) * logits.shape[0]
  # The static compilation runs the same per-slot operation: equal values and gradients
  # up to float rounding (XLA fuses the two programs differently); one op per cost
  # group and kind of formula keeps the compile small.
  firsts = [texts.index(_trees(name)[1])
            for name in ("exp", "log_eps", "tanh", "softsign", "erfc", "i1e", "div_hypot",
                         "max")]
  static = jax.jit(lambda lg: [
      (P.tree_loss(trees[i])(lg, labels),
       jax.grad(lambda l: jnp.sum(P.tree_loss(trees[i])(l, labels)))(lg))
      for i in firsts])(logits)
  for i, (v, g) in zip(firsts, static):
    np.testing.assert_allclose(np.asarray(v), values[i], rtol=1e-6, atol=1e-8,
                               err_msg=texts[i])
    np.testing.assert_allclose(np.asarray(g), grads[i], rtol=1e-6, atol=1e-7,
                               err_msg=texts[i])


@pytest.mark.parametrize("text", [
    "log_eps(div_hypot(y, div_eps(y, x))) + min(x, div_eps(y, x))",
    "max(i0e(y), x) * dtanh(y) - erfc(y)",
    "-(dsigmoid(y)) + recip_eps(y * x)",
])
def test_specs_with_nlfs_ops_round_trip_and_load(text):
  tree = T.parse(text)
  assert T.parse(T.to_string(tree)) == tree
  loss = losses.get("expr:" + text)
  assert losses.get(loss.spec) == loss
  logits, labels = _edge_batch()
  assert loss(logits, labels).shape == (5,)


@pytest.mark.parametrize("text, match", [
    ("max(y)", "takes exactly 2 arguments"),
    ("i0e(y, x)", "takes exactly 1 argument"),
    ("cosh(y)", "unknown function"),
])
def test_bad_nlfs_calls_raise_clear_errors(text, match):
  with pytest.raises(ValueError, match=match):
    T.parse(text)


def test_unknown_op_set_raises():
  with pytest.raises(ValueError, match="op_set"):
    P.run_program(P.encode(T.parse("y")), 1.0, 0.5, op_set="nope")
