r"""GAN loss search binary: a GA over Taylor loss triples (dissertation §7.4).

Usage::

  python experiments/gan.py --config=experiments/configs/gan_quickstart.py \
      --workdir=runs/gan_quickstart

(prefix ``nice -n 10`` on a shared machine)

Override any config value on the command line, e.g. ``--config.search.generations=3``.
Rerunning the same command on the same ``--workdir`` resumes after the last finished
generation (``search.generations`` and ``final.*`` may change on resume). Results land
in the workdir: ``log.jsonl``, ``fitness.png``, ``samples_gen_NNN.png``,
``best_loss.txt`` (a ``gan_taylor(...)`` spec: ``glojax.gan.get`` loads it),
``final.json`` / ``final.md`` / ``samples_final.png`` (best triple vs baselines on the
test split). See docs/gan.md.
"""

import os
import sys

# Runnable as a script from a checkout without installing the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # noqa: E402

from experiments import cli  # noqa: E402  (defines --config and --workdir)


def main(argv):
  from glojax.gan import search
  cli.run_search(argv, search.run)


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
