"""Population evaluation: train K candidate losses as one compiled program.

``evaluate_population(trainer, loss_params[K, ...], keys[K]) -> PopulationResult`` trains
every candidate with its own key and returns its fitness (validation accuracy, 0 for a
candidate whose training produced NaN/inf). Strategies (measured in BENCHMARKS.md):

* ``"vmap"`` — ``jit(vmap(...))`` over the candidate axis: one program for all K;
* ``"unroll"`` — one program holding ``UNROLL_GROUP`` unbatched copies of the
  single-candidate computation, called for each group of candidates (no grouped
  convolutions; independent copies overlap on the CPU's cores; compile time stays
  bounded because the group size, not K, sets the program size);
* ``"sequential"`` — the single-candidate program, called K times (compiled once);
* ``"auto"`` — ``vmap`` on accelerators; ``unroll`` on CPU, where vmap turns
  convolutions into slow grouped convolutions and falls off with K for dense models
  (BENCHMARKS.md has the measurements behind this rule);
* ``"sharded"`` — the ``vmap`` program with the candidate axis split over all devices,
  also those of other processes under ``jax.distributed``
  (:func:`glojax.train.parallel.run_population_sharded`).

Candidates are independent inside the vmapped program, so a NaN in one cannot change
another's weights or fitness.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from glojax.train.trainer import Trainer, all_finite

STRATEGIES = ("auto", "vmap", "unroll", "sequential", "sharded")
UNROLL_GROUP = 4  # candidates per unrolled program (BENCHMARKS.md)


@dataclasses.dataclass
class PopulationResult:
  """What :func:`evaluate_population` returns.

  Attributes:
    fitness: ``float32[K]`` accuracy on the evaluated split, 0 for failed candidates.
    metrics: dict of ``[K]`` arrays: ``accuracy``, ``loss`` (mean CE on the split),
      ``train_loss`` (candidate loss on the last batch), ``finite`` (bool).
    attempts: ``int32[K]`` trainings each candidate took (1 + retries used).
  """
  fitness: np.ndarray
  metrics: dict
  attempts: np.ndarray

  @property
  def num_failed(self) -> int:
    return int(np.sum(~self.metrics["finite"]))


def resolve_strategy(strategy: str, model_name: Optional[str] = None) -> str:
  """Maps ``"auto"`` to a concrete strategy for this backend and model kind.

  Raises:
    ValueError: for an unknown strategy name.
  """
  if strategy not in STRATEGIES:
    raise ValueError(f"unknown strategy {strategy!r}; known: {STRATEGIES}")
  if strategy != "auto":
    return strategy
  # Measured (BENCHMARKS.md): on CPU, groups of unrolled candidates beat vmap for
  # every model (conv: vmap becomes grouped convolutions, 3–7× slower; dense: vmap
  # falls off with K); on accelerators vmap batches the candidate axis.
  del model_name  # the rule does not depend on the model kind (kept for callers)
  return "unroll" if jax.default_backend() == "cpu" else "vmap"


def _unrolled(f, axes):
  """Like ``vmap(f, in_axes=axes)`` but as K unbatched copies of ``f`` in one program."""
  def g(*args):
    k = jax.tree_util.tree_leaves(args[axes.index(0)])[0].shape[0]
    outs = [f(*[_take(a, i) if ax == 0 else a for a, ax in zip(args, axes)])
            for i in range(k)]
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *outs)
  return g


class Programs:
  """The compiled functions of one trainer for one strategy (``vmap``, ``unroll``,
  or ``single`` — one candidate, used by ``sequential``), and the trainer's evaluation
  batches on the device. Get them with :func:`programs`, which caches them."""

  def __init__(self, trainer: Trainer, mode: str):
    self.trainer = trainer
    self.mode = mode
    if mode == "vmap":
      vm = lambda f, axes: jax.vmap(f, in_axes=axes)
    elif mode == "unroll":
      vm = lambda f, axes: _unrolled(f, axes if isinstance(axes, tuple) else (axes,))
    else:
      vm = lambda f, axes: f
    self.init = jax.jit(vm(trainer.init, 0))
    self.train_all = jax.jit(vm(trainer.train_all, (0, 0, None)))
    self.eval_batch = jax.jit(vm(trainer.eval_batch, (0, None, None, None)))
    self.params_finite = jax.jit(vm(all_finite, 0))
    self._vm = vm
    self._chunks: dict[int, Callable] = {}
    self._eval_batches: dict[str, tuple] = {}

  def eval_batches(self, split: str) -> tuple:
    """The trainer's padded evaluation batches of ``split`` (built once)."""
    if split not in self._eval_batches:
      self._eval_batches[split] = self.trainer.eval_batches(split)
    return self._eval_batches[split]

  def chunk(self, num_steps: int) -> Callable:
    if num_steps not in self._chunks:
      fn = functools.partial(self.trainer.train_chunk, num_steps=num_steps)
      self._chunks[num_steps] = jax.jit(self._vm(fn, (0, 0, None)))
    return self._chunks[num_steps]

  def run(self, loss_params, keys, split: str,
          progress: Optional[Callable[[int, int], None]] = None) -> dict:
    t = self.trainer
    state = self.init(keys)
    total = t.config.steps
    if t.loop == "scan":
      state = self.train_all(state, loss_params, t.data)
    else:
      done = 0
      while done < total:
        n = min(t.config.steps_per_call, total - done)
        state = self.chunk(n)(state, loss_params, t.data)
        done += n
        if progress is not None:
          progress(done, total)
    correct = ce_sum = 0.0
    finite_logits = True
    n_examples = len(getattr(t.dataset, split))
    for images, labels, mask in self.eval_batches(split):
      out = self.eval_batch(state, images, labels, mask)
      correct = correct + out["correct"]
      ce_sum = ce_sum + out["ce_sum"]
      finite_logits = finite_logits & out["finite_logits"]
    finite = state.finite & self.params_finite(state.params) & finite_logits
    # np.array copies: views of device buffers are read-only, and retries write rows.
    return {"accuracy": to_host(correct, np.float32) / n_examples,
            "loss": to_host(ce_sum, np.float32) / n_examples,
            "train_loss": to_host(state.last_loss, np.float32),
            "finite": to_host(finite, bool)}


