"""The population benchmark runs and reports sane numbers (smoke test at tiny scale)."""

import json
import os
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "benchmarks"))

import population as bench  # noqa: E402


def test_benchmark_tiny(tmp_path):
  out = str(tmp_path / "bench")
  assert bench.main(["--models=mlp", "--ks=1,2", "--steps=4", "--steps_per_call=2",
                     "--repeats=1", "--strategies=vmap,sequential", f"--out={out}"]) == 0
  report = json.load(open(out + ".json"))
  rows = report["results"]
  assert [(r["k"], r["strategy"]) for r in rows] == [(1, "vmap"), (1, "sequential"),
                                                     (2, "vmap"), (2, "sequential")]
  for r in rows:
    assert r["cand_steps_per_s"] > 0 and r["steady_s"] > 0
    # MLP 784-128-10, batch 100: forward+backward ≈ 6 × 100 × (784·128 + 128·10) FLOPs.
    assert 0.5 * 6.1e7 < r["flops_per_step"] < 2 * 6.1e7
    np.testing.assert_allclose(r["cand_steps_per_s"], r["k"] * 4 / r["steady_s"])
  assert os.path.getsize(out + ".png") > 0
