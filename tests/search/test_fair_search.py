"""The searches on the ES policy, the fair final comparison and the step-size options."""

import os

import numpy as np
import pytest

from glojax import analysis, losses
from glojax import workdir
from glojax.search import baselines, driver, glo, taylorglo


def tiny_taylorglo():
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


def _log(wd):
  return workdir.read_jsonl(os.path.join(str(wd), workdir.LOG_FILE))


def test_taylorglo_uses_the_papers_weights_unless_configured():
  typed, _ = driver.parse_config(taylorglo.TaylorGLO, tiny_taylorglo())
  search = taylorglo.TaylorGLO(typed)
  assert np.all(np.asarray(search.cma.params.weights) >= 0)
  c = tiny_taylorglo()
  c.search.recombination = "active"
  typed, _ = driver.parse_config(taylorglo.TaylorGLO, c)
  assert np.sum(np.asarray(taylorglo.TaylorGLO(typed).cma.params.weights) < 0) == 2
  c.search.ties = "median"
  with pytest.raises(ValueError, match=r"config\.search\.ties='median'"):
    driver.parse_config(taylorglo.TaylorGLO, c)
  c = tiny_taylorglo()
  c.final.baselines = ("cross_entropy", "cross_entropy@fast")
  with pytest.raises(ValueError, match="cross_entropy@fast"):
    driver.parse_config(taylorglo.TaylorGLO, c)


def test_normalized_search_trains_at_cross_entropys_scale(tmp_path):
  c = tiny_taylorglo()
  c.search.normalize_scale = True
  wd = str(tmp_path / "run")
  out = taylorglo.run(c, wd, log=lambda m: None)
  typed, _ = driver.parse_config(taylorglo.TaylorGLO, c)
  search = taylorglo.TaylorGLO(typed)
  logits, labels = search.normalizer
  for record in _log(wd):
    for theta in record["thetas"]:
      loss = lambda z, x, th=np.asarray(theta, np.float32): losses.taylorglo(th, z, x)
      np.testing.assert_allclose(analysis.gradient_norm_ratio(loss, logits, labels), 1.0,
                                 rtol=1e-4)
  final = out["final"]
  assert [r["name"] for r in final["baselines"]] == list(baselines.DEFAULT_BASELINES)
  tuning = final["tuning"]["cross_entropy@tuned"]
  assert out["trainings"] == tuning["budget"] == 4 * 2  # the search's partial trainings
  assert sum(len(r["fitness"]) for r in tuning["trace"]) == 8
  assert [w["baseline"] for w in final["comparisons"]] == list(baselines.DEFAULT_BASELINES)
  # The normalized θ trains at about cross-entropy's gradient scale.
  assert 0.5 < final["effective_learning_rate"]["initialization"] < 2.0
  assert "cross_entropy@tuned" in final["table"]
  assert os.path.exists(os.path.join(wd, baselines.TUNING_FILE))


def test_co_evolved_learning_rate(tmp_path):
  c = tiny_taylorglo()
  c.search.tune_learning_rate = True
  c.final.baselines = ("cross_entropy",)
  wd = str(tmp_path / "run")
  out = taylorglo.run(c, wd, log=lambda m: None)
  rates = np.concatenate([r["learning_rates"] for r in _log(wd)])
  assert rates.size == 8 and len(set(np.round(rates, 8))) == 8
  assert np.min(np.abs(rates - out["best_learning_rate"])) < 1e-6 * out["best_learning_rate"]
  row = out["final"]["candidate"]
  assert row["learning_rate"] == out["best_learning_rate"]
  e = out["final"]["effective_learning_rate"]
  np.testing.assert_allclose(e["learning_rate_scale"], out["best_learning_rate"] / 0.1,
                             rtol=1e-5)
  assert "tuning" in out["final"] and out["final"]["tuning"] == {}


def test_glo_plateau_rule():
  st = lambda done, best: glo.ga.GAState.empty(4)._replace(generation=done,
                                                           best_generation=best)
  assert not glo.plateaued(st(2, 0), 2)   # generation index 1 did not improve: 1 < 2
  assert glo.plateaued(st(3, 0), 2)       # indices 1 and 2 did not improve
  assert not glo.plateaued(st(0, -1), 2)
  assert not glo.plateaued(st(50, 0), 0)  # 0: off


def test_glo_stops_on_plateau_and_compares_fairly(tmp_path):
  c = glo.default_config()
  c.seed = 6
  c.model.options = {"hidden": (16,)}
  c.train.steps = 10
  c.train.batch_size = 32
  c.train.learning_rate = 0.1
  c.train.steps_per_call = 5
  c.search.population_size = 16
  c.search.generations = 8
  c.search.elites = 2
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
  ga = [r for r in _log(tmp_path / "run") if r["phase"] == "ga"]
  best_ever = [r["best_ever"] for r in ga]
  # Stopped as soon as one generation passed without improving the best.
  assert out["generations"] == len(ga) < 8
  assert best_ever[-1] == best_ever[-2] and ga[-1].get("stopped_on_plateau")
  assert all(b > a for a, b in zip(best_ever[:-2], best_ever[1:-1]))
  assert any("GA stopped after" in m for m in messages)
  final = out["final"]
  assert final["tuning"]["cross_entropy@tuned"]["budget"] == out["counters"]["trained"]
  assert [r["name"] for r in final["baselines"]] == list(baselines.DEFAULT_BASELINES)
  assert "cross_entropy@tuned" in final["table"]
