r"""GLO search binary: genetic programming over loss trees, then CMA-ES on coefficients.

Usage::

  python experiments/glo.py --config=experiments/configs/glo_quickstart.py \
      --workdir=runs/glo_quickstart

Override any config value on the command line, e.g. ``--config.search.generations=5``.
Rerunning the same command on the same ``--workdir`` resumes where it stopped
(only ``final.*`` may change on resume). Results land in the
workdir: ``log.jsonl`` (one line per GA or CMA-ES generation), ``fitness.png``,
``best_tree.txt`` and ``best_loss.txt`` (``expr:`` specs that ``glojax.losses.get``
loads), ``results.json``, and ``final.json`` when the final protocol is enabled.
"""

import os
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
  from glojax.search import glo
  try:
    glo.run(_CONFIG.value, _WORKDIR.value, log=lambda msg: print(msg, flush=True))
  except (ValueError, FileNotFoundError) as e:  # bad config / workdir / missing data
    print(f"error: {e}", file=sys.stderr, flush=True)
    sys.exit(2)


if __name__ == "__main__":
  app.run(main)
