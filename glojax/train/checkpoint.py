"""Numbered checkpoints of a pytree of arrays (plus JSON metadata), with orbax.

Population-based searches keep ``p`` full networks and their optimizer states alive
across generations; on an accelerator that state can be gigabytes, so it is written with
`orbax-checkpoint <https://orbax.readthedocs.io>`_ (per-array files, written in a
background thread while the next generation trains) rather than one ``.npz``.

:class:`Checkpointer` keeps numbered steps in a folder::

  ckpt = Checkpointer(os.path.join(workdir, "population"))
  ckpt.save(generation, state, meta={"history": [...]})   # returns quickly (async)
  ...
  step = ckpt.latest_step()                               # None if nothing committed
  state, meta = ckpt.restore(like=state)                  # like: same structure

Zero-size arrays (e.g. an empty hyperparameter vector) are restored from ``like``.
A step is visible only once it is complete: orbax writes into a temporary folder and
renames it on commit, so a run killed mid-save resumes from the previous step. The
``like`` tree gives the structure (NamedTuples, optax states) and dtypes to restore
into; a checkpoint of a different structure or shape raises ``ValueError``.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Optional

import jax
import numpy as np


def _ocp():
  import orbax.checkpoint as ocp  # imported lazily: it is heavy and only needed here
  return ocp


class Checkpointer:
  """Numbered checkpoints of one pytree (+ JSON metadata) in ``directory``.

  Args:
    directory: folder of the checkpoints (created if missing); step ``n`` lives in
      ``directory/n``.
    max_to_keep: committed steps to keep (older ones are deleted after a save commits).
    async_save: write in a background thread; :meth:`save` returns once the arrays are
      copied off the device. :meth:`wait` / :meth:`close` block until the write is
      committed.

  Raises:
    ValueError: if ``directory`` cannot be created, or ``max_to_keep < 1``.
  """

  def __init__(self, directory: str, *, max_to_keep: int = 2, async_save: bool = True):
    if max_to_keep < 1:
      raise ValueError(f"max_to_keep must be >= 1, got {max_to_keep}")
    ocp = _ocp()
    self.directory = os.path.abspath(directory)
    try:
      os.makedirs(self.directory, exist_ok=True)
    except OSError as e:
      raise ValueError(f"cannot create checkpoint folder {directory!r}: {e.strerror}"
                       ) from None
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep,
                                           enable_async_checkpointing=async_save,
                                           create=True)
    self._manager = ocp.CheckpointManager(self.directory, options=options)

  def save(self, step: int, tree: Any, meta: Optional[Mapping[str, Any]] = None) -> None:
    """Saves ``tree`` (a pytree of arrays) and JSON-able ``meta`` as step ``step``.

    Waits for the previous asynchronous save first, so at most one write is in flight.

    Raises:
      ValueError: if ``step`` already exists or is not newer than the latest step.
    """
    ocp = _ocp()
    latest = self.latest_step()
    if latest is not None and step <= latest:
      raise ValueError(f"checkpoint step {step} is not newer than the latest saved step "
                       f"{latest} in {self.directory}")
    args = ocp.args.Composite(state=ocp.args.StandardSave(_without_empty(tree)),
                              meta=ocp.args.JsonSave(dict(meta or {})))
    self._manager.save(int(step), args=args)

  def wait(self) -> None:
    """Blocks until every started save is committed to disk."""
    self._manager.wait_until_finished()

  def steps(self) -> list[int]:
    """The committed steps, oldest first."""
    return sorted(self._manager.all_steps())

  def latest_step(self) -> Optional[int]:
    """The newest committed step, or None if there is none."""
    return self._manager.latest_step()

  def restore(self, like: Any, step: Optional[int] = None) -> tuple[Any, dict]:
    """Reads step ``step`` (default: the latest) into the structure of ``like``.

    Args:
      like: a pytree with the saved tree's structure, shapes and dtypes (arrays or
        ``jax.ShapeDtypeStruct``); the result has its container types.
      step: the step to read; None = :meth:`latest_step`.

    Returns:
      ``(tree, meta)``.

    Raises:
      ValueError: naming the folder, if there is no such step or the checkpoint does
        not match ``like`` (a different model or search) or cannot be read.
    """
    ocp = _ocp()
    self.wait()
    step = self.latest_step() if step is None else step
    if step is None or step not in self._manager.all_steps():
      raise ValueError(f"no checkpoint step {step} in {self.directory} (have "
                       f"{self.steps()})")
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct,
                                      _without_empty(like))
    args = ocp.args.Composite(state=ocp.args.StandardRestore(abstract),
                              meta=ocp.args.JsonRestore())
    try:
      out = self._manager.restore(step, args=args)
    except Exception as e:  # orbax raises ValueError/KeyError/... for mismatches
      first = (str(e).strip().splitlines() or [type(e).__name__])[0]
      raise ValueError(f"checkpoint {os.path.join(self.directory, str(step))} does not "
                       f"match this run or is damaged ({type(e).__name__}: {first[:300]})"
                       ) from None
    tree = _with_empty(out["state"], like)
    if tree is None or [np.shape(x) for x in jax.tree_util.tree_leaves(tree)] != [
        np.shape(x) for x in jax.tree_util.tree_leaves(like)]:
      raise ValueError(f"checkpoint {os.path.join(self.directory, str(step))} does not "
                       f"match this run (array shapes differ)")
    return tree, dict(out["meta"] or {})

  def close(self) -> None:
    """Waits for pending saves and releases the manager's threads."""
    self._manager.wait_until_finished()
    self._manager.close()

  def __enter__(self) -> "Checkpointer":
    return self

  def __exit__(self, *exc) -> None:
    self.close()


def _without_empty(tree):
  """``tree`` with zero-size arrays replaced by None (orbax cannot save them)."""
  return jax.tree_util.tree_map(lambda a: None if np.size(a) == 0 else a, tree)


def _with_empty(restored, like):
  """Puts ``like``'s zero-size arrays back into a tree restored without them (None if
  the restored tree does not have ``like``'s number of non-empty leaves)."""
  leaves, treedef = jax.tree_util.tree_flatten(like)
  got = jax.tree_util.tree_leaves(restored)
  if len(got) != sum(np.size(a) != 0 for a in leaves):
    return None
  it = iter(got)
  out = [jax.numpy.zeros(np.shape(a), a.dtype) if np.size(a) == 0 else next(it)
         for a in leaves]
  return jax.tree_util.tree_unflatten(treedef, out)


def save_pytree(directory: str, tree: Any, meta: Optional[Mapping[str, Any]] = None,
                step: int = 0) -> None:
  """Synchronously saves ``tree`` (and ``meta``) as step ``step`` of ``directory``."""
  with Checkpointer(directory, async_save=False, max_to_keep=1) as ckpt:
    ckpt.save(step, tree, meta)


def restore_pytree(directory: str, like: Any, step: Optional[int] = None
                   ) -> tuple[Any, dict]:
  """Reads a tree saved with :func:`save_pytree` / :class:`Checkpointer` (see
  :meth:`Checkpointer.restore`)."""
  with Checkpointer(directory, async_save=False) as ckpt:
    return ckpt.restore(like, step)
