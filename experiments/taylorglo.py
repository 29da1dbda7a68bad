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
import sys

# Runnable as a script from a checkout without installing the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # noqa: E402

from experiments import cli  # noqa: E402  (defines --config and --workdir)


def main(argv):
  from glojax.search import taylorglo
  cli.run_search(argv, taylorglo.run)


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
