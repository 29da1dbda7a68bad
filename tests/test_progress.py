"""glojax.progress: bars only on a terminal, off with --noprogress, plain lines otherwise."""

import io
import os
import subprocess
import sys

import pytest

from glojax import progress

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Terminal(io.StringIO):
  def isatty(self):
    return True


@pytest.fixture
def terminal(monkeypatch):
  """A function that makes stderr a terminal; called in the test body, because pytest's
  output capture replaces sys.stderr again after fixtures ran."""
  def use():
    out = Terminal()
    monkeypatch.setattr(sys, "stderr", out)
    return out
  progress.set_enabled(True)
  yield use
  progress.set_enabled(True)


def test_no_bar_when_stderr_is_not_a_terminal(monkeypatch):
  monkeypatch.setattr(sys, "stderr", io.StringIO())
  progress.set_enabled(True)
  fallback = lambda done, total: None
  assert not progress.enabled()
  assert progress.step_callback("x", fallback=fallback) is fallback
  items = [1, 2]
  assert progress.iterate(items, 2, "runs") is items


def test_bar_on_a_terminal_counts_steps_and_restarts(terminal):
  terminal = terminal()
  bar = progress.step_callback("final protocol: cross_entropy")
  assert isinstance(bar, progress.StepBar)
  bar(50, 200)
  assert (bar._bar.n, bar._bar.total) == (50, 200)
  assert "/200" in terminal.getvalue() and "final protocol: cross_entropy" in terminal.getvalue()
  bar(200, 200)                 # finished: the bar closes
  assert bar._bar is None
  bar(100, 300)                 # the next training starts a new bar
  assert (bar._bar.n, bar._bar.total) == (100, 300)
  bar(20, 300)                  # fewer steps than before: a retry restarts the count
  assert (bar._bar.n, bar._bar.total) == (20, 300)
  bar(300, 300)
  assert bar._bar is None
  assert list(progress.iterate(range(3), 3, "runs")) == [0, 1, 2]
  assert "runs" in terminal.getvalue()


def test_noprogress_turns_bars_off_on_a_terminal(terminal):
  terminal = terminal()
  assert progress.enabled()
  progress.set_enabled(False)
  assert progress.step_callback("x") is None
  assert terminal.getvalue() == ""


def test_binaries_accept_noprogress(tmp_path):
  proc = subprocess.run(
      [sys.executable, os.path.join(REPO, "experiments", "train.py"),
       f"--config={os.path.join(REPO, 'experiments', 'configs', 'train_quick.py')}",
       f"--workdir={tmp_path / 'run'}", "--noprogress", "--config.repeats=0"],
      capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": REPO})
  assert proc.returncode == 2 and "config.repeats=0" in proc.stderr, proc.stderr