def to_host(x, dtype) -> np.ndarray:
  """A writable NumPy copy of ``x``, also of a global array spread over processes.

  With several processes (``jax.distributed``) a candidate-sharded result lives partly
  on other hosts' devices; ``process_allgather`` gathers it so that every process gets
  the whole ``[K]`` vector (a collective: every process must call it).
  """
  if isinstance(x, jax.Array) and not x.is_fully_addressable:
    from jax.experimental import multihost_utils
    x = multihost_utils.process_allgather(x, tiled=True)
  return np.array(x, dtype)


# The program cache: (trainer, mode) -> Programs, least recently used first. Trainers
# compare by identity; a bounded cache lets the trainers of finished runs (and their
# device data) be freed.
_PROGRAMS: "collections.OrderedDict[tuple, Programs]" = collections.OrderedDict()
MAX_CACHED_PROGRAMS = 16


def programs(trainer: Trainer, mode: str) -> Programs:
  """The (cached) compiled programs of ``trainer`` for ``mode`` (``"vmap"``,
  ``"unroll"`` or ``"single"``)."""
  key = (trainer, mode)
  if key in _PROGRAMS:
    _PROGRAMS.move_to_end(key)
  else:
    if len(_PROGRAMS) >= MAX_CACHED_PROGRAMS:
      _PROGRAMS.popitem(last=False)
    _PROGRAMS[key] = Programs(trainer, mode)
  return _PROGRAMS[key]


_programs = programs  # the name benchmarks/population.py uses


def _run_unrolled(programs: Programs, loss_params, keys, split, progress) -> dict:
  """Runs the unrolled program on groups of ``UNROLL_GROUP`` candidates.

  The last group is padded with copies of its first member (results discarded), so
  one program size serves every K.
  """
  k = keys.shape[0]
  group = min(UNROLL_GROUP, k)
  rows = []
  for start in range(0, k, group):
    idx = np.arange(start, min(start + group, k))
    padded = np.concatenate([idx, np.full(group - idx.size, idx[0])])
    out = programs.run(_take(loss_params, padded), keys[padded], split, progress)
    rows.append({name: value[:idx.size] for name, value in out.items()})
  return {name: np.concatenate([r[name] for r in rows]) for name in rows[0]}


def _take(tree, i):
  return jax.tree_util.tree_map(lambda a: a[i], tree)


