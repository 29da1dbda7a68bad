"""analysis.effective_learning_rate: CE = 1, c × CE = c, TaylorGLO's MSE θ by hand."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from glojax import analysis, losses, models

MSE_THETA = [0.0, 0.0, 0.0, -1.0, 0.0, 2.0, 0.0, 0.0]  # -f = y² - 2xy = MSE - x²


@pytest.fixture(scope="module")
def mlp():
  return models.get("mlp", num_classes=10, hidden=(16,))


def test_cross_entropy_is_one_and_twice_is_two(mlp, tiny_mnist):
  for loss in ("cross_entropy", losses.cross_entropy):
    assert analysis.effective_learning_rate(loss, mlp, tiny_mnist) == 1.0
  two = lambda z, x: 2.0 * losses.cross_entropy(z, x)
  assert analysis.effective_learning_rate(two, mlp, tiny_mnist) == 2.0
  half = lambda z, x: 0.5 * losses.cross_entropy(z, x)
  assert analysis.effective_learning_rate(half, mlp, tiny_mnist) == 0.5


def _mse_ratio_by_hand(logits, labels_int, n, scale):
  """Mean ‖∇_z‖ of scale·Σ_k (y_k - x_k)² over that of CE, with ∇_z = J ∇_y, J = diag(p) - ppᵀ."""
  z = np.asarray(logits, np.float64)
  p = np.exp(z - z.max(-1, keepdims=True))
  p /= p.sum(-1, keepdims=True)
  x = np.eye(n)[labels_int]
  g_y = scale * 2 * (p - x)
  g_z = p * g_y - p * np.sum(p * g_y, -1, keepdims=True)
  g_ce = p - x
  return np.linalg.norm(g_z, axis=-1).mean() / np.linalg.norm(g_ce, axis=-1).mean()


@pytest.mark.parametrize("class_reduction,scale", [("mean", 0.1), ("sum", 1.0)])
def test_taylorglo_mse_theta_matches_hand_computation(class_reduction, scale):
  n = 10
  labels = np.arange(6) % n
  # At logits 0 (uniform softmax) ∇_z = (2·scale/n)(p - x): the ratio is 2·scale/n
  # (0.02 for the mean over classes, 0.2 for the sum).
  loss = lambda z, x: losses.taylorglo(jnp.asarray(MSE_THETA), z, x, class_reduction)
  zero = analysis.gradient_norm_ratio(loss, jnp.zeros((6, n)), labels)
  np.testing.assert_allclose(zero, 2 * scale / n, rtol=1e-6)
  logits = jax.random.normal(jax.random.PRNGKey(0), (6, n)) * 3
  np.testing.assert_allclose(analysis.gradient_norm_ratio(loss, logits, labels),
                             _mse_ratio_by_hand(logits, labels, n, scale), rtol=1e-5)
  # The registered MSE has the same gradient (its x² term does not depend on y).
  np.testing.assert_allclose(
      analysis.gradient_norm_ratio(f"mse(class_reduction={class_reduction!r})", logits,
                                   labels),
      _mse_ratio_by_hand(logits, labels, n, scale), rtol=1e-5)


def test_taylorglo_spec_through_a_network_and_checkpoint(mlp, tiny_mnist):
  spec = losses.taylorglo_spec(MSE_THETA)
  images = tiny_mnist.train.images[:64]
  labels = tiny_mnist.train.labels[:64]
  variables = mlp.init({"params": jax.random.PRNGKey(3), "dropout": jax.random.PRNGKey(3)},
                       jnp.asarray(images[:1]), train=False)
  logits = mlp.apply(variables, jnp.asarray(images), train=False)
  got = analysis.effective_learning_rate(spec, mlp, (images, labels), variables=variables)
  np.testing.assert_allclose(got, _mse_ratio_by_hand(logits, labels, 10, 0.1), rtol=1e-5)
  # A "trained" checkpoint (larger logits) gives a different ratio; CE stays exactly 1.
  big = jax.tree_util.tree_map(lambda a: a * 4.0, variables)
  assert abs(analysis.effective_learning_rate(spec, mlp, (images, labels),
                                              variables=big) - got) > 1e-3
  assert analysis.effective_learning_rate("cross_entropy", mlp, (images, labels),
                                          variables=big) == 1.0


def test_errors(mlp, tiny_mnist):
  with pytest.raises(ValueError, match="nonexistent"):
    analysis.effective_learning_rate("nonexistent", mlp, tiny_mnist)
  with pytest.raises(ValueError, match="Dataset or a tuple"):
    analysis.effective_learning_rate("cross_entropy", mlp, 3)
  with pytest.raises(ValueError, match="max_examples=0"):
    analysis.effective_learning_rate("cross_entropy", mlp, tiny_mnist, max_examples=0)
  with pytest.raises(ValueError, match="logits must be"):
    analysis.gradient_norm_ratio("cross_entropy", jnp.zeros((3, 4)), jnp.zeros((3, 5)))
