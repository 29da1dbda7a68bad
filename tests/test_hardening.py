"""Adversarial tests: malformed specs, configs and workdirs fail clearly, losing nothing."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from glojax import expr, losses, models
from glojax import config as config_lib
from glojax import workdir
from glojax.search import taylorglo
from glojax.train import TrainConfig, Trainer, evaluate_population


# ---- loss specs ------------------------------------------------------------------------

@pytest.mark.parametrize("spec, message", [
    # An integer literal too large for a float (Python raises OverflowError).
    ("label_smoothing(alpha=" + "9" * 400 + ")", "alpha"),
    ("expr:log(y) - " + "9" * 400 + " * x", "9999"),
    # Non-finite constants would print as 'inf', which does not parse back.
    ("expr:1e400 * y", "1e400"),
    # Values finite in float64 but not in float32 (the dtype the loss computes in).
    ("polyloss(epsilon=1e300)", "epsilon"),
    ("taylorglo(theta=[1e39, 0, 0, 0, 0, 0, 0, 0])", "theta"),
    # Deep nesting: RecursionError inside ast or the tree builder.
    ("expr:" + "-" * 2000 + "y", "deep"),
    ("expr:" + "+".join(["y"] * 3000), "deep"),
    ("label_smoothing(alpha=" + "-" * 3000 + "1)", "alpha"),
])
def test_pathological_specs_raise_value_error(spec, message):
  with pytest.raises(ValueError, match=message):
    losses.get(spec)


def test_expr_parse_rejects_non_finite_and_deep_trees():
  with pytest.raises(ValueError, match="not finite"):
    expr.parse("1e400 * y")
  with pytest.raises(ValueError, match="deep"):
    expr.parse("log(" * 150 + "y" + ")" * 150)
  # Moderate depth still parses and round-trips.
  text = "log(" * 20 + "y" + ")" * 20
  assert expr.to_string(expr.parse(text)) == text


@pytest.mark.parametrize("spec", [
    "__import__('os').system('true')", "os.system('true')", "lambda: 0",
    "baikal.__class__", "expr:(lambda: y)()", "expr:__import__('os')", "expr:y.sum()",
    "expr:y; import os", "taylorglo(theta=[0] * 8)", "polyloss(epsilon=float('inf'))",
    "expr:y[0]", "label_smoothing(alpha=True)",
])
def test_code_is_never_run(spec):
  with pytest.raises(ValueError):
    losses.get(spec)


# ---- search configs ----------------------------------------------------------------------


def tiny_config():
  c = taylorglo.default_config()
  c.model.options = {"hidden": (8,)}
  c.train.steps = 20
  c.train.batch_size = 32
  c.train.learning_rate = 0.1
  c.search.population_size = 4
  c.search.generations = 2
  c.final.repeats = 2
  c.final.steps = 20
  return c


def _set(config, dotted, value):
  """``config`` as a plain dict (a config file can hold any type) with one value set."""
  config = config_lib.to_plain(config)
  section, _, key = dotted.rpartition(".")
  target = config
  for part in filter(None, section.split(".")):
    target = target[part]
  target[key] = value
  return config


@pytest.mark.parametrize("key, value", [
    # Values that used to pass validation and fail only after the whole search.
    ("final.steps", 0),
    ("final.alternative", "bigger"),
    ("final.seed", "one"),
    ("final.repeats", 2.5),
    # Wrong types (a config file can hold anything) used to raise TypeError.
    ("search.sigma", "abc"),
    ("search.sigma", float("inf")),
    ("search.mean", float("nan")),
    ("search.mean", "zero"),
    ("search.nan_retries", -1),
    ("search.population_size", 4.0),
    ("search.population_size", True),
    ("seed", "0"),
    ("seed", -1),
    ("dataset.seed", 1.5),
    ("train.learning_rate", "fast"),
    ("train.momentum", -0.5),
    ("train.momentum", 1.0),
    ("train.weight_decay", -1e-4),
    ("model.options", "hidden=8"),
    ("search.invariant_filter", "yes"),
    # Batches are drawn with replacement, so a batch larger than the train split
    # (4,000 here) "works" but is a typo that makes every step slow.
    ("train.batch_size", 100_000),
])
def test_bad_config_values_fail_before_any_work(tmp_path, key, value):
  config = _set(tiny_config(), key, value)
  wd = str(tmp_path / "run")
  with pytest.raises(ValueError, match=r"config\." + key.replace(".", r"\.")):
    taylorglo.run(config, wd, log=lambda m: None)
  assert not os.path.exists(wd)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
  """One finished tiny run (1 generation + a 2×20-step final protocol)."""
  wd = str(tmp_path_factory.mktemp("finished") / "run")
  c = tiny_config()
  c.search.generations = 1
  out = taylorglo.run(c, wd, log=lambda m: None)
  return c, wd, out


def _copy(finished_run, tmp_path):
  c, wd, out = finished_run
  new = str(tmp_path / "run")
  shutil.copytree(wd, new)
  return c, new, out


def test_rerun_of_finished_run_reuses_final_protocol(finished_run, tmp_path):
  c, wd, out = _copy(finished_run, tmp_path)
  messages = []
  again = taylorglo.run(c, wd, log=messages.append)
  assert not any("final protocol: training" in m for m in messages), messages
  assert any("final.json" in m for m in messages)
  assert again["final"]["candidate"]["runs"] == out["final"]["candidate"]["runs"]
  # A changed final protocol is redone.
  c2 = tiny_config()
  c2.search.generations = 1
  c2.final.seed = 7
  messages = []
  taylorglo.run(c2, wd, log=messages.append)
  assert any("final protocol: training" in m for m in messages)
  assert json.load(open(os.path.join(wd, "final.json")))["final_config"]["seed"] == 7


def _read_log(wd):
  return workdir.read_jsonl(os.path.join(wd, workdir.LOG_FILE))


# ---- the binary --------------------------------------------------------------------------


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_FLAGS = ["--config.search.population_size=4", "--config.train.steps=20",
              "--config.train.batch_size=32", "--config.model.options.hidden=(8,)",
              "--config.final.repeats=2", "--config.final.steps=20"]


def _binary(workdir, *flags):
  return [sys.executable, os.path.join(REPO, "experiments", "taylorglo.py"),
          f"--config={os.path.join(REPO, 'experiments', 'configs', 'quickstart.py')}",
          f"--workdir={workdir}", *TINY_FLAGS, *flags]


def test_binary_misspelt_override_is_one_line(tmp_path):
  res = subprocess.run(_binary(tmp_path / "run", "--config.model.options.hiddn=(8,)"),
                       capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": REPO})
  assert res.returncode == 2, res.stderr
  assert "Traceback" not in res.stderr
  assert "error:" in res.stderr and "hiddn" in res.stderr and "hidden" in res.stderr
  assert not os.path.exists(tmp_path / "run")
  cmd = _binary(tmp_path / "run")
  cmd[2] = "--config=experiments/configs/no_such_config.py"
  # With overrides the file is loaded while parsing flags; without, on first use.
  for args in (cmd, cmd[:4]):
    res = subprocess.run(args, capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": REPO})
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    assert "error:" in res.stderr and "no_such_config.py" in res.stderr


def test_config_that_is_not_a_mapping(tmp_path):
  with pytest.raises(ValueError, match="int"):
    taylorglo.run(5, str(tmp_path / "run"), log=lambda m: None)


def _terminal_signals():
  """In the child: SIGINT as a terminal gives it (default action, not blocked). In the
  full suite under pytest-xdist the binary inherited a SIGINT it never saw (ignored or
  blocked by something earlier in the worker), although it stops when run alone."""
  signal.pthread_sigmask(signal.SIG_SETMASK, [])
  signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_binary_ctrl_c_says_how_to_resume(tmp_path):
  wd = tmp_path / "run"
  proc = subprocess.Popen(_binary(wd, "--config.search.generations=1000"),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env={**os.environ, "PYTHONPATH": REPO},
                          preexec_fn=_terminal_signals)
  try:
    for line in proc.stdout:  # wait for the first finished generation
      if line.startswith("gen "):
        break
    # A second Ctrl-C if the first did not stop it within 60 s.
    err = "the binary ignored three SIGINTs"
    for _ in range(3):
      proc.send_signal(signal.SIGINT)
      try:
        _, err = proc.communicate(timeout=60)
        break
      except subprocess.TimeoutExpired:
        continue
  finally:
    proc.kill()
  assert proc.returncode == 130, err
  assert "Traceback" not in err
  assert "interrupted" in err and "rerun" in err
  assert len(_read_log(str(wd))) >= 1


# ---- README ------------------------------------------------------------------------------

def test_readme_first_snippet_defines_what_it_uses():
  """The README's 'Use the pieces' block runs as pasted (its loss part; the training
  part is the population API that tests/test_population.py covers)."""
  readme = open(os.path.join(REPO, "README.md")).read()
  block = re.findall(r"```python\n(.*?)```", readme, re.S)[0]
  loss_part = block.split("# Train K")[0]
  namespace = {}
  exec(compile(loss_part, "README.md", "exec"), namespace)  # noqa: S102 (our own README)
  per_example = np.asarray(namespace["per_example"])
  assert per_example.shape == (4,) and np.all(np.isfinite(per_example))


# ---- population (fixed on main in 17cda63 after this report) --------------------------

def test_nan_retry_that_succeeds_under_vmap(tiny_mnist):
  trainer = Trainer(models.get("mlp", num_classes=10, hidden=(8,)), tiny_mnist,
                    lambda p, logits, labels: losses.cross_entropy(logits, labels),
                    TrainConfig(steps=20, batch_size=32, learning_rate=1e12))
  # With this learning rate run 0 of key split(PRNGKey(1), 2) goes NaN and its first
  # retry does not; the retry's row must be written back.
  result = evaluate_population(trainer, jnp.zeros((2, 0)),
                               jax.random.split(jax.random.PRNGKey(1), 2),
                               strategy="vmap", split="test")
  assert result.attempts.max() >= 2
  assert np.all(result.fitness > 0)  # the successful retries' rows were written back


def test_lowering_generations_on_resume_is_reported(finished_run, tmp_path):
  c, wd, out = _copy(finished_run, tmp_path)
  c = tiny_config()
  c.search.generations = 0
  messages = []
  again = taylorglo.run(c, wd, log=messages.append)
  assert any("already has 1 generation" in m for m in messages), messages
  assert again["best_theta"] == out["best_theta"]
  assert len(_read_log(wd)) == 1


def test_search_where_every_candidate_fails_says_so_and_skips_final(tmp_path):
  c = tiny_config()
  c.search.generations = 1
  c.search.mean = 1e30   # every θ overflows the loss: NaN training
  c.search.sigma = 1.0
  c.search.nan_retries = 0
  wd = str(tmp_path / "run")
  messages = []
  out = taylorglo.run(c, wd, log=messages.append)
  assert out["best_fitness"] == 0.0 and out["final"] is None
  assert any("every candidate failed" in m for m in messages), messages
  assert not any("final protocol: training" in m for m in messages)
  assert not os.path.exists(os.path.join(wd, "final.json"))
