"""Tests for glojax.analysis.theory (dissertation ch. 6)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from glojax.analysis import theory as T
from glojax.losses import cross_entropy, taylorglo

# ---------------------------------------------------------------------------------------------
# Reference losses written on probabilities, exactly as the dissertation writes them (mean over
# classes), so their ∂f/∂h are the printed closed forms.


def ce_probs(h, x):
  return -jnp.mean(x * jnp.log(h), axis=-1)


def mse_probs(h, x):
  return jnp.mean((x - h)**2, axis=-1)


def baikal_probs(h, x):
  return -jnp.mean(jnp.log(h) - x / h, axis=-1)


def taylorglo_probs(theta, h, x):
  dx, dy = x - theta[0], h - theta[1]
  f = (theta[2] * dy + theta[3] * dy**2 + theta[4] * dy**3 + theta[5] * dx * dy
       + theta[6] * dx * dy**2 + theta[7] * dx**2 * dy)
  return -jnp.mean(f, axis=-1)


def on_logits(loss_probs):
  return lambda logits, labels: loss_probs(jax.nn.softmax(logits, axis=-1), labels)


def random_batch(seed, batch=6, n=5, soft=False):
  k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
  probs = jax.nn.softmax(jax.random.normal(k1, (batch, n)) * 1.5, axis=-1)
  if soft:
    labels = jax.nn.softmax(jax.random.normal(k2, (batch, n)), axis=-1)
  else:
    labels = jax.nn.one_hot(jax.random.randint(k2, (batch,), 0, n), n)
  return probs, labels


# The AllCNN-C / CIFAR-10 TaylorGLO loss of §6.3.4 and §6.4, through its printed numbers:
# eq. 6.41 gives γ for y=0: -373.9170 - 130.2640 h - 11.2188 h², y=1: -372.4707 - 131.4700 h
# - 11.2188 h², so c1, c_h, c_hh, c_hy and c_y + c_yy; §6.3.4's b = -129.928 then gives c_y.
EQ641 = dict(c1=-373.9170, c_h=-130.2640, c_hh=-11.2188, c_hy=-131.4700 + 130.2640,
             c_y=-129.928 + 130.2640)
EQ641["c_yy"] = (-372.4707 + 373.9170) - EQ641["c_y"]


def eq641_c():
  return T.CCoefficients(**{k: jnp.float32(v) for k, v in EQ641.items()})


# ---------------------------------------------------------------------------------------------
# γ


@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("loss, closed", [(ce_probs, T.gamma_cross_entropy),
                                          (mse_probs, T.gamma_mse),
                                          (baikal_probs, T.gamma_baikal)])
def test_gamma_autodiff_equals_closed_forms(loss, closed, soft):
  probs, labels = random_batch(0, soft=soft)
  got = T.gamma(loss, probs, labels, space="probs")
  np.testing.assert_allclose(got, closed(probs, labels), rtol=2e-5, atol=1e-5)


@pytest.mark.parametrize("loss, closed", [(ce_probs, T.gamma_cross_entropy),
                                          (mse_probs, T.gamma_mse),
                                          (baikal_probs, T.gamma_baikal)])
def test_gamma_from_logits_is_centred_closed_form(loss, closed):
  probs, labels = random_batch(1)
  got = T.gamma(on_logits(loss), probs, labels)
  want = T.centre_gamma(closed(probs, labels), probs)
  np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)
  np.testing.assert_allclose(jnp.sum(probs * got, axis=-1), 0.0, atol=2e-4)


def test_gamma_of_project_cross_entropy_normalization():
  # The project's CE sums over classes (optax); the dissertation's eq. 6.7 uses the mean.
  probs, labels = random_batch(2, n=7)
  want = T.centre_gamma(labels / probs, probs)
  np.testing.assert_allclose(T.gamma(cross_entropy, probs, labels, class_reduction="sum"), want,
                             rtol=2e-5, atol=2e-5)
  np.testing.assert_allclose(T.gamma(cross_entropy, probs, labels), 7 * want,
                             rtol=2e-5, atol=2e-4)


def test_gamma_from_logits_flag_and_jit():
  probs, labels = random_batch(3)
  logits = jnp.log(probs) + 3.0  # a shift changes nothing
  a = T.gamma(cross_entropy, logits, labels, from_logits=True)
  b = jax.jit(lambda p, l: T.gamma(cross_entropy, p, l))(probs, labels)
  np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_gamma_taylorglo_closed_form_matches_autodiff():
  theta = jax.random.normal(jax.random.PRNGKey(4), (8,))
  probs, labels = random_batch(5, soft=True)
  want = T.gamma_taylorglo(theta, probs, labels)
  got = T.gamma(functools.partial(taylorglo_probs, theta), probs, labels, space="probs")
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
  got_logits = T.gamma(functools.partial(taylorglo, theta), probs, labels)
  np.testing.assert_allclose(got_logits, T.centre_gamma(want, probs), rtol=1e-4, atol=1e-4)


def test_gamma_errors():
  probs, labels = random_batch(0)
  with pytest.raises(ValueError, match="space"):
    T.gamma(ce_probs, probs, labels, space="prob")
  with pytest.raises(ValueError, match="class_reduction"):
    T.gamma(cross_entropy, probs, labels, class_reduction="max")
  with pytest.raises(ValueError, match="same shape"):
    T.gamma(cross_entropy, probs, labels[:, :3])


# ---------------------------------------------------------------------------------------------
# c-coefficients, a/b/c, null epoch


def test_c_coefficients_reproduce_eq_6_41_both_directions():
  theta = T.theta_from_c_coefficients(eq641_c())  # centre (0, 0)
  c = T.c_coefficients(theta)
  for name, value in EQ641.items():
    np.testing.assert_allclose(getattr(c, name), value, rtol=1e-5, atol=1e-4)
  # Eq. 6.41, evaluated back from θ.
  np.testing.assert_allclose(c.c1 + c.c_y + c.c_yy, -372.4707, rtol=1e-6)
  np.testing.assert_allclose(c.c_h + c.c_hy, -131.4700, rtol=1e-6)
  # §6.3.4's a, b, c (the c value is an independent check: it was not used to build θ).
  abc = T.zero_error_coefficients(theta)
  np.testing.assert_allclose([abc.a, abc.b, abc.c], [-373.917, -129.928, -11.3145], rtol=1e-5)
  # Any other expansion centre gives the same c's.
  theta2 = T.theta_from_c_coefficients(eq641_c(), 0.3, -0.7)
  np.testing.assert_allclose(theta2[:2], [0.3, -0.7])
  np.testing.assert_allclose(T.c_coefficients(theta2), T.c_coefficients(theta), rtol=1e-4)


def test_eq_6_43_null_epoch_values_and_misprint():
  theta = T.theta_from_c_coefficients(eq641_c())
  ne = T.null_epoch(theta, 10)
  np.testing.assert_allclose(ne.gamma_target, -385.7299, rtol=1e-6)
  # Eq. 6.43 prints -386.9546 for y=0; -373.9170 - 13.0264 - 0.112188 = -387.0556.
  np.testing.assert_allclose(ne.gamma_nontarget, -387.0556, rtol=1e-6)


def test_theta_c_round_trip_random():
  thetas = jax.random.normal(jax.random.PRNGKey(7), (16, 8))
  c = T.c_coefficients(thetas)
  back = T.theta_from_c_coefficients(c, thetas[:, 0], thetas[:, 1])
  np.testing.assert_allclose(back, thetas, rtol=1e-4, atol=1e-4)


def test_mse_theta_from_section_6_3_1():
  # λ = <0, 0, 0, -1, 0, 2, 0, 0> represents MSE: γ = 2x - 2h; zero-error γ = 0.
  theta = jnp.array([0, 0, 0, -1, 0, 2, 0, 0], jnp.float32)
  probs, labels = random_batch(8, soft=True)
  np.testing.assert_allclose(T.gamma_taylorglo(theta, probs, labels), T.gamma_mse(probs, labels),
                             atol=1e-6)
  np.testing.assert_allclose(T.zero_error_coefficients(theta), [0, 0, 0], atol=1e-7)


@pytest.mark.parametrize("n", [2, 10, 100])
def test_null_epoch_published_losses(n):
  # Eqs. 6.38 (signs corrected), 6.39, 6.40.
  np.testing.assert_allclose(T.null_epoch(ce_probs, n, space="probs"), [0, n], rtol=1e-5)
  np.testing.assert_allclose(T.null_epoch(mse_probs, n, space="probs"), [-2 / n, 2 - 2 / n],
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(T.null_epoch(baikal_probs, n, space="probs"), [n, n + n * n],
                             rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# Trainability invariant


@pytest.mark.parametrize("space", ["probs", "logits"])
@pytest.mark.parametrize("loss", [ce_probs, mse_probs, baikal_probs])
def test_published_losses_are_trainable(loss, space):
  fn = loss if space == "probs" else on_logits(loss)
  for n in (2, 10, 100):
    assert T.is_trainable_loss(fn, n, space=space)


def test_project_cross_entropy_trainable_and_negated_is_not():
  assert T.is_trainable_loss(cross_entropy, 10)
  assert not T.is_trainable_loss(lambda z, x: -cross_entropy(z, x), 10)


def test_is_trainable_batched_scalar_and_jit():
  thetas = jax.random.normal(jax.random.PRNGKey(9), (64, 8)) * 1.2
  batched = T.is_trainable(thetas, 10)
  assert batched.shape == (64,) and batched.dtype == jnp.bool_
  scalar = np.array([bool(T.is_trainable(t, 10)) for t in thetas])
  np.testing.assert_array_equal(batched, scalar)
  jitted = jax.jit(T.is_trainable, static_argnums=1)(thetas, 10)
  np.testing.assert_array_equal(jitted, batched)
  assert 0 < int(batched.sum()) < 64  # both outcomes occur at σ = 1.2


def test_is_trainable_matches_autodiff_null_epoch():
  # Independent route: γ of the probability-space polynomial at h = 1/n, then eq. 6.49.
  n = 10
  thetas = jax.random.normal(jax.random.PRNGKey(10), (32, 8))
  probs = jnp.full((n,), 1 / n)
  labels = jax.nn.one_hot(0, n)
  want, want_centred = [], []
  for t in thetas:
    g = T.gamma(functools.partial(taylorglo_probs, t), probs, labels, space="probs")
    want.append(bool(g[0] > (n - 1) * g[1]))
    want_centred.append(bool(g[0] > g[1]))
  np.testing.assert_array_equal(T.is_trainable(thetas, n), want)
  np.testing.assert_array_equal(T.is_trainable(thetas, n, rule="centred"), want_centred)


def test_is_trainable_known_cases():
  assert not bool(T.is_trainable(jnp.zeros(8), 10))  # "zero gradients everywhere" (§6.5)
  assert bool(T.is_trainable(T.theta_from_c_coefficients(eq641_c()), 10))
  assert bool(T.is_trainable(jnp.array([0, 0, 0, -1, 0, 2, 0, 0.]), 10))  # MSE
  assert not bool(T.is_trainable(-jnp.array([0, 0, 0, -1, 0, 2, 0, 0.]), 10))


def test_centred_rule_is_sign_of_null_epoch_attraction():
  n = 10
  thetas = jax.random.normal(jax.random.PRNGKey(11), (32, 8))
  ne = T.null_epoch(thetas, n)
  s = T.attraction(1 - 1 / n, ne.gamma_target, ne.gamma_nontarget, n)
  np.testing.assert_array_equal(T.is_trainable(thetas, n, rule="centred"), s > 0)


def test_is_trainable_errors():
  with pytest.raises(ValueError, match="shape"):
    T.is_trainable(jnp.zeros(7), 10)
  with pytest.raises(ValueError, match="n must be"):
    T.is_trainable(jnp.zeros(8), 1)
  with pytest.raises(ValueError, match="rule"):
    T.is_trainable(jnp.zeros(8), 10, rule="paper")


# ---------------------------------------------------------------------------------------------
# Attraction


@functools.partial(jax.jit, static_argnums=(3,))
def exact_one_step_change(eps, g_t, g_nt, n, step):
  """Target softmax change after Δf = step · J^T γ, with J from autodiff (independent path)."""
  h = jnp.full(n, eps / (n - 1)).at[0].set(1 - eps)
  logits = jnp.log(h)
  jac = jax.jacobian(jax.nn.softmax)(logits)  # jac[k, j] = ∂h_k/∂f_j
  g = jnp.full(n, g_nt).at[0].set(g_t)
  new = jax.nn.softmax(logits + step * g @ jac)
  return new[0] - h[0]


@pytest.fixture
def x64():
  jax.config.update("jax_enable_x64", True)
  yield
  jax.config.update("jax_enable_x64", False)


@pytest.mark.parametrize("n", [2, 3, 10])
def test_attraction_equals_exact_one_step_change(n, x64):
  rng = np.random.default_rng(n)
  m = 32
  eps = rng.uniform(0.01, 0.99, m)
  g_t, g_nt = rng.normal(size=(2, m)) * rng.choice([0.1, 3.0, 30.0], size=m)
  step = rng.uniform(0.1, 2.0, m)
  want = jax.vmap(exact_one_step_change, in_axes=(0, 0, 0, None, 0))(eps, g_t, g_nt, n, step)
  got = T.attraction(jnp.asarray(eps), g_t, g_nt, n, step_size=jnp.asarray(step))
  assert got.dtype == jnp.float64
  np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_attraction_printed_eq_6_51_agrees_only_when_nontarget_gamma_is_zero(x64):
  def printed(eps, g_t, g_nt, n):
    a = np.exp(eps * (eps - 1) * (g_nt - g_t))
    b = np.exp((eps * (eps - 1) * g_t * (n - 1) + eps * g_nt * (eps * (n - 3) + n - 1))
               / (n - 1)**2)
    return eps * (eps - 1) * (a - b) / ((eps - 1) * a - eps * b)

  eps, n = 0.3, 10
  np.testing.assert_allclose(T.attraction(jnp.float64(eps), 2.0, 0.0, n), printed(eps, 2.0, 0.0, n),
                             rtol=1e-12)
  assert abs(float(T.attraction(jnp.float64(eps), 2.0, 1.0, n)) - printed(eps, 2.0, 1.0, n)) > 1e-3


def test_attraction_positive_for_cross_entropy_everywhere():
  eps = np.concatenate([np.geomspace(1e-6, 0.5, 200), 1 - np.geomspace(1e-6, 0.5, 200)])
  for n in (2, 10):
    for loss, kw in [(ce_probs, dict(space="probs")), (cross_entropy, {})]:
      curve = T.characteristic_curve(loss, n, eps, **kw)
      assert np.all(np.asarray(curve.strength) > 0), (n, loss)


def test_characteristic_curves_qualitative_fig_6_1():
  eps = np.linspace(0.01, 0.99, 99)
  mse = T.characteristic_curve(on_logits(mse_probs), 10, eps).strength
  assert np.all(np.asarray(mse) > 0)  # Fig. 6.1c
  baikal = np.asarray(T.characteristic_curve(on_logits(baikal_probs), 10, eps).strength)
  assert baikal[0] < 0 < baikal[-1]  # Fig. 6.1d: repulsion when confident, attraction otherwise
  taylor = np.asarray(T.characteristic_curve(T.theta_from_c_coefficients(eq641_c()), 10,
                                             eps).strength)
  assert np.all(np.isfinite(taylor)) and np.all(taylor <= eps + 1e-6)
  assert np.all(taylor >= -(1 - eps) - 1e-6)


@pytest.mark.parametrize("name", ["ce", "baikal", "taylorglo"])
def test_characteristic_curve_equals_sgd_step_on_logits(name):
  # One SGD step on the logits with learning rate n·η moves them by η Σ_k γ_k J_kj.
  n, eta = 10, 0.05
  theta = T.theta_from_c_coefficients(eq641_c()) / 100.0
  loss = {"ce": cross_entropy, "baikal": on_logits(baikal_probs),
          "taylorglo": functools.partial(taylorglo, theta)}[name]
  eps = np.array([0.05, 0.3, 0.6, 0.85])
  curve = T.characteristic_curve(loss, n, eps, step_size=eta)
  probs, labels = T.attraction_state(eps, n)
  logits = jnp.log(probs)
  grads = jax.grad(lambda z: jnp.sum(loss(z, labels)))(logits)
  new = jax.nn.softmax(logits - n * eta * grads, axis=-1)
  np.testing.assert_allclose(curve.strength, new[:, 0] - probs[:, 0], rtol=2e-3, atol=2e-6)


def test_attraction_extreme_values_finite():
  s = T.attraction(jnp.array([1e-3, 0.5, 0.999]), jnp.array([1e6, -1e6, 1e6]), 0.0, 10)
  assert np.all(np.isfinite(s))
  np.testing.assert_allclose(s, [1e-3, -0.5, 0.999], rtol=1e-3)


def test_attraction_state_errors():
  with pytest.raises(ValueError, match="eps"):
    T.attraction_state([0.0, 0.5], 10)
  with pytest.raises(ValueError, match="n must be"):
    T.characteristic_curve(cross_entropy, 1)


# ---------------------------------------------------------------------------------------------
# Label smoothing (§6.7)


@pytest.mark.parametrize("seed", [0, 1])
def test_label_smoothing_reparameterization_training_signal(seed):
  key = jax.random.PRNGKey(100 + seed)
  k1, k2, k3 = jax.random.split(key, 3)
  n = [3, 10, 7][seed]
  alpha = [0.1, 0.25, 0.6][seed]
  theta = jax.random.normal(k1, (8,)) * 1.5
  logits = jax.random.normal(k2, (32, n)) * 2
  hard = jax.nn.one_hot(jax.random.randint(k3, (32,), 0, n), n)
  smooth = optax.smooth_labels(hard, alpha)
  theta_hat = T.label_smoothing_theta(theta, alpha, n)

  @jax.jit
  def grad(t, labels):
    return jax.grad(lambda z: jnp.mean(taylorglo(t, z, labels)))(logits)

  g_smooth = grad(theta, smooth)
  g_hat = grad(theta_hat, hard)
  np.testing.assert_allclose(g_hat, g_smooth, rtol=1e-4, atol=1e-5 * float(jnp.abs(g_smooth).max()))
  # Smoothing does matter: the original loss on hard labels trains differently.
  assert float(jnp.abs(grad(theta, hard) - g_smooth).max()) > 1e-2 * float(jnp.abs(g_smooth).max())
  probs = jax.nn.softmax(logits)
  np.testing.assert_allclose(T.gamma_taylorglo(theta_hat, probs, hard),
                             T.gamma_taylorglo(theta, probs, smooth), rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(T.label_smoothing_theta_inverse(theta_hat, alpha, n), theta,
                             rtol=1e-4, atol=1e-4)


def test_label_smoothing_cross_entropy_equivalence_of_gammas():
  # ĉ applied to CE's own c's: CE with smoothing == hard-label loss with γ̂ (closed form check).
  n, alpha = 10, 0.2
  c = T.CCoefficients(*(jnp.float32(v) for v in (0.0, -2.0, 0.0, 0.0, 2.0, 0.0)))  # MSE
  c_hat = T.label_smoothing_c(c, alpha, n)
  probs, hard = random_batch(12, n=n)
  smooth = optax.smooth_labels(hard, alpha)

  def g(cc, x):
    return (cc.c1 + cc.c_h * probs + cc.c_hh * probs**2 + cc.c_hy * probs * x + cc.c_y * x
            + cc.c_yy * x**2)

  np.testing.assert_allclose(g(c_hat, hard), T.gamma_mse(probs, smooth), rtol=1e-5, atol=1e-6)


def test_label_smoothing_errors():
  with pytest.raises(ValueError, match="alpha"):
    T.label_smoothing_theta(jnp.zeros(8), 1.0, 10)
  with pytest.raises(ValueError, match="alpha"):
    T.label_smoothing_theta(jnp.zeros(8), -0.1, 10)


# ---------------------------------------------------------------------------------------------
# Every registered loss


def _registered_losses():
  from glojax import losses
  out = []
  for name in losses.names():
    if name == "taylorglo":
      out.append(losses.get("taylorglo(theta=[0, 0, 0, -1, 0, 2, 0, 0])"))
    else:
      out.append(losses.get(name))
  return out


def test_registry_mse_and_baikal_gamma_match_closed_forms():
  from glojax import losses
  probs, labels = random_batch(13)
  for name, closed in [("mse", T.gamma_mse), ("baikal", T.gamma_baikal)]:
    got = T.gamma(losses.get(name), probs, labels)
    np.testing.assert_allclose(got, T.centre_gamma(closed(probs, labels), probs), rtol=1e-4,
                               atol=1e-4)


def test_every_registered_loss_has_finite_gamma_and_curve():
  eps = np.linspace(0.05, 0.95, 7)
  for loss in _registered_losses():
    curve = T.characteristic_curve(loss, 10, eps)
    assert np.all(np.isfinite(curve.strength)), loss.spec
    assert np.all(np.abs(curve.strength) < 1), loss.spec
    ne = T.null_epoch(loss, 10)
    assert np.isfinite(ne.gamma_target) and np.isfinite(ne.gamma_nontarget), loss.spec
    if loss.name in ("cross_entropy", "mse", "baikal", "baikal_cma", "label_smoothing",
                     "polyloss", "taylorglo"):
      assert T.is_trainable_loss(loss, 10), loss.spec
