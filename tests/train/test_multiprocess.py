"""Two JAX processes on 127.0.0.1 (one CPU device each) run one TaylorGLO generation.

The binary is launched twice with ``--coordinator_address/--num_processes/--process_id``
(experiments/distributed.py); ``search.strategy="sharded"`` splits the 3 candidates (not
divisible by the 2 devices: padded to 4, padding dropped) over both processes. The
generation must equal a single-process run with the same seed, and only process 0 may
write the workdir or print.
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TIMEOUT_S = 240  # hard bound for the whole job; it takes ~30-60 s on an idle 2-core CPU
OVERRIDES = {"search.population_size": 3, "search.generations": 1, "train.steps": 4,
             "train.batch_size": 32, "model.options.hidden": (8,), "final.enabled": False}


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _launch(workdir, num_processes: int) -> list[subprocess.CompletedProcess]:
  port = _free_port()
  args = [sys.executable, os.path.join(ROOT, "experiments", "taylorglo.py"),
          f"--config={os.path.join(ROOT, 'experiments', 'configs', 'quickstart.py')}",
          f"--workdir={workdir}", "--config.search.strategy=sharded",
          f"--coordinator_address=127.0.0.1:{port}", f"--num_processes={num_processes}"]
  args += [f"--config.{k}={v}" for k, v in OVERRIDES.items()]
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # one device each
  env.update(PYTHONPATH=ROOT, JAX_PLATFORMS="cpu", GLOJAX_COMPILATION_CACHE="none")
  procs = [subprocess.Popen(args + [f"--process_id={i}"], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
           for i in range(num_processes)]
  try:
    outs = [p.communicate(timeout=TIMEOUT_S) for p in procs]
  finally:
    for p in procs:  # a process whose peer died waits for it: never leave one behind
      if p.poll() is None:
        p.kill()
        p.wait()
  return [subprocess.CompletedProcess(p.args, p.returncode, o, e)
          for p, (o, e) in zip(procs, outs)]


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("mp") / "run"
  results = _launch(workdir, 2)
  for i, r in enumerate(results):
    assert r.returncode == 0, f"process {i}:\n{r.stderr[-3000:]}"
  return workdir, results


@pytest.mark.slow
def test_two_processes_match_one_process(two_process_run, tmp_path):
  from experiments.configs import quickstart
  from glojax import workdir as workdir_lib
  from glojax.search import taylorglo
  workdir, _ = two_process_run
  [record] = workdir_lib.read_jsonl(os.path.join(workdir, workdir_lib.LOG_FILE))
  config = quickstart.get_config()
  for key, value in OVERRIDES.items():
    section, *rest = key.split(".")
    node = config[section]
    for part in rest[:-1]:
      node = node[part]
    node[rest[-1]] = value
  config.search.strategy = "vmap"  # one process, one device, no sharding
  taylorglo.run(config, str(tmp_path / "one"), log=lambda msg: None)
  [ref] = workdir_lib.read_jsonl(os.path.join(tmp_path, "one", workdir_lib.LOG_FILE))
  assert len(record["fitness"]) == 3 and len(set(ref["fitness"])) > 1  # candidates differ
  np.testing.assert_array_equal(record["thetas"], ref["thetas"])  # same keys, same ES
  np.testing.assert_allclose(record["fitness"], ref["fitness"], rtol=0, atol=1e-6)


@pytest.mark.slow
def test_only_process_zero_writes_and_prints(two_process_run):
  workdir, (zero, one) = two_process_run
  assert "gen   1/1" in zero.stdout and "best validation accuracy" in zero.stdout
  # gloo's C++ connection line is all process 1 prints.
  assert [line for line in one.stdout.splitlines() if not line.startswith("[Gloo]")] == []
  # One TensorBoard file and one log line: process 1 wrote to its private copy only.
  assert len(os.listdir(os.path.join(workdir, "tb"))) == 1
  with open(os.path.join(workdir, "log.jsonl")) as f:
    assert len(f.read().splitlines()) == 1
  assert json.load(open(os.path.join(workdir, "config.json")))["search"]["strategy"] == \
      "sharded"


def test_different_keys_fail_and_only_process_zero_writes(tmp_path):
  workdir = tmp_path / "run"
  workdir.mkdir()
  (workdir / "before.txt").write_text("resumable state")
  port = _free_port()
  env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
  env.update(PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
  procs = [subprocess.Popen([sys.executable, os.path.join(ROOT, "tests",
                                                          "_multiprocess_check.py"),
                             str(port), str(i), str(workdir)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
           for i in range(2)]
  try:
    outs = [p.communicate(timeout=TIMEOUT_S) for p in procs]
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
        p.wait()
  results = []
  for p, (stdout, stderr) in zip(procs, outs):
    assert p.returncode == 0, stderr[-3000:]
    results.append(json.loads(stdout.strip().splitlines()[-1]))
  for r in results:
    assert (r["process_count"], r["device_count"]) == (2, 2)
    assert "processes got different candidate keys" in r["mismatch"]
    assert r["read_before"] == "resumable state"  # both resume from the same files
    assert r["copy_removed"]
  assert [r["folder_is_workdir"] for r in results] == [True, False]
  assert sorted(os.listdir(workdir)) == ["before.txt", "from_0.txt"]
  assert (workdir / "before.txt").read_text() == "written by 0"


def test_layout_flags_must_come_together():
  sys.path.insert(0, ROOT)
  from experiments import distributed
  with pytest.raises(ValueError, match="give all of --coordinator_address"):
    distributed.initialize_from_argv(["prog", "--num_processes=2", "--process_id=0"])
  with pytest.raises(ValueError, match="--process_id=2 must be below --num_processes=2"):
    distributed.initialize_from_argv(["prog", "--coordinator_address=127.0.0.1:1",
                                      "--num_processes=2", "--process_id=2"])
  distributed.initialize_from_argv(["prog", "--config.search.strategy=sharded"])  # no job


def test_initialize_distributed_rejects_a_partial_layout():
  from glojax.train import parallel
  with pytest.raises(ValueError, match="give all of coordinator_address"):
    parallel.initialize_distributed("127.0.0.1:1", 2)
