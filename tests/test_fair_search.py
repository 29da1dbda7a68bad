"""Searches wired to the ES policy, the fair final comparison and the step-size options."""

import jax
import numpy as np
import pytest

from glojax import analysis, losses
from glojax.search import baselines, common, es as es_lib, step_size, taylorglo


def tiny_config():
  c = taylorglo.default_config()
  c.model.options = {"hidden": (8,)}
  c.train.steps = 20
  c.train.batch_size = 32
  c.train.learning_rate = 0.1
  c.search.population_size = 4
  c.search.generations = 2
  c.search.strategy = "sequential"
  c.final.repeats = 2
  c.final.steps = 20
  return c


def test_taylorglo_uses_the_papers_weights_unless_configured():
  cfg = taylorglo.validate_config(tiny_config())
  assert np.all(np.asarray(taylorglo._make_es(cfg).params.weights) >= 0)
  c = tiny_config()
  c.search.recombination = "active"
  cfg = taylorglo.validate_config(c)
  assert np.sum(np.asarray(taylorglo._make_es(cfg).params.weights) < 0) == 2
  c.search.ties = "median"
  with pytest.raises(ValueError, match=r"config\.search\.ties='median'"):
    taylorglo.validate_config(c)
  c = tiny_config()
  c.final.baselines = ("cross_entropy", "cross_entropy@fast")
  with pytest.raises(ValueError, match="cross_entropy@fast"):
    taylorglo.validate_config(c)


def test_normalized_search_trains_at_cross_entropys_scale(tmp_path):
  c = tiny_config()
  c.search.normalize_scale = True
  c.final.baselines = ("cross_entropy", "cross_entropy@tuned")
  wd = str(tmp_path / "run")
  out = taylorglo.run(c, wd, log=lambda m: None)
  cfg = taylorglo.validate_config(c)
  dataset, model, _ = common.build_run(cfg)
  logits, labels = step_size.init_logits(
      model, dataset, common.generation_key(0, 0, taylorglo._PURPOSE_NORMALIZE))
  for record in common.read_log(wd):
    for theta in record["thetas"]:
      ratio = analysis.gradient_norm_ratio(
          lambda z, x: losses.taylorglo(np.asarray(theta, np.float32), z, x), logits,
          labels)
      np.testing.assert_allclose(ratio, 1.0, rtol=1e-4)
  final = out["final"]
  assert [r["name"] for r in final["baselines"]] == ["cross_entropy", "cross_entropy@tuned"]
  tuning = final["tuning"]["cross_entropy@tuned"]
  assert tuning["budget"] == 4 * 2  # the search's partial trainings
  assert sum(len(r["fitness"]) for r in tuning["trace"]) == 8
  assert [w["baseline"] for w in final["comparisons"]] == ["cross_entropy",
                                                          "cross_entropy@tuned"]
  # The search's normalized θ trains at about cross-entropy's gradient scale.
  assert 0.5 < final["effective_learning_rate"]["initialization"] < 2.0
  assert "cross_entropy@tuned" in final["table"]


def test_co_evolved_learning_rate(tmp_path):
  c = tiny_config()
  c.search.tune_learning_rate = True
  c.final.baselines = ("cross_entropy",)
  wd = str(tmp_path / "run")
  out = taylorglo.run(c, wd, log=lambda m: None)
  log = common.read_log(wd)
  rates = np.concatenate([r["learning_rates"] for r in log])
  assert rates.size == 8 and len(set(np.round(rates, 8))) == 8
  assert out["best_learning_rate"] in rates
  row = out["final"]["candidate"]
  assert row["learning_rate"] == out["best_learning_rate"]
  # The candidate's effective learning rate includes its own rate.
  e = out["final"]["effective_learning_rate"]
  np.testing.assert_allclose(e["learning_rate_scale"], out["best_learning_rate"] / 0.1,
                             rtol=1e-6)


def test_glo_plateau_rule():
  from glojax.search import glo
  cfg = {"search": {"plateau_generations": 2}}
  state = lambda done, best_gen: {"generation": done, "best": {"generation": best_gen}}
  assert not glo.plateaued(state(3, 1), cfg)   # generation 3 (index 2) improved? no: 1 gen
  assert glo.plateaued(state(4, 1), cfg)       # indices 2, 3 without improvement
  assert not glo.plateaued(state(0, -1), cfg)
  assert not glo.plateaued(state(50, 0), {"search": {"plateau_generations": 0}})


def test_glo_stops_on_plateau_and_compares_fairly(tmp_path):
  from glojax.search import glo
  c = glo.default_config()
  c.seed = 6
  c.model.options = {"hidden": (16,)}
  c.train.steps = 10
  c.train.batch_size = 32
  c.train.learning_rate = 0.1
  c.train.steps_per_call = 5
  c.search.population_size = 8
  c.search.generations = 8
  c.search.elites = 1
  c.search.max_len = 12
  c.search.stack_depth = 4
  c.search.batch_candidates = 4
  c.search.strategy = "sequential"
  c.search.baseline_repeats = 0
  c.search.plateau_generations = 1
  c.coefficients.population_size = 4
  c.coefficients.generations = 1
  c.final.enabled = True
  c.final.repeats = 2
  c.final.steps = 10
  messages = []
  out = glo.run(c, str(tmp_path / "run"), log=messages.append)
  ga = [r for r in common.read_log(str(tmp_path / "run")) if r["phase"] == "ga"]
  best_ever = [r["best_ever"] for r in ga]
  # Stopped exactly when one generation passed without improving the best.
  assert out["generations"] == len(ga)
  if len(ga) < 8:
    assert best_ever[-1] == best_ever[-2] and any("GA stopped" in m for m in messages)
    assert all(b > a for a, b in zip(best_ever[:-2], best_ever[1:-1]))
  final = out["final"]
  tuning = final["tuning"]["cross_entropy@tuned"]
  assert tuning["budget"] == out["counters"]["trained"]  # the search's trainings
  assert [r["name"] for r in final["baselines"]] == list(baselines.DEFAULT_BASELINES)
  assert "cross_entropy@tuned" in final["table"]
