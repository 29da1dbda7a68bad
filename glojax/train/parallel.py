"""Training across devices with ``jax.sharding`` (docs/models_and_data.md, "Multi-device").

Two ways to use several devices:

* **Data parallel, one large model** (:class:`DataParallel`): a 1-D mesh ``("data",)``
  over the devices; parameters, optimizer state and the in-memory dataset are
  replicated, every batch is sharded along its first axis
  (``with_sharding_constraint`` inside the compiled step), and XLA inserts the gradient
  all-reduce. Batch-norm statistics are computed over the *global* batch, so the loss
  curve equals the single-device one up to float reduction order.
* **Population sharding, many small models** (:func:`run_population_sharded`, used by
  ``evaluate_population(..., strategy="sharded")``): the vmapped population program gets
  its candidate axis sharded over a ``("pop",)`` mesh; candidates are independent, so
  no communication is needed. K is padded to a multiple of the device count.

The same code runs on 1 device, N devices and several processes (hosts): call
:func:`initialize_distributed` first (the binaries' ``--distributed`` flag; BUILD.md,
"Several processes") and run the same program with the same config and seed in every
process. ``jax.devices()`` then spans all processes, the candidate axis is split over
all of them, every process derives the same keys and gets the whole fitness vector back
(:func:`glojax.train.population.to_host`). Tested with 2 CPU processes on one machine
(tests/train/test_multiprocess.py); data-parallel training across processes is not
tested (no multi-host system was available).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, Callable, Optional

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from glojax.train.trainer import Trainer, TrainState


def make_mesh(num_devices: Optional[int] = None, axis_name: str = "data") -> Mesh:
  """A 1-D mesh over the first ``num_devices`` devices (all by default).

  Axes are ``AxisType.Auto`` (sharding propagated by the compiler): ``jax.make_mesh``
  defaults to explicit axes in current JAX, which the training code does not need.

  Raises:
    ValueError: if ``num_devices`` is not in ``1..len(jax.devices())``.
  """
  devices = jax.devices()
  n = len(devices) if num_devices is None else num_devices
  if not 1 <= n <= len(devices):
    raise ValueError(f"num_devices={num_devices} but {len(devices)} device(s) available")
  return jax.make_mesh((n,), (axis_name,), axis_types=(AxisType.Auto,),
                       devices=devices[:n])


def initialize_distributed(coordinator_address: Optional[str] = None,
                           num_processes: Optional[int] = None,
                           process_id: Optional[int] = None) -> None:
  """Joins this process to a multi-process JAX job (``jax.distributed.initialize``).

  Call it once per process, before any other JAX call. With no arguments JAX detects
  the cluster (SLURM, Open MPI, Cloud TPU pod slices); on other systems give all three
  (e.g. ``"10.0.0.1:1234"``, 2, 0 and 1 for two processes). On CPU the cross-process
  collectives use gloo (XLA's CPU backend has none by default). A second call is a
  no-op, so a binary's flag and a config key may both ask for it.

  Raises:
    ValueError: if only some of the three arguments are given.
  """
  given = [v is not None for v in (coordinator_address, num_processes, process_id)]
  if any(given) and not all(given):
    raise ValueError(f"give all of coordinator_address, num_processes and process_id or "
                     f"none of them (cluster auto-detection); got coordinator_address="
                     f"{coordinator_address!r}, num_processes={num_processes!r}, "
                     f"process_id={process_id!r}")
  if jax.distributed.is_initialized():
    return
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(coordinator_address, num_processes, process_id)


def _global_array(x, sharding: NamedSharding):
  """Host array → global array with ``sharding`` (every process passes the same data)."""
  x = np.asarray(x)
  if jax.process_count() == 1:
    return jax.device_put(x, sharding)
  return jax.make_array_from_process_local_data(sharding, x, x.shape)


class DataParallel:
  """Data-parallel training of one model (see the module docstring).

  Args:
    trainer: the :class:`~glojax.train.trainer.Trainer` to run (immutable; a copy with
      the batch sharding is trained).
    mesh: a 1-D mesh (default :func:`make_mesh` over all devices); its single axis
      shards the batch.

  Raises:
    ValueError: if the batch size is not divisible by the number of devices.
  """

  def __init__(self, trainer: Trainer, mesh: Optional[Mesh] = None):
    self.mesh = mesh if mesh is not None else make_mesh()
    if len(self.mesh.axis_names) != 1:
      raise ValueError(f"DataParallel needs a 1-D mesh, got axes {self.mesh.axis_names}")
    axis = self.mesh.axis_names[0]
    self.num_devices = self.mesh.devices.size
    bs = trainer.config.batch_size
    if bs % self.num_devices:
      raise ValueError(f"batch_size={bs} is not divisible by the {self.num_devices} devices "
                       f"of the mesh")
    self.replicated = NamedSharding(self.mesh, P())
    self.batch_sharding = NamedSharding(self.mesh, P(axis))
    t = dataclasses.replace(trainer, batch_sharding=self.batch_sharding)
    self.trainer = t
    self.data = {k: _global_array(v, self.replicated) for k, v in t.data.items()}
    self._init = jax.jit(t.init, out_shardings=self.replicated)
    self._chunks: dict[int, Callable] = {}
    self._eval = jax.jit(t.eval_batch)
    self._eval_batches: dict[str, list] = {}

  def init(self, key: jax.Array) -> TrainState:
    """Initial state (replicated on every device) from ``key: uint32[2]``."""
    return self._init(_global_array(key, self.replicated))

  def chunk(self, state: TrainState, loss_params: Any, num_steps: int) -> TrainState:
    """``num_steps`` data-parallel training steps (compiled once per distinct count).

    With ``loop="scan"`` (the accelerator default) the steps run as a ``lax.scan`` over
    one compiled step, so a chunk of 100 steps of a large model compiles like one
    step; with ``loop="python"`` (CPU) they are unrolled (jax issue 12868).
    """
    if num_steps not in self._chunks:
      t = self.trainer
      if t.loop == "scan":
        def fn(state, loss_params, data):
          body = lambda s, _: (t.train_step(s, loss_params, data), None)
          return jax.lax.scan(body, state, None, length=num_steps)[0]
      else:
        fn = functools.partial(t.train_chunk, num_steps=num_steps)
      self._chunks[num_steps] = jax.jit(fn, out_shardings=self.replicated)
    return self._chunks[num_steps](state, loss_params, self.data)

  def _batches(self, split: str):
    if split not in self._eval_batches:
      if split not in ("train", "validation", "test"):
        raise ValueError(f"unknown split {split!r}; use 'train', 'validation' or 'test'")
      s = getattr(self.trainer.dataset, split)
      n, d = len(s), self.num_devices
      bs = -(-min(self.trainer.config.eval_batch_size, n) // d) * d
      n_batches = -(-n // bs)
      pad = n_batches * bs - n
      images = np.concatenate([s.images, np.zeros((pad,) + s.images.shape[1:], np.float32)])
      labels = np.concatenate([s.labels, np.zeros((pad,), np.int32)])
      mask = np.arange(n_batches * bs) < n
      self._eval_batches[split] = [
          tuple(_global_array(a[i * bs:(i + 1) * bs], self.batch_sharding)
                for a in (images, labels, mask)) for i in range(n_batches)]
    return self._eval_batches[split]

  def evaluate(self, state: TrainState, split: str = "test") -> dict:
    """Accuracy (fraction) and mean cross-entropy (nats) of ``state`` on ``split``."""
    correct = ce = 0.0
    finite = True
    for images, labels, mask in self._batches(split):
      out = self._eval(state, images, labels, mask)
      correct, ce = correct + out["correct"], ce + out["ce_sum"]
      finite = finite & out["finite_logits"]
    n = len(getattr(self.trainer.dataset, split))
    return {"accuracy": float(correct) / n, "loss": float(ce) / n, "finite": bool(finite)}

  def fit(self, loss_params: Any, key: jax.Array, *, eval_every: int = 0,
          eval_split: str = "validation", final_splits: tuple[str, ...] = ("test",),
          log: Optional[Callable[[dict], None]] = None) -> tuple[TrainState, dict]:
    """Trains for ``config.steps`` steps and records the training curve.

    Args:
      loss_params: loss parameters (traced; e.g. TaylorGLO ``theta: float32[8]``).
      key: ``uint32[2]`` PRNG key.
      eval_every: evaluate on ``eval_split`` every this many steps (0 = never during
        training); rounded to whole chunks of ``config.steps_per_call``.
      eval_split: split for the periodic evaluation.
      final_splits: splits evaluated at the end.
      log: optional callback receiving each curve point (a dict).

    Returns:
      ``(state, history)``: ``history`` has ``step``, ``train_loss`` (candidate loss of
      the last batch of each chunk), ``eval_step``, ``eval_accuracy``, ``eval_loss``,
      ``final`` (``{split: metrics}``), ``finite`` (bool) and ``wall_time_s``.
    """
    cfg = self.trainer.config
    start = time.time()
    state = self.init(key)
    hist: dict = {"step": [], "train_loss": [], "eval_step": [], "eval_accuracy": [],
                  "eval_loss": []}
    losses, done, next_eval = [], 0, eval_every or None
    while done < cfg.steps:
      n = min(cfg.steps_per_call, cfg.steps - done)
      state = self.chunk(state, loss_params, n)
      done += n
      hist["step"].append(done)
      losses.append(state.last_loss)  # fetched later: no host sync per chunk
      if next_eval is not None and (done >= next_eval or done == cfg.steps):
        m = self.evaluate(state, eval_split)
        hist["eval_step"].append(done)
        hist["eval_accuracy"].append(m["accuracy"])
        hist["eval_loss"].append(m["loss"])
        next_eval = done + eval_every
        if log is not None:
          log({"step": done, "train_loss": float(state.last_loss),
               f"{eval_split}_accuracy": m["accuracy"], f"{eval_split}_loss": m["loss"]})
    hist["train_loss"] = [float(v) for v in losses]
    hist["final"] = {s: self.evaluate(state, s) for s in final_splits}
    hist["finite"] = bool(state.finite) and all(m["finite"] for m in hist["final"].values())
    hist["wall_time_s"] = time.time() - start
    return state, hist


def run_population_sharded(programs, loss_params: Any, keys: jax.Array, split: str,
                           progress=None, mesh: Optional[Mesh] = None) -> dict:
  """Runs a vmapped population program with candidates sharded over devices.

  Args:
    programs: the batched :class:`glojax.train.population.Programs`.
    loss_params: pytree with leading candidate axis ``K``.
    keys: ``uint32[K, 2]``.
    split: evaluation split.
    progress: optional ``progress(done, total)`` callback.
    mesh: 1-D mesh (default: all devices, axis ``"pop"``).

  Returns:
    The per-candidate metrics dict of ``[K]`` NumPy arrays (padding removed), the same
    whole vectors in every process.

  Raises:
    ValueError: with several processes, if they were given different keys or loss
      parameters (e.g. different seeds): their candidates would silently disagree.
  """
  mesh = mesh if mesh is not None else make_mesh(axis_name="pop")
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    try:  # one small collective; every process must pass the same population
      multihost_utils.assert_equal(
          (np.asarray(keys), jax.tree_util.tree_map(np.asarray, loss_params)),
          "population differs")
    except AssertionError:
      raise ValueError(f"the {jax.process_count()} processes got different candidate "
                       f"keys or loss parameters; run every process with the same "
                       f"config and seed") from None
  n = mesh.devices.size
  k = keys.shape[0]
  pad = (-k) % n

  def padded(a):
    a = np.asarray(a)
    if pad:
      a = np.concatenate([a, np.repeat(a[-1:], pad, axis=0)])
    return _global_array(a, NamedSharding(mesh, P(mesh.axis_names[0])))

  metrics = programs.run(jax.tree_util.tree_map(padded, loss_params), padded(keys), split,
                         progress)
  return {name: np.asarray(v)[:k] for name, v in metrics.items()}
