r"""First-call compile time with and without the persistent compilation cache.

Each case runs in a fresh Python process three times: without the cache (``none``),
with an empty cache directory (``cold``: compiles and writes entries) and again with
the same directory (``warm``: what a rerun, a resumed run or the next search with the
same programs pays). A ``jax.monitoring`` listener in the child sums XLA compile
durations and cache-retrieval durations.

Cases:

* ``quickstart`` — the README's TaylorGLO quickstart (MLP 784-64-10, K = 20) through
  ``glojax.search.taylorglo.run`` with ``search.generations=1`` and ``final.steps=100``
  (the same programs as the full run; fewer steps);
* ``small_cnn_k8`` — ``evaluate_population(strategy="auto")`` of 8 candidates of the
  small CNN (20 steps).

Usage::

  python benchmarks/compile_time.py --out=benchmarks/results/cpu_compile_time

prints one line per (case, mode): wall time of the case, seconds spent compiling,
seconds loading from the cache, and the number of cache hits.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from absl import app, flags  # noqa: E402

CASES = ("quickstart", "small_cnn_k8")
MODES = ("none", "cold", "warm")

FLAGS = flags.FLAGS
flags.DEFINE_list("cases", list(CASES), f"Cases, from {CASES}.")
flags.DEFINE_string("out", "", "Write the results to OUT.json (empty: print only).")
flags.DEFINE_float("min_compile_time", -1.0, "jax_persistent_cache_min_compile_time_secs "
                   "(< 0: JAX's default, which the binaries use).")
flags.DEFINE_string("child", "", "(internal) run one case in this process.")
flags.DEFINE_string("cache_dir", "none", "(internal) the child's cache directory.")


def _run_case(case: str, workdir: str) -> None:
  import jax
  import numpy as np
  if case == "quickstart":
    from experiments.configs import quickstart
    from glojax.search import taylorglo
    config = quickstart.get_config()
    config.search.generations = 1
    config.final.steps = 100
    taylorglo.run(config, workdir, log=lambda msg: None)
  elif case == "small_cnn_k8":
    from glojax import data, losses, models
    from glojax.train import TrainConfig, Trainer, population
    dataset = data.load("mnist5k", seed=0)
    trainer = Trainer(models.get("small_cnn", num_classes=10), dataset, losses.taylorglo,
                      TrainConfig(steps=20, batch_size=100, learning_rate=0.01))
    thetas = np.random.default_rng(0).normal(size=(8, 8)).astype(np.float32)
    population.evaluate_population(trainer, thetas, jax.random.split(jax.random.PRNGKey(0), 8),
                                   strategy="auto", model_name="small_cnn")
  else:
    raise app.UsageError(f"unknown case {case!r}; known: {CASES}")


def child(case: str, cache_dir: str, min_compile_time: float = -1.0) -> dict:
  """Runs ``case`` once in this process; returns its timings."""
  import jax
  from experiments import compile_cache
  compile_cache.enable(compile_cache.resolve(cache_dir))
  if min_compile_time >= 0:
    jax.config.update("jax_persistent_cache_min_compile_time_secs", min_compile_time)
  totals = {"compile_s": 0.0, "retrieval_s": 0.0, "hits": 0}

  def on_duration(event, duration, **kwargs):
    if event == "/jax/core/compile/backend_compile_duration":
      totals["compile_s"] += duration
    elif event == "/jax/compilation_cache/cache_retrieval_time_sec":
      totals["retrieval_s"] += duration

  def on_event(event, **kwargs):
    if event == "/jax/compilation_cache/cache_hits":
      totals["hits"] += 1

  jax.monitoring.register_event_duration_secs_listener(on_duration)
  jax.monitoring.register_event_listener(on_event)
  t0 = time.perf_counter()
  with tempfile.TemporaryDirectory() as workdir:
    _run_case(case, os.path.join(workdir, "run"))
  totals["wall_s"] = time.perf_counter() - t0
  return totals


def measure(case: str, cache_dir: str) -> list[dict]:
  """The three modes of one case, each in a fresh process (cold, then warm, share
  ``cache_dir``, which must be empty)."""
  rows = []
  for mode in MODES:
    res = subprocess.run(
        [sys.executable, os.path.abspath(__file__), f"--child={case}",
         f"--cache_dir={'none' if mode == 'none' else cache_dir}",
         f"--min_compile_time={FLAGS.min_compile_time}"],
        capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": REPO})
    if res.returncode != 0:
      raise RuntimeError(f"{case} ({mode}) failed:\n{res.stderr[-3000:]}")
    row = json.loads(res.stdout.strip().splitlines()[-1])
    rows.append({"case": case, "mode": mode, **row})
  return rows


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if FLAGS.child:
    print(json.dumps(child(FLAGS.child, FLAGS.cache_dir, FLAGS.min_compile_time)),
          flush=True)
    return 0
  results = []
  print(f"load average {[round(x, 2) for x in os.getloadavg()]}", flush=True)
  for case in FLAGS.cases:
    with tempfile.TemporaryDirectory() as cache_dir:
      for row in measure(case, cache_dir):
        results.append(row)
        print(f"{case:13s} cache {row['mode']:4s}: wall {row['wall_s']:6.1f} s, compiling "
              f"{row['compile_s']:6.1f} s, loading {row['retrieval_s']:5.2f} s, "
              f"{row['hits']} cache hits", flush=True)
  if FLAGS.out:
    with open(FLAGS.out + ".json", "w") as f:
      json.dump({"load_average_at_end": os.getloadavg(), "results": results}, f, indent=1)
    print(f"wrote {FLAGS.out}.json")
  return 0


if __name__ == "__main__":
  app.run(main)
