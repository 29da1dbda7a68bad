r"""NLFS's integrity check: reject degenerate loss graphs before any training.

Morgan & Hougen 2024, §3.3 and appendix A (Algorithm 1); SPEC §7. :func:`check` is a pure
function of a graph and the population's phenotypes; it returns a :class:`Verdict` whose
``reason`` names the first failed test (``None`` when the graph passes) and whose
``sign`` is the graph's corrected sign.

The tests, in order (``REASONS``):

1. **Structure.** ``"cycle"``: the active graph (what the output node reads) holds a
   cycle. ``"missing_target"`` / ``"missing_prediction"``: the active graph never reads
   ``x`` (target) / ``y`` (prediction). ``"root_input"``: the output node reads no
   hidden node (§3.2's rule; mutation never breaks it, hand-built graphs may).
2. **Binary phenotype** (§3.3): the two-class loss with target ``[0, 1]`` and prediction
   ``[1-p, p]``, i.e. ``φ(p) = ½ (r(0, 1-p) + r(1, p))`` for the output ``r`` (sign +1),
   on a grid of ``grid_points`` midpoints of ``(0, 1)``. ``"non_finite"``: NaN/inf
   on the grid; ``"constant"``: ``φ`` does not vary (range ≤ ``flat_tolerance`` ×
   (1 + max|φ|)). ``"multiple_optima"``: ``φ`` changes direction more than once — its
   differences above ``flat_tolerance`` × range change sign at more than one point —
   or its global minimum, after the sign correction, is a plateau wider than
   ``plateau_fraction`` of the grid (many global optima). So the survivors are monotone
   or have one interior extremum ("roughly parabolic").
3. **Sign** (§3.3, not a rejection): a loss that increases with ``p`` or has an
   interior maximum is negated (``sign = -1``) to prevent inverse learning.
   ``"optimum_near_half"``: the minimizer of the sign-corrected ``φ`` lies within
   ``center_tolerance`` (relative; 1 %) of 0.5, the accuracy threshold.
4. **Similarity** (§3.3): ``"similar"``: the min–max normalized, sign-corrected
   phenotype lies within Euclidean distance ``similarity_threshold`` (0.01) of a
   population member's.

Assumptions where the paper is silent, all in :class:`IntegrityConfig`: the grid (200
midpoints, spacing 0.005), "within 1 % of 0.5" read relative (``|p* - 0.5| ≤ 0.005``),
the tolerances, the two extra reasons ``"non_finite"`` and ``"constant"`` (a phenotype
that cannot be normalized or has no optimum), and cycles counted in the active graph
only. The distance is the plain Euclidean norm over the grid's points, so the threshold
depends on ``grid_points`` (the paper does not state its grid).

Phenotypes are computed by the fixed-size program interpreter (one compile serves all
graphs), in float32.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from glojax.expr import graph as graph_lib
from glojax.expr import program as program_lib

REASONS = ("cycle", "missing_target", "missing_prediction", "root_input", "non_finite",
           "constant", "multiple_optima", "optimum_near_half", "similar")


@dataclasses.dataclass(frozen=True)
class IntegrityConfig:
  """Parameters of the check (defaults: NLFS §3.3 and our stated assumptions).

  Attributes:
    grid_points: phenotype grid size ``G``: midpoints ``(i + 0.5) / G`` of ``(0, 1)``.
    center_tolerance: reject a minimizer ``p*`` with ``|p* - 0.5| ≤ center_tolerance ·
      0.5`` ("within 1 % of 0.5").
    similarity_threshold: reject when the normalized phenotypes' Euclidean distance to
      a population member's is below this (0.01).
    flat_tolerance: differences below ``flat_tolerance`` × the phenotype's range are
      treated as flat (float32 noise), when counting direction changes.
    plateau_fraction: a global minimum attained (within the flat tolerance) on more
      than this fraction of the grid counts as many optima.
  """
  grid_points: int = 200
  center_tolerance: float = 0.01
  similarity_threshold: float = 0.01
  flat_tolerance: float = 1e-5
  plateau_fraction: float = 0.02

  def __post_init__(self):
    if not isinstance(self.grid_points, int) or self.grid_points < 8:
      raise ValueError(f"IntegrityConfig.grid_points must be an integer ≥ 8, got "
                       f"{self.grid_points!r}")
    for name in ("center_tolerance", "similarity_threshold", "flat_tolerance",
                 "plateau_fraction"):
      value = getattr(self, name)
      if not 0.0 <= value < 1.0:
        raise ValueError(f"IntegrityConfig.{name} must be in [0, 1), got {value!r}")

  @property
  def grid(self) -> np.ndarray:
    """``float32[G]``: the prediction values ``p`` of the phenotype."""
    return ((np.arange(self.grid_points) + 0.5) / self.grid_points).astype(np.float32)


class Verdict(NamedTuple):
  """The result of :func:`check`.

  Attributes:
    reason: ``None`` if the graph passes, else one of :data:`REASONS`.
    sign: the corrected sign (``+1`` or ``-1``; the input's sign if the check stopped
      before the phenotype).
    phenotype: ``float32[G]`` min–max normalized, sign-corrected phenotype, or ``None``
      if the check stopped before computing it.
    optimum: the minimizer ``p*`` of the sign-corrected phenotype (``None`` likewise).
  """
  reason: Optional[str]
  sign: int
  phenotype: Optional[np.ndarray]
  optimum: Optional[float]

  @property
  def ok(self) -> bool:
    return self.reason is None


def structural_reason(graph: graph_lib.Graph) -> Optional[str]:
  """The first structural test the graph fails (``"cycle"``, ``"missing_target"``,
  ``"missing_prediction"``, ``"root_input"``) or ``None``."""
  if graph_lib.has_cycle(graph):
    return "cycle"
  used = graph_lib.variables(graph)
  if "x" not in used:
    return "missing_target"
  if "y" not in used:
    return "missing_prediction"
  if not graph_lib.root_reads_hidden(graph):
    return "root_input"
  return None


@functools.lru_cache(maxsize=8)
def _phenotype_program(grid_points: int):
  """A jitted ``programs[K] -> φ float32[K, G]`` (compiled once per K bucket)."""
  def one(program, x, y):
    r = program_lib.run_program(program, x, y, stack_depth=graph_lib.PROGRAM_STACK_DEPTH,
                                use_logits=False, op_set="all")
    return jnp.mean(r, axis=-1)
  return jax.jit(jax.vmap(one, in_axes=(0, None, None)))


def raw_phenotypes(graphs: Sequence[graph_lib.Graph], config: IntegrityConfig
                   ) -> np.ndarray:
  """``float32[K, G]`` binary phenotypes ``φ(p)`` of acyclic graphs, with sign +1.

  ``φ(p) = ½ (r(0, 1-p) + r(1, p))``: the graph's output averaged over the two classes
  of an example whose true class is predicted with probability ``p``.
  """
  graphs = list(graphs)
  if not graphs:
    return np.zeros((0, config.grid_points), np.float32)
  p = config.grid
  x = np.broadcast_to(np.array([0.0, 1.0], np.float32), (p.size, 2))
  y = np.stack([1.0 - p, p], axis=-1).astype(np.float32)
  # Pad K to a power of two: a few compiled sizes serve every batch.
  k = len(graphs)
  padded = 1 << (k - 1).bit_length()
  unsigned = [g.with_sign(-1) for g in graphs]   # f = r: the output itself
  programs = graph_lib.encode_population(unsigned + unsigned[:1] * (padded - k))
  out = _phenotype_program(config.grid_points)(programs, jnp.asarray(x), jnp.asarray(y))
  return np.asarray(out, np.float32)[:k]


def _direction_changes(values: np.ndarray, tol: float) -> tuple[int, int]:
  """(number of direction changes, sign of the first significant step: ±1, 0 if flat)."""
  d = np.diff(values.astype(np.float64))
  d = d[np.abs(d) > tol]
  if d.size == 0:
    return 0, 0
  s = np.sign(d)
  return int(np.sum(s[1:] != s[:-1])), int(s[0])


def assess_phenotype(raw: np.ndarray, population: np.ndarray | None,
                     config: IntegrityConfig) -> Verdict:
  """Tests 2–4 on one raw phenotype ``float[G]`` (see the module docstring).

  Args:
    raw: ``φ`` on ``config.grid`` with sign +1.
    population: ``float[M, G]`` normalized phenotypes of the population (or None).
    config: :class:`IntegrityConfig`.

  Returns:
    A :class:`Verdict` (its ``sign`` the corrected sign).
  """
  raw = np.asarray(raw, np.float64)
  if not np.all(np.isfinite(raw)):
    return Verdict("non_finite", 1, None, None)
  lo, hi = float(raw.min()), float(raw.max())
  if hi - lo <= config.flat_tolerance * (1.0 + max(abs(lo), abs(hi))):
    return Verdict("constant", 1, None, None)
  tol = config.flat_tolerance * (hi - lo)
  changes, first = _direction_changes(raw, tol)
  if changes >= 2:
    return Verdict("multiple_optima", 1, None, None)
  # Increasing (monotone, first step up) or an interior maximum (up, then down): flip.
  sign = -1 if first > 0 else 1
  value = sign * raw
  normalized = ((value - value.min()) / (value.max() - value.min())).astype(np.float32)
  at_min = np.flatnonzero(normalized <= config.flat_tolerance)
  grid = config.grid
  if at_min.size > max(1, config.plateau_fraction * grid.size):
    return Verdict("multiple_optima", sign, normalized, None)
  optimum = float(np.mean(grid[at_min]))
  if abs(optimum - 0.5) <= config.center_tolerance * 0.5:
    return Verdict("optimum_near_half", sign, normalized, optimum)
  if population is not None and len(population):
    distance = np.linalg.norm(np.asarray(population, np.float64) - normalized, axis=-1)
    if np.any(distance < config.similarity_threshold):
      return Verdict("similar", sign, normalized, optimum)
  return Verdict(None, sign, normalized, optimum)


def check_many(graphs: Sequence[graph_lib.Graph], population: np.ndarray | None = None,
               config: IntegrityConfig = IntegrityConfig()) -> list[Verdict]:
  """:func:`check` of each graph against the same population (one phenotype call).

  Graphs are *not* compared with each other; the caller adds a passing graph's
  phenotype to ``population`` before checking the next one if that is wanted.
  """
  graphs = list(graphs)
  verdicts: list[Optional[Verdict]] = []
  pending = []
  for g in graphs:
    reason = structural_reason(g)
    verdicts.append(None if reason is None else Verdict(reason, g.sign, None, None))
    if reason is None:
      pending.append(g)
  raws = iter(raw_phenotypes(pending, config))
  return [v if v is not None else assess_phenotype(next(raws), population, config)
          for v in verdicts]


def check(graph: graph_lib.Graph, population: np.ndarray | None = None,
          config: IntegrityConfig = IntegrityConfig()) -> Verdict:
  """NLFS's integrity check of one graph (Algorithm 1; module docstring).

  Args:
    graph: the candidate.
    population: ``float[M, G]`` normalized phenotypes of the current population
      (``Verdict.phenotype`` of its members), or None.
    config: :class:`IntegrityConfig`.

  Returns:
    A :class:`Verdict`: ``reason`` None if the graph passes; ``sign`` the sign to
    train it with (``graph.with_sign(verdict.sign)``).
  """
  return check_many([graph], population, config)[0]
