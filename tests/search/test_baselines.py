"""Fair baselines: per-candidate learning rate, the tuned-lr search's budget and splits,
the final comparison table."""

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from glojax import data, losses, models
from glojax.search import baselines
from glojax.train import ScaledLearningRate, TrainConfig, Trainer, protocol

CFG = TrainConfig(steps=20, batch_size=32, learning_rate=0.01, steps_per_call=10)
# "sequential": one compiled single-candidate program serves every population size.
QUIET = dict(strategy="sequential", log=lambda _: None)


@pytest.fixture(scope="module")
def mlp():
  return models.get("mlp", num_classes=10, hidden=(8,))


def _ce(params, logits, labels):
  return losses.cross_entropy(logits, labels)


@pytest.mark.parametrize("options", [dict(momentum=0.9, weight_decay=1e-3),
                                     dict(optimizer="adam", schedule="cosine", steps=3)])
def test_scaled_learning_rate_equals_that_learning_rate(mlp, tiny_mnist, options):
  base = dataclasses.replace(CFG, learning_rate=0.02, **options)
  double = dataclasses.replace(base, learning_rate=0.05)

  def params_after_3_steps(config, loss_params):  # eager: no compile
    trainer = Trainer(mlp, tiny_mnist, _ce, config)
    state = trainer.init(jax.random.PRNGKey(0))
    for _ in range(3):
      state = trainer.train_step(state, loss_params, trainer.data)
    return jnp.concatenate([a.ravel() for a in jax.tree_util.tree_leaves(state.params)])

  scaled = params_after_3_steps(base, ScaledLearningRate(jnp.zeros(0), jnp.float32(2.5)))
  plain = params_after_3_steps(double, jnp.zeros(0))
  np.testing.assert_allclose(scaled, plain, rtol=1e-5, atol=1e-7)
  unscaled = params_after_3_steps(base, jnp.zeros(0))
  assert float(jnp.max(jnp.abs(unscaled - plain))) > 1e-3  # not vacuous


class _Recorder:
  """Wraps evaluate_population: records each call's candidate count and split."""

  def __init__(self, monkeypatch):
    self.calls = []
    real = baselines.evaluate_population

    def wrapped(trainer, params, keys, **kw):
      self.calls.append((int(keys.shape[0]), kw.get("split")))
      return real(trainer, params, keys, **kw)
    monkeypatch.setattr(baselines, "evaluate_population", wrapped)

  @property
  def trained(self):
    return sum(k for k, _ in self.calls)


def _poisoned(ds):
  """``ds`` with a test split that would make any evaluation on it fail or differ."""
  bad = data.Split(np.full_like(ds.test.images, np.nan), (ds.test.labels + 3) % 10)
  return dataclasses.replace(ds, test=bad)


def test_tuning_uses_exactly_the_budget_and_never_the_test_split(
    mlp, tiny_mnist, monkeypatch):
  rec = _Recorder(monkeypatch)
  key = jax.random.PRNGKey(5)
  result = baselines.tune_learning_rate(mlp, tiny_mnist, CFG, 7, key, population_size=3,
                                        **QUIET)
  assert rec.trained == 7 == result.evaluations
  assert [k for k, _ in rec.calls] == [3, 3, 1]
  assert {split for _, split in rec.calls} == {"validation"}
  assert [len(r["fitness"]) for r in result.trace] == [3, 3, 1]
  assert [r["told"] for r in result.trace] == [True, True, False]  # partial: no tell
  i = int(np.argmax(np.concatenate([r["fitness"] for r in result.trace])))
  assert result.learning_rate == np.concatenate(
      [r["learning_rates"] for r in result.trace])[i]
  # The test split cannot influence the result.
  again = baselines.tune_learning_rate(mlp, _poisoned(tiny_mnist), CFG, 7, key,
                                       population_size=3, **QUIET)
  assert again.trace == result.trace


def test_grid_tuning_finds_a_better_rate(mlp, tiny_mnist, monkeypatch):
  rec = _Recorder(monkeypatch)
  key = jax.random.PRNGKey(1)
  grid = baselines.tune_learning_rate(mlp, tiny_mnist, CFG, 7, key, population_size=3,
                                      method="grid", **QUIET)
  assert rec.trained == 7 and {s for _, s in rec.calls} == {"validation"}
  rates = np.concatenate([r["learning_rates"] for r in grid.trace])
  np.testing.assert_allclose(rates, 0.01 * 10 ** np.linspace(-1.5, 1.5, 7), rtol=1e-12)
  at_lr0 = np.concatenate([r["fitness"] for r in grid.trace])[3]  # rates[3] == lr0
  # 20 steps at lr 0.01 barely learn; the grid's larger rates do.
  assert grid.learning_rate > 0.05 and grid.fitness > at_lr0 + 0.1


