"""The GAN search: GA operators, genomes ↔ specs, config checks, its workdir.

The driver's contract (resume = uninterrupted, damaged workdirs, NaN containment, ...)
is checked for the GAN search by tests/search/test_driver.py (case "gan").
"""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from search_cases import read_log, tiny_gan

from glojax import config as config_lib
from glojax import gan
from glojax import search as search_registry
from glojax.gan import ga
from glojax.gan import search as search_lib
from glojax.gan import trainer as tr

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
  train = tr.GanTrainConfig()
  genome = np.concatenate([np.linspace(-9, 9, 12), [-3.5, 4.0, 12.5]]).astype(np.float32)
  loss = gan.get(search_lib.genome_spec(genome))
  np.testing.assert_array_equal(loss.theta, genome[:12])
  assert loss.hparams["learning_rate"] == pytest.approx(10 ** -3.5, rel=1e-6)
  assert loss.hparams["feature_weight"] == 4.0
  np.testing.assert_allclose(search_lib.genome_from_spec(loss.spec, train), genome,
                             rtol=1e-6)
  wgan = search_lib.genome_from_spec("wgan", train)
  np.testing.assert_array_equal(wgan[:12], gan.WGAN_THETA)
  np.testing.assert_allclose(wgan[12:], [np.log10(2e-4), 10.0, 10.0], rtol=1e-6)
  facade = search_lib.genome_from_spec("taylorglo_facade", train)
  np.testing.assert_allclose(facade[12:], [-4.0, 4.0877, 10.3155], rtol=1e-6)
  cand = search_lib.candidates_of(np.stack([genome, wgan]))
  np.testing.assert_allclose(cand.hyper.learning_rate, [10 ** -3.5, 2e-4], rtol=1e-5)
  np.testing.assert_array_equal(cand.loss.g_fake[1], gan.WGAN_THETA[8:])
  with pytest.raises(ValueError, match="not a Taylor triple"):
    search_lib.genome_from_spec("non_saturating", train)


def _with(config, dotted, value):
  config = config_lib.to_plain(config)
  *sections, key = dotted.split(".")
  target = config
  for part in sections:
    target = target[part]
  target[key] = value
  return config


@pytest.mark.parametrize("key,value,match", [
    ("search.elites", 3, r"config\.search\.elites=3 must be an integer in \[0, 2\]"),
    ("search.init_specs", ["non_saturating"], "not a Taylor triple"),
    ("search.init_specs", ["gan_taylor(theta=[11,0,0,0,0,0,0,0,0,0,0,0])"],
     r"outside the search bounds at genome entries \[0, 12\]"),
    ("search.theta_bounds", (1.0, -1.0), r"config\.search\.theta_bounds=\(1\.0, -1\.0\)"),
    ("search.log10_learning_rate_bounds", (-3.0, 1.0), "within"),
    ("search.ssim_weight", -1.0, "ssim_weight"),
    ("pairs.task", "colorize", r"config\.pairs\.task='colorize'"),
    ("final.baselines", ["wgn"], "unknown GAN loss 'wgn'"),
    ("final.baselines", [], "non-empty"),
    ("train.steps", 0, r"config\.train\.steps=0"),
    ("train.beta2", 1.0, r"config\.train\.beta2=1\.0"),
    ("model.options", {"generator_features": (8, 8, 8)}, "not divisible"),
    ("model.options", {"spectral_norm": "yes"}, "spectral_norm"),
    ("embedding.model", "resnet9000", r"config\.embedding\.model='resnet9000'"),
    ("embedding.options", {"featres": (4,)}, r"config\.embedding\.options=.*featres"),
    ("embedding.steps", -1, r"config\.embedding\.steps=-1"),
])
def test_bad_configs_fail_before_the_workdir(tmp_path, key, value, match):
  workdir = tmp_path / "run"
  c = tiny_gan()
  c.search.log10_learning_rate_bounds = (-5.0, -3.0)
  with pytest.raises(ValueError, match=match):
    search_registry.run("gan", _with(c, key, value), str(workdir), log=lambda m: None)
  assert not workdir.exists()


def test_init_seeds_the_first_population():
  c = tiny_gan()
  c.train.learning_rate = 2e-4
  c.search.init_specs = ("wgan", "lsgan")
  search = search_lib.GanSearch(search_lib.GanSearch.config_class.from_dict(
      config_lib.with_defaults(c, search_lib.default_config())))
  state = search.init(jax.random.PRNGKey(0))
  np.testing.assert_array_equal(state.genomes[0, :12], gan.WGAN_THETA)
  np.testing.assert_array_equal(state.genomes[1, :12], gan.LSGAN_THETA)
  low, high = c.search.theta_bounds
  assert np.all((state.genomes[2, :12] >= low) & (state.genomes[2, :12] <= high))
  assert state.best_fitness == -np.inf and state.best_generation == -1


@pytest.mark.parametrize("case", ["gan"], indirect=True)
def test_workdir_files_and_fitness(case, finished):
  wd, results = finished
  log = read_log(wd)
  for name in ("config.json", "checkpoint.npz", "log.jsonl", "fitness.png",
               "best_loss.txt", "final.json", "final.md", "samples_final.png"):
    assert os.path.exists(os.path.join(wd, name)), name
  for r in log:
    if r["best"] is not None:
      assert os.path.exists(os.path.join(wd, r["sample_grid"]))
    for f, s, p in zip(r["fitness"], r["ssim"], r["perceptual"]):
      if f is not None:
        assert f == pytest.approx(17 * s - p, rel=1e-5, abs=1e-5)
  # The best spec is the best logged candidate, and it loads.
  best = max((f, r["generation"]) for r in log for f in r["fitness"] if f is not None)
  assert results["best_fitness"] == pytest.approx(best[0])
  loss = gan.get(open(os.path.join(wd, "best_loss.txt")).read().strip())
  assert loss.name == "gan_taylor" and loss.spec == results["best_spec"]
  assert set(loss.hparams) == set(gan.HPARAMS)
  # The elites of a generation are the best genomes of the previous one.
  r0, r1 = log[0], log[1]
  order = np.argsort([-np.inf if f is None else -f for f in r0["fitness"]], kind="stable")
  assert r1["genomes"][0] == r0["genomes"][int(order[0])]
  final = results["final"]
  best_hparams = gan.with_hparams("wgan", loss.hparams).spec
  assert best_hparams.startswith("wgan(learning_rate=")
  assert set(final["rows"]) == {results["best_spec"], "wgan", best_hparams}
  assert set(final["welch"]) == {"wgan", best_hparams}
  assert json.load(open(os.path.join(wd, "final.json")))["table"] == final["table"]
