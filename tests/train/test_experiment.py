"""experiments/train.py's library (glojax.train.experiment) on the workdir contract, and
the failed-run rule it shares with the final protocol (glojax.train.protocol)."""

import json
import os

import jax.numpy as jnp
import numpy as np
import pytest

from glojax import config as config_lib
from glojax import losses, models, summary
from glojax.train import TrainConfig, experiment, protocol


def tiny(**overrides):
  c = experiment.default_config()
  c.repeats = 2
  c.model.name = "mlp"
  c.model.options = {"hidden": (8,)}
  c.train.steps = 5
  c.train.batch_size = 32
  c.train.steps_per_call = 5
  c.train.learning_rate = 0.1
  c.num_devices = 1
  for key, value in overrides.items():
    section, _, name = key.rpartition(".")
    (c[section] if section else c)[name] = value
  return c


def test_changed_config_is_refused_and_nothing_changes(tmp_path):
  wd = str(tmp_path / "run")
  experiment.run(tiny(), wd, log=lambda m: None)
  before = files(wd)
  with pytest.raises(ValueError, match=r"train\.steps: 5 -> 200"):
    experiment.run(tiny(**{"train.steps": 200}), wd, log=lambda m: None)
  assert files(wd) == before
  # More runs may be asked of the same workdir: only the new run trains.
  messages = []
  out = experiment.run(tiny(repeats=3), wd, log=messages.append)
  assert any("2 of 3 runs done" in m for m in messages)
  assert out["losses"]["cross_entropy"]["runs"] == 3


def test_single_run_writes_strict_json_with_the_umask(tmp_path):
  wd = str(tmp_path / "run")
  old = os.umask(0o027)
  try:
    experiment.run(tiny(repeats=1), wd, log=lambda m: None)
  finally:
    os.umask(old)
  text = open(os.path.join(wd, "results.json")).read()
  assert "NaN" not in text
  row = json.loads(text)["losses"]["cross_entropy"]
  assert row["test_accuracy_std"] is None and row["finite_runs"] == 1
  for root, dirs, names in os.walk(wd):
    for name in names:
      assert os.stat(os.path.join(root, name)).st_mode & 0o777 == 0o640, name
    for name in dirs:
      assert os.stat(os.path.join(root, name)).st_mode & 0o777 == 0o750, name


def test_runs_curves_go_to_tensorboard(tmp_path):
  """tb/<i>_<loss>/run_<r> holds run r's curves: the values of runs.jsonl, read back."""
  wd = str(tmp_path / "run")
  experiment.run(tiny(repeats=2, eval_every=5), wd, log=lambda m: None)
  runs = [json.loads(line) for line in open(os.path.join(wd, "runs.jsonl"))]
  assert len(runs) == 2
  for row in runs:
    scalars = summary.read_scalars(os.path.join(wd, "tb", "0_cross_entropy",
                                                f"run_{row['run']}"))
    c = row["curve"]
    assert [s for s, _ in scalars["train_loss"]] == c["step"]
    np.testing.assert_allclose([v for _, v in scalars["train_loss"]], c["train_loss"],
                               rtol=1e-6)
    split = tiny().eval_split
    assert c["eval_step"]
    assert [s for s, _ in scalars[f"{split}_accuracy"]] == c["eval_step"]
    np.testing.assert_allclose([v for _, v in scalars[f"{split}_accuracy"]],
                               c["eval_accuracy"], rtol=1e-6)


def files(wd):
  """Every file under a workdir: relative path → bytes."""
  out = {}
  for root, _, names in os.walk(wd):
    for n in names:
      out[os.path.relpath(os.path.join(root, n), wd)] = open(os.path.join(root, n), "rb").read()
  return out


@pytest.mark.parametrize("key, value, message", [
    ("seed", -1, r"config\.seed=-1"),
    ("repeats", 0, r"config\.repeats=0"),
    ("loss", "no_such_loss", r"config\.loss='no_such_loss'"),
    ("alternative", "bigger", r"config\.alternative='bigger'"),
    ("train.momentum", 2.0, r"config\.train\.momentum=2\.0"),
    ("model.options", {"hiddn": 3}, r"config\.model\.options=.*hiddn"),
    ("eval_splt", "test", r"unknown config key config\.eval_splt"),
])
def test_bad_config_leaves_no_workdir(tmp_path, key, value, message):
  config = config_lib.to_plain(tiny())
  section, _, name = key.rpartition(".")
  (config[section] if section else config)[name] = value
  with pytest.raises(ValueError, match=message):
    experiment.run(config, str(tmp_path / "run"), log=lambda m: None)
  assert not os.path.exists(tmp_path / "run")


def test_failed_runs_are_rerun_then_reported_and_left_out(tmp_path):
  # θ with a huge quadratic term overflows the loss in the first step: every attempt
  # fails, so the runs are reported and excluded, never averaged as accuracy 0.
  theta = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1e30]
  wd = str(tmp_path / "run")
  out = experiment.run(tiny(loss=f"taylorglo(theta={theta})",
                            compare_to_cross_entropy=True, nan_retries=1), wd,
                       log=lambda m: None)
  bad = out["losses"][f"taylorglo(theta={theta})"]
  assert bad["runs"] == 2 and bad["finite_runs"] == 0
  assert bad["test_accuracy_mean"] is None and bad["test_accuracies"] == []
  rows = [json.loads(line) for line in open(os.path.join(wd, "runs.jsonl"))]
  assert [r["attempts"] for r in rows if not r["finite"]] == [2, 2]
  assert out["welch"] == {"t": None, "dof": None, "p": None, "alternative": "greater"}
  assert out["losses"]["cross_entropy"]["finite_runs"] == 2


def test_summarize_rule():
  s = protocol.summarize([0.9, 0.0, 0.8, 0.7], [True, False, True, True])
  assert s["runs"] == [0.9, 0.8, 0.7] and s["failed"] == 1
  assert s["mean"] == pytest.approx(0.8) and s["std"] == pytest.approx(0.1)
  assert protocol.summarize([0.5], [True])["std"] is None
  assert protocol.summarize([0.0, 0.0], [False, False])["mean"] is None
  assert protocol.welch([0.9], [0.8, 0.7], "greater")["p"] is None


def test_compare_leaves_failed_runs_out(tiny_mnist):
  """The final protocol: a loss whose runs all fail has no mean and no t-test, and the
  table says so (it used to average them in as accuracy 0)."""
  model = models.get("mlp", num_classes=10, hidden=(8,))
  ce = protocol.LossUnderTest("ce", lambda p, l, y: losses.cross_entropy(l, y),
                              jnp.zeros(0))
  nan = protocol.LossUnderTest("nan", lambda p, l, y: jnp.sum(l, -1) * jnp.nan,
                               jnp.zeros(0))
  messages = []
  out = protocol.compare(nan, ce, model=model, dataset=tiny_mnist,
                         train_config=TrainConfig(steps=5, batch_size=16,
                                                  learning_rate=0.1),
                         repeats=2, retries=1, strategy="sequential", log=messages.append)
  assert out["candidate"]["failed"] == 2 and out["candidate"]["runs"] == []
  assert out["candidate"]["mean"] is None and out["welch"]["p"] is None
  assert out["baseline"]["failed"] == 0 and len(out["baseline"]["runs"]) == 2
  assert any("2 of 2 nan runs failed" in m for m in messages)
  assert "not computed" in protocol.format_table(out)
  assert np.isfinite(out["baseline"]["mean"])
