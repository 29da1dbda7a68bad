r"""TaylorGLO search binary: CMA-ES over Taylor-polynomial losses, then the final protocol.

Usage::

  python experiments/taylorglo.py --config=experiments/configs/quickstart.py \
      --workdir=runs/quickstart

Override any config value on the command line, e.g. ``--config.search.generations=5``.
Rerunning the same command on the same ``--workdir`` resumes the search where it
stopped (``search.generations`` and ``final.*`` may change on resume). Results land in
the workdir: ``log.jsonl``, ``fitness.png``, ``best_loss.txt``, ``final.json``.
"""

import os
import re
import sys

# Runnable as a script from a checkout without installing the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Path to an ml_collections config file (experiments/configs/*.py).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder; rerunning on it resumes.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)  # keep the console to progress lines
  from glojax.search import taylorglo
  try:
    config = _CONFIG.value
    hasattr(config, "to_dict")  # a lazy proxy: a bad --config file raises only on use
  except OSError as e:
    _config_load_error(e)
  try:
    taylorglo.run(config, _WORKDIR.value,
                  log=lambda msg: print(msg, flush=True))
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


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