def evaluate_population(trainer: Trainer,
                        loss_params: Any,
                        keys: jax.Array,
                        *,
                        strategy: str = "auto",
                        nan_retries: int = 2,
                        split: str = "validation",
                        model_name: Optional[str] = None,
                        progress: Optional[Callable[[int, int], None]] = None,
                        early_stopping=None,
                        ) -> PopulationResult:
  """Trains K candidates and returns their fitness.

  Args:
    trainer: the :class:`~glojax.train.trainer.Trainer` (model, data, loss, schedule).
    loss_params: pytree whose leaves have a leading candidate axis ``K`` (e.g.
      TaylorGLO ``theta: float32[K, 8]``).
    keys: ``uint32[K, 2]`` one PRNG key per candidate (weights, batches, dropout).
    strategy: ``"auto"`` (default: the fastest measured strategy for this backend),
      ``"vmap"``, ``"unroll"``, ``"sequential"`` or ``"sharded"`` (module docstring).
    nan_retries: a candidate whose training produced NaN/inf is retrained up to this
      many times with keys ``fold_in(keys[k], attempt)``; if it still fails its
      fitness is 0.
    split: split to evaluate on (``"validation"`` during search, ``"test"`` for the
      final protocol).
    model_name: registry name of the model, used by ``strategy="auto"``.
    progress: optional ``progress(steps_done, steps_total)`` callback (python loop).
    early_stopping: optional :class:`glojax.train.early_stopping.EarlyStopping`: a
      candidate whose training accuracy is below a check's threshold stops at that
      chunk boundary, its fitness the split's accuracy at that point; ``metrics`` then
      also hold ``stopped``, ``steps_trained``, ``stopped_check``, ``train_accuracy``
      (see that module). Not with ``"sharded"``.

  Returns:
    A :class:`PopulationResult`.

  Raises:
    ValueError: for an unknown strategy, mismatched leading axes, or bad keys.
  """
  strategy = resolve_strategy(strategy, model_name)
  if split not in ("train", "validation", "test"):  # before any training
    raise ValueError(f"unknown split {split!r}; use 'train', 'validation' or 'test'")
  keys = jnp.asarray(keys)
  if keys.ndim != 2 or keys.shape[1] != 2 or keys.dtype != jnp.uint32:
    raise ValueError(f"keys must be uint32[K, 2] raw PRNG keys (jax.random.PRNGKey), "
                     f"got {keys.dtype}{tuple(keys.shape)}")
  k = keys.shape[0]
  leaves = jax.tree_util.tree_leaves(loss_params)
  bad = [tuple(jnp.shape(x)) for x in leaves if jnp.ndim(x) == 0 or jnp.shape(x)[0] != k]
  if bad:
    raise ValueError(f"every loss_params leaf needs a leading axis of size K={k} "
                     f"(one row per candidate); got leaf shapes {bad}")
  loss_params = jax.tree_util.tree_map(jnp.asarray, loss_params)

  if early_stopping is not None:
    from glojax.train import early_stopping as early_stopping_lib
    run_early = lambda params, ks, strat: early_stopping_lib.run(
        trainer, lambda mode: programs(trainer, mode), params, ks, split, early_stopping,
        strat, progress)
    metrics = run_early(loss_params, keys, strategy)
  elif strategy == "vmap":
    metrics = programs(trainer, strategy).run(loss_params, keys, split, progress)
  elif strategy == "unroll":
    metrics = _run_unrolled(programs(trainer, "unroll"), loss_params, keys, split,
                            progress)
  elif strategy == "sharded":
    from glojax.train.parallel import run_population_sharded
    metrics = run_population_sharded(programs(trainer, "vmap"), loss_params, keys, split,
                                     progress)
  else:
    single = programs(trainer, "single")
    rows = [single.run(_take(loss_params, i), keys[i], split, progress) for i in range(k)]
    metrics = {name: np.stack([r[name] for r in rows]) for name in rows[0]}

  attempts = np.ones(k, np.int32)
  if nan_retries > 0 and not metrics["finite"].all():
    single = programs(trainer, "single")
    for i in np.flatnonzero(~metrics["finite"]):
      for attempt in range(1, nan_retries + 1):
        attempts[i] += 1
        key_i = jax.random.fold_in(keys[i], attempt)
        if early_stopping is not None:
          row = {name: v[0] for name, v in run_early(
              _take(loss_params, np.array([i])), key_i[None], "sequential").items()}
        else:
          row = single.run(_take(loss_params, i), key_i, split)
        if row["finite"]:
          for name in metrics:
            metrics[name][i] = row[name]
          break
  fitness = np.where(metrics["finite"], metrics["accuracy"], 0.0).astype(np.float32)
  return PopulationResult(fitness=fitness, metrics=metrics, attempts=attempts)


