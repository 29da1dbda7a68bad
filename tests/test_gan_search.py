"""The GAN search: GA operators, genomes ↔ specs, config checks, resume = uninterrupted."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from glojax import gan
from glojax.gan import ga
from glojax.gan import run as run_lib
from glojax.gan import search as search_lib

LOW = jnp.zeros(3)
HIGH = jnp.asarray([1.0, 2.0, 10.0])


def test_reflect_folds_into_bounds():
  x = jnp.asarray([[1.2, -0.5, 25.0], [2.5, 2.0, -3.0]])
  np.testing.assert_allclose(ga.reflect(x, LOW, HIGH), [[0.8, 0.5, 5.0], [0.5, 2.0, 3.0]],
                             atol=1e-6)
  fixed = ga.reflect(jnp.asarray([[3.0]]), jnp.asarray([1.0]), jnp.asarray([1.0]))
  assert float(fixed[0, 0]) == 1.0


def test_tournament_never_prefers_failed_candidates():
  fitness = jnp.asarray([jnp.nan, 1.0, -jnp.inf, 0.5])
  winners = ga.tournament(jax.random.PRNGKey(0), fitness, 200, 4)
  entrants = jax.random.randint(jax.random.PRNGKey(0), (200, 4), 0, 4)
  has_finite = np.isin(np.asarray(entrants), [1, 3]).any(axis=1)
  assert np.all(np.isin(np.asarray(winners)[has_finite], [1, 3]))
  # With every candidate entering, the best always wins.
  assert np.all(ga.tournament(jax.random.PRNGKey(1), jnp.asarray([0.1, 0.9, 0.5]), 50, 60)
                == 1)


def test_next_generation_keeps_elites_and_bounds():
  key = jax.random.PRNGKey(3)
  genomes = ga.sample_uniform(key, 6, LOW, HIGH)
  fitness = jnp.asarray([0.1, jnp.nan, 0.7, 0.3, 0.9, -1.0])
  out = ga.next_generation(key, genomes, fitness, low=LOW, high=HIGH, elites=2,
                           tournament_size=2, crossover_probability=0.9,
                           mutation_probability=1.0, mutation_scale=0.5)
  assert out.shape == (6, 3)
  np.testing.assert_array_equal(out[0], genomes[4])   # best first
  np.testing.assert_array_equal(out[1], genomes[2])
  assert np.all((out >= LOW) & (out <= HIGH))
  # Without crossover or mutation, children are copies of tournament winners.
  copies = ga.next_generation(key, genomes, fitness, low=LOW, high=HIGH, elites=1,
                              tournament_size=2, crossover_probability=0.0,
                              mutation_probability=0.0, mutation_scale=0.5)
  for child in np.asarray(copies[1:]):
    assert any(np.array_equal(child, g) for g in np.asarray(genomes))


def test_genome_spec_round_trip():
  cfg = search_lib.validate_config(search_lib.default_config())
  genome = np.concatenate([np.linspace(-9, 9, 12), [-3.5, 4.0, 12.5]]).astype(np.float32)
  loss = gan.get(search_lib.genome_spec(genome))
  np.testing.assert_array_equal(loss.theta, genome[:12])
  assert loss.hparams["learning_rate"] == pytest.approx(10 ** -3.5, rel=1e-6)
  assert loss.hparams["feature_weight"] == 4.0
  np.testing.assert_allclose(search_lib.genome_from_spec(loss.spec, cfg), genome, rtol=1e-6)
  wgan = search_lib.genome_from_spec("wgan", cfg)
  np.testing.assert_array_equal(wgan[:12], gan.WGAN_THETA)
  np.testing.assert_allclose(wgan[12:], [np.log10(2e-4), 10.0, 10.0], rtol=1e-6)
  cand = search_lib.candidates_of(np.stack([genome, wgan]))
  np.testing.assert_allclose(cand.hyper.learning_rate, [10 ** -3.5, 2e-4], rtol=1e-5)
  np.testing.assert_array_equal(cand.loss.g_fake[1], gan.WGAN_THETA[8:])


@pytest.mark.parametrize("override,match", [
    ({"search": {"elites": 8}}, "elites=8 must be smaller"),
    ({"search": {"popsize": 3}}, "unknown config key config.search.popsize"),
    ({"search": {"init_specs": ["non_saturating"]}}, "not a Taylor triple"),
    ({"search": {"init_specs": ["gan_taylor(theta=[11,0,0,0,0,0,0,0,0,0,0,0])"]}},
     "outside the search bounds"),
    ({"search": {"bounds": {"theta": (1.0, -1.0)}}}, "bounds.theta"),
    ({"search": {"strategy": "fast"}}, "strategy='fast'"),
    ({"data": {"task": "colorize"}}, "task='colorize'"),
    ({"final": {"baselines": ["wgn"]}}, "unknown GAN loss 'wgn'"),
    ({"train": {"steps": 0}}, "steps must be a positive integer"),
    ({"train": {"generator_features": (8, 8, 8)}}, "not divisible"),
])
def test_bad_configs_fail_before_the_workdir(tmp_path, override, match):
  cfg = search_lib.default_config().to_dict()
  for section, values in override.items():
    for k, v in values.items():
      if isinstance(v, dict):
        cfg[section][k].update(v)
      else:
        cfg[section][k] = v
  workdir = tmp_path / "run"
  with pytest.raises(ValueError, match=match):
    run_lib.run(cfg, str(workdir), log=lambda m: None)
  assert not workdir.exists()


def _tiny_config(generations=2):
  # The train/embedding/data settings of tests/test_gan_train.py's TINY: in one
  # process the compiled programs are shared (same trainer signature).
  c = search_lib.default_config()
  c.data.max_train = 64
  c.data.max_eval = 16
  c.embedding.options = {"features": (4, 8), "dense": 16}
  c.embedding.steps = 0
  c.train.steps = 3
  c.train.batch_size = 4
  c.train.steps_per_call = 1
  c.train.generator_features = (8,)
  c.train.discriminator_features = (8,)
  c.train.eval_batch_size = 16
  c.train.num_samples = 2
  c.search.population_size = 3
  c.search.elites = 1
  c.search.generations = generations
  c.search.strategy = "vmap"
  c.search.init_specs = ("wgan",)
  c.final.repeats = 3  # = population_size: the vmapped programs are reused
  c.final.baselines = ("wgan",)
  return c


class _Stop(Exception):
  pass


def test_resume_equals_uninterrupted(tmp_path):
  quiet = lambda m: None
  a, b = str(tmp_path / "a"), str(tmp_path / "b")
  full = run_lib.run(_tiny_config(), a, log=quiet)

  def stop_after_first(generation, record):
    if generation == 0:
      raise _Stop
  with pytest.raises(_Stop):
    run_lib.run(_tiny_config(), b, log=quiet, on_generation=stop_after_first)
  assert len(open(os.path.join(b, "log.jsonl")).read().splitlines()) == 1
  resumed = run_lib.run(_tiny_config(), b, log=quiet)

  log_a = [json.loads(l) for l in open(os.path.join(a, "log.jsonl"))]
  log_b = [json.loads(l) for l in open(os.path.join(b, "log.jsonl"))]
  assert len(log_a) == len(log_b) == 2
  for ra, rb in zip(log_a, log_b):
    for key in ("fitness", "ssim", "perceptual", "genomes", "best_spec", "best_ever"):
      assert ra[key] == rb[key], key
  assert full["best_spec"] == resumed["best_spec"]
  assert open(os.path.join(a, "best_loss.txt")).read() == open(
      os.path.join(b, "best_loss.txt")).read()
  for ra, rb in zip(full["final"].values(), resumed["final"].values()):
    assert ra["ssim"] == rb["ssim"] and ra["perceptual"] == rb["perceptual"]
  # The workdir holds what the docs promise, and the best spec loads.
  for name in ("config.json", "checkpoint.npz", "embedding.npz", "fitness.png",
               "final.json", "final.md", "samples/gen_001.png", "samples/gen_002.png",
               "samples/final.png"):
    assert os.path.exists(os.path.join(a, name)), name
  assert gan.get(full["best_spec"]).name == "gan_taylor"
  # The first population held the seeded WGAN genome; fitness is 17·SSIM − PD.
  assert log_a[0]["genomes"][0][:12] == list(gan.WGAN_THETA)
  r = log_a[0]
  for f, s, p in zip(r["fitness"], r["ssim"], r["perceptual"]):
    assert f == pytest.approx(17 * s - p, rel=1e-5)
  # A different config on the same workdir is refused, naming the difference.
  other = _tiny_config()
  other.train.steps = 4
  with pytest.raises(ValueError, match="train.steps: 3 -> 4"):
    run_lib.run(other, a, log=quiet)
