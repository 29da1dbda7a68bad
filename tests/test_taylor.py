"""The general TaylorGLO builder (dissertation §5.1–5.3)."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from glojax import losses
from glojax.losses import taylor


def _batch(seed, n=10, b=6):
  rng = np.random.default_rng(seed)
  logits = rng.normal(0, 1.5, (b, n)).astype(np.float32)
  labels = rng.dirichlet(np.ones(n), size=b).astype(np.float32)
  return logits, labels


def test_parameter_counts_of_eq_5_4():
  assert losses.num_params(2, 3) == 12
  full = losses.taylor_loss(3, ("x", "y"), trim=False)
  trimmed = losses.taylor_loss(3, ("x", "y"), trim=True)
  assert full.num_params == 12
  assert trimmed.num_params == 8
  for m in range(1, 5):
    for k in range(0, 5):
      assert losses.num_params(m, k) == m + math.comb(m + k, k)
      assert len(losses.multi_indices(m, k)) == math.comb(m + k, k)


@pytest.mark.parametrize("variables,order,full,kept", [
    (("x", "y"), 1, 5, 3),      # terms 1, y, x → keep y
    (("x", "y"), 2, 8, 5),      # keep y, y², xy
    (("x", "y"), 3, 12, 8),
    (("x", "y"), 4, 17, 12),
    (("x", "y", "t"), 2, 13, 7),        # 10 terms; kept: y, y², xy, yt
    (("x", "y", "logits"), 2, 13, 10),  # drop 1, x, x² only
])
def test_trimmed_counts(variables, order, full, kept):
  assert losses.taylor_loss(order, variables, trim=False).num_params == full
  assert losses.taylor_loss(order, variables, trim=True).num_params == kept


def test_theta_layout_is_eq_5_6_and_5_7_order():
  full = losses.taylor_loss(3, trim=False)
  assert full.terms == ((0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 1), (1, 2), (2, 0),
                        (2, 1), (3, 0))
  trimmed = losses.taylor_loss(3)
  assert trimmed.terms == ((0, 1), (0, 2), (0, 3), (1, 1), (1, 2), (2, 1))
  assert trimmed.term_names()[:3] == ["a_x", "a_y", "(y-a_y)"]
  assert trimmed.term_names()[-1] == "(x-a_x)^2*(y-a_y)"


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("class_reduction", ["mean", "sum"])
def test_trimmed_third_order_equals_taylorglo(seed, class_reduction):
  theta = jnp.asarray(np.random.default_rng(seed).normal(0, 2, 8), jnp.float32)
  logits, labels = _batch(seed)
  built = losses.taylor_loss(3, ("x", "y"), trim=True, class_reduction=class_reduction)
  np.testing.assert_allclose(
      built(theta, logits, labels),
      losses.taylorglo(theta, logits, labels, class_reduction=class_reduction),
      rtol=1e-5, atol=1e-5)


def test_factorial_conversion_round_trips_and_matches_eq57():
  built = losses.taylor_loss(3)
  theta_eq = np.random.default_rng(0).normal(0, 3, 8).astype(np.float32)
  ff = built.theta_from_factorial(theta_eq)
  np.testing.assert_allclose(ff, losses.theta_from_eq57(theta_eq), rtol=1e-6)
  np.testing.assert_allclose(built.theta_to_factorial(ff), theta_eq, rtol=1e-6)
  np.testing.assert_allclose(losses.theta_to_eq57(ff), theta_eq, rtol=1e-6)
  # ½ for y², ⅙ for y³, ½ for xy² and x²y; 1 elsewhere.
  np.testing.assert_allclose(built.theta_from_factorial(np.ones(8)),
                             [1, 1, 1, 0.5, 1 / 6, 1, 0.5, 0.5], rtol=1e-6)


def test_untrimmed_equals_eq_5_6_as_printed():
  """Eq. 5.6 with its ½, ⅙ factors, written out by hand."""
  t = np.random.default_rng(1).normal(0, 1, 12)
  logits, labels = _batch(1)
  y = np.asarray(jax.nn.softmax(logits.astype(np.float64)))
  x = labels.astype(np.float64)
  dx, dy = x - t[0], y - t[1]
  f = (t[2] + t[3] * dy + t[4] * dy**2 / 2 + t[5] * dy**3 / 6 + t[6] * dx + t[7] * dx * dy
       + t[8] * dx * dy**2 / 2 + t[9] * dx**2 / 2 + t[10] * dx**2 * dy / 2
       + t[11] * dx**3 / 6)
  want = -f.mean(-1)
  built = losses.taylor_loss(3, trim=False)
  got = built(built.theta_from_factorial(t), logits, labels)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def _brute_force(theta, variables, order, trim, values):
  """Independent reference: sum over multi-indices with NumPy, float64."""
  m = len(variables)
  terms = [a for a in itertools.product(range(order + 1), repeat=m) if sum(a) <= order]
  if trim:
    pred = [j for j, v in enumerate(variables) if v in ("y", "logits")]
    terms = [a for a in terms if any(a[j] for j in pred)]
  f = 0.0
  for c, alpha in enumerate(terms):
    term = theta[m + c]
    for j, v in enumerate(variables):
      term = term * (values[v] - theta[j]) ** alpha[j]
    f = f + term
  return -np.mean(f, -1)


@pytest.mark.parametrize("variables,order", [(("x", "y", "logits"), 2),
                                             (("y", "x", "t"), 3), (("logits",), 2)])
def test_more_variables_against_brute_force(variables, order):
  built = losses.taylor_loss(order, variables)
  theta = np.random.default_rng(2).normal(0, 0.5, built.num_params)
  logits, labels = _batch(2, n=5, b=4)
  t = np.linspace(0.0, 1.0, 4)  # per-example training progress
  values = {"x": labels.astype(np.float64), "logits": logits.astype(np.float64),
            "y": np.asarray(jax.nn.softmax(logits.astype(np.float64))),
            "t": np.broadcast_to(t[:, None], logits.shape)}
  kwargs = {"t": t} if "t" in variables else {}
  got = built(jnp.asarray(theta, jnp.float32), logits, labels, **kwargs)
  np.testing.assert_allclose(got, _brute_force(theta, variables, order, True, values),
                             rtol=1e-4, atol=1e-5)


def test_scalar_t_broadcasts():
  built = losses.taylor_loss(2, ("x", "y", "t"))
  theta = jnp.asarray(np.random.default_rng(3).normal(0, 1, built.num_params), jnp.float32)
  logits, labels = _batch(3, b=3)
  np.testing.assert_allclose(built(theta, logits, labels, t=0.25),
                             built(theta, logits, labels, t=jnp.full((3,), 0.25)),
                             rtol=1e-6)


def test_jit_vmap_grad():
  built = losses.taylor_loss(3)
  logits, labels = _batch(4)
  thetas = jnp.asarray(np.random.default_rng(4).normal(0, 1, (3, 8)), jnp.float32)
  vm = jax.jit(jax.vmap(built, in_axes=(0, None, None)))(thetas, logits, labels)
  for i in range(3):
    np.testing.assert_allclose(vm[i], built(thetas[i], logits, labels), rtol=1e-5)
  g = jax.grad(lambda z: built(thetas[0], z, labels).mean())(jnp.asarray(logits))
  assert np.all(np.isfinite(g)) and np.any(g != 0)


@pytest.mark.parametrize("kwargs,fragment", [
    ({"variables": ("x", "z")}, "unknown variable 'z'"),
    ({"variables": ("x", "y", "y")}, "duplicate"),
    ({"variables": ("x", "t")}, "no prediction variable"),
    ({"order": -1}, "order must be"),
    ({"order": 2.5}, "order must be"),
    ({"order": 0}, "no terms after trimming"),
    ({"class_reduction": "max"}, "class_reduction"),
])
def test_builder_errors(kwargs, fragment):
  with pytest.raises(ValueError, match=fragment):
    losses.taylor_loss(**kwargs)


def test_call_errors():
  built = losses.taylor_loss(3)
  logits, labels = _batch(5)
  with pytest.raises(ValueError, match=r"shape \(8,\)"):
    built(jnp.zeros(7), logits, labels)
  with pytest.raises(ValueError, match="same shape"):
    built(jnp.zeros(8), logits, labels[:, :3])
  with pytest.raises(ValueError, match="pass t"):
    built(jnp.zeros(8), logits, labels, t=0.5)
  with pytest.raises(ValueError, match="pass t"):
    losses.taylor_loss(2, ("x", "y", "t"))(jnp.zeros(7), logits, labels)
  with pytest.raises(ValueError, match="theta_from_factorial"):
    built.theta_from_factorial(np.zeros(12))
  with pytest.raises(ValueError, match="num_variables"):
    taylor.num_params(0, 3)
