"""TaylorGLO search: workdir files, config errors, fitness signs, the binary (resume and
the workdir contract: tests/search/test_driver.py)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from glojax import config as config_lib
from glojax import workdir
from glojax.search import common, taylorglo

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def tiny_config():
  c = taylorglo.default_config()
  c.model.options = {"hidden": (8,)}
  c.train.steps = 20
  c.train.batch_size = 32
  c.train.learning_rate = 0.1
  c.search.population_size = 4
  c.search.generations = 3
  c.final.repeats = 2
  c.final.steps = 20
  return c


def read_log(wd):
  return workdir.read_jsonl(os.path.join(wd, workdir.LOG_FILE))


def test_workdir_contents(tmp_path):
  wd = str(tmp_path / "run")
  out = taylorglo.run(tiny_config(), wd, log=lambda m: None)
  for name in ("config.json", "log.jsonl", "checkpoint.npz", "best_loss.txt",
               "final.json", "fitness.png"):
    assert os.path.getsize(os.path.join(wd, name)) > 0, name
  log = read_log(wd)
  assert [r["generation"] for r in log] == [0, 1, 2]
  for r in log:
    assert len(r["fitness"]) == 4 and r["best"] == max(r["fitness"])
    assert r["median"] == pytest.approx(float(np.median(r["fitness"])))
  assert out["best_fitness"] == max(r["best"] for r in log)
  spec = open(os.path.join(wd, "best_loss.txt")).read().strip()
  assert spec == out["best_spec"] and spec.startswith("taylorglo(theta=[")
  # The saved spec loads with the registry as exactly the best θ's loss.
  from glojax import losses
  logits = np.random.default_rng(0).normal(size=(5, 10)).astype(np.float32)
  labels = np.eye(10, dtype=np.float32)[[0, 3, 9, 2, 2]]
  np.testing.assert_allclose(
      losses.get(spec)(logits, labels),
      losses.taylorglo(np.asarray(out["best_theta"], np.float32), logits, labels),
      rtol=1e-6)
  final = json.load(open(os.path.join(wd, "final.json")))
  assert len(final["candidate"]["runs"]) == 2 and 0 <= final["welch"]["p"] <= 1
  # Finishing again is a no-op resume that reports the same best.
  again = taylorglo.run(tiny_config(), wd, log=lambda m: None)
  assert again["best_theta"] == out["best_theta"]


def test_extending_generations_resumes(tmp_path):
  wd = str(tmp_path / "run")
  c = tiny_config()
  c.search.generations = 1
  c.final.enabled = False
  taylorglo.run(c, wd, log=lambda m: None)
  c.search.generations = 2
  messages = []
  taylorglo.run(c, wd, log=messages.append)
  assert any("resuming from generation 1" in m for m in messages)
  assert len(read_log(wd)) == 2


def test_config_errors(tmp_path):
  c = tiny_config()
  c.dataset.name = "mnist_full_typo"
  with pytest.raises(ValueError, match=r"config.dataset.name='mnist_full_typo'.*mnist5k"):
    taylorglo.run(c, str(tmp_path / "a"))
  # The locked defaults refuse the typo where it is written...
  with pytest.raises(AttributeError, match="sigmaa"):
    tiny_config().search.sigmaa = 2.0
  # ...and a config given as a plain dict is checked by run().
  c = config_lib.to_plain(tiny_config())
  c["search"]["sigmaa"] = 2.0
  with pytest.raises(ValueError, match=r"unknown config key config.search.sigmaa; did you "
                                       r"mean \['sigma'\]"):
    taylorglo.run(c, str(tmp_path / "b"))
  c = tiny_config()
  c.model.name = "resnet9000"
  with pytest.raises(ValueError, match="not a known model"):
    taylorglo.run(c, str(tmp_path / "c"))
  c = tiny_config()
  c.train.learning_rate = -1.0
  with pytest.raises(ValueError, match=r"config\.train\.learning_rate=-1\.0 must be a finite "
                                       r"number > 0"):
    taylorglo.run(c, str(tmp_path / "d"))
  # A workdir of another run is refused, naming the difference; nothing is lost.
  wd = str(tmp_path / "e")
  c = tiny_config()
  c.search.generations = 1
  c.final.enabled = False
  taylorglo.run(c, wd, log=lambda m: None)
  before = open(os.path.join(wd, "log.jsonl")).read()
  c.search.sigma = 2.0
  with pytest.raises(ValueError, match=r"search.sigma: 1.2 -> 2.0"):
    taylorglo.run(c, wd, log=lambda m: None)
  assert open(os.path.join(wd, "log.jsonl")).read() == before


def test_fitness_sign_and_nan_handling():
  f = common.sanitize_fitness([0.5, np.nan, 0.9, np.inf])
  np.testing.assert_allclose(f, [0.5, 0.0, 0.9, 0.0])
  assert int(np.argmax(f)) == 2
  np.testing.assert_allclose(common.to_minimization([0.5, np.nan, 0.9]),
                             [-0.5, 0.0, -0.9])


def test_binary_end_to_end_and_clear_errors(tmp_path):
  env = {**os.environ, "PYTHONPATH": REPO}
  cmd = [sys.executable, os.path.join(REPO, "experiments", "taylorglo.py"),
         f"--config={os.path.join(REPO, 'experiments', 'configs', 'quickstart.py')}",
         f"--workdir={tmp_path / 'run'}", "--config.search.generations=2",
         "--config.search.population_size=4", "--config.train.steps=20",
         "--config.final.repeats=2", "--config.final.steps=20",
         "--config.model.options.hidden=(8,)"]
  res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
  assert res.returncode == 0, res.stderr
  assert "gen   1/2" in res.stdout and "gen   2/2" in res.stdout
  assert "Welch's test of H1 taylorglo > that row" in res.stdout
  for row in ("cross_entropy ", "cross_entropy@tuned ", "effective learning rate"):
    assert row in res.stdout
  bad = subprocess.run(cmd[:3] + [f"--workdir={tmp_path / 'bad'}",
                                  "--config.dataset.name=cifar_typo"],
                       capture_output=True, text=True, env=env, timeout=120)
  assert bad.returncode == 2
  assert "error: config.dataset.name='cifar_typo' is not a known dataset" in bad.stderr
  assert "Traceback" not in bad.stderr


def test_paper_config_runs_at_tiny_scale(tmp_path):
  """The full-size MNIST config, shrunk to a few steps: same code path, the paper's CNN."""
  sys.path.insert(0, REPO)
  from experiments.configs import mnist_paper
  c = mnist_paper.get_config()
  assert (c.dataset.name, c.model.name, c.train.steps, c.search.population_size,
          c.search.generations, c.final.steps, c.final.repeats, c.search.sigma) == (
              "mnist", "mnist_cnn", 2000, 20, 60, 20000, 10, 1.2)
  # Full MNIST is not prepared here: a clear error before any work, naming the fix.
  with pytest.raises(FileNotFoundError, match="mnist"):
    taylorglo.run(c, str(tmp_path / "no_data"), log=lambda m: None)
  c.dataset.name = "mnist5k"  # the embedded subset stands in for full MNIST
  c.train.steps, c.train.batch_size, c.train.eval_batch_size = 2, 8, 250
  c.search.population_size, c.search.generations = 2, 1
  c.final.repeats, c.final.steps = 2, 2
  out = taylorglo.run(c, str(tmp_path / "paper"), log=lambda m: None)
  assert len(out["best_theta"]) == 8
  assert set(out["final"]) >= {"candidate", "baseline", "welch"}


def test_invariant_filter_skips_untrainable(tmp_path):
  """Theorem 6.5.1 as a filter: λ doubles; untrainable θ get fitness 0 untrained."""
  from glojax.analysis import is_trainable
  c = tiny_config()
  c.search.population_size = 3
  c.search.generations = 2
  c.search.invariant_filter = True
  c.final.enabled = False
  messages = []
  taylorglo.run(c, str(tmp_path / "inv"), log=messages.append)
  # The doubling is said where the population is: λ = 2 × search.population_size.
  assert "population 6 (2 × search.population_size 3: the invariant filter is on" in messages[0]
  log = read_log(str(tmp_path / "inv"))
  total_skipped = 0
  for r in log:
    ok = np.asarray(is_trainable(np.asarray(r["thetas"], np.float32), 10))
    assert len(r["fitness"]) == 6 and r["skipped_untrainable"] == int((~ok).sum())
    assert all(f == 0.0 for f, t in zip(r["fitness"], ok) if not t)
    assert all(f > 0.0 for f, t in zip(r["fitness"], ok) if t)  # trained: beats 0
    total_skipped += r["skipped_untrainable"]
  assert 0 < total_skipped < 12  # about half of N(0, 1.2²) θ fail the invariant
