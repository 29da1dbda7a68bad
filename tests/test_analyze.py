"""Tests for experiments/analyze.py and glojax.analysis.report."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from glojax.analysis import report

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
THETA_641 = [0.0, 0.0, -373.917, -65.132, -3.7396, 0.336, -0.603, 1.1103]
SPEC_641 = "taylorglo(theta=[" + ", ".join(repr(v) for v in THETA_641) + "])"


def make_workdir(path):
  path.mkdir()
  with open(path / "log.jsonl", "w") as f:
    for g, best in enumerate([0.3, 0.6, 0.55]):
      fit = [best, best / 2, 0.0]
      f.write(json.dumps({"generation": g, "fitness": fit, "best": best,
                          "mean": float(np.mean(fit)), "median": float(np.median(fit))}) + "\n")
  (path / "best_loss.txt").write_text(SPEC_641 + "\n")
  (path / "final.json").write_text(json.dumps({
      "candidate": {"name": "taylorglo", "runs": [0.95, 0.96, 0.955]},
      "baseline": {"name": "cross_entropy", "runs": [0.93, 0.935, 0.94]},
      "welch": {"alternative": "greater"}}))
  return path


def test_analyze_losses_and_workdir(tmp_path):
  workdir = make_workdir(tmp_path / "run")
  out = tmp_path / "out"
  rep = report.analyze(["cross_entropy", "baikal"], str(workdir), output_dir=str(out),
                       num_classes=10)
  for name in ("attraction.png", "fitness_curves.png", "report.md", "report.json"):
    assert (out / name).stat().st_size > 0, name
  assert json.loads((out / "report.json").read_text()) == rep
  wd = rep["workdir"]
  # Generations are reported from 1 (log.jsonl counts from 0).
  assert wd["generations"] == 3 and wd["best_generation"] == 2 and wd["best_fitness"] == 0.6
  assert wd["best_phase"] == "search"
  assert wd["final_row"].startswith("taylorglo vs cross_entropy | 0.9350 (0.0050) | "
                                    "0.9550 (0.0050) | ")
  specs = [s["spec"] for s in rep["losses"]]
  assert specs == ["cross_entropy", "baikal", SPEC_641]  # best_loss.txt analysed too
  ce, baikal, taylor = rep["losses"]
  assert ce["trainable"] and baikal["trainable"] and taylor["trainable"]
  assert ce["attraction"]["min"] > 0 and ce["attraction"]["sign_changes_at_eps"] == []
  assert len(baikal["attraction"]["sign_changes_at_eps"]) == 1  # repelled when confident
  np.testing.assert_allclose([taylor["zero_error"][k] for k in "abc"],
                             [-373.917, -129.928, -11.3145], rtol=1e-5)
  np.testing.assert_allclose(taylor["null_epoch_raw"]["gamma_target"], -385.7299, rtol=1e-5)
  assert taylor["invariant"] == {"theorem": True, "centred": True}
  md = (out / "report.md").read_text()
  assert "| `baikal` |" in md and "a, b, c" in md
  assert "best fitness 0.6 at generation 2 (counted from 1)" in md


def test_analyze_errors(tmp_path):
  with pytest.raises(ValueError, match="at least one"):
    report.analyze([], None, output_dir=str(tmp_path))
  with pytest.raises(ValueError):
    report.analyze(["no_such_loss"], None, output_dir=str(tmp_path))
  with pytest.raises(FileNotFoundError):
    report.analyze([], str(tmp_path / "missing"), output_dir=str(tmp_path / "o"))
  with pytest.raises(ValueError, match="num_classes"):
    report.analyze(["baikal"], None, output_dir=str(tmp_path), num_classes=1)


def test_cli_bad_spec_exits_with_one_line(tmp_path):
  proc = subprocess.run(
      [sys.executable, os.path.join(ROOT, "experiments", "analyze.py"), "--loss=no_such_loss(",
       f"--output_dir={tmp_path}"], capture_output=True, text=True, timeout=120,
      env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert proc.returncode == 2
  assert "error:" in proc.stderr and "Traceback" not in proc.stderr
