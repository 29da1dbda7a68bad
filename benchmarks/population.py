r"""Throughput of the population trainer, side by side with the one-at-a-time PyTorch peer.

Usage (the CPU tables of BENCHMARKS.md; one invocation, ~10 min on an idle 2-core CPU)::

  python benchmarks/population.py --models=mlp,small_cnn,mnist_cnn --ks=8,20 \
      --strategies=auto --before --peer=torch --out=benchmarks/results/cpu_peer

Strategy sweep (what ``strategy="auto"`` is tuned on)::

  python benchmarks/population.py --models=small_cnn --ks=1,4,8,20 \
      --strategies=vmap,unroll,sequential --peer=none --out=benchmarks/results/cpu_small_cnn

GPU (runs unchanged on a CUDA machine; larger K)::

  python benchmarks/population.py --out=benchmarks/results/gpu --ks=1,2,4,8,16,32,64 \
      --strategies=vmap,unroll,sequential --peer=none --max_k=

For each (model, K) every variant below trains the same K TaylorGLO candidates (same θ,
batch 100, SGD, steps, mnist5k data), and the variants' repetitions are **interleaved**
(variant A, variant B, ..., peer, roofline probe; then again), so on a shared machine all
of them see the same load; medians and ranges over ``--repeats`` are reported.

* glojax strategies (``--strategies``): ``auto``, ``vmap``, ``unroll`` (groups of
  ``UNROLL_GROUP``), ``sequential``, ``naive`` (a per-candidate ``jax.jit`` with θ closed
  over, i.e. how a straightforward port trains candidates: it recompiles per candidate);
* ``before`` (``--before``): ``auto`` as it was before the max-pool change —
  ``flax.linen.max_pool`` in the models and grouped unroll with groups of 4;
* the PyTorch peer (``--peer=torch``, :mod:`peer_torch`): each candidate trained alone
  with an ordinary PyTorch loop (``--peer_threads`` intra-op threads), as the original
  implementation does; skipped with a message when PyTorch is absent;
* the roofline (:mod:`roofline`): a large GEMM and a large conv, timed between the
  repetitions.

Reported per row: ``cand_steps_per_s`` (K × steps / training wall time; init and
evaluation excluded), ``eval_ms_per_cand`` (validation pass, per candidate),
``compile_s`` (first call minus a steady one), ``flops_per_step`` (XLA cost analysis of
one candidate's step), ``achieved_gflops`` and ``fraction_of_roofline``, and the ratio to
the peer.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Callable, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

import peer_torch  # noqa: E402
import roofline  # noqa: E402
from glojax import data, losses, models  # noqa: E402
from glojax.train import TrainConfig, Trainer  # noqa: E402
from glojax.train import population  # noqa: E402

# Steps per measured run: enough for a steady timing, few enough for the paper's CNN on CPU.
DEFAULT_STEPS = {"mlp": 100, "small_cnn": 20, "mnist_cnn": 4}
MODEL_OPTIONS = {"mlp": {"hidden": (128,)}, "small_cnn": {}, "mnist_cnn": {}}
STRATEGIES = ("auto", "vmap", "unroll", "sequential", "naive")
BEFORE_GROUP = 4  # UNROLL_GROUP before the max-pool change

FLAGS = flags.FLAGS
flags.DEFINE_list("models", ["mlp", "small_cnn", "mnist_cnn"], "Models (glojax.models names).")
flags.DEFINE_list("ks", ["8", "20"], "Population sizes K.")
flags.DEFINE_list("strategies", ["auto"], f"glojax strategies, from {STRATEGIES}; "
                  "unroll@G sets the unroll group size G (default UNROLL_GROUP).")
flags.DEFINE_bool("before", False, "Also time `before`: flax max_pool + unroll groups of 4.")
flags.DEFINE_enum("peer", "torch", ["torch", "none"], "The one-at-a-time peer to time.")
flags.DEFINE_list("peer_threads", ["2"], "torch.set_num_threads settings for the peer; "
                  "with several (e.g. 1,2) each is timed and the ratio is to the fastest.")
flags.DEFINE_integer("steps", 0, "SGD steps per candidate (0: per-model default "
                     f"{DEFAULT_STEPS}).")
flags.DEFINE_integer("steps_per_call", 10, "Steps fused into one compiled call.")
flags.DEFINE_integer("repeats", 3, "Timed repetitions per variant (after a compiling one).")
flags.DEFINE_list("max_k", [], "Per-model largest K, e.g. mnist_cnn=8.")
flags.DEFINE_integer("naive_max_k", 8, "Largest K for `naive` (its cost is flat in K).")
flags.DEFINE_bool("roofline", True, "Time the GEMM/conv roofline probes between repeats.")
flags.DEFINE_integer("gemm_n", 2048, "Matrix side of the GEMM roofline probe.")
flags.DEFINE_list("conv_shape", [str(v) for v in roofline.CONV_SHAPE],
                  "Conv roofline probe: batch, side, in channels, out channels, kernel.")
flags.DEFINE_bool("evaluate", True, "Time the validation pass (per candidate).")
flags.DEFINE_bool("memory", True, "XLA memory analysis of each chunk program (compiles "
                  "it once more).")
flags.DEFINE_string("out", "benchmarks/results/run", "Output prefix (.json, .png).")


# ---- machine --------------------------------------------------------------------------

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
  if peer_torch.available():
    desc["torch"] = peer_torch.torch.__version__
  return desc


# ---- glojax variants ------------------------------------------------------------------

def make_trainer(model_name: str, dataset, steps: int, steps_per_call: int) -> Trainer:
  model = models.get(model_name, num_classes=dataset.num_classes,
                     **MODEL_OPTIONS.get(model_name, {}))
  config = TrainConfig(steps=steps, batch_size=100, learning_rate=0.01,
                       steps_per_call=min(steps_per_call, steps), loop="python")
  return Trainer(model, dataset, losses.taylorglo, config)


def _flax_relu_max_pool(x, window_shape, strides=None, padding="VALID"):
  import flax.linen as nn
  return nn.max_pool(nn.relu(x), window_shape, strides=strides, padding=padding)


@contextlib.contextmanager
def flax_pooling():
  """The models as they were before the max-pool change: ReLU, then ``nn.max_pool``
  (active while the `before` programs are traced)."""
  saved = models.relu_max_pool
  models.relu_max_pool = _flax_relu_max_pool
  try:
    yield
  finally:
    models.relu_max_pool = saved


def _block(tree):
  return jax.block_until_ready(tree)


class GlojaxRun:
  """K candidates trained by one glojax strategy; ``train()``/``evaluate()`` time them.

  ``mode`` is a resolved strategy (``vmap``, ``unroll``, ``sequential``, ``naive``);
  ``group`` the unroll group size. ``trace_context`` wraps the compiling first call.
  """

  def __init__(self, trainer: Trainer, mode: str, thetas, keys, group: int,
               trace_context: Callable = contextlib.nullcontext):
    self.trainer, self.mode, self.thetas, self.keys = trainer, mode, thetas, keys
    self.trace_context = trace_context
    k = keys.shape[0]
    if mode == "unroll":
      group = min(group, k)
      self.groups = [np.concatenate([np.arange(s, min(s + group, k)),
                                     np.full(max(0, s + group - k), s)])
                     for s in range(0, k, group)]
    elif mode in ("sequential", "naive"):
      self.groups = [np.array(i) for i in range(k)]
    elif mode == "vmap":
      self.groups = [np.arange(k)]
    else:
      raise ValueError(f"unknown strategy {mode!r}")
    self.programs = population._programs(trainer, {"sequential": "single", "naive": "single"}
                                         .get(mode, mode))
    self.states = None

  def train(self) -> float:
    """Trains every group (init excluded from the time); returns seconds."""
    t, total = self.trainer, self.trainer.config.steps
    states, elapsed = [], 0.0
    for g in self.groups:
      theta = self.thetas[g]
      if self.mode == "naive":
        elapsed += self._naive(theta, self.keys[g])
        continue
      state = _block(self.programs.init(self.keys[g]))
      t0 = time.perf_counter()
      done = 0
      while done < total:
        n = min(t.config.steps_per_call, total - done)
        state = self.programs.chunk(n)(state, theta, t.data)
        done += n
      _block(state)
      elapsed += time.perf_counter() - t0
      states.append(state)
    self.states = states
    return elapsed

  def _naive(self, theta, key) -> float:
    """One fresh jit per candidate with θ baked in as a constant (recompiles each time)."""
    t = self.trainer
    theta = np.asarray(theta)
    step = jax.jit(lambda s, d: t.train_step(s, jnp.asarray(theta), d))
    t0 = time.perf_counter()
    state = t.init(key)
    for _ in range(t.config.steps):
      state = step(state, t.data)
    _block(state)
    return time.perf_counter() - t0

  def evaluate(self) -> float:
    """Validation pass of the trained candidates (as evaluate_population does); seconds."""
    if self.mode == "naive" or not self.states:
      return float("nan")
    t0 = time.perf_counter()
    for state in self.states:
      outs = [self.programs.eval_batch(state, *batch)
              for batch in self.trainer.eval_batches("validation")]
      _block(outs)
    return time.perf_counter() - t0

  def first_call(self) -> tuple[float, float]:
    """(train, eval) seconds of the first, compiling call."""
    with self.trace_context():
      return self.train(), self.evaluate()


_FLOPS: dict = {}


def flops_per_step(trainer: Trainer, key=None) -> float:
  """XLA's cost analysis of one candidate's training step (FLOPs), cached by ``key``."""
  if key is not None and key in _FLOPS:
    return _FLOPS[key]
  _FLOPS[key] = _flops(trainer)
  return _FLOPS[key]


def _flops(trainer: Trainer) -> float:
  state = jax.eval_shape(trainer.init, jax.random.PRNGKey(0))
  try:
    cost = jax.jit(trainer.train_step).lower(state, jnp.zeros(8), trainer.data).compile() \
        .cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost.get("flops", float("nan")))
  except Exception:  # cost analysis is backend-dependent
    return float("nan")


def memory_mb(run: GlojaxRun) -> float:
  """XLA's memory analysis of the chunk program (arguments + outputs + temporaries)."""
  if run.mode == "naive":
    return float("nan")
  t, g = run.trainer, run.groups[0]
  try:
    args = (run.programs.init(run.keys[g]), run.thetas[g], t.data)
    mem = run.programs.chunk(t.config.steps_per_call).lower(*args).compile() \
        .memory_analysis()
    return (mem.argument_size_in_bytes + mem.output_size_in_bytes
            + mem.temp_size_in_bytes) / 2 ** 20
  except Exception:
    return float("nan")


