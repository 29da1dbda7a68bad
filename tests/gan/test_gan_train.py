"""Vectorized GAN training: a population equals its members trained alone; a diverging
candidate leaves its neighbours unchanged."""

import jax
import numpy as np
import pytest

from glojax import gan
from glojax.gan import data, metrics
from glojax.gan import population as pop
from glojax.gan import trainer as tr
from glojax.gan.models import Networks

# The settings of tests/search/search_cases.py's tiny_gan: in one process the compiled
# programs are shared (same trainer signature). Candidates set their own learning rate.
TINY = dict(steps=3, batch_size=4, steps_per_call=1, eval_batch_size=16, num_samples=2,
            learning_rate=0.1)
NETS = Networks(generator_features=(8,), discriminator_features=(8,))


@pytest.fixture(scope="module")
def setup():
  ds = data.make_paired("mnist5k", "inpaint", seed=0, max_train=64, max_eval=16)
  emb = metrics.train_embedding(ds.train.targets, ds.train.labels,
                                (ds.validation.targets, ds.validation.labels),
                                (ds.test.targets, ds.test.labels),
                                model_name="small_cnn", options={"features": (4, 8),
                                                                 "dense": 16}, steps=0)
  config = tr.GanTrainConfig(**TINY)
  return ds, emb, tr.GanTrainer(ds, gan.TAYLOR_FNS, config, emb, NETS)


def _candidates(config, lr_middle=None):
  specs = [gan.taylor_spec(gan.WGAN_THETA, learning_rate=2e-4),
           "taylorglo_facade",
           gan.taylor_spec(gan.LSGAN_THETA, learning_rate=5e-4, feature_weight=3.0,
                           perceptual_weight=1.0)]
  cands = [tr.candidate(s, config) for s in specs]
  if lr_middle is not None:
    cands[1] = cands[1]._replace(hyper=cands[1].hyper._replace(
        learning_rate=np.float32(lr_middle)))
  return tr.stack(cands)


def _keys(k=3):
  return jax.random.split(jax.random.PRNGKey(7), k)


def _close(a, b):
  np.testing.assert_allclose(a.metrics["ssim"], b.metrics["ssim"], rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(a.metrics["perceptual"], b.metrics["perceptual"], rtol=1e-4,
                             atol=1e-5)
  np.testing.assert_allclose(a.metrics["d_loss"], b.metrics["d_loss"], rtol=1e-4,
                             atol=1e-4)
  np.testing.assert_allclose(a.samples, b.samples, atol=1e-4)


@pytest.mark.parametrize("strategy", ["vmap", "unroll"])
def test_population_equals_each_alone(setup, strategy):
  ds, emb, trainer = setup
  cands, keys = _candidates(trainer.config), _keys()
  together = pop.evaluate_population(trainer, cands, keys, strategy=strategy)
  alone = pop.evaluate_population(trainer, cands, keys, strategy="sequential")
  _close(together, alone)
  assert together.metrics["finite"].all()
  # Candidates really differ (own losses and keys), and fitness is 17·SSIM − PD.
  assert len(set(np.round(together.metrics["d_loss"], 5))) == 3
  np.testing.assert_allclose(
      together.fitness, 17 * together.metrics["ssim"] - together.metrics["perceptual"],
      rtol=1e-5)
  # One candidate alone through the public single-run path is the same again.
  one = pop.evaluate_population(trainer, jax.tree_util.tree_map(lambda a: a[1:2], cands),
                                keys[1:2], strategy="sequential")
  np.testing.assert_allclose(one.metrics["ssim"], alone.metrics["ssim"][1:2], rtol=1e-6)


@pytest.mark.parametrize("strategy", ["vmap", "unroll"])
def test_diverging_candidate_does_not_change_neighbours(setup, strategy):
  ds, emb, trainer = setup
  keys = _keys()
  calm = pop.evaluate_population(trainer, _candidates(trainer.config), keys,
                                 strategy=strategy)
  wild = pop.evaluate_population(trainer, _candidates(trainer.config, lr_middle=1e30),
                                 keys, strategy=strategy)
  assert list(wild.metrics["finite"]) == [True, False, True]
  assert wild.fitness[1] == pop.FAILED_FITNESS and np.isfinite(wild.fitness[[0, 2]]).all()
  assert wild.num_failed == 1
  for i in (0, 2):
    for name in ("ssim", "perceptual", "d_loss", "g_loss"):
      np.testing.assert_array_equal(wild.metrics[name][i], calm.metrics[name][i])
    np.testing.assert_array_equal(wild.samples[i], calm.samples[i])


def test_fitness_of_marks_failures_worst():
  f = pop.fitness_of([0.5, 0.5, np.nan], [1.0, 2.0, 1.0], [True, False, True])
  assert f[0] == pytest.approx(17 * 0.5 - 1.0)
  assert f[1] == f[2] == pop.FAILED_FITNESS


@pytest.mark.parametrize("kwargs,match", [
    ({"steps": 0}, "steps=0 must be an integer"),
    ({"learning_rate": 0.0}, "learning_rate=0.0 must be a finite number > 0"),
    ({"loop": "fast"}, "loop='fast'"),
    ({"beta1": 1.0}, "beta1=1.0"),
])
def test_bad_train_config(kwargs, match):
  with pytest.raises(ValueError, match=match):
    tr.GanTrainConfig(**kwargs)


@pytest.mark.parametrize("kwargs,match", [
    ({"generator_features": ()}, "generator_features"),
    ({"discriminator_features": (8, 0)}, "discriminator_features"),
    ({"spectral_norm": "yes"}, "spectral_norm"),
])
def test_bad_networks(kwargs, match):
  with pytest.raises(ValueError, match=match):
    Networks(**kwargs)


def test_bad_population_inputs(setup):
  ds, emb, trainer = setup
  cands = _candidates(trainer.config)
  with pytest.raises(ValueError, match="strategy"):
    pop.evaluate_population(trainer, cands, _keys(), strategy="fast")
  with pytest.raises(ValueError, match="leading axis of size K=2"):
    pop.evaluate_population(trainer, cands, _keys(2))
  with pytest.raises(ValueError, match="unknown split"):
    pop.evaluate_population(trainer, cands, _keys(), split="dev")
  with pytest.raises(ValueError, match="not divisible"):
    tr.GanTrainer(ds, gan.TAYLOR_FNS, trainer.config, emb, Networks((8, 8, 8)))
