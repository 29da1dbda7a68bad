"""Population trainer: vmap == one-by-one, NaN isolation and retries, error cases."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from glojax import losses, models
from glojax.train import TrainConfig, Trainer, evaluate_population

CONFIG = TrainConfig(steps=30, batch_size=32, learning_rate=0.1, steps_per_call=10)


def _trainer(dataset, config=CONFIG):
  model = models.get("mlp", num_classes=10, hidden=(16,))
  return Trainer(model, dataset, losses.taylorglo, config)


def _thetas(k, seed=0):
  return jax.random.normal(jax.random.PRNGKey(seed), (k, 8)) * 1.2


def test_population_equals_training_alone(tiny_mnist):
  trainer = _trainer(tiny_mnist)
  thetas = _thetas(4)
  keys = jax.random.split(jax.random.PRNGKey(3), 4)
  pop = evaluate_population(trainer, thetas, keys, strategy="vmap")
  alone = [trainer.train(thetas[i], keys[i]) for i in range(4)]
  np.testing.assert_allclose(pop.metrics["loss"], [a["loss"] for a in alone], rtol=1e-4)
  np.testing.assert_allclose(pop.metrics["accuracy"], [a["accuracy"] for a in alone],
                             atol=1.01 / len(tiny_mnist.validation))
  # Different θ and keys really train differently (the comparison is not vacuous).
  assert len(set(np.round(pop.metrics["loss"], 5))) == 4
  for strategy in ("sequential", "unroll"):
    other = evaluate_population(trainer, thetas, keys, strategy=strategy)
    np.testing.assert_allclose(other.metrics["loss"], pop.metrics["loss"], rtol=1e-4)


def test_members_get_distinct_initializations(tiny_mnist):
  trainer = _trainer(tiny_mnist)
  keys = jax.random.split(jax.random.PRNGKey(0), 3)
  states = jax.vmap(trainer.init)(keys)
  kernels = states.params["Dense_0"]["kernel"]
  assert not np.allclose(kernels[0], kernels[1])
  # Same θ for everyone: only the keys differ, and so do the results.
  same = jnp.tile(_thetas(1), (3, 1))
  res = evaluate_population(trainer, same, keys)
  assert len(set(np.round(res.metrics["loss"], 6))) == 3


@pytest.mark.parametrize("poison", ["nan", "huge"])
def test_nan_candidate_gets_zero_and_spares_neighbours(tiny_mnist, poison):
  trainer = _trainer(tiny_mnist)
  thetas = np.asarray(_thetas(3, seed=5))
  bad = thetas.copy()
  bad[1] = np.nan if poison == "nan" else np.array([0, 0, -1e30, 0, 0, 0, 0, 0])
  keys = jax.random.split(jax.random.PRNGKey(7), 3)
  clean = evaluate_population(trainer, thetas, keys, nan_retries=0)
  dirty = evaluate_population(trainer, bad, keys, nan_retries=2)
  assert clean.metrics["finite"].all()
  assert dirty.fitness[1] == 0.0 and not dirty.metrics["finite"][1]
  assert dirty.attempts.tolist() == [1, 3, 1]  # retried twice, then given up
  # Neighbours are bit-for-bit what they were without the poisoned candidate.
  np.testing.assert_array_equal(dirty.fitness[[0, 2]], clean.fitness[[0, 2]])
  np.testing.assert_array_equal(dirty.metrics["loss"][[0, 2]], clean.metrics["loss"][[0, 2]])


def test_scan_loop_matches_python_loop(tiny_mnist):
  thetas, keys = _thetas(2), jax.random.split(jax.random.PRNGKey(1), 2)
  py = evaluate_population(_trainer(tiny_mnist, CONFIG), thetas, keys)
  scan_cfg = TrainConfig(**{**CONFIG.__dict__, "loop": "scan", "steps": 35})
  py_cfg = TrainConfig(**{**CONFIG.__dict__, "loop": "python", "steps": 35})
  a = evaluate_population(_trainer(tiny_mnist, scan_cfg), thetas, keys)
  b = evaluate_population(_trainer(tiny_mnist, py_cfg), thetas, keys)
  np.testing.assert_allclose(a.metrics["loss"], b.metrics["loss"], rtol=1e-4)
  assert not np.allclose(py.metrics["loss"], b.metrics["loss"])  # 30 vs 35 steps differ


def test_bad_inputs(tiny_mnist):
  trainer = _trainer(tiny_mnist)
  keys = jax.random.split(jax.random.PRNGKey(0), 3)
  with pytest.raises(ValueError, match="unknown strategy 'pmap'"):
    evaluate_population(trainer, _thetas(3), keys, strategy="pmap")
  with pytest.raises(ValueError, match="leading axis of size K=3"):
    evaluate_population(trainer, _thetas(2), keys)
  with pytest.raises(ValueError, match="uint32"):
    evaluate_population(trainer, _thetas(3), jnp.zeros((3, 2), jnp.float32))
  with pytest.raises(ValueError, match="unknown split"):
    evaluate_population(trainer, _thetas(3), keys, split="dev")
  with pytest.raises(ValueError, match=r"TrainConfig.steps=0 must be an integer ≥ 1"):
    TrainConfig(steps=0)
  with pytest.raises(ValueError, match="loop='fast'"):
    TrainConfig(loop="fast")


def test_cross_entropy_learns(tiny_mnist):
  model = models.get("mlp", num_classes=10, hidden=(16,))
  trainer = Trainer(model, tiny_mnist, lambda p, lg, y: losses.cross_entropy(lg, y),
                    TrainConfig(steps=100, batch_size=32, learning_rate=0.1))
  res = evaluate_population(trainer, jnp.zeros((2, 0)),
                            jax.random.split(jax.random.PRNGKey(0), 2))
  assert (res.fitness > 0.6).all()  # chance is 0.1; 100 steps of SGD on real digits


def test_new_candidates_do_not_recompile(tiny_mnist):
  """θ and keys are traced: a second generation reuses every compiled program."""
  traces = {"step": 0}

  def counting_loss(theta, logits, labels):
    traces["step"] += 1  # runs only while JAX traces (i.e. compiles) a training step
    return losses.taylorglo(theta, logits, labels)

  trainer = Trainer(models.get("mlp", num_classes=10, hidden=(16,)), tiny_mnist,
                    counting_loss, CONFIG)
  for strategy in ("vmap", "unroll", "sequential"):
    evaluate_population(trainer, _thetas(3, seed=0), jax.random.split(jax.random.PRNGKey(0), 3),
                        strategy=strategy)
    after_first = traces["step"]
    assert after_first > 0
    evaluate_population(trainer, _thetas(3, seed=1), jax.random.split(jax.random.PRNGKey(1), 3),
                        strategy=strategy)
    assert traces["step"] == after_first, f"{strategy} recompiled for new candidates"


def test_unroll_groups_and_pads(tiny_mnist, monkeypatch):
  """K=5 with groups of 2: three calls of one compiled program, the last one padded."""
  from glojax.train import population
  monkeypatch.setattr(population, "UNROLL_GROUP", 2)
  trainer = _trainer(tiny_mnist, TrainConfig(steps=10, batch_size=16, learning_rate=0.1,
                                             steps_per_call=5))
  thetas, keys = _thetas(5, seed=2), jax.random.split(jax.random.PRNGKey(4), 5)
  unrolled = evaluate_population(trainer, thetas, keys, strategy="unroll")
  seq = evaluate_population(trainer, thetas, keys, strategy="sequential")
  assert unrolled.fitness.shape == (5,)
  np.testing.assert_allclose(unrolled.metrics["loss"], seq.metrics["loss"], rtol=1e-4)
  programs = population.programs(trainer, "unroll")
  assert programs.init._cache_size() == 1  # one program size (2) for all three groups


def test_auto_strategy_rules():
  from glojax.train import resolve_strategy
  expected = "unroll" if jax.default_backend() == "cpu" else "vmap"
  for model in ("mlp", "small_cnn", "mnist_cnn"):
    assert resolve_strategy("auto", model) == expected
  assert resolve_strategy("sequential", "mlp") == "sequential"