# ---- the comparison -------------------------------------------------------------------

def _stats(times: list[float], work: float) -> dict:
  rates = [work / t for t in times]
  return {"times_s": times, "median": work / statistics.median(times), "min": min(rates),
          "max": max(rates)}


def compare(model_name: str, k: int, dataset, tdata, steps: int, args) -> list[dict]:
  """Times every variant for one (model, K), interleaved; returns one row per variant."""
  rng = np.random.default_rng(0)
  thetas = jnp.asarray(rng.normal(size=(k, 8)) * 1.2, jnp.float32)
  keys = jax.random.split(jax.random.PRNGKey(1), k)
  variants: dict[str, GlojaxRun] = {}
  for s in args.strategies:
    base, _, group = s.partition("@")
    if base == "naive" and k > args.naive_max_k:
      continue
    mode = population.resolve_strategy(base, model_name) if base == "auto" else base
    trainer = make_trainer(model_name, dataset, steps, args.steps_per_call)
    variants[s] = GlojaxRun(trainer, mode, thetas, keys,
                            int(group) if group else population.UNROLL_GROUP)
  if args.before:
    trainer = make_trainer(model_name, dataset, steps, args.steps_per_call)
    variants["before"] = GlojaxRun(trainer, "unroll", thetas, keys, BEFORE_GROUP,
                                   flax_pooling)
  first = {name: run.first_call() for name, run in variants.items()}
  use_peer = tdata is not None
  if use_peer:  # warm-up (first-call allocations), untimed
    peer_torch.train_candidate(model_name, np.asarray(thetas[0]), tdata, steps=2)
  probes = ({"gemm": roofline.gemm_probe(args.gemm_n),
             "conv": roofline.conv_probe(tuple(int(v) for v in args.conv_shape))}
            if args.roofline else {})
  train_t = {name: [] for name in variants}
  eval_t = {name: [] for name in variants}
  threads = [int(t) for t in args.peer_threads] if use_peer else []
  peer_train = {t: [] for t in threads}
  peer_eval = {t: [] for t in threads}
  probe_t = {p: [] for p in probes}
  for _ in range(args.repeats):
    for name, run in variants.items():
      train_t[name].append(run.train())
      eval_t[name].append(run.evaluate() if args.evaluate else float("nan"))
    for t in threads:
      peer_torch.set_threads(t)
      rows = peer_torch.train_population(model_name, np.asarray(thetas), tdata, steps=steps)
      peer_train[t].append(sum(r.train_s for r in rows))
      peer_eval[t].append(sum(r.eval_s for r in rows))
    for p, probe in probes.items():
      probe_t[p].append(probe.time())
  roof = {p: roofline.summarize(probe, probe_t[p]) for p, probe in probes.items()}
  roof_gflops = max((r["gflops"] for r in roof.values()), default=float("nan"))
  work = k * steps
  peer = None
  if use_peer:
    by_threads = {}
    for t in threads:
      by_threads[t] = _stats(peer_train[t], work)
      by_threads[t]["eval_ms_per_cand"] = 1e3 * statistics.median(peer_eval[t]) / k
    best = max(threads, key=lambda t: by_threads[t]["median"])
    peer = {**by_threads[best], "threads": best, "by_threads": by_threads}
  out = []
  for name, run in variants.items():
    with run.trace_context():
      flops = flops_per_step(run.trainer, (model_name, name == "before"))
      mem = memory_mb(run) if args.memory else float("nan")
    st = _stats(train_t[name], work)
    steady = statistics.median(train_t[name])
    row = {"model": model_name, "k": k, "steps": steps, "strategy": name,
           "mode": run.mode, "group": len(run.groups[0]) if run.mode == "unroll" else None,
           "cand_steps_per_s": st["median"], "range": [st["min"], st["max"]],
           "times_s": train_t[name], "steady_s": steady,
           "compile_s": (max(0.0, first[name][0] - steady) if run.mode != "naive"
                         else float("nan")),
           "eval_ms_per_cand": 1e3 * statistics.median(eval_t[name]) / k,
           "flops_per_step": flops, "peak_mem_mb": mem,
           "roofline": roof, "roofline_gflops": roof_gflops}
    row["achieved_gflops"] = row["cand_steps_per_s"] * flops / 1e9
    row["fraction_of_roofline"] = row["achieved_gflops"] / roof_gflops
    if peer is not None:
      row["peer"] = peer
      row["ratio"] = row["cand_steps_per_s"] / peer["median"]
      # Per-repetition ratios (each glojax repetition next to its peer repetition).
      pairs = [p / g for g, p in zip(train_t[name], peer_train[best])]
      row["ratio_range"] = [min(pairs), max(pairs)]
    out.append(row)
  return out


