"""Multi-device training on 2 forced host CPU devices, in a subprocess.

XLA_FLAGS must be set before jax is imported, and the main pytest process has one CPU
device, so tests/_parallel_check.py runs in a child process and prints its results.
"""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from glojax.train import parallel

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def two_device_results():
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
             PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "_parallel_check.py")],
                        env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_data_parallel_loss_curve_matches_one_device(two_device_results):
  one, two = two_device_results["dp_train_loss"]
  assert len(one) == 4
  np.testing.assert_allclose(two, one, rtol=1e-5)
  assert two_device_results["dp_eval_accuracy"][0] == two_device_results["dp_eval_accuracy"][1]
  t1, t2 = two_device_results["dp_test"]
  assert t1["accuracy"] == t2["accuracy"]
  np.testing.assert_allclose(t2["loss"], t1["loss"], rtol=1e-5)


@pytest.mark.slow
def test_data_parallel_really_shards(two_device_results):
  # Two devices: the gradient needs an all-reduce; params stay replicated.
  assert two_device_results["dp2_all_reduce"] is True
  assert two_device_results["dp2_sharding"] == "P()"


@pytest.mark.slow
def test_population_sharding_matches_unsharded(two_device_results):
  ref, shd = two_device_results["pop_fitness"]
  assert len(ref) == 3  # K=3 padded to 4 internally, padding dropped
  assert len(set(two_device_results["pop_train_loss"][0])) == 3  # candidates differ
  np.testing.assert_array_equal(shd, ref)
  np.testing.assert_allclose(*two_device_results["pop_train_loss"][::-1], rtol=1e-5)
  assert two_device_results["pop_state_sharding"] == "P('pop',)"


def test_make_mesh_rejects_bad_device_count():
  with pytest.raises(ValueError, match="num_devices"):
    parallel.make_mesh(len(jax.devices()) + 1)


def test_data_parallel_rejects_indivisible_batch():
  from glojax import data, models
  from glojax.losses import core
  from glojax.train.trainer import Trainer, TrainConfig

  class FakeMesh:
    axis_names = ("data",)
    devices = np.zeros(3)

  trainer = Trainer(models.get("mlp", num_classes=10, hidden=(4,)), data.load("mnist5k"),
                    lambda p, l, y: core.cross_entropy(l, y), TrainConfig(batch_size=10))
  with pytest.raises(ValueError, match="batch_size=10 is not divisible"):
    parallel.DataParallel(trainer, FakeMesh())


def test_data_parallel_scan_and_python_chunks_agree(tiny_mnist):
  # loop="scan" (accelerators) scans one compiled step; "python" unrolls (CPU).
  from glojax import models
  from glojax.data import Dataset, Split
  from glojax.losses import core
  from glojax.train.trainer import Trainer, TrainConfig
  small = lambda s: Split(s.images[:64, ::2, ::2], s.labels[:64])
  ds = Dataset("t", small(tiny_mnist.train), small(tiny_mnist.validation),
               small(tiny_mnist.test), 10)
  hists = []
  for loop in ("python", "scan"):
    cfg = TrainConfig(steps=4, batch_size=8, learning_rate=0.1, steps_per_call=2,
                      loop=loop, eval_batch_size=64, augment="flip")
    t = Trainer(models.get("mlp", num_classes=10, hidden=(16,)), ds,
                lambda p, l, y: core.cross_entropy(l, y), cfg)
    _, hist = parallel.DataParallel(t, parallel.make_mesh(1)).fit(
        jnp.zeros(0), jax.random.PRNGKey(0), eval_every=2)
    hists.append(hist)
  assert hists[0]["step"] == hists[1]["step"] == [2, 4]
  np.testing.assert_allclose(hists[0]["train_loss"], hists[1]["train_loss"], rtol=1e-5)
  assert hists[0]["eval_step"] == [2, 4]
  assert hists[0]["final"]["test"]["accuracy"] == hists[1]["final"]["test"]["accuracy"]
