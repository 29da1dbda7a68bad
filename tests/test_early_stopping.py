"""Early stopping in the population trainer: documented fitness, untouched neighbours."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from glojax import data, models
from glojax.train.early_stopping import EarlyStopping
from glojax.train.population import evaluate_population
from glojax.train.trainer import TrainConfig, Trainer


def _scaled_ce(scale, logits, labels):
  # A one-parameter loss family: scale > 0 learns, scale ≤ 0 cannot.
  return scale[0] * optax.softmax_cross_entropy(logits, labels)


@pytest.fixture(scope="module")
def setup():
  dataset = data.load("mnist5k")
  model = models.get("mlp", num_classes=10, hidden=(8,))
  config = TrainConfig(steps=15, batch_size=32, learning_rate=0.5, steps_per_call=5)
  trainer = Trainer(model, dataset, _scaled_ce, config)
  scales = jnp.array([[1.0], [-1.0], [0.5], [0.0], [0.7]])
  keys = jax.random.split(jax.random.PRNGKey(3), 5)
  # The same training cut at the check's chunk boundary (10 steps).
  short = Trainer(model, dataset, _scaled_ce, dataclasses.replace(config, steps=10))
  return trainer, scales, keys, short


CHECK = EarlyStopping(((6, 0.3),), train_examples=4000)


@pytest.mark.parametrize("strategy", ["sequential", "unroll"])
def test_survivors_are_unchanged_and_stopped_get_their_accuracy_at_the_stop(setup,
                                                                             strategy):
  trainer, scales, keys, short = setup
  plain = evaluate_population(trainer, scales, keys, strategy=strategy, nan_retries=0)
  early = evaluate_population(trainer, scales, keys, strategy=strategy, nan_retries=0,
                              early_stopping=CHECK)
  stopped = early.metrics["stopped"]
  # Losses that cannot learn stop (scale ≤ 0); the others survive.
  np.testing.assert_array_equal(stopped, [False, True, False, True, False])
  # Survivors: bit-for-bit the result without early stopping.
  np.testing.assert_array_equal(early.fitness[~stopped], plain.fitness[~stopped])
  # The check lands on the chunk boundary at 10 (steps_per_call 5); stopped
  # candidates' fitness is their validation accuracy after 10 steps.
  np.testing.assert_array_equal(early.metrics["steps_trained"], np.where(stopped, 10, 15))
  np.testing.assert_array_equal(early.metrics["stopped_check"], np.where(stopped, 0, -1))
  at_stop = evaluate_population(short, scales, keys, strategy=strategy, nan_retries=0)
  np.testing.assert_array_equal(early.fitness[stopped], at_stop.fitness[stopped])
  # Training accuracy: the 10-step weights on the (whole) train split.
  on_train = evaluate_population(short, scales, keys, strategy=strategy, nan_retries=0,
                                 split="train")
  np.testing.assert_allclose(early.metrics["train_accuracy"],
                             on_train.metrics["accuracy"], atol=1e-6)


def test_a_threshold_nobody_misses_changes_nothing(setup):
  trainer, scales, keys, _ = setup
  plain = evaluate_population(trainer, scales, keys, strategy="sequential", nan_retries=0)
  early = evaluate_population(trainer, scales, keys, strategy="sequential", nan_retries=0,
                              early_stopping=EarlyStopping(((5, 0.0), (12, 0.0))))
  assert not early.metrics["stopped"].any()
  np.testing.assert_array_equal(early.fitness, plain.fitness)
  np.testing.assert_array_equal(early.metrics["steps_trained"], 15)


def test_vmap_repacks_survivors_with_the_same_results_up_to_rounding(setup):
  trainer, scales, keys, _ = setup
  plain = evaluate_population(trainer, scales, keys, strategy="vmap", nan_retries=0)
  early = evaluate_population(trainer, scales, keys, strategy="vmap", nan_retries=0,
                              early_stopping=CHECK)
  survivors = ~early.metrics["stopped"]
  np.testing.assert_allclose(early.fitness[survivors], plain.fitness[survivors], atol=0.01)


def test_early_stopping_validation():
  with pytest.raises(ValueError, match="increasing steps"):
    EarlyStopping(((10, 0.1), (5, 0.2)))
  with pytest.raises(ValueError, match="accuracies"):
    EarlyStopping(((10, 1.5),))
  with pytest.raises(ValueError, match="train_examples"):
    EarlyStopping(((10, 0.5),), train_examples=0)
  assert EarlyStopping(((1, 0.1), (95, 0.2))).boundaries(50, 10) == [(10, 0.1), (50, 0.2)]
