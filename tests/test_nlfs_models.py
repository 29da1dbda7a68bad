"""The NLFS paper's models: parameter counts pinned (NLFS §3.5.1, §3.5; Keras V2-S)."""

import jax
import jax.numpy as jnp
import pytest

from glojax import models


def _counts(name, shape, num_classes=10):
  model = models.get(name, num_classes=num_classes)
  variables = jax.eval_shape(lambda: model.init(
      {"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(1)},
      jnp.zeros((1,) + shape), train=False))
  stats = sum(x.size for x in jax.tree_util.tree_leaves(variables.get("batch_stats", {})))
  return models.count_params(variables), stats


@pytest.mark.parametrize("name, shape, params, stats", [
    ("nlfs_convnet", (32, 32, 3), 14_666, 0),       # "14,000 parameters"
    ("nlfs_convnet", (28, 28, 1), 14_378, 0),
    ("resnet9v2", (32, 32, 3), 29_530, 352),        # "30,000 parameters"
    # Keras EfficientNetV2S(classes=10): 20,344,170 in all = "20.3 million" (NLFS §3.5).
    ("efficientnetv2_s", (96, 96, 3), 20_190_298, 153_872),
])
def test_parameter_counts(name, shape, params, stats):
  assert _counts(name, shape) == (params, stats)


def test_efficientnetv2_s_matches_keras_imagenet_count():
  # keras.applications.EfficientNetV2S(weights=None): 21,612,360 total,
  # 21,458,488 trainable.
  params, stats = _counts("efficientnetv2_s", (96, 96, 3), num_classes=1000)
  assert (params, params + stats) == (21_458_488, 21_612_360)


@pytest.mark.parametrize("name, shape", [("nlfs_convnet", (32, 32, 3)),
                                         ("resnet9v2", (32, 32, 3)),
                                         ("efficientnetv2_s", (96, 96, 3))])
def test_train_mode_traces_with_dropout_and_batch_norm(name, shape):
  # Traced with eval_shape (no compile): shapes of the train-mode pass with dropout,
  # stochastic depth and batch-norm updates.
  model = models.get(name, num_classes=10)
  x = jnp.ones((2,) + shape)

  def train_pass():
    variables = model.init(jax.random.PRNGKey(0), x, train=False)
    rngs = {"dropout": jax.random.PRNGKey(1)}
    if "batch_stats" not in variables:
      return model.apply(variables, x, train=True, rngs=rngs)
    return model.apply(variables, x, train=True, rngs=rngs, mutable=["batch_stats"])[0]
  assert jax.eval_shape(train_pass).shape == (2, 10)
