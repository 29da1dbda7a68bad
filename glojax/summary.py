"""TensorBoard event files for a run's workdir (``<workdir>/tb/``), written with tensorboardX.

Every search binary (through :mod:`glojax.search.driver`) writes one point per step for
each number in the step's ``log.jsonl`` record, and ``experiments/train.py`` writes each
run's training curve, so ``tensorboard --logdir runs/`` shows every run under ``runs/``
beside its ``log.jsonl``. The JSONL logs stay the source of truth (resume reads them); the
event files are a view of them for TensorBoard.

Which numbers a record gives (:func:`record_scalars`):

* a top-level int or float field ``f`` → tag ``f`` (``best``, ``median``, ``sigma``,
  ``failed``, ``wall_time_s`` …; booleans and the ``generation`` counter are skipped);
* a list of numbers ``f`` (one per candidate, e.g. ``fitness``) → ``f/max`` and
  ``f/median`` over its finite entries;
* ``fitness`` (a list) with ``wall_time_s`` → ``candidates_per_s``.
"""

from __future__ import annotations

import math
import numbers
import os
import time
from typing import Iterable, Mapping, Optional

import numpy as np

TB_DIR = "tb"


def record_scalars(record: Mapping) -> dict[str, float]:
  """The TensorBoard scalars of one log record (see the module docstring).

  Args:
    record: one ``log.jsonl`` object (strict JSON values).

  Returns:
    ``{tag: value}``, floats, in the record's field order.
  """
  out: dict[str, float] = {}
  for name, value in record.items():
    if name == "generation" or isinstance(value, bool):
      continue
    if isinstance(value, numbers.Real):
      out[name] = float(value)
    elif _is_number_list(value):
      finite = np.asarray([v for v in value if v is not None and math.isfinite(v)],
                          np.float64)
      if finite.size:
        out[f"{name}/max"] = float(finite.max())
        out[f"{name}/median"] = float(np.median(finite))
  seconds = record.get("wall_time_s")
  if _is_number_list(record.get("fitness")) and isinstance(seconds, numbers.Real) \
      and not isinstance(seconds, bool) and seconds > 0:
    out["candidates_per_s"] = len(record["fitness"]) / float(seconds)
  return out


def _is_number_list(value) -> bool:
  return (isinstance(value, list) and bool(value)
          and all(v is None or (isinstance(v, numbers.Real) and not isinstance(v, bool))
                  for v in value))


class Writer:
  """Appends scalars to ``<workdir>/tb/``; a context manager. Flushes after every write,
  so a killed run keeps what it logged.

  Args:
    workdir: the run's folder (``tb/`` is created inside it).
    subdir: optional folder under ``tb/`` (one per curve, e.g. ``"cross_entropy/run_0"``).
  """

  def __init__(self, workdir: str, subdir: Optional[str] = None):
    from tensorboardX import SummaryWriter  # deferred: only binaries write event files
    self.logdir = os.path.join(workdir, TB_DIR, *([subdir] if subdir else []))
    # tensorboardX names files by the second; a resumed run can start within the same
    # second and would overwrite the earlier file, so the suffix orders them by ns.
    self._writer = SummaryWriter(logdir=self.logdir, flush_secs=1,
                                 filename_suffix=f".{time.time_ns()}")

  def record(self, step: int, record: Mapping) -> None:
    """Writes :func:`record_scalars` of ``record`` at ``step`` (1-based step count)."""
    for tag, value in record_scalars(record).items():
      self._writer.add_scalar(tag, value, global_step=int(step))
    self._writer.flush()

  def curve(self, tag: str, steps: Iterable[int], values: Iterable[float]) -> None:
    """Writes one scalar per ``(step, value)``; None/non-finite values are skipped."""
    for s, v in zip(steps, values):
      if v is not None and math.isfinite(v):
        self._writer.add_scalar(tag, float(v), global_step=int(s))
    self._writer.flush()

  def close(self) -> None:
    self._writer.close()

  def __enter__(self) -> "Writer":
    return self

  def __exit__(self, *exc) -> None:
    self.close()


def read_scalars(logdir: str) -> dict[str, list[tuple[int, float]]]:
  """Reads back the scalars under ``logdir`` (one run folder, e.g. ``<workdir>/tb``) with
  TensorBoard's own event reader.

  Returns:
    ``{tag: [(step, value), ...]}`` in step order.

  Raises:
    ImportError: if the ``tensorboard`` package is not installed (``pip install
      tensorboard``; it is in glojax's ``test`` extra).
    FileNotFoundError: if ``logdir`` does not exist.
  """
  if not os.path.isdir(logdir):
    raise FileNotFoundError(f"no TensorBoard folder {logdir!r}")
  try:
    from tensorboard.backend.event_processing import event_accumulator
  except ImportError as e:
    raise ImportError("reading event files needs the tensorboard package: "
                      "pip install tensorboard") from e
  acc = event_accumulator.EventAccumulator(
      logdir, size_guidance={event_accumulator.SCALARS: 0})
  acc.Reload()
  return {tag: sorted((e.step, e.value) for e in acc.Scalars(tag))
          for tag in acc.Tags()["scalars"]}
