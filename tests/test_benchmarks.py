"""The benchmarks run and report sane numbers (smoke tests at tiny scale, no timing claims).

PyTorch is optional (the ``bench`` extra): the peer's own checks skip without it, and the
population benchmark must then skip the peer with a message instead of failing.
"""

import json
import re
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "benchmarks"))

import peer_torch  # noqa: E402
import population as bench  # noqa: E402
import report as report_lib  # noqa: E402
import roofline  # noqa: E402

from glojax import losses, models  # noqa: E402

TINY = ["population.py", "--models=mlp", "--ks=2", "--steps=4", "--steps_per_call=2",
        "--repeats=1", "--gemm_n=64", "--conv_shape=2,8,4,4,3", "--nomemory"]


def test_benchmark_tiny(tmp_path, monkeypatch, capsys):
  # Without PyTorch the peer is skipped with a message (CI installs only [test]).
  monkeypatch.setattr(peer_torch, "torch", None)
  out = str(tmp_path / "bench")
  assert bench.run_with_flags(TINY + ["--strategies=auto", "--before",
                                      "--peer=torch", f"--out={out}"]) == 0
  report = json.load(open(out + ".json"))
  assert report["peer"].startswith("skipped: PyTorch is not installed")
  rows = report["results"]
  assert [(r["k"], r["strategy"]) for r in rows] == [
      (2, s) for s in ("auto", "before")]
  for r in rows:
    assert r["cand_steps_per_s"] > 0 and r["eval_ms_per_cand"] > 0 and "ratio" not in r
    # MLP 784-128-10, batch 100: forward+backward ≈ 6 × 100 × (784·128 + 128·10) FLOPs.
    assert 0.5 * 6.1e7 < r["flops_per_step"] < 2 * 6.1e7
    np.testing.assert_allclose(r["cand_steps_per_s"], r["k"] * 4 / r["steady_s"])
    assert r["roofline"]["gemm"]["flops"] == 2 * 64 ** 3
    assert r["roofline_gflops"] == max(r["roofline"]["gemm"]["gflops"],
                                       r["roofline"]["conv"]["gflops"])
    np.testing.assert_allclose(r["fraction_of_roofline"],
                               r["cand_steps_per_s"] * r["flops_per_step"] / 1e9
                               / r["roofline_gflops"])
  assert {r["mode"] for r in rows if r["strategy"] == "before"} == {"unroll"}
  assert os.path.getsize(out + ".png") > 0
  assert models.relu_max_pool is not bench._flax_relu_max_pool  # restored after `before`
  capsys.readouterr()
  assert report_lib.main([out + ".json"]) == 0
  text = capsys.readouterr().out
  assert "| K | auto | before | auto → |" in text
  assert re.search(r"^\| 2 \| .*\*\*[\d,.]+\*\*", text, re.M)  # the fastest in bold


def test_bad_strategy_is_a_usage_error(tmp_path):
  from absl import app
  with pytest.raises(app.UsageError, match="unknown strategies"):
    bench.run_with_flags(TINY + ["--strategies=fastest", f"--out={tmp_path / 'x'}"])


def test_roofline_probes_count_flops():
  gemm = roofline.gemm_probe(32)
  conv = roofline.conv_probe((2, 6, 3, 5, 3))
  assert gemm.flops == 2 * 32 ** 3 and conv.flops == 2 * 2 * 36 * 3 * 5 * 9
  summary = roofline.summarize(gemm, [gemm.time(), gemm.time(), gemm.time()])
  assert 0 < summary["gflops"] <= summary["best_gflops"]


# ---- the PyTorch peer (needs the optional `bench` extra) -------------------------------

def _torch():
  return pytest.importorskip("torch", reason="PyTorch not installed: the peer benchmark "
                             "is optional (pip install -e '.[bench]')")


def test_peer_loss_equals_glojax_taylorglo():
  torch = _torch()
  rng = np.random.default_rng(0)
  theta = rng.normal(size=8).astype(np.float32)
  logits = rng.normal(size=(5, 10)).astype(np.float32) * 3
  labels = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 5)]
  ours = peer_torch.taylorglo_loss(torch.tensor(theta), torch.tensor(logits),
                                   torch.tensor(labels)).numpy()
  ref = losses.taylorglo(jnp.asarray(theta), jnp.asarray(logits), jnp.asarray(labels))
  np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", peer_torch.MODELS)
def test_peer_models_match_glojax_shapes(name):
  torch = _torch()
  net = peer_torch.build_model(name)
  count = sum(p.numel() for p in net.parameters())
  model = models.get(name, num_classes=10, **bench.MODEL_OPTIONS[name])
  shapes = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0),
                                             jnp.zeros((1, 28, 28, 1)), train=False))
  assert count == models.count_params(shapes)
  assert tuple(net(torch.zeros(3, 1, 28, 28)).shape) == (3, 10)


def test_peer_trains_one_candidate(mnist5k):
  _torch()
  tdata = peer_torch.TorchData.from_dataset(mnist5k)
  res = peer_torch.train_candidate("mlp", np.zeros(8), tdata, steps=3)
  assert res.train_s > 0 and res.eval_s > 0 and 0 <= res.accuracy <= 1
  # θ = 0 is the zero loss: no gradient, so the weights (and accuracy) stay at init.
  assert res.last_loss == 0.0
