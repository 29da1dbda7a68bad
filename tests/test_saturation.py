"""Losses at saturated and masked logits: the mathematical limit, never an IEEE accident.

Every registered loss and a set of expression losses, on a grid of extreme logits
(spread 0 … 2000, ±inf), in float32 and bfloat16, against 50-digit mpmath references
(``tests/reference.py``), values and gradients. Policy: ``docs/losses.md``,
"Saturation and masking".
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from glojax import losses
from glojax.expr import tree as T
from tests import reference as R

INF = np.inf
# Rows of 4 logits: spread 0 … 2000, entries below float32's smallest subnormal.
FINITE_ROWS = [
    [0.0, 0.0, 0.0, 0.0],
    [2.0, -1.0, 0.5, -3.0],
    [0.0, -88.0, -20.0, -5.0],
    [0.0, -104.0, -90.0, -200.0],
    [0.0, -2000.0, -1000.0, -500.0],
    [2000.0, 0.0, -5.0, 10.0],
]
# Masked (-inf) and certain (+inf) classes.
INFINITE_ROWS = [
    [0.0, -INF, 1.0, -2.0],
    [0.0, -INF, -INF, -INF],
    [INF, 0.0, -1.0, -INF],
    [INF, 0.0, -1.0, 2.0],
    [-INF, -INF, -INF, -INF],
]
LABELS = {
    "correct": [1.0, 0.0, 0.0, 0.0],     # class 0: the largest logit in most rows
    "wrong": [0.0, 1.0, 0.0, 0.0],
    "soft": [0.7, 0.1, 0.1, 0.1],
}


def _mp_loss(name):
  return lambda z, x: R.loss(name, z, x)


def _compiled(fn):
  return jax.jit(jax.value_and_grad(lambda z, x: fn(z, x)[0]))


def _check(value_and_grad, ref_fn, rows, dtype, rtol, *, infinite):
  """Values and gradients (``value_and_grad = _compiled(loss)``) against ``ref_fn``
  (mpmath) row by row."""
  for row in rows:
    for label_name, labels in LABELS.items():
      logits = jnp.asarray([row], dtype)
      x = jnp.asarray([labels], dtype)
      value, grad = value_and_grad(logits, x)
      # The references see the dtype-rounded inputs.
      z_used = np.asarray(logits, np.float64)[0].tolist()
      x_used = np.asarray(x, np.float64)[0].tolist()
      where = f"row {row} labels {label_name} dtype {jnp.dtype(dtype).name}"
      if infinite:
        ref = R.limit(ref_fn, z_used, x_used)
        assert ref is not None, f"reference limit does not settle at {where}"
      else:
        ref = ref_fn(z_used, x_used)
      expected = R.to_float(ref)
      got = np.asarray(value, np.float32)
      assert not np.isnan(got), f"NaN at {where} (limit {expected})"
      if np.isinf(expected):
        assert got == expected, f"{got} != {expected} at {where}"
        continue
      # atol: float32 (bfloat16) rounding of O(1) terms that cancel.
      np.testing.assert_allclose(got, expected, rtol=rtol, atol=rtol / 10, err_msg=where)
      # Finite value: finite gradient, equal to the reference's.
      ref_grad = np.array([R.to_float(g) for g in R.gradient(ref_fn, z_used, x_used)])
      got_grad = np.asarray(grad, np.float32)[0]
      assert np.all(np.isfinite(got_grad)), f"gradient {got_grad} at {where}"
      scale = 1.0 + np.abs(ref_grad).max()
      np.testing.assert_allclose(got_grad, ref_grad, rtol=rtol * 10,
                                 atol=rtol * 10 * scale, err_msg=f"gradient at {where}")


def test_every_registered_loss_has_a_reference():
  assert sorted(R.SPECS) == losses.names()


@pytest.mark.parametrize("dtype, rtol", [(jnp.float32, 2e-5), (jnp.bfloat16, 2e-2)])
@pytest.mark.parametrize("name", sorted(R.SPECS))
def test_registered_losses_at_saturated_logits(name, dtype, rtol):
  _check(_compiled(losses.get(R.SPECS[name])), _mp_loss(name), FINITE_ROWS, dtype, rtol,
         infinite=False)


@pytest.mark.parametrize("name", sorted(R.SPECS))
def test_registered_losses_at_infinite_logits(name):
  _check(_compiled(losses.get(R.SPECS[name])), _mp_loss(name), INFINITE_ROWS, jnp.float32,
         2e-5, infinite=True)


EXPRESSIONS = ["x * log(y)", "y * log(y) - x", "sqrt(y) * x - y", "(x - y) / y",
               "x * y / y + y", "y / (y + x) - x", "log(y) * log(y) * x",
               "x * logits - log(y) * y"]


@pytest.mark.parametrize("text", EXPRESSIONS)
def test_expression_losses_at_extreme_logits(text):
  tree = T.parse(text)
  ref_fn = lambda z, x: R.tree_loss(tree, z, x)
  value_and_grad = _compiled(losses.get("expr:" + text))
  _check(value_and_grad, ref_fn, FINITE_ROWS, jnp.float32, 2e-5, infinite=False)
  _check(value_and_grad, ref_fn, INFINITE_ROWS, jnp.float32, 2e-5, infinite=True)


def test_the_issues_examples():
  logits = jnp.asarray([[0.0, -88.0]])
  labels = jnp.asarray([[1.0, 0.0]])
  values = jax.jit(lambda z, x: jnp.stack([
      losses.baikal(z, x)[0], losses.baikal_cma(z, x)[0], losses.fast_logit(z, x)[0],
      losses.get("expr:x * log(y)")(z, x)[0], optax.softmax_cross_entropy(z, x)[0]]))
  baikal, baikal_cma, fast_logit, ce_tree, optax_ce = np.asarray(values(logits, labels))
  assert baikal == 44.5
  np.testing.assert_allclose(baikal_cma, 119.706571, rtol=1e-6)
  assert fast_logit == 3783.5
  assert ce_tree == 0.0 == optax_ce


def test_cross_entropy_tree_equals_optax_wherever_optax_is_finite():
  key = jax.random.PRNGKey(0)
  logits = jax.random.normal(key, (64, 10)) * jnp.logspace(-1, 3, 64)[:, None]
  labels = jax.nn.one_hot(jnp.arange(64) % 10, 10)
  soft = jax.nn.softmax(jax.random.normal(jax.random.PRNGKey(1), (64, 10)))
  tree = losses.get("expr:x * log(y)")
  # The tree is -(1/n) Σ x log y: n times it is cross-entropy.
  both = jax.jit(lambda z, x: (10 * tree(z, x), losses.cross_entropy(z, x),
                               optax.softmax_cross_entropy(z, x)))
  for x in (labels, soft):
    got, ours, ref = (np.asarray(a) for a in both(logits, x))
    finite = np.isfinite(ref)
    assert finite.sum() > 50
    np.testing.assert_allclose(got[finite], ref[finite], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", ["cross_entropy", "polyloss", "mse", "neuroloss1",
                                  "bessel", "taylorglo"])
def test_a_masked_class_is_the_limit_of_a_very_negative_logit(name):
  # Class 3 masked (logit -inf, label 0): the value and gradient are those at a logit
  # of -1e4 (where its softmax entry is e^-1e4, i.e. 0), the gradient finite.
  value_and_grad = _compiled(losses.get(R.SPECS[name]))
  logits = jnp.asarray([[1.0, -0.5, 2.0, -jnp.inf]])
  labels = jnp.asarray([[0.0, 0.0, 1.0, 0.0]])
  value, grad = value_and_grad(logits, labels)
  near, near_grad = value_and_grad(logits.at[0, 3].set(-1e4), labels)
  np.testing.assert_allclose(value, near, rtol=1e-6)
  np.testing.assert_allclose(grad, near_grad, rtol=1e-5, atol=1e-7)


def test_divergent_published_losses_return_inf_not_nan():
  # Baikal's log y and FastLogit's logits² diverge at a masked class: +inf, as does
  # label smoothing's α/n · log y. Documented in docs/losses.md.
  logits = jnp.asarray([[0.0, -jnp.inf]])
  labels = jnp.asarray([[1.0, 0.0]])
  for name in ("baikal", "baikal_cma", "fast_logit", "label_smoothing"):
    assert float(losses.get(name)(logits, labels)[0]) == np.inf, name


def test_taylor_builder_with_logits_takes_the_polynomial_limit():
  # Order 2 in (x, logits), trimmed: theta = [a_x, a_z, c(0,1), c(0,2), c(1,1)].
  loss = losses.taylor_loss(2, ("x", "logits"))
  assert loss.terms == ((0, 1), (0, 2), (1, 1))
  logits = jnp.asarray([[0.0, -jnp.inf, 1.0]])
  x_z = jnp.asarray([0.0, 0.0, 0.0, 0.0, 1.0])           # f = x·z
  # The masked class has x = 0: its term is exactly 0 (not 0·inf); grad finite.
  value, grad = jax.value_and_grad(
      lambda z: loss(x_z, z, jnp.asarray([[1.0, 0.0, 0.0]]))[0])(logits)
  assert float(value) == 0.0
  np.testing.assert_allclose(grad, [[-1 / 3, 0.0, 0.0]], rtol=1e-6)
  # x = 1 on the masked class: f → -inf, L = +inf; a z² term decides over z.
  assert float(loss(x_z, logits, jnp.asarray([[0.0, 1.0, 0.0]]))[0]) == np.inf
  both = jnp.asarray([0.0, 0.0, 5.0, -1.0, 0.0])         # f = 5z - z²
  assert float(loss(both, logits, jnp.asarray([[1.0, 0.0, 0.0]]))[0]) == np.inf
