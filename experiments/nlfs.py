r"""NLFS search binary: regularized evolution over loss computational graphs.

Usage::

  python experiments/nlfs.py --config=experiments/configs/nlfs_quickstart.py \
      --workdir=runs/nlfs_quickstart

Override any config value on the command line, e.g. ``--config.search.steps=20``.
Rerunning the same command on the same ``--workdir`` resumes after the last finished
step (``search.steps``, ``elimination.*`` and ``final.*`` may change on resume). Results land in the
workdir: ``log.jsonl`` (one line per step), ``best_loss.txt`` (the best graph's ``expr:``
spec, loadable by ``glojax.losses.get``), ``results.json`` (archive, counters, integrity
rejections by reason), ``phenotype.png`` and ``fitness.png``. Then run the elimination
protocol on the same workdir: ``experiments/nlfs_eliminate.py``.
"""

import os
import sys

# Runnable as a script from a checkout without installing the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # noqa: E402

from experiments import cli  # noqa: E402  (defines --config and --workdir)


def main(argv):
  from glojax.search import nlfs
  cli.run_search(argv, nlfs.run)


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
