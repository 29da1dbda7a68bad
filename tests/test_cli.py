"""Every binary turns a bad command line into one `error: ...` line and exit status 2."""

import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(args, cwd):
  return subprocess.run([sys.executable] + args, cwd=cwd, capture_output=True, text=True,
                        timeout=300, env={**os.environ, "PYTHONPATH": REPO})


def assert_one_line_error(proc, expected):
  assert proc.returncode == 2, proc.stderr
  lines = [line for line in proc.stderr.splitlines() if line.strip()]
  assert len(lines) == 1, proc.stderr
  assert lines[0].startswith("error: "), lines[0]
  assert expected in lines[0], lines[0]
  assert "FATAL" not in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("binary, config, bad, expected", [
    ("taylorglo.py", "quickstart.py", "--config.search.generations=abc",
     "error: config.search.generations='abc' is not a valid int"),
    ("glo.py", "glo_quickstart.py", "--config.coefficients.sigma=wide",
     "error: config.coefficients.sigma='wide' is not a valid float"),
    ("train.py", "train_quick.py", "--config.repeats=abc",
     "error: config.repeats='abc' is not a valid int"),
])
def test_wrong_type_on_the_command_line_is_one_line(tmp_path, binary, config, bad, expected):
  workdir = tmp_path / "run"
  proc = run([os.path.join(REPO, "experiments", binary),
              f"--config={os.path.join(REPO, 'experiments', 'configs', config)}",
              f"--workdir={workdir}", bad], cwd=tmp_path)
  assert_one_line_error(proc, expected)
  assert not workdir.exists()


def test_analyze_bad_flags_are_one_line(tmp_path):
  binary = os.path.join(REPO, "experiments", "analyze.py")
  out = tmp_path / "out"
  assert_one_line_error(run([binary, f"--output_dir={out}", "--num_classes=ten"], tmp_path),
                        "error: num_classes='ten' is not a valid int")
  assert_one_line_error(run([binary, f"--output_dir={out}", "--los=baikal"], tmp_path),
                        "unknown flag --los; did you mean --loss?")
  assert not out.exists()


def test_leftover_model_options_say_how_to_reset_them(tmp_path):
  """The quickstart's model.options hold the MLP's hidden; switching the model keeps them."""
  workdir = tmp_path / "mine"
  args = [os.path.join(REPO, "experiments", "taylorglo.py"),
          f"--config={os.path.join(REPO, 'experiments', 'configs', 'quickstart.py')}",
          f"--workdir={workdir}", "--config.model.name=small_cnn"]
  proc = run(args, tmp_path)
  assert_one_line_error(proc, "error: config.model.options={'hidden': (64,)}: model "
                              "'small_cnn' has no option(s) ['hidden']")
  assert "reset them with --config.model.options='{}'" in proc.stderr
  assert "its options: ['dense', 'features']" in proc.stderr
  assert not workdir.exists()


def test_check_options_covers_datasets_and_accepts_valid_options():
  sys.path.insert(0, REPO)
  import ml_collections
  from experiments.flagparse import check_options
  config = ml_collections.ConfigDict({
      "model": {"name": "mlp", "options": {"hidden": (8,)}},
      "dataset": {"name": "mnist5k", "options": {"num_train": 100}}})
  with pytest.raises(ValueError, match=r"config\.dataset\.options=\{'num_train': 100\}: "
                                       r"dataset 'mnist5k' has no option\(s\) \['num_train'\]"):
    check_options(config)
  config.dataset.options = {"train_fraction": 0.5}
  check_options(config)  # valid: nothing raised
  config.model.name = "no_such_model"  # unknown names are the run's own error
  check_options(config)