# ---- output ---------------------------------------------------------------------------

def plot(results: list[dict], path: str) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  names = list(dict.fromkeys(r["model"] for r in results))
  fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.8), squeeze=False)
  for ax, m in zip(axes[0], names):
    mine = [r for r in results if r["model"] == m]
    series = {s: sorted((r for r in mine if r["strategy"] == s), key=lambda r: r["k"])
              for s in dict.fromkeys(r["strategy"] for r in mine)}
    peer = sorted({r["k"]: r["peer"]["median"] for r in mine if "peer" in r}.items())
    for s, rows in series.items():
      ax.plot([r["k"] for r in rows], [r["cand_steps_per_s"] for r in rows], marker="o",
              label=s)
    if peer:
      ax.plot([k for k, _ in peer], [v for _, v in peer], marker="s", ls="--", color="k",
              label="PyTorch, one at a time")
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
  lines = ["| model | K | variant | cand-steps/s (range) | PyTorch (range) | ratio | "
           "eval ms/cand | compile s | % roofline |",
           "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
  for r in results:
    peer = r.get("peer")
    lines.append(
        f"| {r['model']} | {r['k']} | {r['strategy']} | {r['cand_steps_per_s']:.1f} "
        f"({r['range'][0]:.0f}–{r['range'][1]:.0f}) | "
        + (f"{peer['median']:.1f} ({peer['min']:.0f}–{peer['max']:.0f}) | "
           f"{r['ratio']:.2f}× | " if peer else "— | — | ")
        + f"{r['eval_ms_per_cand']:.1f} | {r['compile_s']:.1f} | "
        f"{100 * r['fraction_of_roofline']:.0f} |")
  return "\n".join(lines)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  args = FLAGS
  bad = [s for s in args.strategies if s.partition("@")[0] not in STRATEGIES]
  if bad:
    raise app.UsageError(f"unknown strategies {bad}; known: {STRATEGIES}")
  ks = [int(k) for k in args.ks]
  max_k = {m: int(v) for m, v in (kv.split("=") for kv in args.max_k)}
  dataset = data.load("mnist5k", seed=0)
  tdata, peer_note = None, "not run (--peer=none)"
  if args.peer == "torch":
    if peer_torch.available():
      tdata = peer_torch.TorchData.from_dataset(dataset)
      peer_note = (f"PyTorch {peer_torch.torch.__version__}, threads "
                   f"{','.join(args.peer_threads)} (the faster median is the peer)")
    else:
      peer_note = "skipped: " + peer_torch.TORCH_MISSING
      print(f"peer: {peer_note}", flush=True)
  os.makedirs(os.path.dirname(os.path.abspath(args.out)) or ".", exist_ok=True)
  machine = machine_description()
  print(f"load average {[round(x, 2) for x in os.getloadavg()]}; peer: {peer_note}",
        flush=True)
  results = []
  for model_name in args.models:
    steps = args.steps or DEFAULT_STEPS.get(model_name, 20)
    for k in ks:
      if k > max_k.get(model_name, 10 ** 9):
        continue
      for row in compare(model_name, k, dataset, tdata, steps, args):
        results.append(row)
        ratio = f"  {row['ratio']:.2f}× PyTorch" if "ratio" in row else ""
        print(f"{model_name:10s} K={k:3d} {row['strategy']:10s} "
              f"{row['cand_steps_per_s']:8.1f} cand-steps/s{ratio}  eval "
              f"{row['eval_ms_per_cand']:6.1f} ms/cand  compile {row['compile_s']:5.1f} s  "
              f"{100 * row['fraction_of_roofline']:3.0f}% of roofline", flush=True)
  machine["load_average_at_end"] = os.getloadavg()
  report = {"machine": machine, "peer": peer_note,
            "flags": {f: getattr(args, f) for f in (
                "models", "ks", "strategies", "before", "peer", "peer_threads", "steps",
                "steps_per_call", "repeats", "max_k", "naive_max_k", "roofline", "gemm_n",
                "conv_shape", "evaluate", "memory")},
            "results": results}
  with open(args.out + ".json", "w") as f:
    json.dump(report, f, indent=1)
  plot(results, args.out + ".png")
  print(markdown_table(results))
  print(f"wrote {args.out}.json and {args.out}.png")
  return 0


def run_with_flags(argv: list[str]) -> int:
  """Parses ``argv`` (``argv[0]`` is the program name) into fresh flags and runs main."""
  FLAGS.unparse_flags()
  FLAGS(argv)
  return main(argv[:1])


if __name__ == "__main__":
  app.run(main)
