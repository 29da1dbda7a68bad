"""One process of tests/train/test_multiprocess.py's cheap 2-process checks (no training).

Usage: ``python tests/_multiprocess_check.py PORT PROCESS_ID WORKDIR``; prints one JSON line.
"""

import json
import os
import sys

from glojax.train import parallel


def main():
  port, pid, workdir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
  parallel.initialize_distributed(f"127.0.0.1:{port}", 2, pid)
  import jax
  from glojax import workdir as workdir_lib
  from glojax.train.population import evaluate_population
  out = {"process_count": jax.process_count(), "device_count": jax.device_count()}
  # Processes with different keys (e.g. different seeds) must stop before training.
  from glojax import data, models
  from glojax.losses import core
  from glojax.train.trainer import Trainer, TrainConfig
  trainer = Trainer(models.get("mlp", num_classes=10, hidden=(4,)), data.load("mnist5k"),
                    lambda p, l, y: core.taylorglo(p, l, y), TrainConfig(steps=1))
  keys = jax.random.split(jax.random.PRNGKey(pid), 3)
  try:
    evaluate_population(trainer, jax.numpy.zeros((3, 8)), keys, strategy="sharded")
    out["mismatch"] = None
  except ValueError as e:
    out["mismatch"] = str(e)
  # Only process 0 writes the workdir; the others see a copy taken before it wrote.
  with workdir_lib.for_process(workdir) as folder:
    out["folder_is_workdir"] = folder == workdir
    with open(os.path.join(folder, "before.txt")) as f:
      out["read_before"] = f.read()
    workdir_lib.write_text(os.path.join(folder, "before.txt"), f"written by {pid}")
    workdir_lib.write_text(os.path.join(folder, f"from_{pid}.txt"), str(pid))
  out["copy_removed"] = folder == workdir or not os.path.exists(folder)
  print(json.dumps(out), flush=True)


if __name__ == "__main__":
  sys.exit(main())
