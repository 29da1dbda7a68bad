r"""Cost of an EPBT generation: selection + copy vs training, and vs evaluate_population.

Usage (the EPBT section of BENCHMARKS.md)::

  .venv/bin/python benchmarks/epbt.py --out=benchmarks/results/cpu_epbt

It builds the EPBT quickstart (``experiments/configs/epbt_quickstart.py``: mnist5k,
MLP 784-64-10, p = 16, 150 steps per generation, ``strategy="auto"``), runs one
generation to compile everything, then times ``--repeats`` generations, each split into

* ``select_s`` — ``next_generation`` (tournament, mutation, crossover, elitism, and the
  gathers that copy parents' weights and optimizer states into the children's slots),
  one jitted call, ``block_until_ready``;
* ``train_s`` — ``train_population_from`` for ``steps_per_generation`` steps;
* ``eval_s`` — validation and test accuracy of every member;

and, with the same p, steps and trainer, ``evaluate_population`` (fresh init + the same
number of steps + validation accuracy), the program a TaylorGLO generation runs.
Reported: medians, ``select_fraction = select_s / train_s``, and the EPBT generation's
wall time relative to ``evaluate_population``'s.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", default="benchmarks/results/cpu_epbt",
                      help="output prefix (.json is written)")
  parser.add_argument("--population_size", type=int, default=16)
  parser.add_argument("--steps", type=int, default=None,
                      help="steps per generation (default: the quickstart's)")
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--strategy", default="auto")
  args = parser.parse_args(argv)

  from experiments.configs import epbt_quickstart
  from glojax.search import driver, epbt
  from glojax.train import evaluate_population
  c = epbt_quickstart.get_config()
  c.search.population_size = args.population_size
  c.search.strategy = args.strategy
  c.search.generations = 2 + args.repeats
  if args.steps:
    c.search.steps_per_generation = args.steps
  search = epbt.EPBT(driver.parse_config(epbt.EPBT, c)[0])
  p, steps = search.p, search.steps
  state = search.init(driver.step_key(0, 0))
  state, _ = search.step(state, driver.step_key(0, 1))   # compiles training + evaluation
  state, _ = search.step(state, driver.step_key(0, 2))   # compiles selection
  rows = []
  for r in range(args.repeats):
    t0 = time.perf_counter()
    state, rec = search.step(state, driver.step_key(0, 3 + r))
    rows.append({"select_s": rec["select_time_s"], "train_s": rec["train_time_s"],
                 "eval_s": rec["eval_time_s"], "generation_s": time.perf_counter() - t0})
  thetas = jax.numpy.asarray(np.asarray(state.population.hparams)[:, search.theta_cols])
  keys = jax.random.split(jax.random.PRNGKey(1), p)
  # The same model, data, loss and optimizer; a fresh population of `steps` steps each.
  from glojax.train import Trainer
  t = search.trainer
  trainer = dataclasses.replace(t, config=dataclasses.replace(t.config, steps=steps))
  evaluate_population(trainer, thetas, keys, strategy=args.strategy, nan_retries=0)
  evp = []
  for _ in range(args.repeats):
    t0 = time.perf_counter()
    evaluate_population(trainer, thetas, keys, strategy=args.strategy, nan_retries=0)
    evp.append(time.perf_counter() - t0)
  med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
  report = {
      "machine": {"platform": platform.platform(), "backend": jax.default_backend(),
                  "devices": [str(d) for d in jax.devices()], "cpus": os.cpu_count(),
                  "load_average": os.getloadavg()},
      "population_size": p, "steps_per_generation": steps, "strategy": args.strategy,
      "repeats": rows, "median": med,
      "select_fraction_of_train": med["select_s"] / med["train_s"],
      "evaluate_population_s": evp,
      "evaluate_population_median_s": statistics.median(evp),
      "generation_vs_evaluate_population": med["generation_s"] / statistics.median(evp),
  }
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  with open(args.out + ".json", "w") as f:
    json.dump(report, f, indent=2)
  print(f"p = {p}, {steps} steps per generation, strategy {args.strategy} "
        f"({jax.default_backend()}), medians of {args.repeats}:")
  print(f"  selection + copy   {1000 * med['select_s']:8.2f} ms "
        f"({100 * report['select_fraction_of_train']:.2f} % of training)")
  print(f"  training           {med['train_s']:8.3f} s")
  print(f"  evaluation         {med['eval_s']:8.3f} s (validation + test)")
  print(f"  EPBT generation    {med['generation_s']:8.3f} s")
  print(f"  evaluate_population {report['evaluate_population_median_s']:7.3f} s "
        f"(init + {steps} steps + validation)")
  print(f"wrote {args.out}.json")
  return 0


if __name__ == "__main__":
  sys.exit(main())
