"""Core losses: hand-computed TaylorGLO values, the MSE-equivalent θ, eq. 5.7 rescaling."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from glojax import losses

# logits whose softmax is exactly [0.2, 0.3, 0.5]
LOGITS = jnp.log(jnp.array([[0.2, 0.3, 0.5]]))
LABELS = jnp.array([[0.0, 0.0, 1.0]])
THETA = jnp.array([0.5, 0.1, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0])


def test_taylorglo_hand_computed():
  # dx = x - 0.5 = [-.5, -.5, .5], dy = y - 0.1 = [.1, .2, .4]
  # f = dy + 2dy² + 3dy³ + 4dx·dy + 5dx·dy² + 6dx²·dy = [0.048, 0.104, 2.712]
  value = losses.taylorglo(THETA, LOGITS, LABELS)
  np.testing.assert_allclose(value, [-2.864 / 3], rtol=1e-5)
  value_sum = losses.taylorglo(THETA, LOGITS, LABELS, class_reduction="sum")
  np.testing.assert_allclose(value_sum, [-2.864], rtol=1e-5)


def test_cross_entropy_hand_computed():
  np.testing.assert_allclose(losses.cross_entropy(LOGITS, LABELS), [-np.log(0.5)],
                             rtol=1e-6)
  soft = jnp.array([[0.1, 0.2, 0.7]])
  expected = -(0.1 * np.log(0.2) + 0.2 * np.log(0.3) + 0.7 * np.log(0.5))
  np.testing.assert_allclose(losses.cross_entropy(LOGITS, soft), [expected], rtol=1e-6)


def test_mse_equivalent_theta_has_mse_gradient():
  # θ = [0,0,0,-1,0,2,0,0]: f = -y² + 2xy, so L = (1/n)Σ(x-y)² - (1/n)Σx²: same gradient.
  theta = jnp.array([0.0, 0.0, 0.0, -1.0, 0.0, 2.0, 0.0, 0.0])
  key1, key2 = jax.random.split(jax.random.PRNGKey(0))
  logits = jax.random.normal(key1, (16, 10)) * 2.0
  labels = jax.nn.softmax(jax.random.normal(key2, (16, 10)) * 3.0)  # soft labels too

  def mse(lg):
    return jnp.mean(jnp.mean((labels - jax.nn.softmax(lg)) ** 2, axis=-1))

  def tg(lg):
    return jnp.mean(losses.taylorglo(theta, lg, labels))

  g_mse, g_tg = jax.grad(mse)(logits), jax.grad(tg)(logits)
  assert float(jnp.max(jnp.abs(g_mse))) > 1e-4  # the comparison is not trivially 0 = 0
  np.testing.assert_allclose(g_tg, g_mse, rtol=1e-5, atol=1e-8)


def test_taylorglo_jit_vmap_agree():
  thetas = jax.random.normal(jax.random.PRNGKey(1), (5, 8))
  logits = jax.random.normal(jax.random.PRNGKey(2), (5, 4, 10))
  labels = jax.nn.one_hot(jnp.arange(20).reshape(5, 4) % 10, 10)
  looped = jnp.stack([losses.taylorglo(t, l, y) for t, l, y in zip(thetas, logits, labels)])
  vmapped = jax.vmap(losses.taylorglo)(thetas, logits, labels)
  jitted = jax.jit(jax.vmap(losses.taylorglo))(thetas, logits, labels)
  np.testing.assert_allclose(vmapped, looped, rtol=1e-6)
  np.testing.assert_allclose(jitted, looped, rtol=1e-5)


def test_eq57_conversion():
  eq57 = jnp.array([1.0, 2.0, 3.0, 4.0, 6.0, 5.0, 8.0, 10.0])
  theta = losses.theta_from_eq57(eq57)
  np.testing.assert_allclose(theta, [1, 2, 3, 2, 1, 5, 4, 5])
  np.testing.assert_allclose(losses.theta_to_eq57(theta), eq57)


def test_spec_string_is_exact():
  theta = np.array([0.1, -2.5, 1 / 3, 0.0, 1e-8, 7.0, -0.25, 3.14159])
  spec = losses.taylorglo_spec(theta)
  assert spec.startswith("taylorglo(theta=[0.1, -2.5, 0.3333333333333333,")
  inner = spec[len("taylorglo(theta=["):-2]
  np.testing.assert_array_equal([float(v) for v in inner.split(",")], theta)


@pytest.mark.parametrize("bad_theta", [np.zeros(7), np.zeros((2, 8)), np.zeros(12)])
def test_taylorglo_rejects_bad_theta(bad_theta):
  with pytest.raises(ValueError, match="theta must have shape"):
    losses.taylorglo(jnp.asarray(bad_theta), LOGITS, LABELS)


def test_rejects_mismatched_shapes_and_reduction():
  with pytest.raises(ValueError, match="same shape"):
    losses.cross_entropy(LOGITS, jnp.ones((1, 4)))
  with pytest.raises(ValueError, match="class_reduction='max'"):
    losses.taylorglo(THETA, LOGITS, LABELS, class_reduction="max")
