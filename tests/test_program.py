"""Fixed-size programs: agreement with the direct compile, no recompiles, NaN isolation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from glojax.expr import program as P
from glojax.expr import tree as T
from glojax.expr import variation as V


def _inputs():
  logits = jax.random.normal(jax.random.PRNGKey(0), (4, 5)) * 2.0
  labels = jax.nn.one_hot(jnp.arange(4), 5) * 0.9 + 0.02   # soft labels: log(x) finite
  return logits, labels


def _mean_loss(program, logits, labels):
  return jnp.mean(P.program_loss(program, logits, labels))


def test_values_and_gradients_match_direct_compile_on_200_random_trees():
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
  # The references, all in one jit (one compile instead of 250 eager traces).
  refs = jax.jit(lambda lg: [jax.value_and_grad(
      lambda l, t=t: jnp.mean(T.compile_jnp(t)(l, labels)))(lg) for t in trees])(logits)
  checked = 0
  for i, (t, (v, g)) in enumerate(zip(trees, refs)):
    if not (np.isfinite(v) and np.all(np.isfinite(g))):
      continue
    checked += 1
    np.testing.assert_allclose(values[i], v, rtol=1e-5, atol=1e-6, err_msg=T.to_string(t))
    np.testing.assert_allclose(grads[i], g, rtol=1e-4, atol=1e-6, err_msg=T.to_string(t))
  assert checked >= 200


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
  # unsanitized log/sqrt/divide of it in the unselected branches gives 0 * inf = nan.
  logits, labels = _inputs()
  tree = T.parse(text)
  ref = jax.grad(lambda lg: jnp.mean(T.compile_jnp(tree)(lg, labels)))(logits)
  got = jax.grad(lambda lg: _mean_loss(P.encode(tree), lg, labels))(logits)
  if np.all(np.isfinite(ref)):
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-7)
  else:
    assert "sqrt" in text   # sqrt'(0) = inf is the tree's own: NaN like the reference


def test_nan_tree_does_not_touch_its_neighbours_gradient():
  logits, labels = _inputs()
  labels = jax.nn.one_hot(jnp.arange(4), 5)   # hard labels: log(x) = -inf
  good, bad = T.parse("log(y) - x / y"), T.parse("log(x) * y")
  grad = jax.jit(jax.vmap(jax.grad(_mean_loss, argnums=1), in_axes=(0, None, None)))
  pair = grad(P.encode_population([bad, good]), logits, labels)
  alone = grad(P.encode_population([good]), logits, labels)
  assert not np.all(np.isfinite(pair[0]))
  np.testing.assert_array_equal(pair[1], alone[0])


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