# ---- training from given states (population-based training) -----------------------
#
# EPBT/PBT keep a population of networks alive across generations: each member goes on
# training from its own weights and optimizer state. These functions are the building
# blocks for that, on a stacked TrainState (every leaf has a leading member axis K),
# with the same strategies as evaluate_population.

_STATE_STRATEGIES = ("auto", "vmap", "unroll", "sequential")


def _state_mode(strategy: str, model_name: Optional[str]) -> str:
  strategy = resolve_strategy(strategy, model_name)
  if strategy not in _STATE_STRATEGIES:
    raise ValueError(f"strategy {strategy!r} is not supported for training from given "
                     f"states; use one of {_STATE_STRATEGIES}")
  return strategy


def _num_members(states) -> int:
  return int(jnp.shape(states.step)[0]) if jnp.ndim(states.step) == 1 else -1


def _grouped(fn, mode: str, k: int, *trees):
  """Applies ``fn`` to members in the groups ``mode`` runs (all at once for ``vmap``;
  ``UNROLL_GROUP`` at a time for ``unroll``, the last group padded with copies of its
  first member; one at a time for ``sequential``) and stacks the results."""
  if mode == "vmap":
    return fn(*trees)
  group = min(UNROLL_GROUP, k) if mode == "unroll" else 1
  outs = []
  for start in range(0, k, group):
    idx = np.arange(start, min(start + group, k))
    padded = np.concatenate([idx, np.full(group - idx.size, idx[0])])
    sel = padded if mode == "unroll" else idx[0]
    out = fn(*[_take(t, sel) for t in trees])
    outs.append(jax.tree_util.tree_map(lambda a: a[:idx.size], out) if mode == "unroll"
                else jax.tree_util.tree_map(lambda a: a[None], out))
  return jax.tree_util.tree_map(lambda *xs: jnp.concatenate(xs), *outs)


def init_population(trainer: Trainer, keys: jax.Array):
  """Fresh training states for K members: ``trainer.init`` of each key, stacked.

  Args:
    trainer: the :class:`~glojax.train.trainer.Trainer`.
    keys: ``uint32[K, 2]`` PRNG keys (member ``i`` gets exactly ``trainer.init(keys[i])``).

  Returns:
    A :class:`~glojax.train.trainer.TrainState` whose leaves have a leading axis K.

  Raises:
    ValueError: for keys that are not ``uint32[K, 2]``.
  """
  keys = jnp.asarray(keys)
  if keys.ndim != 2 or keys.shape[1] != 2 or keys.dtype != jnp.uint32:
    raise ValueError(f"keys must be uint32[K, 2] raw PRNG keys (jax.random.PRNGKey), "
                     f"got {keys.dtype}{tuple(keys.shape)}")
  return programs(trainer, "vmap").init(keys)


def _steps_program(progs: Programs, num_steps: int) -> Callable:
  """``(state, loss_params, data) -> state`` running ``num_steps`` steps as one
  ``lax.scan`` over chunks of ``steps_per_call`` (the ``"scan"`` loop)."""
  key = ("steps", num_steps)
  if key not in progs._chunks:
    t = progs.trainer
    chunk = t.config.steps_per_call
    n_chunks, rest = divmod(num_steps, chunk)

    def run(state, loss_params, data):
      def body(s, _):
        return t.train_chunk(s, loss_params, data, chunk), None
      state, _ = jax.lax.scan(body, state, None, length=n_chunks)
      return t.train_chunk(state, loss_params, data, rest)
    progs._chunks[key] = jax.jit(progs._vm(run, (0, 0, None)))
  return progs._chunks[key]


