"""Shared command-line plumbing of the binaries (absl + ml_collections).

Every binary (the searches and ``experiments/train.py``) defines ``--config`` (an
ml_collections config file) and ``--workdir`` by importing this module, and runs one
library function ``run(config, workdir, log=...)`` that follows the workdir contract
(:mod:`glojax.workdir`). The ways that can go wrong become one-line errors (exit 2)
instead of tracebacks — bad flags (:mod:`experiments.flagparse`), a bad config value,
leftover model/dataset options, a missing dataset — and Ctrl-C becomes a message saying
how to resume (exit 130).
"""

import sys
from typing import Callable

from absl import app, flags, logging
from ml_collections import config_flags

from experiments import flagparse
from experiments.flagparse import check_options, fail  # noqa: F401
from glojax import progress, workdir
from experiments import compile_cache  # defines --compilation_cache
from experiments import distributed  # defines --distributed and its layout flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Path to an ml_collections config file (experiments/configs/*.py).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder; rerunning on it resumes.")
_PROGRESS = flags.DEFINE_boolean(
    "progress", True, "Progress bars with ETA on a terminal (--noprogress: plain lines only; "
    "logs that are not a terminal never get bars).")
flags.mark_flags_as_required(["config", "workdir"])


def parse_flags(argv):
  """The binaries' ``flags_parser``: joins a multi-process job if ``--distributed`` (or
  the explicit layout flags) ask for it — before ``--config`` is loaded, since that
  builds arrays — then parses every flag (:func:`experiments.flagparse.parse_flags`)."""
  try:
    distributed.initialize_from_argv(argv)
  except ValueError as e:
    fail(str(e))
  return flagparse.parse_flags(argv)


def run_search(argv, run: Callable) -> None:
  """Calls ``run(config, workdir, log=print)`` with the flags' values.

  Exits 2 with ``error: ...`` for a bad config, leftover model/dataset options, a bad
  workdir or a missing dataset, and 130 with a resume hint on Ctrl-C (finished work is
  already saved).
  """
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)  # keep the console to progress lines
  try:
    config = _CONFIG.value
    hasattr(config, "to_dict")  # a lazy proxy: a bad --config file raises only on use
  except OSError as e:
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    fail(f"cannot load the --config file: {lines[-1] if lines else e}")
  try:
    check_options(config)
    compile_cache.enable_from_flags()
    printer = distributed.is_process_zero()  # the other processes of a job stay quiet
    progress.set_enabled(_PROGRESS.value and printer)
    run(config, _WORKDIR.value, log=lambda msg: print(msg, flush=True) if printer else None)
  except (ValueError, FileNotFoundError) as e:  # bad config / workdir / missing data
    fail(str(e))
  except KeyboardInterrupt:
    print(f"\n{workdir.interrupted_message(_WORKDIR.value)}", file=sys.stderr, flush=True)
    sys.exit(130)
