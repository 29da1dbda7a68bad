"""Shared command-line plumbing of the search binaries (absl + ml_collections).

Every search binary defines ``--config`` (an ml_collections config file) and
``--workdir``, and runs one library function ``run(config, workdir, log=...)``. This module
turns the ways that can go wrong into one-line errors (exit 2) instead of tracebacks, and
Ctrl-C into a message saying how to resume (exit 130).
"""

import re
import sys
from typing import Callable

from absl import app, flags, logging
from ml_collections import config_flags

from experiments import compile_cache  # defines --compilation_cache

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Path to an ml_collections config file (experiments/configs/*.py).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder; rerunning on it resumes.")
flags.mark_flags_as_required(["config", "workdir"])


def run_search(argv, run: Callable) -> None:
  """Calls ``run(config, workdir, log=print)`` with the flags' values.

  Exits 2 with ``error: ...`` for a bad config, workdir or missing dataset, and 130 with
  a resume hint on Ctrl-C (finished generations are already checkpointed).
  """
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)  # keep the console to progress lines
  try:
    config = _CONFIG.value
    hasattr(config, "to_dict")  # a lazy proxy: a bad --config file raises only on use
  except OSError as e:
    _config_load_error(e)
  try:
    compile_cache.enable_from_flags()
    run(config, _WORKDIR.value, log=lambda msg: print(msg, flush=True))
  except (ValueError, FileNotFoundError) as e:  # bad config / workdir / missing data
    print(f"error: {e}", file=sys.stderr, flush=True)
    sys.exit(2)
  except KeyboardInterrupt:
    print(f"\ninterrupted; finished generations are saved in {_WORKDIR.value}: rerun "
          "the same command to resume", file=sys.stderr, flush=True)
    sys.exit(130)


def _config_load_error(e: OSError):
  lines = [line.strip() for line in str(e).splitlines() if line.strip()]
  print(f"error: cannot load the --config file: {lines[-1] if lines else e}",
        file=sys.stderr, flush=True)
  sys.exit(2)


def parse_flags(argv):
  """absl's flag parsing, with one-line errors for a misspelt ``--config.*`` override
  or a missing ``--config`` file.

  ml_collections raises AttributeError/KeyError (with a "did you mean") for an
  override of a key the config does not have; absl would print a traceback.
  """
  try:
    return app.parse_flags_with_usage(argv)
  except OSError as e:  # --config file missing or unreadable
    _config_load_error(e)
  except (AttributeError, KeyError, TypeError, ValueError) as e:
    text = str(e.args[0] if e.args else e)
    overrides = [a.split("=")[0] for a in argv[1:] if a.startswith("--config.")]
    hint = re.search(r'Did you mean "([^"]+)" instead of "([^"]+)"', text)
    if hint:
      bad = [a for a in overrides if hint.group(2) in a.split(".")] or overrides
      message = (f"{', '.join(bad)}: the config has no key {hint.group(2)!r}; did you "
                 f"mean {hint.group(1)!r}?")
    elif isinstance(e, (AttributeError, KeyError)):
      key = text.strip("'\"")
      bad = [a for a in overrides if key in a.split(".")] or overrides
      message = f"{', '.join(bad)}: the config has no key {key!r}"
    else:
      message = f"cannot apply {', '.join(overrides) or '--config'}: {' '.join(text.split())}"
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)