def train_population_from(trainer: Trainer, states, loss_params: Any, num_steps: int, *,
                          strategy: str = "auto", model_name: Optional[str] = None,
                          progress: Optional[Callable[[int, int], None]] = None):
  """Trains every member ``num_steps`` more steps from its own state.

  Each member continues from its weights, optimizer state (step count, momentum,
  learning-rate schedule position) and PRNG key, exactly as if its training had never
  stopped: ``train_population_from(s, θ, a)`` then ``b`` steps equals ``a + b`` steps.

  Args:
    trainer: the :class:`~glojax.train.trainer.Trainer` (model, data, loss, optimizer).
    states: a stacked :class:`~glojax.train.trainer.TrainState` (leading axis K), e.g.
      from :func:`init_population` or a previous call.
    loss_params: pytree with leading axis K (e.g. TaylorGLO ``theta: float32[K, 8]``;
      ``float32[K, 0]`` for cross-entropy).
    num_steps: optimizer steps to take (``int ≥ 0``; each distinct count compiles once).
    strategy: ``"auto"`` (unroll groups on CPU, vmap on accelerators), ``"vmap"``,
      ``"unroll"`` or ``"sequential"`` (see :func:`evaluate_population`); every strategy
      gives the same result up to float reduction order.
    model_name: registry name of the model (for ``"auto"``).
    progress: optional ``progress(steps_done, num_steps)`` callback (python loop only).

  Returns:
    The new stacked ``TrainState``. ``finite`` stays False for a member that ever saw
    a non-finite loss or gradient; members are independent, so a NaN in one never
    touches another.

  Raises:
    ValueError: for an unsupported strategy, a negative ``num_steps``, or leading axes
      that disagree.
  """
  mode = _state_mode(strategy, model_name)
  if isinstance(num_steps, bool) or not isinstance(num_steps, (int, np.integer)) \
      or num_steps < 0:
    raise ValueError(f"num_steps must be an integer >= 0, got {num_steps!r}")
  k = _num_members(states)
  leaves = jax.tree_util.tree_leaves(loss_params)
  bad = [tuple(jnp.shape(x)) for x in leaves if jnp.ndim(x) == 0 or jnp.shape(x)[0] != k]
  if k < 1 or bad:
    raise ValueError(f"states need a leading member axis K and every loss_params leaf "
                     f"the same (K={k}); got loss_params leaf shapes {bad}")
  if num_steps == 0:
    return states
  progs = programs(trainer, "single" if mode == "sequential" else mode)
  t = trainer

  def run(s, lp):
    if t.loop == "scan":
      return _steps_program(progs, num_steps)(s, lp, t.data)
    done = 0
    while done < num_steps:
      n = min(t.config.steps_per_call, num_steps - done)
      s = progs.chunk(n)(s, lp, t.data)
      done += n
      if progress is not None and mode == "vmap":
        progress(done, num_steps)
    return s

  return _grouped(run, mode, k, states, jax.tree_util.tree_map(jnp.asarray, loss_params))


def evaluate_states(trainer: Trainer, states, split: str = "validation", *,
                    strategy: str = "auto", model_name: Optional[str] = None) -> dict:
  """Accuracy and cross-entropy of every member's current network on ``split``.

  Args:
    trainer: the :class:`~glojax.train.trainer.Trainer`.
    states: a stacked :class:`~glojax.train.trainer.TrainState` (leading axis K).
    split: ``"validation"``, ``"test"`` or ``"train"``.
    strategy, model_name: as in :func:`train_population_from`.

  Returns:
    dict of NumPy ``[K]`` arrays: ``accuracy`` (fraction in [0, 1]), ``loss`` (mean
    cross-entropy on ``split``, nats), ``finite`` (bool: training never produced
    NaN/inf and the weights and logits are finite).

  Raises:
    ValueError: for an unknown split or strategy.
  """
  mode = _state_mode(strategy, model_name)
  progs = programs(trainer, "single" if mode == "sequential" else mode)
  batches = progs.eval_batches(split)
  k = _num_members(states)
  n_examples = len(getattr(trainer.dataset, split))

  def run(s):
    correct = ce_sum = 0.0
    finite_logits = True
    for images, labels, mask in batches:
      out = progs.eval_batch(s, images, labels, mask)
      correct = correct + out["correct"]
      ce_sum = ce_sum + out["ce_sum"]
      finite_logits = finite_logits & out["finite_logits"]
    finite = s.finite & progs.params_finite(s.params) & finite_logits
    return {"correct": correct, "ce_sum": ce_sum, "finite": finite}

  out = _grouped(run, mode, k, states)
  return {"accuracy": np.array(out["correct"], np.float32) / n_examples,
          "loss": np.array(out["ce_sum"], np.float32) / n_examples,
          "finite": np.array(out["finite"], bool)}
