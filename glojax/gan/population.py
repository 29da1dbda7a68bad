"""Train K candidate GANs as one compiled program and score them.

``evaluate_population(trainer, candidates[K], keys[K]) -> GanPopulationResult``: the
candidate axis carries each GAN's generator and discriminator parameters, spectral-norm
statistics, both optimizer states, its loss triple and its hyperparameters. The
strategies are :mod:`glojax.train.population`'s (``"auto"`` = grouped ``"unroll"`` on CPU,
where vmapped convolutions become slow grouped convolutions; ``"vmap"`` on
accelerators; ``"sequential"`` one candidate at a time through the same single-candidate
program).

Candidates never interact: a candidate whose training produces NaN/inf is marked
``finite=False`` and scored :data:`FAILED_FITNESS`, and its neighbours' weights and
scores are what they would have been alone.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from glojax.gan.trainer import Candidate, GanTrainer
from glojax.train.population import UNROLL_GROUP, _unrolled, resolve_strategy

STRATEGIES = ("auto", "vmap", "unroll", "sequential")
SSIM_WEIGHT = 17.0                 # dissertation §7.4.2: 17 · SSIM − perceptual distance
FAILED_FITNESS = float("-inf")     # a candidate that produced NaN/inf ranks last


@dataclasses.dataclass
class GanPopulationResult:
  """What :func:`evaluate_population` returns.

  Attributes:
    fitness: ``float32[K]``: ``ssim_weight · SSIM − perceptual distance`` on the split,
      :data:`FAILED_FITNESS` (−inf) for failed candidates.
    metrics: dict of ``[K]`` arrays: ``ssim`` (mean SSIM, in [-1, 1]), ``perceptual``
      (mean perceptual distance, embedding units), ``d_loss``/``g_loss`` (last step),
      ``finite`` (bool).
    samples: ``float32[K, num_samples, H, W, C]`` generated images in [0, 1] for the
      first pairs of the split.
  """
  fitness: np.ndarray
  metrics: dict
  samples: np.ndarray

  @property
  def num_failed(self) -> int:
    return int(np.sum(~self.metrics["finite"]))


def fitness_of(ssim, perceptual, finite, ssim_weight: float = SSIM_WEIGHT) -> np.ndarray:
  """``ssim_weight · ssim − perceptual``, −inf where ``finite`` is False (``float32[K]``)."""
  value = ssim_weight * np.asarray(ssim, np.float64) - np.asarray(perceptual, np.float64)
  ok = np.asarray(finite, bool) & np.isfinite(value)
  return np.where(ok, value, FAILED_FITNESS).astype(np.float32)


class _Programs:
  """The compiled functions of one trainer signature for one mode (vmap / unroll /
  single); :meth:`run` takes the trainer whose data to use."""

  def __init__(self, trainer: GanTrainer, mode: str):
    self.trainer = trainer
    if mode == "vmap":
      vm = lambda f, axes: jax.vmap(f, in_axes=axes)
    elif mode == "unroll":
      vm = lambda f, axes: _unrolled(f, axes)
    else:
      vm = lambda f, axes: f
    self._vm = vm
    self._batched = mode != "single"
    self.train_all = jax.jit(vm(trainer.train_all, (0, 0, None)))
    self.eval_batch = jax.jit(vm(trainer.eval_batch, (0, None, None, None, None)))
    self._chunks: dict[int, Callable] = {}

  def chunk(self, num_steps: int) -> Callable:
    if num_steps not in self._chunks:
      fn = functools.partial(self.trainer.train_chunk, num_steps=num_steps)
      self._chunks[num_steps] = jax.jit(self._vm(fn, (0, 0, None)))
    return self._chunks[num_steps]

  def train(self, t: GanTrainer, cands: Candidate, keys, progress=None):
    # One candidate at a time through one compiled init shared by every mode: the
    # init program (threefry for every weight) compiles slowly on CPU, runs fast.
    init = _init_program(t)
    if self._batched:
      state = jax.tree_util.tree_map(lambda *xs: jnp.stack(xs),
                                     *[init(keys[i]) for i in range(keys.shape[0])])
    else:
      state = init(keys)
    if t.loop == "scan":
      return self.train_all(state, cands, t.data)
    done, total = 0, t.config.steps
    while done < total:
      n = min(t.config.steps_per_call, total - done)
      state = self.chunk(n)(state, cands, t.data)
      done += n
      if progress is not None:
        progress(done, total)
    return state

  def score(self, t: GanTrainer, state, split: str) -> dict:
    ssim_sum = pd_sum = 0.0
    finite, samples = state.finite, None
    n = len(t.dataset.split(split))
    for inputs, targets, mask in t.eval_batches(split):
      out = self.eval_batch(state, inputs, targets, mask, t.data["embedding"])
      ssim_sum = ssim_sum + out["ssim_sum"]
      pd_sum = pd_sum + out["pd_sum"]
      finite = finite & out["finite"]
      samples = out["samples"] if samples is None else samples
    return {"ssim": np.array(ssim_sum, np.float32) / n,
            "perceptual": np.array(pd_sum, np.float32) / n,
            "d_loss": np.array(state.d_loss, np.float32),
            "g_loss": np.array(state.g_loss, np.float32),
            "finite": np.array(finite, bool),
            "samples": np.array(samples, np.float32)}

  def run(self, t: GanTrainer, cands, keys, split, progress=None) -> dict:
    return self.score(t, self.train(t, cands, keys, progress), split)


_CACHE: dict = {}
_INIT_CACHE: dict = {}
_CACHE_SIZE = 8  # compiled program sets kept (each holds its first trainer's data)


def _programs(trainer: GanTrainer, mode: str) -> _Programs:
  """The program set of ``trainer``'s signature: a new trainer with the same config,
  loss family and image shape (a resumed run, a notebook rerun) does not recompile."""
  key = (trainer.signature(), mode)
  if key not in _CACHE:
    if len(_CACHE) >= _CACHE_SIZE:
      _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = _Programs(trainer, mode)
  return _CACHE[key]


def _init_program(trainer: GanTrainer) -> Callable:
  key = trainer.signature()
  if key not in _INIT_CACHE:
    if len(_INIT_CACHE) >= _CACHE_SIZE:
      _INIT_CACHE.pop(next(iter(_INIT_CACHE)))
    _INIT_CACHE[key] = jax.jit(trainer.init)
  return _INIT_CACHE[key]


def _take(tree, i):
  return jax.tree_util.tree_map(lambda a: a[i], tree)


def evaluate_population(trainer: GanTrainer, candidates: Candidate, keys: jax.Array, *,
                        strategy: str = "auto", split: str = "validation",
                        ssim_weight: float = SSIM_WEIGHT,
                        progress: Optional[Callable[[int, int], None]] = None
                        ) -> GanPopulationResult:
  """Trains K candidate GANs and scores them on ``split``.

  Args:
    trainer: the :class:`~glojax.gan.trainer.GanTrainer`.
    candidates: a :class:`~glojax.gan.trainer.Candidate` whose leaves have a leading
      axis ``K`` (:func:`glojax.gan.trainer.stack`).
    keys: ``uint32[K, 2]``, one PRNG key per candidate (weights, batches).
    strategy: ``"auto"``, ``"vmap"``, ``"unroll"`` or ``"sequential"``.
    split: ``"validation"`` during search, ``"test"`` for reporting.
    ssim_weight: the 17 of the fitness.
    progress: optional ``progress(steps_done, steps_total)`` (python loop).

  Returns:
    A :class:`GanPopulationResult`.

  Raises:
    ValueError: for an unknown strategy or split, bad keys, or candidate leaves
      without the leading axis ``K``.
  """
  if strategy not in STRATEGIES:
    raise ValueError(f"unknown strategy {strategy!r}; known: {STRATEGIES}")
  strategy = resolve_strategy(strategy)
  trainer.dataset.split(split)  # unknown split -> ValueError before training
  keys = jnp.asarray(keys)
  if keys.ndim != 2 or keys.shape[1] != 2 or keys.dtype != jnp.uint32:
    raise ValueError(f"keys must be uint32[K, 2] raw PRNG keys, got "
                     f"{keys.dtype}{tuple(keys.shape)}")
  k = keys.shape[0]
  bad = [tuple(jnp.shape(x)) for x in jax.tree_util.tree_leaves(candidates)
         if jnp.ndim(x) == 0 or jnp.shape(x)[0] != k]
  if bad:
    raise ValueError(f"every candidate leaf needs a leading axis of size K={k}; got "
                     f"leaf shapes {bad}")
  candidates = jax.tree_util.tree_map(jnp.asarray, candidates)
  if strategy == "vmap":
    out = _programs(trainer, "vmap").run(trainer, candidates, keys, split, progress)
  elif strategy == "unroll":
    out = _run_groups(_programs(trainer, "unroll"), trainer, candidates, keys, split,
                      progress)
  else:
    single = _programs(trainer, "single")
    rows = [single.run(trainer, _take(candidates, i), keys[i], split, progress)
            for i in range(k)]
    out = {name: np.stack([r[name] for r in rows]) for name in rows[0]}
  samples = out.pop("samples")
  fitness = fitness_of(out["ssim"], out["perceptual"], out["finite"], ssim_weight)
  return GanPopulationResult(fitness, out, samples)


def _run_groups(programs: _Programs, trainer: GanTrainer, candidates, keys, split,
                progress) -> dict:
  """The unrolled program on groups of ``UNROLL_GROUP`` candidates (last group padded
  with copies of its first member, results discarded)."""
  k = keys.shape[0]
  group = min(UNROLL_GROUP, k)
  rows = []
  for start in range(0, k, group):
    idx = np.arange(start, min(start + group, k))
    padded = np.concatenate([idx, np.full(group - idx.size, idx[0])])
    out = programs.run(trainer, _take(candidates, padded), keys[padded], split, progress)
    rows.append({name: value[:idx.size] for name, value in out.items()})
  return {name: np.concatenate([r[name] for r in rows]) for name in rows[0]}