def test_interrupted_tuning_resumes_exactly(mlp, tiny_mnist, monkeypatch):
  key = jax.random.PRNGKey(5)
  saved = []

  def interrupt(trace):
    saved[:] = [dict(r) for r in trace]
    if len(trace) == 2:
      raise KeyboardInterrupt
  with pytest.raises(KeyboardInterrupt):
    baselines.tune_learning_rate(mlp, tiny_mnist, CFG, 7, key, population_size=3,
                                 on_generation=interrupt, **QUIET)
  rec = _Recorder(monkeypatch)
  resumed = baselines.tune_learning_rate(mlp, tiny_mnist, CFG, 7, key, population_size=3,
                                         trace=saved, **QUIET)
  assert rec.trained == 1  # only the missing generation trains
  full = baselines.tune_learning_rate(mlp, tiny_mnist, CFG, 7, key, population_size=3,
                                      **QUIET)
  assert resumed.trace == full.trace and resumed.learning_rate == full.learning_rate
  with pytest.raises(ValueError, match="does not match"):
    baselines.tune_learning_rate(mlp, tiny_mnist, CFG, 7, jax.random.PRNGKey(2),
                                 population_size=3, trace=saved, **QUIET)


def test_parse_and_validate_baselines():
  assert baselines.parse_baseline("cross_entropy@tuned") == baselines.Baseline(
      "cross_entropy@tuned", "cross_entropy", tuned=True)
  assert baselines.parse_baseline("baikal@0.05").learning_rate == 0.05
  assert baselines.parse_baseline("expr:x * log(y)").spec == "expr:x * log(y)"
  final = baselines.final_defaults()
  assert [b.entry for b in baselines.validate_final(final)] == list(
      baselines.DEFAULT_BASELINES)
  assert baselines.validate_final({**final, "baselines": []}) == []  # the search's own
  for bad, match in ((["nope"], "'nope'"), (["cross_entropy@fast"], "after '@'"),
                     ("cross_entropy", "list"), (["cross_entropy"] * 2, "twice")):
    with pytest.raises(ValueError, match=match):
      baselines.validate_final({**final, "baselines": bad})
  with pytest.raises(ValueError, match="keys"):
    baselines.validate_final({**final, "tuning": {"budget": 3}})
  with pytest.raises(ValueError, match="tuning.budget=0"):
    baselines.resolve_tuning(baselines.TUNING_DEFAULTS,
                             baselines.TuningContext(budget=None, population_size=4))
  assert baselines.resolve_tuning({**baselines.TUNING_DEFAULTS, "budget": 5},
                                  baselines.TuningContext(None, 4))[:2] == (5, 4)
  with pytest.raises(ValueError, match="tuning.method='random'"):
    baselines.validate_final({**final, "tuning": {**final["tuning"], "method": "random"}})
  with pytest.raises(ValueError, match="budget=-1"):
    baselines.validate_final({**final, "tuning": {**final["tuning"], "budget": -1}})
  with pytest.raises(ValueError, match="budget=0"):
    baselines.tune_learning_rate(None, None, CFG, 0, jax.random.PRNGKey(0))


def test_final_comparison_rows_tests_and_reuse(mlp, tiny_mnist, tmp_path, monkeypatch):
  theta = jnp.asarray([0.0, 0.0, 0.0, -1.0, 0.0, 2.0, 0.0, 0.0])  # MSE
  fn = lambda th, z, x: losses.taylorglo(th, z, x)
  candidate = protocol.LossUnderTest("taylorglo", fn, theta, losses.taylorglo_spec(theta))
  kwargs = dict(model=mlp, dataset=tiny_mnist, search_train_config=CFG,
                final_train_config=CFG,
                baselines=["cross_entropy", "cross_entropy@tuned", "cross_entropy@0.3"],
                repeats=3, seed=0, tuning=baselines.TUNING_DEFAULTS,
                context=baselines.TuningContext(budget=6, population_size=3, seed=9),
                workdir=str(tmp_path), **QUIET)
  rec = _Recorder(monkeypatch)
  result = baselines.final_comparison(candidate, **kwargs)
  assert rec.trained == 6 and {s for _, s in rec.calls} == {"validation"}
  names = [r["name"] for r in result["baselines"]]
  assert names == ["cross_entropy", "cross_entropy@tuned", "cross_entropy@0.3"]
  rates = [r["learning_rate"] for r in result["baselines"]]
  assert rates[0] == 0.01 and rates[2] == 0.3
  assert rates[1] == result["tuning"]["cross_entropy@tuned"]["learning_rate"]
  assert [w["baseline"] for w in result["comparisons"]] == names
  for row in result["baselines"]:
    assert len(row["runs"]) == 3
    assert all(0.0 <= a <= 1.0 for a in row["runs"])
  assert result["welch"] == result["comparisons"][0]
  for name in ["taylorglo", *names, "effective learning rate"]:
    assert name in result["table"]
  # MSE's logit gradient at initialization is about 2/n² of CE's (0.02).
  assert 0.01 < result["effective_learning_rate"]["initialization"] < 0.03
  stored = json.load(open(os.path.join(tmp_path, baselines.TUNING_FILE)))
  assert len(stored["cross_entropy@tuned"]["trace"]) == 2
  # A rerun reuses the finished tuning: no partial training.
  rec2 = _Recorder(monkeypatch)
  again = baselines.final_comparison(candidate, **kwargs)
  assert all(split == "test" for _, split in rec2.calls)
  assert again["tuning"] == result["tuning"]
