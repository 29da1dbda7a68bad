"""GLO search: NaN isolation, no recompiles, cache, GA selection, end-to-end + resume."""

import functools
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from glojax import losses
from glojax import models
from glojax.expr import program as P
from glojax.expr import tree as T
from glojax.expr import variation
from glojax.search import ga, glo
from glojax.train.population import evaluate_population
from glojax.train.trainer import TrainConfig, Trainer

_CFG = TrainConfig(steps=10, batch_size=32, learning_rate=0.1, steps_per_call=5,
                   eval_batch_size=100)


def _trainer(dataset, loss_fn=None):
  model = models.get("mlp", num_classes=10, hidden=(16,))
  loss_fn = loss_fn or functools.partial(P.program_loss, use_logits=False)
  return Trainer(model, dataset, loss_fn, _CFG)


def test_nan_tree_leaves_other_candidates_identical(tiny_mnist):
  trainer = _trainer(tiny_mnist)
  good = [T.parse("log(y) - x / y"), T.parse("10 * (x * log(y))")]
  bad = T.parse("log(x) * y")   # one-hot labels: log(0) = -inf → NaN training
  keys = jax.random.split(jax.random.PRNGKey(0), 3)
  init = jax.jit(jax.vmap(trainer.init))
  chunk = jax.jit(jax.vmap(functools.partial(trainer.train_chunk, num_steps=5),
                           in_axes=(0, 0, None)))
  images = jnp.asarray(tiny_mnist.validation.images)
  accuracy = jax.jit(jax.vmap(lambda p: jnp.mean(jnp.argmax(trainer.model.apply(
      {"params": p}, images), -1) == tiny_mnist.validation.labels)))

  def train(trees, k):
    state = init(k)
    for _ in range(2):
      state = chunk(state, P.encode_population(trees), trainer.data)
    # GLO fitness: validation accuracy, 0 for a run that saw NaN/inf.
    return state, np.where(state.finite, accuracy(state.params), 0.0)

  mixed, mixed_fitness = train([bad] + good, keys)
  assert not bool(mixed.finite[0]) and mixed_fitness[0] == 0.0
  for i, g in enumerate(good):
    alone, alone_fitness = train([g], keys[i + 1:i + 2])
    assert bool(mixed.finite[i + 1]) and bool(alone.finite[0])
    for a, b in zip(jax.tree_util.tree_leaves(mixed.params),
                    jax.tree_util.tree_leaves(alone.params)):
      np.testing.assert_allclose(a[i + 1], b[0], rtol=1e-6, atol=1e-7)
    assert mixed_fitness[i + 1] == alone_fitness[0] > 0.2


def test_new_trees_do_not_recompile(tiny_mnist):
  traces = []

  def loss_fn(program, logits, labels):
    traces.append(1)   # runs only while jax traces (compiles) the training step
    return P.program_loss(program, logits, labels, use_logits=False)

  trainer = _trainer(tiny_mnist, loss_fn)
  keys = jax.random.split(jax.random.PRNGKey(1), 2)
  first = evaluate_population(
      trainer, P.encode_population([T.parse("log(y) - x / y"), T.parse("x * y")]), keys)
  n = len(traces)
  second = evaluate_population(
      trainer, P.encode_population([T.parse("sqrt(y) - x"), T.parse("x / (y + 1)")]), keys)
  assert n > 0 and len(traces) == n
  assert not np.array_equal(first.metrics["train_loss"], second.metrics["train_loss"])


def test_cross_entropy_tree_is_cross_entropy():
  logits = jax.random.normal(jax.random.PRNGKey(2), (5, 10))
  labels = jax.nn.softmax(jax.random.normal(jax.random.PRNGKey(3), (5, 10)))
  np.testing.assert_allclose(
      P.program_loss(P.encode(glo.cross_entropy_tree(10)), logits, labels),
      losses.cross_entropy(logits, labels), rtol=1e-5)


def test_roulette_and_elites_treat_nan_as_worst():
  rng = np.random.default_rng(0)
  fitness = np.array([0.5, np.nan, 0.0, np.inf, 0.5])
  draws = ga.roulette(rng, fitness, 4000)
  counts = np.bincount(draws, minlength=5)
  assert counts[1] == counts[2] == counts[3] == 0
  assert abs(counts[0] / 4000 - 0.5) < 0.05
  assert set(ga.elite_indices(fitness, 2)) == {0, 4}
  uniform = np.bincount(ga.roulette(rng, [0.0, np.nan, 0.0], 3000), minlength=3)
  assert np.all(np.abs(uniform / 3000 - 1 / 3) < 0.05)


