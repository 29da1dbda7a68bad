r"""Throughput of the population trainer: candidate-steps per second by model, K, strategy.

Usage (CPU table of BENCHMARKS.md)::

  .venv/bin/python benchmarks/population.py --out=benchmarks/results/cpu

GPU (runs unchanged on a CUDA machine; larger K and all models)::

  python benchmarks/population.py --out=benchmarks/results/gpu --ks=1,2,4,8,16,32,64 \
      --models=mlp,small_cnn,mnist_cnn --strategies=vmap,unroll,sequential,naive

Expected on a GPU: ``vmap`` wins for every model, conv models included (XLA's GPU
convolutions batch the candidate axis instead of serializing it), and its candidate-steps/s
keeps rising with K until the device saturates; ``sequential`` stays flat in K.

For each (model, K, strategy) it measures, on the training loop alone (init and
evaluation excluded):

* ``compile_s`` — first call minus a steady call (tracing + XLA compilation);
* ``cand_steps_per_s`` — K × steps / median steady wall time over ``--repeats`` runs;
* ``flops_per_step`` — XLA's cost analysis of one candidate's training step;
* ``achieved_gflops`` and ``fraction_of_peak`` against ``--peak_gflops`` (default: a
  nominal peak of this machine's cores, see :func:`nominal_peak_gflops`);
* ``peak_mem_mb`` — XLA's memory analysis of the compiled chunk program (arguments +
  outputs + temporaries; on GPU also the allocator's peak).

Strategies: ``vmap``, ``unroll`` (groups of ``UNROLL_GROUP``), ``sequential``
(glojax's), ``sharded`` (when >1
device), and ``naive`` — a per-candidate ``jax.jit`` with θ closed over as a constant,
i.e. how a straightforward port trains candidates one after another (it recompiles for
every candidate; its time includes those compiles, as a search would pay them).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from glojax import data, losses, models  # noqa: E402
from glojax.train import TrainConfig, Trainer  # noqa: E402
from glojax.train import population  # noqa: E402

# Steps per measured run: enough for a steady timing, few enough for the paper's CNN on CPU.
DEFAULT_STEPS = {"mlp": 100, "small_cnn": 20, "mnist_cnn": 4}
MODEL_OPTIONS = {"mlp": {"hidden": (128,)}, "small_cnn": {}, "mnist_cnn": {}}


def nominal_peak_gflops() -> tuple[float, str]:
  """A nominal fp32 peak of this device in GFLOP/s and how it was derived.

  CPU: cores × clock × 32 FLOP/cycle (two 256-bit FMA pipes, AVX2/AVX-512 on AMD
  Zen 4 / Intel client cores). GPU: not derivable here — pass ``--peak_gflops``.
  """
  if jax.default_backend() != "cpu":
    return float("nan"), "unknown (pass --peak_gflops)"
  mhz = 0.0
  try:
    with open("/proc/cpuinfo") as f:
      mhz = max(float(line.split(":")[1]) for line in f if line.startswith("cpu MHz"))
  except (OSError, ValueError):
    pass
  cores = os.cpu_count() or 1
  if not mhz:
    return float("nan"), "unknown clock"
  peak = cores * mhz / 1000 * 32
  return peak, f"{cores} cores × {mhz / 1000:.2f} GHz × 32 FLOP/cycle (fp32 FMA, nominal)"


def machine_description() -> dict:
  desc = {"backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()],
          "jax": jax.__version__, "python": platform.python_version(),
          "cpu_count": os.cpu_count(), "load_average_at_start": os.getloadavg()}
  try:
    desc["cpu"] = next(line.split(":", 1)[1].strip() for line in
                       subprocess.run(["lscpu"], capture_output=True, text=True).stdout
                       .splitlines() if line.startswith("Model name"))
  except (OSError, StopIteration):
    desc["cpu"] = platform.processor()
  return desc


def make_trainer(model_name: str, dataset, steps: int, steps_per_call: int) -> Trainer:
  model = models.get(model_name, num_classes=dataset.num_classes,
                     **MODEL_OPTIONS.get(model_name, {}))
  config = TrainConfig(steps=steps, batch_size=100, learning_rate=0.01,
                       steps_per_call=min(steps_per_call, steps), loop="python")
  return Trainer(model, dataset, losses.taylorglo, config)


def _block(tree):
  jax.tree_util.tree_map(lambda a: a.block_until_ready(), tree)
  return tree


def _train_loop(programs, trainer, thetas, keys):
  state = _block(programs.init(keys))
  t0 = time.perf_counter()
  done, total = 0, trainer.config.steps
  while done < total:
    n = min(trainer.config.steps_per_call, total - done)
    state = programs.chunk(n)(state, thetas, trainer.data)
    done += n
  _block(state)
  return time.perf_counter() - t0


def time_strategy(trainer: Trainer, strategy: str, k: int, repeats: int) -> dict:
  """Compile time and steady-state wall times of training K candidates."""
  thetas = jax.random.normal(jax.random.PRNGKey(0), (k, 8)) * 1.2
  keys = jax.random.split(jax.random.PRNGKey(1), k)
  if strategy == "vmap":
    programs = population._programs(trainer, strategy)
    run = lambda: _train_loop(programs, trainer, thetas, keys)
  elif strategy == "unroll":
    # As evaluate_population does: groups of UNROLL_GROUP, the last one padded.
    programs = population._programs(trainer, strategy)
    group = min(population.UNROLL_GROUP, k)
    groups = [np.concatenate([np.arange(s, min(s + group, k)),
                              np.zeros(max(0, s + group - k), int) + s])
              for s in range(0, k, group)]
    run = lambda: sum(_train_loop(programs, trainer, thetas[g], keys[g]) for g in groups)
  elif strategy == "sequential":
    programs = population._programs(trainer, "single")
    run = lambda: sum(_train_loop(programs, trainer, thetas[i], keys[i]) for i in range(k))
  elif strategy == "naive":
    run = lambda: _naive(trainer, thetas, keys)
  else:
    raise ValueError(f"unknown strategy {strategy!r}")
  t0 = time.perf_counter()
  first = run()
  first_total = time.perf_counter() - t0
  times = [run() for _ in range(repeats)]
  steady = statistics.median(times)
  return {"first_s": first_total, "steady_s": steady, "times_s": times,
          "compile_s": max(0.0, first - steady) if strategy != "naive" else float("nan")}


def _naive(trainer: Trainer, thetas, keys) -> float:
  """One fresh jit per candidate with θ baked in as a constant (recompiles each time)."""
  t0 = time.perf_counter()
  for i in range(thetas.shape[0]):
    theta = np.asarray(thetas[i])
    step = jax.jit(lambda s, d: trainer.train_step(s, jnp.asarray(theta), d))
    state = trainer.init(keys[i])
    for _ in range(trainer.config.steps):
      state = step(state, trainer.data)
    _block(state)
  return time.perf_counter() - t0


def analyze_step(trainer: Trainer, strategy: str, k: int) -> dict:
  """XLA cost (one candidate step) and memory (the K-candidate chunk program)."""
  state = trainer.init(jax.random.PRNGKey(0))
  theta = jnp.zeros(8)
  out = {}
  try:
    cost = jax.jit(trainer.train_step).lower(state, theta, trainer.data).compile() \
        .cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    out["flops_per_step"] = float(cost.get("flops", float("nan")))
  except Exception as e:  # cost analysis is backend-dependent
    out["flops_per_step"] = float("nan")
    out["cost_error"] = str(e)
  mode = {"sequential": "single", "naive": "single"}.get(strategy, strategy)
  if mode not in ("vmap", "unroll", "single"):
    return out
  programs = population._programs(trainer, mode)
  if mode == "single":
    args = (state, theta, trainer.data)
  else:
    if mode == "unroll":
      k = min(population.UNROLL_GROUP, k)
    keys = jax.random.split(jax.random.PRNGKey(0), k)
    args = (programs.init(keys), jnp.zeros((k, 8)), trainer.data)
  try:
    mem = programs.chunk(trainer.config.steps_per_call).lower(*args).compile() \
        .memory_analysis()
    out["peak_mem_mb"] = (mem.argument_size_in_bytes + mem.output_size_in_bytes
                          + mem.temp_size_in_bytes) / 2**20
  except Exception as e:
    out["peak_mem_mb"] = float("nan")
    out["mem_error"] = str(e)
  return out


def plot(results: list[dict], path: str) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  model_names = sorted({r["model"] for r in results}, key=list(DEFAULT_STEPS).index)
  fig, axes = plt.subplots(1, len(model_names), figsize=(4.5 * len(model_names), 3.8),
                           squeeze=False)
  for ax, m in zip(axes[0], model_names):
    for s in sorted({r["strategy"] for r in results if r["model"] == m}):
      rows = sorted((r for r in results if r["model"] == m and r["strategy"] == s),
                    key=lambda r: r["k"])
      ax.plot([r["k"] for r in rows], [r["cand_steps_per_s"] for r in rows], marker="o",
              label=s)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("population size K")
    ax.set_ylabel("candidate-steps / s")
    ax.set_title(m)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def markdown_table(results: list[dict]) -> str:
  lines = ["| model | K | strategy | cand-steps/s | compile s | GFLOP/s | % peak | mem MB |",
           "|---|---:|---|---:|---:|---:|---:|---:|"]
  for r in results:
    lines.append(f"| {r['model']} | {r['k']} | {r['strategy']} | {r['cand_steps_per_s']:.1f} | "
                 f"{r['compile_s']:.1f} | {r['achieved_gflops']:.2f} | "
                 f"{100 * r['fraction_of_peak']:.1f} | {r.get('peak_mem_mb', float('nan')):.0f} |")
  return "\n".join(lines)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--models", default="mlp,small_cnn,mnist_cnn")
  p.add_argument("--ks", default="1,2,4,8,16,32")
  p.add_argument("--strategies", default="vmap,unroll,sequential,naive")
  p.add_argument("--steps", type=int, default=0, help="steps per run (0: per-model default)")
  p.add_argument("--steps_per_call", type=int, default=10)
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--max_k", default="mnist_cnn=8,small_cnn=32",
                 help="per-model largest K, e.g. mnist_cnn=8 (the paper CNN is slow on CPU)")
  p.add_argument("--unroll_max_k", type=int, default=10**9,
                 help="largest K for unroll")
  p.add_argument("--naive_max_k", type=int, default=8,
                 help="largest K for the naive strategy (its per-candidate cost is flat in K)")
  p.add_argument("--peak_gflops", type=float, default=0.0)
  p.add_argument("--out", default="benchmarks/results/run")
  args = p.parse_args(argv)

  ks = [int(k) for k in args.ks.split(",")]
  strategies = args.strategies.split(",")
  if len(jax.devices()) > 1 and "sharded" not in strategies:
    strategies.append("sharded")
  max_k = dict(kv.split("=") for kv in args.max_k.split(",") if kv)
  peak, peak_note = (args.peak_gflops, "given") if args.peak_gflops else nominal_peak_gflops()
  dataset = data.load("mnist5k", seed=0)
  os.makedirs(os.path.dirname(os.path.abspath(args.out)) or ".", exist_ok=True)
  results = []
  for model_name in args.models.split(","):
    steps = args.steps or DEFAULT_STEPS.get(model_name, 20)
    for k in ks:
      if k > int(max_k.get(model_name, 10**9)):
        continue
      for strategy in strategies:
        if strategy == "sharded":
          continue  # measured by glojax.train.parallel where available
        if (strategy == "naive" and k > args.naive_max_k) or (
            strategy == "unroll" and k > args.unroll_max_k):
          continue
        trainer = make_trainer(model_name, dataset, steps, args.steps_per_call)
        timing = time_strategy(trainer, strategy, k, args.repeats)
        row = {"model": model_name, "k": k, "strategy": strategy, "steps": steps,
               **timing, **analyze_step(trainer, strategy, k)}
        row["cand_steps_per_s"] = k * steps / row["steady_s"]
        row["achieved_gflops"] = row["cand_steps_per_s"] * row["flops_per_step"] / 1e9
        row["fraction_of_peak"] = row["achieved_gflops"] / peak if peak else float("nan")
        results.append(row)
        print(f"{model_name:10s} K={k:3d} {strategy:10s} {row['cand_steps_per_s']:9.1f} "
              f"cand-steps/s  compile {row['compile_s']:5.1f}s  "
              f"{row['achieved_gflops']:7.2f} GFLOP/s  mem {row.get('peak_mem_mb', 0):6.0f} MB",
              flush=True)
  report = {"machine": machine_description(), "peak_gflops": peak, "peak_note": peak_note,
            "args": vars(args), "results": results}
  with open(args.out + ".json", "w") as f:
    json.dump(report, f, indent=1)
  plot(results, args.out + ".png")
  print(markdown_table(results))
  print(f"wrote {args.out}.json and {args.out}.png")
  return 0


if __name__ == "__main__":
  sys.exit(main())
