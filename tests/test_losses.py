"""Every registered loss against an independent NumPy implementation (docs/losses.md)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special

from glojax import losses

EPS = 1e-7  # NLFS Tables 1-2
THETA = np.array([0.3, -0.2, 1.5, -0.7, 0.4, 2.0, -1.1, 0.6])  # an arbitrary TaylorGLO θ
MSE_THETA = [0.0, 0.0, 0.0, -1.0, 0.0, 2.0, 0.0, 0.0]  # diss. §6.4: MSE as TaylorGLO λ

# Spec used to instantiate each registered name in these tests.
SPECS = {name: name for name in losses.names()}
SPECS["taylorglo"] = losses.taylorglo_spec(THETA)
SPECS["label_smoothing"] = "label_smoothing(alpha=0.2)"
SPECS["polyloss"] = "polyloss(epsilon=1.5)"


def _softmax(z):
  z = z - z.max(-1, keepdims=True)
  e = np.exp(z)
  return e / e.sum(-1, keepdims=True)


def _ref_ce(z, x):
  return -(x * np.log(_softmax(z))).sum(-1)


def _ref_nlfs_a(x, y):
  return y / np.sqrt(1 + (y / (x + EPS)) ** 2)


# Independent float64 references, written from the papers' formulas.
REFERENCES = {
    "cross_entropy": _ref_ce,
    "label_smoothing": lambda z, x: _ref_ce(z, 0.8 * x + 0.2 / x.shape[-1]),
    "polyloss": lambda z, x: _ref_ce(z, x) + 1.5 * (1 - (x * _softmax(z)).sum(-1)),
    "mse": lambda z, x: ((x - _softmax(z)) ** 2).mean(-1),
    "baikal": lambda z, x: -(np.log(_softmax(z)) - x / _softmax(z)).mean(-1),
    "baikal_cma": lambda z, x: -(2.7279 * (0.9863 * np.log(1.5352 * _softmax(z))
                                           - (-1.1135) * (1.3716 * x)
                                           / (-0.8411 * _softmax(z)))).mean(-1),
    "fast_logit": lambda z, x: -((z - x) * (x / _softmax(z) - (z - (-2)))).mean(-1),
    "taylorglo": lambda z, x: -(
        THETA[2] * (_softmax(z) - THETA[1]) + THETA[3] * (_softmax(z) - THETA[1]) ** 2
        + THETA[4] * (_softmax(z) - THETA[1]) ** 3
        + THETA[5] * (x - THETA[0]) * (_softmax(z) - THETA[1])
        + THETA[6] * (x - THETA[0]) * (_softmax(z) - THETA[1]) ** 2
        + THETA[7] * (x - THETA[0]) ** 2 * (_softmax(z) - THETA[1])).mean(-1),
    "neuroloss1": lambda z, x: -(np.log(np.abs(_ref_nlfs_a(x, _softmax(z))) + EPS)
                                 + _ref_nlfs_a(x, _softmax(z))).mean(-1),
    "neuroloss2": lambda z, x: -(np.log10(np.abs(_ref_nlfs_a(x, _softmax(z))) + EPS)
                                 + np.sin(_ref_nlfs_a(x, _softmax(z)))).mean(-1),
    "neuroloss3": lambda z, x: -(np.log(np.abs(_ref_nlfs_a(x, _softmax(z))) + EPS)
                                 + np.minimum(x, _softmax(z) / (x + EPS))).mean(-1),
    "bessel": lambda z, x: (np.minimum(scipy.special.i0e(_softmax(z)), x)
                            + scipy.special.i0e(_softmax(z))).mean(-1),
}


def _points(seed, shape=(6,), n=10, scale=2.0, soft=False):
  rng = np.random.default_rng(seed)
  logits = rng.normal(0.0, scale, shape + (n,))
  if soft:
    labels = rng.dirichlet(np.ones(n), size=shape)
  else:
    labels = np.eye(n)[rng.integers(0, n, shape)]
  return logits.astype(np.float32), labels.astype(np.float32)


def test_every_registered_loss_has_a_reference():
  assert sorted(REFERENCES) == losses.names()
  assert len(losses.names()) == 12


@pytest.mark.parametrize("name", sorted(REFERENCES))
@pytest.mark.parametrize("soft", [False, True], ids=["onehot", "soft"])
@pytest.mark.parametrize("seed,scale,shape,n", [(0, 0.5, (7,), 10), (1, 2.0, (2, 3), 5),
                                                (2, 1.0, (4,), 2)])
def test_matches_numpy_reference(name, soft, seed, scale, shape, n):
  logits, labels = _points(seed, shape, n, scale, soft)
  got = np.asarray(losses.get(SPECS[name])(jnp.asarray(logits), jnp.asarray(labels)))
  want = REFERENCES[name](logits.astype(np.float64), labels.astype(np.float64))
  assert got.shape == shape
  np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5)


# Hand-computed values at uniform logits (y = 1/10) and a one-hot label, n = 10.
@pytest.mark.parametrize("spec,value", [
    ("cross_entropy", np.log(10)),
    ("baikal", np.log(10) + 1),                       # -(1/n)(n log(1/n) - n)
    ("mse", (0.9**2 + 9 * 0.01) / 10),
    ("fast_logit", 0.8),                              # true class: (0-1)(10-2) = -8
    ("polyloss(epsilon=2.0)", np.log(10) + 2 * 0.9),
    ("label_smoothing(alpha=0.3)", np.log(10)),      # any target sums to 1
    (losses.taylorglo_spec(MSE_THETA), 0.09 - 0.1),  # mse - mean(x²)
    ("baikal(class_reduction='sum')", 10 * (np.log(10) + 1)),
])
def test_hand_computed_values(spec, value):
  logits = jnp.zeros((1, 10))
  labels = jax.nn.one_hot(jnp.array([3]), 10)
  np.testing.assert_allclose(losses.get(spec)(logits, labels), [value], rtol=1e-5)


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_finite_gradients_on_random_batch(name):
  logits, labels = _points(3, (32,), 10, 3.0)
  loss = losses.get(SPECS[name])
  grads = jax.grad(lambda z: jnp.mean(loss(z, labels)))(jnp.asarray(logits))
  assert grads.shape == logits.shape
  assert np.all(np.isfinite(np.asarray(grads)))
  assert np.any(np.asarray(grads) != 0.0)


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_jit_and_vmap_agree_with_plain_call(name):
  logits, labels = _points(4, (3, 5), 10, 1.5, soft=True)
  loss = losses.get(SPECS[name])
  plain = np.asarray(loss(logits, labels))
  np.testing.assert_allclose(np.asarray(jax.jit(loss)(logits, labels)), plain, rtol=1e-5,
                             atol=1e-6)
  vmapped = np.asarray(jax.vmap(loss)(logits, labels))
  looped = np.stack([np.asarray(loss(logits[i], labels[i])) for i in range(3)])
  np.testing.assert_allclose(vmapped, looped, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(vmapped, plain, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_mismatched_shapes_raise(name):
  with pytest.raises(ValueError, match="same shape"):
    losses.get(SPECS[name])(jnp.zeros((4, 10)), jnp.zeros((4, 9)))


@pytest.mark.parametrize("name", ["mse", "baikal", "baikal_cma", "fast_logit",
                                  "neuroloss1", "neuroloss2", "neuroloss3", "bessel",
                                  "taylorglo"])
def test_class_reduction_sum_is_n_times_mean(name):
  logits, labels = _points(5, (4,), 7, 1.0)
  spec = SPECS[name]
  summed = spec[:-1] + ", class_reduction='sum')" if spec.endswith(")") \
      else f"{spec}(class_reduction='sum')"
  np.testing.assert_allclose(losses.get(summed)(logits, labels),
                             7 * losses.get(spec)(logits, labels), rtol=1e-5)


def test_plain_functions_are_the_registered_ones():
  logits, labels = _points(6, (5,), 10, 1.0, soft=True)
  for name in ["baikal", "baikal_cma", "mse", "fast_logit", "neuroloss1", "neuroloss2",
               "neuroloss3", "bessel", "cross_entropy"]:
    fn = getattr(losses, name)
    np.testing.assert_array_equal(fn(logits, labels), losses.get(name)(logits, labels))
  np.testing.assert_allclose(losses.label_smoothed_cross_entropy(logits, labels, 0.2),
                             losses.get(SPECS["label_smoothing"])(logits, labels), rtol=1e-6)
  np.testing.assert_allclose(losses.polyloss(logits, labels, 1.5),
                             losses.get(SPECS["polyloss"])(logits, labels), rtol=1e-6)


def test_zero_smoothing_and_zero_epsilon_are_cross_entropy():
  logits, labels = _points(7, (5,), 10, 2.0)
  ce = losses.cross_entropy(logits, labels)
  np.testing.assert_allclose(losses.get("label_smoothing(alpha=0)")(logits, labels), ce,
                             rtol=1e-6)
  np.testing.assert_allclose(losses.get("polyloss(epsilon=0)")(logits, labels), ce,
                             rtol=1e-6)


def test_mse_equals_taylorglo_mse_theta_up_to_a_constant():
  """Diss. §6.4: λ = <0,0,0,-1,0,2,0,0> is MSE (minus the y-free mean(x²))."""
  logits, labels = _points(8, (6,), 10, 1.0, soft=True)
  tg = losses.get(losses.taylorglo_spec(MSE_THETA))
  np.testing.assert_allclose(tg(logits, labels),
                             losses.mse(logits, labels) - np.mean(labels**2, -1), rtol=1e-4,
                             atol=1e-6)
  g_mse = jax.jit(jax.grad(lambda z: losses.mse(z, labels).sum()))(jnp.asarray(logits))
  g_tg = jax.jit(jax.grad(lambda z: tg(z, labels).sum()))(jnp.asarray(logits))
  np.testing.assert_allclose(g_tg, g_mse, rtol=1e-4, atol=1e-7)


def test_nlfs_and_bessel_use_epsilon_1e7():
  assert losses.NLFS_EPSILON == 1e-7
  # For a wrong class (x = 0) and y >> ε, a ≈ ε, so NL1's summand ≈ ln(2ε) + ε.
  logits = jnp.log(jnp.array([[0.5, 0.5]]))
  labels = jnp.array([[1.0, 0.0]])
  a_true = 0.5 / np.sqrt(1 + (0.5 / (1 + EPS)) ** 2)
  want = -0.5 * (np.log(a_true + EPS) + a_true + np.log(2 * EPS) + EPS)
  np.testing.assert_allclose(losses.neuroloss1(logits, labels), [want], rtol=1e-5)


def test_get_parameterized_matches_get_and_is_traced():
  logits, labels = _points(9, (4,), 10, 1.0)
  for name, spec in SPECS.items():
    fn, params = losses.get_parameterized(spec)
    assert params.dtype == jnp.float32
    assert params.shape == ({"taylorglo": (8,), "label_smoothing": (1,),
                             "polyloss": (1,)}.get(name, (0,)))
    np.testing.assert_allclose(fn(params, logits, labels),
                               losses.get(spec)(logits, labels), rtol=1e-6)
  # Parameters are traced: new values reuse the compiled program.
  traces = []
  fn, params = losses.get_parameterized(SPECS["taylorglo"])

  @jax.jit
  def objective(theta):
    traces.append(1)
    return jnp.mean(fn(theta, logits, labels))

  a = objective(params)
  b = objective(params * 2.0)
  assert len(traces) == 1 and not np.allclose(a, b)
