"""Fixed-size programs: a float64 reference, no recompiles, NaN isolation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from glojax.expr import canonical as C
from glojax.expr import program as P
from glojax.expr import tree as T
from glojax.expr import variation as V


def _inputs():
  logits = jax.random.normal(jax.random.PRNGKey(0), (4, 5)) * 2.0
  labels = jax.nn.one_hot(jnp.arange(4), 5) * 0.9 + 0.02   # soft labels: log(x) finite
  return logits, labels


def _mean_loss(program, logits, labels):
  return jnp.mean(P.program_loss(program, logits, labels))


def _reference_loss(tree, logits, labels):
  """float64 IEEE reference: L = -(1/n) Σ f(x, softmax(z), z), independent of glojax's
  interpreter (numpy, softmax of moderate logits: no saturation here)."""
  z = np.asarray(logits, np.float64)
  y = np.exp(z - z.max(-1, keepdims=True))
  y /= y.sum(-1, keepdims=True)
  grid = {"x": np.asarray(labels, np.float64), "y": y, "logits": z}
  with np.errstate(all="ignore"):
    return -np.mean(C._tree_numpy(tree, grid), axis=-1)


def test_values_and_gradients_match_a_float64_reference_on_250_random_trees():
  rng = np.random.default_rng(0)
  prims = V.Primitives.glo(allow_logits=True)
  trees = []
  while len(trees) < 250:
    t = V.random_tree(rng, 4, prims)
    if T.size(t) <= P.DEFAULT_MAX_LEN:
      trees.append(t)
  logits, labels = _inputs()
  programs = P.encode_population(trees)
  value_and_grad = jax.jit(jax.vmap(jax.value_and_grad(_mean_loss, argnums=1),
                                    in_axes=(0, None, None)))
  values, grads = value_and_grad(programs, logits, labels)
  z0, x = np.asarray(logits, np.float64), np.asarray(labels, np.float64)
  checked = 0
  for i, t in enumerate(trees):
    ref = np.mean(_reference_loss(t, z0, x))
    # Central differences in float64 for the gradient of the batch mean.
    h = 1e-6
    grad = np.zeros_like(z0)
    for j in np.ndindex(*z0.shape):
      up, down = z0.copy(), z0.copy()
      up[j] += h
      down[j] -= h
      with np.errstate(all="ignore"):
        grad[j] = (np.mean(_reference_loss(t, up, x)) -
                   np.mean(_reference_loss(t, down, x))) / (2 * h)
    if not (np.isfinite(ref) and np.all(np.isfinite(grad))) or np.abs(ref) > 1e6:
      continue
    checked += 1
    scale = 1.0 + np.abs(grad).max()
    np.testing.assert_allclose(values[i], ref, rtol=1e-5, atol=1e-5, err_msg=T.to_string(t))
    np.testing.assert_allclose(grads[i], grad, rtol=1e-3, atol=1e-4 * scale,
                               err_msg=T.to_string(t))
  assert checked >= 150


def test_changing_trees_does_not_recompile():
  traces = []

  @jax.jit
  def loss(programs, logits, labels):
    traces.append(1)   # runs once per compilation
    return jax.vmap(_mean_loss, in_axes=(0, None, None))(programs, logits, labels)

  logits, labels = _inputs()
  a = P.encode_population([T.parse("log(y) - x / y"), T.parse("x * y")])
  b = P.encode_population([T.parse("sqrt(y) * square(x + 1)"), T.parse("-(x) / y")])
  la, lb = loss(a, logits, labels), loss(b, logits, labels)
  assert len(traces) == 1
  assert loss._cache_size() == 1
  np.testing.assert_allclose(la[1], jnp.mean(-jnp.mean(labels * jax.nn.softmax(logits), -1)),
                             rtol=1e-6)
  assert not np.allclose(la, lb)


@pytest.mark.parametrize("text", ["(y - y) + y", "sqrt(y - y) * 0 + y * x",
                                  "x / y + (y - y)"])
def test_unselected_ops_on_zero_do_not_poison_gradients(text):
  # After "y - y" the stack top is an exact 0 that depends on the logits: an
  # unsanitized log/sqrt/divide of it in the unselected ops gives 0 * inf = nan.
  logits, labels = _inputs()
  tree = T.parse(text)
  got = jax.grad(lambda lg: _mean_loss(P.encode(tree), lg, labels))(logits)
  # All three equal x * y (or x / y) plus an exact 0: their gradient is that of the
  # simple tree.
  simple = T.parse("y * x" if "y * x" in text else ("x / y" if "x / y" in text else "y"))
  ref = jax.grad(lambda lg: _mean_loss(P.encode(simple), lg, labels))(logits)
  # (sqrt(y - y)'s tangent is exactly 0: it stays 0 against sqrt'(0) = inf.)
  np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-8)


def test_nan_tree_does_not_touch_its_neighbours_gradient():
  logits, labels = _inputs()
  labels = jax.nn.one_hot(jnp.arange(4), 5)   # hard labels: log(x) = -inf
  good, bad = T.parse("log(y) - x / y"), T.parse("log(x) * y")
  grad = jax.jit(jax.vmap(jax.grad(_mean_loss, argnums=1), in_axes=(0, None, None)))
  pair = grad(P.encode_population([bad, good]), logits, labels)
  # Same population shape with a harmless neighbour: bit for bit the same (XLA may
  # round differently for another batch size, so that is the comparison).
  control = grad(P.encode_population([T.parse("x * y"), good]), logits, labels)
  assert not np.all(np.isfinite(pair[0]))
  np.testing.assert_array_equal(pair[1], control[1])


def test_encode_decode_roundtrip_and_layout():
  tree = T.parse("log(y) - x / y")
  prog = P.encode(tree, max_len=8)
  assert prog.opcodes.tolist() == [P.Y, P.LOG, P.X, P.Y, P.DIV, P.SUB, P.NOP, P.NOP]
  assert T.to_string(P.decode(prog)) == "log(y) - x / y"
  prog = P.encode(T.parse("2 * x + (-1)"), max_len=6, scales={1: 3.0})
  assert prog.constants.tolist()[:2] == [2.0, 0.0]
  assert T.to_string(P.decode(prog)) == "3 * (2 * x) + (-1)"


def test_stack_depth_bound_holds_for_right_combs():
  tree = T.parse("x + (y + (x + (y + (x + (y + (x + y))))))")
  assert P.required_stack(tree) == 8
  np.testing.assert_allclose(
      P.run_program(P.encode(tree, max_len=T.size(tree)), 1.0, 2.0), 12.0)


def test_errors():
  with pytest.raises(ValueError, match="max_len=3"):
    P.encode(T.parse("x + y * y"), max_len=3)
  with pytest.raises(ValueError, match="empty population"):
    P.encode_population([])
  broken = P.Program(np.array([P.ADD, P.NOP], np.int32), np.zeros(2, np.float32),
                     np.ones(2, np.float32))
  with pytest.raises(ValueError, match="needs two values"):
    P.decode(broken)
