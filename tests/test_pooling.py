"""glojax.models.pooling.max_pool: nn.max_pool's values, its gradients where the window
maximum is unique, no select-and-scatter in the models' gradients, models unchanged."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from glojax import models
from glojax.models.pooling import max_pool, relu_max_pool

# (input shape, window = stride, padding): odd and even sizes, 1-D/2-D/3-D, both paddings.
CASES = [
    ((2, 8, 8, 3), (2, 2), "VALID"),
    ((2, 7, 9, 3), (2, 2), "VALID"),   # odd sizes: the remainder row/column is dropped
    ((2, 7, 9, 3), (2, 2), "SAME"),    # odd sizes: -inf padding (0, 1) per axis
    ((2, 10, 7, 1), (3, 3), "VALID"),
    ((2, 10, 7, 1), (3, 3), "SAME"),   # pads (1, 1) and (1, 1): split low/high
    ((2, 6, 9, 2), (2, 4), "SAME"),    # anisotropic window
    ((3, 9, 4), (2,), "VALID"),        # 1-D
    ((1, 5, 6, 7, 2), (2, 2, 2), "SAME"),  # 3-D
]
IDS = [f"{s}-{w}-{p}" for s, w, p in CASES]


def _normal(seed, shape):
  # NumPy, not jax.random: each new shape would compile a threefry kernel (~1 s CPU).
  return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


def _flax(x, window, padding):
  return nn.max_pool(x, window, strides=window, padding=padding)


@pytest.mark.parametrize("shape,window,padding", CASES, ids=IDS)
def test_values_equal_flax_exactly(shape, window, padding):
  x = _normal(0, shape)
  relu = jax.nn.relu(x)  # many tied zeros, as after a ReLU layer
  for inp in (x, relu, -jnp.abs(x) - 1e6):
    ours = jax.jit(lambda x: max_pool(x, window, window, padding))(inp)
    ref = jax.jit(lambda x: _flax(x, window, padding))(inp)
    assert ours.shape == ref.shape and ours.dtype == ref.dtype
    np.testing.assert_array_equal(ours, ref)


@pytest.mark.parametrize("shape,window,padding", CASES, ids=IDS)
def test_gradients_equal_flax_where_the_maximum_is_unique(shape, window, padding):
  x = _normal(1, shape)  # continuous: no ties
  cot = _normal(2, jax.eval_shape(lambda x: _flax(x, window, padding), x).shape)
  grad = lambda f: jax.jit(jax.grad(lambda x: jnp.sum(cot * f(x))))(x)
  ours = grad(lambda x: max_pool(x, window, window, padding))
  ref = grad(lambda x: _flax(x, window, padding))
  np.testing.assert_array_equal(ours, ref)
  assert int(jnp.sum(ours != 0)) == cot.size  # one winner per window


def test_tied_maximum_splits_the_gradient_evenly():
  x = jnp.array([[1., 1., 0., 5.], [0., 0., 0., 5.]])[None, :, :, None]  # two 2×2 windows
  g = jax.grad(lambda x: jnp.sum(max_pool(x, (2, 2), (2, 2))))(x)[0, :, :, 0]
  np.testing.assert_array_equal(g, [[0.5, 0.5, 0., 0.5], [0., 0., 0., 0.5]])
  g_ref = jax.grad(lambda x: jnp.sum(_flax(x, (2, 2), "VALID")))(x)[0, :, :, 0]
  # Same total per window; flax routes it to one of the tied elements.
  np.testing.assert_array_equal(g.reshape(2, 2, 2).sum((0, 2)),
                                g_ref.reshape(2, 2, 2).sum((0, 2)))


@pytest.mark.parametrize("window,strides,padding", [
    ((2, 2), (2, 2), "VALID"), ((2, 2), (2, 2), "SAME"), ((3, 3), (2, 2), "SAME")])
def test_relu_max_pool_is_max_pool_of_relu(window, strides, padding):
  x = _normal(6, (2, 7, 9, 3))
  ref_fn = lambda x: nn.max_pool(nn.relu(x), window, strides=strides, padding=padding)
  ours_fn = lambda x: relu_max_pool(x, window, strides, padding)
  np.testing.assert_array_equal(jax.jit(ours_fn)(x), jax.jit(ref_fn)(x))
  cot = _normal(7, jax.eval_shape(ref_fn, x).shape)
  grad = lambda f: jax.jit(jax.grad(lambda x: jnp.sum(cot * f(x))))(x)
  # Equal everywhere: where the window max is <= 0 both give 0 (ReLU's gradient at the
  # tied zeros of max(relu(x)) is 0).
  np.testing.assert_array_equal(grad(ours_fn), grad(ref_fn))


@pytest.mark.parametrize("window,strides,padding", [
    ((3, 3), (2, 2), "SAME"),            # overlapping (the GLO CIFAR CNN's pool)
    ((2, 2), (1, 1), "VALID"),
    ((2, 2), (2, 2), ((0, 1), (1, 0))),  # explicit padding
])
def test_other_windows_fall_back_to_flax(window, strides, padding):
  x = _normal(3, (2, 7, 8, 2))
  np.testing.assert_array_equal(max_pool(x, window, strides, padding),
                                nn.max_pool(x, window, strides=strides, padding=padding))


def test_mismatched_window_and_strides_raise():
  with pytest.raises(ValueError, match="same length"):
    max_pool(jnp.zeros((1, 4, 4, 1)), (2, 2), (2,))


def _flax_pool(x, window_shape, strides=None, padding="VALID"):
  return nn.max_pool(x, window_shape, strides=strides, padding=padding)


# (name, input side, channels, parameters: hand-counted for the two MNIST models).
MODELS = [
    # conv 3·3·1·8+8 + conv 3·3·8·16+16 + fc 784·64+64 + fc 64·10+10
    ("small_cnn", 28, 1, 80 + 1_168 + 50_240 + 650),
    # conv 5·5·1·32+32 + conv 5·5·32·64+64 + fc 3136·1024+1024 + fc 1024·10+10
    ("mnist_cnn", 28, 1, 832 + 51_264 + 3_212_288 + 10_250),
    ("alexnet", 32, 3, 2_472_266),
    ("glo_cifar_cnn", 24, 3, 1_068_298),
]


def _grad_jaxpr(model, side, channels):
  x = jnp.zeros((1, side, side, channels))
  params = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), x, train=False))
  return str(jax.make_jaxpr(jax.grad(lambda p: jnp.sum(model.apply(p, x, train=False))))(
      params))


@pytest.mark.parametrize("name,side,channels,count", MODELS, ids=[m[0] for m in MODELS])
def test_models_take_the_fast_path_with_unchanged_counts(name, side, channels, count):
  model = models.get(name, num_classes=10)
  shapes = jax.eval_shape(lambda: model.init(
      jax.random.PRNGKey(0), jnp.zeros((1, side, side, channels)), train=False))
  assert models.count_params(shapes) == count
  # Non-overlapping pools leave no reduce_window (whose gradient is select-and-scatter)
  # in the gradient program; the GLO CIFAR CNN's overlapping 3×3/2 pools keep it.
  assert ("reduce_window" in _grad_jaxpr(model, side, channels)) == (
      name == "glo_cifar_cnn"), name


@pytest.mark.parametrize("name", ["small_cnn", "mnist_cnn"])
def test_models_outputs_and_gradients_unchanged(monkeypatch, mnist5k, name):
  model = models.get(name, num_classes=10)
  # Two random images (unique window maxima) and two real digits, whose zero background
  # makes conv outputs equal to the bias over whole windows: tied maxima.
  x = jnp.concatenate([jnp.abs(_normal(4, (2, 28, 28, 1))),
                       jnp.asarray(mnist5k.train.images[:2])])
  labels = jnp.array([3, 7, 1, 0])
  # One compiled init: eager flax init would compile every initializer separately.
  params = jax.jit(lambda k: model.init(k, x, train=False))(jax.random.PRNGKey(5))["params"]

  def loss_and_grad():
    def loss(params):
      logits = model.apply({"params": params}, x, train=False)
      return jnp.mean(-jax.nn.log_softmax(logits)[jnp.arange(4), labels]), logits
    return jax.jit(jax.value_and_grad(loss, has_aux=True))(params)

  (ours_loss, ours_logits), ours_grad = loss_and_grad()
  # The textbook form: ReLU, then flax's pool.
  monkeypatch.setattr(models, "relu_max_pool", lambda x, w, strides, padding="VALID":
                      nn.max_pool(nn.relu(x), w, strides=strides, padding=padding))
  (ref_loss, ref_logits), ref_grad = loss_and_grad()
  np.testing.assert_allclose(ours_logits, ref_logits, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(ours_loss, ref_loss, rtol=1e-6)
  jax.tree_util.tree_map(
      lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), ours_grad,
      ref_grad)
