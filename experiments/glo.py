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

from absl import app  # noqa: E402

from experiments import cli  # noqa: E402  (defines --config and --workdir)


def main(argv):
  from glojax.search import glo
  cli.run_search(argv, glo.run)


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
