"""Progress bars (tqdm) with an ETA for long work: the final protocol's trainings, the
runs of ``experiments/train.py`` and a large population's generation.

A bar is drawn only on a terminal (stderr is a TTY), so CI logs and files keep only the
plain progress lines; ``--noprogress`` on the binaries (or ``GLOJAX_PROGRESS=0`` in the
environment) turns bars off on a terminal too. Where a bar is off, callers fall back to
their plain log lines.
"""

from __future__ import annotations

import os
import sys
from typing import Callable, Optional

_enabled = os.environ.get("GLOJAX_PROGRESS", "1") != "0"


def set_enabled(flag: bool) -> None:
  """Turns bars on (the default) or off for this process (``--noprogress``)."""
  global _enabled
  _enabled = bool(flag)


def enabled() -> bool:
  """Whether a bar would be drawn now: enabled and stderr is a terminal."""
  return _enabled and sys.stderr.isatty()


class StepBar:
  """A ``progress(done, total)`` callback drawing a tqdm bar (units: training steps).

  Args:
    desc: the bar's label (e.g. the loss being trained).
    unit: what ``done`` counts.
  """

  def __init__(self, desc: str, unit: str = "step"):
    from tqdm.auto import tqdm
    self._tqdm = tqdm
    self._desc, self._unit = desc, unit
    self._bar = None

  def __call__(self, done: int, total: int) -> None:
    if self._bar is not None and done < self._bar.n:  # a new training (retry, next group)
      self.close()
    if self._bar is None:
      self._bar = self._tqdm(total=total, desc=self._desc, unit=self._unit, leave=False,
                             dynamic_ncols=True)
    self._bar.update(done - self._bar.n)
    if done >= total:
      self.close()

  def close(self) -> None:
    if self._bar is not None:
      self._bar.close()
      self._bar = None


def step_callback(desc: str, fallback: Optional[Callable[[int, int], None]] = None
                  ) -> Optional[Callable[[int, int], None]]:
  """A :class:`StepBar` if bars are on (:func:`enabled`), else ``fallback``."""
  return StepBar(desc) if enabled() else fallback


def iterate(iterable, total: int, desc: str, unit: str = "run"):
  """``iterable`` wrapped in a tqdm bar if bars are on, else unchanged."""
  if not enabled():
    return iterable
  from tqdm.auto import tqdm
  return tqdm(iterable, total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True)
