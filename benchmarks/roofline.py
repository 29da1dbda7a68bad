r"""The measured roofline: attainable fp32 GEMM and convolution throughput of this device.

A training step's FLOP rate means little against a nominal peak (cores × clock × FMA
width) that no library reaches. This module measures what XLA actually attains on the
device for the two kernels a CNN training step is made of, on operands large enough
that per-call overhead does not matter:

* **GEMM**: ``float32[n, n] @ float32[n, n]`` (``2 n³`` FLOPs; default ``n = 2048``);
* **conv**: a 3×3 'SAME' convolution ``float32[64, 56, 56, 64] → [64, 56, 56, 64]``
  (``2 · 64 · 56² · 64 · 64 · 9`` ≈ 14.8 GFLOPs), NHWC/HWIO like flax.

:func:`measure` returns GFLOP/s per kernel (median and best of ``repeats`` calls after
a compiling one); ``benchmarks/population.py`` interleaves these probes with the
training runs, so both see the same machine load, and reports each model's step as a
fraction of the roofline (the larger of the two attainable rates).

Usage::

  python benchmarks/roofline.py --repeats=5

prints e.g. ``gemm 2048: 121.3 GFLOP/s (best 124.0)`` and ``conv 3x3 64->64 @56:
98.2 GFLOP/s (best 101.5)``.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

# (batch, side, in channels, out channels, kernel): a ResNet-stage-sized 3×3 conv.
CONV_SHAPE = (64, 56, 64, 64, 3)


class Probe:
  """One compiled kernel with its FLOP count; ``time()`` runs it once (seconds)."""

  def __init__(self, name: str, fn, args, flops: float):
    self.name, self.flops = name, float(flops)
    self._fn, self._args = jax.jit(fn), args
    self._fn(*args).block_until_ready()  # compile

  def time(self) -> float:
    t0 = time.perf_counter()
    self._fn(*self._args).block_until_ready()
    return time.perf_counter() - t0


def gemm_probe(n: int = 2048) -> Probe:
  """``float32[n, n] @ float32[n, n]``: ``2 n³`` FLOPs."""
  rng = np.random.default_rng(0)
  a, b = (jnp.asarray(rng.standard_normal((n, n)), jnp.float32) for _ in range(2))
  return Probe(f"gemm {n}", jnp.matmul, (a, b), 2.0 * n ** 3)


def conv_probe(shape: tuple = CONV_SHAPE) -> Probe:
  """A 'SAME' NHWC convolution ``[B, S, S, C] * [k, k, C, F]``: ``2 B S² C F k²`` FLOPs."""
  batch, side, cin, cout, k = shape
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.standard_normal((batch, side, side, cin)), jnp.float32)
  w = jnp.asarray(rng.standard_normal((k, k, cin, cout)) / (k * k * cin), jnp.float32)
  conv = lambda x, w: jax.lax.conv_general_dilated(
      x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
  return Probe(f"conv {k}x{k} {cin}->{cout} @{side}", conv, (x, w),
               2.0 * batch * side * side * cin * cout * k * k)


def summarize(probe: Probe, times: list[float]) -> dict:
  """GFLOP/s of ``probe`` from its wall times: median (the roofline) and best."""
  return {"name": probe.name, "flops": probe.flops, "times_s": list(times),
          "gflops": probe.flops / statistics.median(times) / 1e9,
          "best_gflops": probe.flops / min(times) / 1e9}


def measure(repeats: int = 5, gemm_n: int = 2048, conv_shape: tuple = CONV_SHAPE) -> dict:
  """Attainable fp32 throughput: ``{"gemm": {...}, "conv": {...}}`` (see summarize)."""
  probes = {"gemm": gemm_probe(gemm_n), "conv": conv_probe(conv_shape)}
  times = {k: [] for k in probes}
  for _ in range(repeats):
    for k, p in probes.items():  # interleaved, so both see the same load
      times[k].append(p.time())
  return {k: summarize(p, times[k]) for k, p in probes.items()}


def roofline_gflops(result: dict) -> float:
  """The roofline: the higher attainable rate of the two kernels (GFLOP/s)."""
  return max(result["gemm"]["gflops"], result["conv"]["gflops"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  f = flags.FLAGS
  print(f"backend {jax.default_backend()}, {jax.device_count()} device(s), load average "
        f"{[round(x, 2) for x in os.getloadavg()]}")
  result = measure(f.repeats, f.gemm_n)
  for r in result.values():
    print(f"{r['name']}: {r['gflops']:.1f} GFLOP/s (best {r['best_gflops']:.1f})")
  print(f"roofline: {roofline_gflops(result):.1f} GFLOP/s")
  return 0


if __name__ == "__main__":
  flags.DEFINE_integer("repeats", 5, "Timed calls per kernel (after one compiling call).")
  flags.DEFINE_integer("gemm_n", 2048, "Matrix side of the GEMM probe.")
  app.run(main)
