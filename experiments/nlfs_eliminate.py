r"""NLFS elimination protocol (§3.9) on a finished NLFS search.

Usage (same config and workdir as the search)::

  python experiments/nlfs_eliminate.py --config=experiments/configs/nlfs_quickstart.py \
      --workdir=runs/nlfs_quickstart

Retrains the search's best graphs from scratch in progressively longer rounds
(``elimination.rounds``), then the survivors and cross-entropy ``elimination.final_repeats``
times each; prints and writes the final table (mean ± std validation accuracy, Welch's
t-test against cross-entropy) to ``elimination.md`` and ``elimination.json``. Resumable:
finished rounds are kept.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # noqa: E402

from experiments import cli  # noqa: E402  (defines --config and --workdir)


def main(argv):
  from glojax.search import nlfs_elimination
  cli.run_search(argv, nlfs_elimination.eliminate)


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
