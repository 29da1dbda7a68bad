"""experiments/train.py end to end on a tiny ResNet and real (or generated) Fashion-MNIST."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from glojax.data import idx

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.path.join(ROOT, "experiments", "train.py")
CONFIG = os.path.join(ROOT, "experiments", "configs", "train_quick.py")


def _run(args, timeout=300):
  env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, BINARY] + args, env=env, capture_output=True,
                        text=True, timeout=timeout)


@pytest.mark.slow
def test_quick_config_trains_reports_and_resumes(tmp_path):
  args = [f"--config={CONFIG}", f"--workdir={tmp_path}"]
  if idx.find_idx_files(idx.FASHION_MNIST_DIR) is None:  # CI installs the real files
    rng = np.random.default_rng(0)
    for key, stem in idx.IDX_FILES.items():
      n = 800 if key.startswith("train") else 200
      arr = (rng.integers(0, 256, (n, 28, 28)) if key.endswith("images")
             else np.arange(n) % 10)
      idx.write_idx(str(tmp_path / stem), arr)
    args.append(f"--config.dataset.options.data_dir={tmp_path}")
  proc = _run(args)
  assert proc.returncode == 0, proc.stderr[-3000:]
  res = json.loads((tmp_path / "results.json").read_text())
  ce = res["losses"]["cross_entropy"]
  tg = res["losses"]["taylorglo(theta=[0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0])"]
  for m in (ce, tg):
    assert m["runs"] == 2 and m["finite_runs"] == 2
    acc = np.asarray(m["test_accuracies"])
    assert np.all((acc >= 0) & (acc <= 1))
    assert m["test_accuracy_mean"] == pytest.approx(acc.mean())
    assert m["test_accuracy_std"] == pytest.approx(acc.std(ddof=1))
  import scipy.stats
  p = scipy.stats.ttest_ind(tg["test_accuracies"], ce["test_accuracies"], equal_var=False,
                            alternative="greater").pvalue
  assert res["welch"]["p"] == pytest.approx(p)
  runs = [json.loads(l) for l in (tmp_path / "runs.jsonl").read_text().splitlines()]
  assert len(runs) == 4 and runs[0]["curve"]["step"] == list(range(1, 21))
  assert runs[0]["curve"]["eval_step"] == [10, 20]
  assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  assert "test accuracy" in proc.stdout and "Welch" in proc.stdout
  # Rerunning on the finished workdir trains nothing and reports the same numbers.
  again = _run(args)
  assert again.returncode == 0
  assert "2 of 2 runs done" in again.stdout
  assert json.loads((tmp_path / "results.json").read_text()) == res


def test_bad_config_is_a_one_line_error(tmp_path):
  proc = _run([f"--config={CONFIG}", f"--workdir={tmp_path}",
               "--config.dataset.name=mnist5k"])
  assert proc.returncode == 2
  assert "dataset 'mnist5k' has no option(s) ['data_dir', 'num_test', 'num_train'" in proc.stderr
  assert proc.stderr.startswith("error: config.dataset.options=")
  assert "reset them with --config.dataset.options='{}'" in proc.stderr
  assert "Traceback" not in proc.stderr


def test_loss_spec_fallback_parses_taylorglo_and_rejects_junk():
  from glojax.train.experiment import loss_from_spec
  fn, theta = loss_from_spec("taylorglo(theta=[0, 0, 0, 0, 0, 1, 0, 0])")
  assert np.asarray(theta).shape == (8,)
  with pytest.raises(ValueError):
    loss_from_spec("taylorglo(theta=[1, 2])")
  with pytest.raises(ValueError):
    loss_from_spec("__import__('os')")


def _load_config(name):
  import importlib.util
  spec = importlib.util.spec_from_file_location(
      name, os.path.join(ROOT, "experiments", "configs", f"{name}.py"))
  mod = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(mod)
  return mod


def test_table51_and_glo_configs_are_valid():
  from glojax import models
  from glojax.data import augment
  from glojax.train.experiment import _TRAIN_FIELDS
  from glojax.train.trainer import TrainConfig
  table = _load_config("train_table51")
  configs = {row: table.get_config(row) for row in table.ROWS}
  configs["glo"] = _load_config("train_glo_cifar").get_config()
  for row, c in configs.items():
    tc = TrainConfig(**{f: c.train[f] for f in _TRAIN_FIELDS})
    assert c.model.name in models.names(), row
    assert tc.batch_size in (128, 1024) and tc.momentum in (0.0, 0.9)
    assert max(tc.boundaries) < tc.steps, row
    augment.parse(tc.augment)
  # Spot checks against the literature recipes quoted in the docstring.
  assert configs["resnet20"].train.boundaries == (32000, 48000)
  assert configs["wrn16_8_cutout"].train.augment.endswith("cutout=16")
  assert configs["pyramidnet110_a48"].dataset.name == "cifar100"
  assert configs["svhn_wrn28_5"].dataset.name == "svhn"
  # Dissertation §3.1.2-3.1.3: every row, SVHN included, crops (2 px pad) and flips.
  for row, c in configs.items():
    if row != "glo":
      assert c.train.augment.startswith("pad_crop=2,flip,normalize=per_channel"), row
  assert configs["svhn_wrn16_8_cutout"].train.augment.endswith("cutout=20")
  assert dict(configs["allcnn_c_aux"].model.options) == {"aux_heads": True}
  with pytest.raises(ValueError, match="unknown Table 5.1 row"):
    table.get_config("vgg16")
