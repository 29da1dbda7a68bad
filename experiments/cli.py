"""Shared command-line plumbing of the binaries that run a config in a workdir.

Every such binary (``taylorglo.py``, ``glo.py``, ``train.py``) defines ``--config`` (an
ml_collections config file) and ``--workdir`` by importing this module, and runs one
library function ``run(config, workdir, log=...)`` through :func:`run_search`. The ways
that can go wrong become one-line errors (exit 2) instead of tracebacks — bad flags
(:mod:`experiments.flagparse`), a bad config value, leftover model/dataset options, a
missing dataset — and Ctrl-C becomes a message saying how to resume (exit 130).
"""

import sys
from typing import Callable

from absl import app, flags, logging
from ml_collections import config_flags

from experiments.flagparse import check_options, fail, parse_flags  # noqa: F401

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Path to an ml_collections config file (experiments/configs/*.py).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder; rerunning on it resumes.")
flags.mark_flags_as_required(["config", "workdir"])


def run_search(argv, run: Callable, unit: str = "generations") -> None:
  """Calls ``run(config, workdir, log=print)`` with the flags' values.

  Args:
    argv: the arguments absl left after parsing (program name first).
    run: the library entry point.
    unit: what a finished step of ``run`` is called in the Ctrl-C message
      (``"generations"``, ``"runs"``).

  Exits 2 with ``error: ...`` for a bad config, workdir or missing dataset, and 130 with
  a resume hint on Ctrl-C (finished steps are already saved).
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
    run(config, _WORKDIR.value, log=lambda msg: print(msg, flush=True))
  except (ValueError, FileNotFoundError) as e:  # bad config / workdir / missing data
    fail(str(e))
  except KeyboardInterrupt:
    print(f"\ninterrupted; finished {unit} are saved in {_WORKDIR.value}: rerun "
          "the same command to resume", file=sys.stderr, flush=True)
    sys.exit(130)
