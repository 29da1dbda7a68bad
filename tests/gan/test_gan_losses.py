"""GAN loss triples: Table 7.3 against the textbook losses, Taylor family, specs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from glojax import gan


def _outputs(seed, shape=(6, 3, 3, 1)):
  rng = np.random.default_rng(seed)
  return (jnp.asarray(rng.normal(0, 2, shape), jnp.float32),
          jnp.asarray(rng.normal(0, 2, shape), jnp.float32))


# Textbook forms in the papers' variables: D(x) a probability σ(d) for the original GAN
# (dissertation eqs. 2.3, 2.4, 2.6), a critic value for WGAN (eq. 2.9), a linear output
# for LSGAN (Mao et al. 2017 with a = 0, b = 1, c = 1; Table 7.3's ½ on both D terms).
def _textbook(name):
  p = jax.nn.sigmoid
  if name == "minimax":
    d_loss = lambda r, f: -jnp.mean(jnp.log(p(r))) - jnp.mean(jnp.log(1 - p(f)))
    g_loss = lambda f: jnp.mean(jnp.log(1 - p(f)))
  elif name == "non_saturating":
    d_loss = lambda r, f: -jnp.mean(jnp.log(p(r))) - jnp.mean(jnp.log(1 - p(f)))
    g_loss = lambda f: -jnp.mean(jnp.log(p(f)))
  elif name == "wgan":
    d_loss = lambda r, f: -(jnp.mean(r) - jnp.mean(f))
    g_loss = lambda f: -jnp.mean(f)
  else:
    d_loss = lambda r, f: 0.5 * jnp.mean((r - 1) ** 2) + 0.5 * jnp.mean(f ** 2)
    g_loss = lambda f: 0.5 * jnp.mean((f - 1) ** 2)
  return d_loss, g_loss


@pytest.mark.parametrize("name", ["minimax", "non_saturating", "wgan", "lsgan"])
@pytest.mark.parametrize("seed", range(3))
def test_table_7_3_matches_textbook_gradients(name, seed):
  loss = gan.get(name)
  d_text, g_text = _textbook(name)
  real, fake = _outputs(seed)
  ours_d = jax.grad(loss.discriminator_loss, argnums=(0, 1))(real, fake)
  text_d = jax.grad(d_text, argnums=(0, 1))(real, fake)
  for a, b in zip(ours_d, text_d):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(jax.grad(loss.generator_loss)(fake), jax.grad(g_text)(fake),
                             rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(loss.discriminator_loss(real, fake), d_text(real, fake),
                             rtol=1e-5)
  np.testing.assert_allclose(loss.generator_loss(fake), g_text(fake), rtol=1e-5)


def test_sigmoid_forms_stay_finite_where_textbook_overflows():
  d = jnp.asarray([-200.0, 200.0])
  for name in ("minimax", "non_saturating"):
    loss = gan.get(name)
    for comp in (loss.d_real, loss.d_fake, loss.g_fake):
      assert np.all(np.isfinite(comp(d)))
      assert np.all(np.isfinite(jax.grad(lambda x: jnp.sum(comp(x)))(d)))


@pytest.mark.parametrize("name,theta", [("wgan", gan.WGAN_THETA),
                                        ("lsgan", gan.LSGAN_THETA)])
def test_wgan_and_lsgan_are_exact_taylor_triples(name, theta):
  closed, taylor = gan.get(name), gan.get(gan.taylor_spec(theta))
  d = jnp.linspace(-5, 5, 41)
  for comp in gan.COMPONENTS:
    np.testing.assert_allclose(getattr(taylor, comp)(d), getattr(closed, comp)(d),
                               atol=1e-5)


def test_facade_triple_hand_values():
  loss = gan.get("taylorglo_facade")
  # One unit above each centre: k1 + k2 + k3; two above the g centre: 4 k2 (k1 = k3 = 0).
  np.testing.assert_allclose(loss.d_real(jnp.float32(8.3399 + 1)),
                             5.6484 + 9.4935 + 8.2695, rtol=1e-5)
  np.testing.assert_allclose(loss.d_fake(jnp.float32(8.6177 + 1)),
                             6.7549 + 2.4328 + 8.0006, rtol=1e-5)
  np.testing.assert_allclose(loss.g_fake(jnp.float32(5.2232 + 2)), 4 * 5.2849, rtol=1e-5)
  np.testing.assert_allclose(loss.d_real(jnp.float32(8.3399)), 0.0, atol=1e-6)
  assert loss.hparams == {"learning_rate": 1e-4, "feature_weight": 4.0877,
                          "perceptual_weight": 10.3155}
  assert loss.spec == "taylorglo_facade"


def test_taylor_component_formula():
  p = jnp.asarray([0.5, 2.0, -3.0, 0.25])
  d = jnp.asarray([-1.0, 0.5, 2.0])
  h = d - 0.5
  np.testing.assert_allclose(gan.taylor_component(p, d), 2 * h - 3 * h**2 + 0.25 * h**3,
                             rtol=1e-6)


def test_taylor_triple_layout_and_vmap():
  theta = np.arange(24, dtype=np.float32).reshape(2, 12)
  tri = gan.TaylorTriple.from_theta(theta)
  np.testing.assert_array_equal(tri.d_fake, theta[:, 4:8])
  np.testing.assert_array_equal(tri.to_theta(), theta)
  d = jnp.linspace(-1, 1, 5)
  batched = jax.vmap(gan.TAYLOR_FNS.g_fake, in_axes=(0, None))(tri, d)
  for k in range(2):
    one = gan.TaylorTriple.from_theta(theta[k])
    np.testing.assert_allclose(batched[k], gan.TAYLOR_FNS.g_fake(one, d), rtol=1e-6)
  with pytest.raises(ValueError, match="theta"):
    gan.TaylorTriple.from_theta(np.zeros(8))


@pytest.mark.parametrize("seed", range(3))
def test_taylor_spec_round_trip_is_lossless(seed):
  rng = np.random.default_rng(seed)
  theta = rng.uniform(-10, 10, 12).astype(np.float32)
  spec = gan.taylor_spec(theta, learning_rate=3e-4, perceptual_weight=7.5)
  loss = gan.get(spec)
  assert gan.to_spec(loss) == spec and gan.get(gan.to_spec(loss)) == loss
  np.testing.assert_array_equal(loss.theta, theta)
  assert loss.hparams == {"learning_rate": 3e-4, "perceptual_weight": 7.5}


@pytest.mark.parametrize("spec,canonical", [
    ("wgan", "wgan"), (" wgan() ", "wgan"), ("lsgan(feature_weight=3)",
                                             "lsgan(feature_weight=3.0)"),
    ("taylorglo_facade(learning_rate=1e-4)", "taylorglo_facade"),
    ("taylorglo_facade(learning_rate=2e-4)", "taylorglo_facade(learning_rate=0.0002)"),
    ("gan_taylor(theta=[0,-1,0,0, 0,1,0,0, 0,-1,0,0])",
     "gan_taylor(theta=[0.0, -1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0])"),
])
def test_canonical_specs(spec, canonical):
  assert gan.get(spec).spec == canonical
  assert gan.get(canonical).spec == canonical


def test_with_hparams_replaces_only_the_hyperparameters():
  best = gan.taylor_spec(np.arange(12) / 4, learning_rate=8e-4, feature_weight=19.0)
  moved = gan.with_hparams("wgan", gan.get(best).hparams)
  assert moved.spec == "wgan(learning_rate=0.0008, feature_weight=19.0)"
  again = gan.with_hparams(best, {"perceptual_weight": 2.0})
  np.testing.assert_array_equal(again.theta, gan.get(best).theta)
  assert again.hparams == {"learning_rate": 8e-4, "feature_weight": 19.0,
                           "perceptual_weight": 2.0}
  facade = gan.with_hparams("taylorglo_facade", {"learning_rate": 1e-4})
  assert facade.spec == "taylorglo_facade"


def test_parameterized_form_shares_functions():
  fns_a, pa = gan.get_parameterized("gan_taylor(theta=[1,2,3,4,5,6,7,8,9,1,2,3])")
  fns_b, pb = gan.get_parameterized("taylorglo_facade")
  assert fns_a is fns_b is gan.TAYLOR_FNS
  assert isinstance(pa, gan.TaylorTriple) and isinstance(pb, gan.TaylorTriple)
  assert gan.get_parameterized("wgan")[1] == ()


@pytest.mark.parametrize("spec,match", [
    ("wgn", "did you mean"),
    ("gan_taylor", "requires theta"),
    ("gan_taylor(theta=[1, 2, 3])", "12 numbers, got 3"),
    ("gan_taylor(theta=[1e39,0,0,0,0,0,0,0,0,0,0,0])", "finite"),
    ("wgan(theta=[0,0,0,0,0,0,0,0,0,0,0,0])", "no parameter 'theta'"),
    ("wgan(lr=1e-4)", "no parameter 'lr'"),
    ("wgan(learning_rate=0)", "learning_rate=0.0 must be finite and > 0"),
    ("wgan(feature_weight=-1)", "feature_weight=-1.0"),
    ("wgan(feature_weight='a')", "must be a number"),
    ("wgan +", "cannot parse"),
])
def test_bad_specs_raise_one_line_errors(spec, match):
  with pytest.raises(ValueError, match=match):
    gan.get(spec)


def test_to_spec_rejects_non_gan_losses():
  with pytest.raises(ValueError, match="not a GanLoss"):
    gan.to_spec("wgan")