def test_next_generation_keeps_elites_and_size():
  rng = np.random.default_rng(1)
  pop = [T.parse(t) for t in ("log(y) - x / y", "x * y", "y - x", "sqrt(x) + y", "x")]
  fitness = [0.9, 0.1, np.nan, 0.5, 0.0]
  new, elites, counts = ga.next_generation(
      rng, pop, fitness, elites=2, crossover_probability=0.8,
      rates=variation.MutationRates(), primitives=variation.Primitives.glo())
  assert len(new) == 5 and elites == [0, 3] and new[:2] == [pop[0], pop[3]]
  assert all(T.parse(T.to_string(t)) == t for t in new)


def test_evaluator_cache_and_validity():
  ev = glo.make_evaluator(glo.validate_config(_tiny_config()))
  key = jax.random.PRNGKey(0)
  trees = [T.parse(t) for t in ("x * y", "y * x", "log(y) - x / y", "log(y) + y",
                                "x - x + y", "x + y + x + y + x + y + x + y")]
  fitness, statuses, new, counts = ev.fitness(trees, key, {})
  assert statuses == ["trained", "hit", "trained", "invalid", "invalid", "too_large"]
  assert fitness[0] == fitness[1] and fitness[3] == fitness[4] == fitness[5] == 0.0
  assert counts["trained_trees"] == 2 and counts["hits"] == 1 and len(new) == 2
  assert counts["evaluations"] == 6 and counts["invalid"] == 2 and counts["too_large"] == 1
  again, statuses, new2, counts = ev.fitness([T.parse("-(x / y) + log(y)")], key, new)
  assert statuses == ["hit"] and again[0] == fitness[2]
  assert new2 == {} and "trained" not in counts   # a hit costs no training
  # The cache belongs to the caller (the search state): fitness() never changes it.
  assert len(new) == 2


def _tiny_config():
  c = glo.default_config()
  c.seed = 6   # its initial population holds trainable trees (most random ones are not)
  c.dataset.name = "mnist5k"
  c.model.options = {"hidden": (16,)}
  c.train.steps = 10
  c.train.batch_size = 32
  c.train.learning_rate = 0.1
  c.train.steps_per_call = 5
  c.search.population_size = 16
  c.search.generations = 3
  c.search.elites = 2
  c.search.max_len = 12
  c.search.stack_depth = 4
  c.search.batch_candidates = 4
  c.search.strategy = "vmap"
  c.search.baseline_repeats = 2
  c.coefficients.population_size = 4
  c.coefficients.generations = 2
  return c


def test_run_writes_loadable_specs(tmp_path):
  full = str(tmp_path / "full")
  out = glo.run(_tiny_config(), full, log=lambda _: None)
  for name in ("best_tree.txt", "best_loss.txt", "results.json", "log.jsonl"):
    assert os.path.exists(os.path.join(full, name))
  spec = open(os.path.join(full, "best_loss.txt")).read().strip()
  assert spec == out["best_loss"] and spec.startswith("expr:")
  tree = T.parse(spec[len("expr:"):])
  logits = jax.random.normal(jax.random.PRNGKey(0), (3, 10))
  labels = jax.nn.one_hot(jnp.arange(3), 10)
  assert np.all(np.isfinite(T.compile_jnp(tree)(logits, labels)))
  np.testing.assert_allclose(losses.get(spec)(logits, labels),   # the registry
                             T.compile_jnp(tree)(logits, labels), rtol=1e-6)
  log = [json.loads(line) for line in open(os.path.join(full, "log.jsonl"))]
  assert [r["phase"] for r in log] == ["ga"] * 3 + ["cma"] * 2
  assert out["best_loss_fitness"] >= out["best_tree_fitness"] > 0
  assert 0.0 <= out["hit_rate"] <= 1.0
  c = out["confirm"]
  assert c["repeats"] == 2 and len(c["best_loss"]["runs"]) == 2
  # The retrained CE runs use the baseline's keys: the same numbers again.
  assert c["cross_entropy"]["runs"] == json.load(
      open(os.path.join(full, "results.json")))["confirm"]["cross_entropy"]["runs"]


def test_config_errors():
  c = _tiny_config()
  c.search.elites = 16
  with pytest.raises(ValueError, match="elites"):
    glo.validate_config(c)
  c = _tiny_config()
  c.search.mutation = {"swap": 2.0}
  with pytest.raises(ValueError, match="swap"):
    glo.validate_config(c)
  with pytest.raises(ValueError, match="unknown config key"):
    glo.validate_config({"search": {"populaton_size": 3}})
