"""One compilation of a tree: GLO's interpreter, ``losses.get("expr:...")`` and a loss
reloaded from ``best_loss.txt`` compute the same thing, at saturation too; one validity
rule for GLO and the registry."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from glojax import losses
from glojax.expr import canonical as C
from glojax.expr import coefficients as K
from glojax.expr import program as P
from glojax.expr import tree as T
from glojax.expr import variation as V

INF = np.inf
# Extreme rows (4 classes): spread 0 … 2000, masked and certain classes.
LOGITS = jnp.asarray([[0.0, 0.0, 0.0, 0.0], [3.0, -1.0, 0.5, -2.0],
                      [0.0, -88.0, -20.0, -5.0], [0.0, -2000.0, -1000.0, -500.0],
                      [2000.0, 0.0, -5.0, 10.0], [0.0, -INF, 1.0, -2.0],
                      [INF, 0.0, -1.0, -INF], [-INF, -INF, -INF, -INF]])
LABELS = jnp.asarray([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.7, 0.1, 0.1, 0.1],
                      [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0],
                      [0.0, 1.0, 0.0, 0.0], [0.25, 0.25, 0.25, 0.25]])


def _same(got, want, what):
  """Same NaN and ±inf pattern; finite values equal up to float32 reduction order (the
  log_softmax VJP sums over classes; XLA may order that sum differently in a vmapped
  program, and a sum that cancels keeps the terms' absolute rounding)."""
  got, want = np.asarray(got), np.asarray(want)
  np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=f"NaN {what}")
  np.testing.assert_array_equal(np.isposinf(got), np.isposinf(want), err_msg=f"+inf {what}")
  np.testing.assert_array_equal(np.isneginf(got), np.isneginf(want), err_msg=f"-inf {what}")
  ok = np.isfinite(want)
  scale = 1.0 + np.abs(want[ok]).max(initial=0.0)
  np.testing.assert_allclose(got[ok], want[ok], rtol=1e-6, atol=1e-6 * scale, err_msg=what)


def _evaluate(loss):
  """Per-example values and the gradient of their finite part's sum (jit)."""
  def total(z):
    v = loss(z, LABELS)
    return jnp.sum(jnp.where(jnp.isfinite(v), v, 0.0))
  return jax.jit(lambda z: loss(z, LABELS))(LOGITS), jax.jit(jax.grad(total))(LOGITS)


def test_interpreter_and_registry_agree_on_random_trees_at_extreme_inputs():
  rng = np.random.default_rng(3)
  prims = V.Primitives.glo(allow_logits=True)
  trees = []
  while len(trees) < 16:
    t = V.random_tree(rng, 3, prims)
    if T.size(t) <= 16 and C.trainability_error(t) is None:
      trees.append(t)
  trees += [T.parse(t) for t in ("log(y) - x / y", "x * log(y)", "y * log(y) - x",
                                 "x / y + logits * x")]
  programs = P.encode_population(trees, max_len=16, stack_depth=8)
  per_class = lambda p, z: P.program_loss(p, z, LABELS, stack_depth=8)
  values = jax.jit(jax.vmap(per_class, in_axes=(0, None)))(programs, LOGITS)
  total = lambda p, z: jnp.sum(jnp.where(jnp.isfinite(per_class(p, z)), per_class(p, z),
                                         0.0))
  grads = jax.jit(jax.vmap(jax.grad(total, argnums=1), in_axes=(0, None)))(programs, LOGITS)
  # The registry's losses, all in one jit (one compile).
  registry = [losses.get("expr:" + T.to_string(t)) for t in trees]
  finite_sum = lambda loss, z: jnp.sum(jnp.where(jnp.isfinite(loss(z, LABELS)),
                                                 loss(z, LABELS), 0.0))
  refs = jax.jit(lambda z: [(loss(z, LABELS), jax.grad(functools.partial(finite_sum, loss))(z))
                            for loss in registry])(LOGITS)
  checked_nan = 0
  for i, (t, (want, want_grad)) in enumerate(zip(trees, refs)):
    _same(values[i], want, f"values of {T.to_string(t)}")
    _same(grads[i], want_grad, f"gradients of {T.to_string(t)}")
    checked_nan += int(np.isnan(np.asarray(want)).any())
  assert checked_nan >= 1   # some random trees are undefined somewhere: same NaNs


def test_reloaded_best_loss_behaves_like_the_searched_program():
  # GLO trains (tree, coefficients) as a scaled program and writes the tree with the
  # coefficients spelled out to best_loss.txt; loading that spec must give the same.
  tree = T.parse("log(2 * y) - x / (y + 0.5)")
  indices = K.coefficient_indices(tree)
  scales = K.scales_dict(indices, np.linspace(0.7, 1.9, len(indices)))
  spec = "expr:" + T.to_string(K.with_coefficients(tree, scales))
  searched = functools.partial(P.program_loss, P.encode(tree, scales=scales),
                               use_logits=False)
  reloaded = losses.get(spec)
  value_a, grad_a = _evaluate(searched)
  value_b, grad_b = _evaluate(reloaded)
  _same(value_b, value_a, "values")
  _same(grad_b, grad_a, "gradients")
  assert np.isinf(np.asarray(value_a)).any()   # the masked rows: log y → -inf


@pytest.mark.parametrize("text, missing", [("x * x + y - y", "y or logits"),
                                           ("x - x + log(y)", "labels x"),
                                           ("x * y / y", "y or logits"),
                                           ("log(y)", "labels x")])
def test_one_validity_rule_for_the_registry_and_glo(text, missing):
  tree = T.parse(text)
  reason = C.trainability_error(tree)
  assert reason is not None and missing in reason
  with pytest.raises(ValueError) as err:
    losses.get("expr:" + text)
  assert reason in str(err.value)
  from glojax.search import glo
  evaluator = glo.Evaluator(trainer=None, batch=1, max_len=32, stack_depth=8,
                            strategy="auto", nan_retries=0, model_name="mlp",
                            simplify_max_size=25)
  assert evaluator.status(tree) == ("invalid", None)
  assert evaluator.status(T.parse("log(y) - x / y"))[0] == "ok"
