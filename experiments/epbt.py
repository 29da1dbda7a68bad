r"""EPBT binary: population-based training of TaylorGLO loss schedules, plus baselines.

Usage::

  python experiments/epbt.py --config=experiments/configs/epbt_quickstart.py \
      --workdir=runs/epbt_quickstart

Override any config value on the command line, e.g. ``--config.search.generations=5``.
Rerunning the same command on the same ``--workdir`` resumes where it stopped (``final.*``
may change on resume). Results land in the workdir: ``log.jsonl``, ``results.json``,
``lineage.png``, ``fitness.png``, and with ``final.enabled`` the comparison with the
baselines over seeds in ``final.json`` and ``accuracy.png`` (docs/epbt.md).
"""

import os
import sys

# Runnable as a script from a checkout without installing the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # noqa: E402

from experiments import cli  # noqa: E402  (defines --config and --workdir)


def main(argv):
  from glojax.search import epbt
  cli.run_search(argv, epbt.run)


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
