r"""Train model M on dataset D with loss L for R seeds; report test accuracy mean ± std.

Usage::

  python experiments/train.py --config=experiments/configs/train_quick.py \
      --workdir=runs/train_quick
  python experiments/train.py --config=experiments/configs/train_table51.py:allcnn_c \
      --workdir=runs/allcnn_c --config.loss='taylorglo(theta=[...])' \
      --config.compare_to_cross_entropy=True

Override any config value on the command line (``--config.repeats=3``,
``--config.dataset.options.data_dir=/data/tfds``). Results land in the workdir:
``results.json`` (mean ± std per loss, Welch's p against cross-entropy when asked),
``runs.jsonl`` (one line per run; rerunning the same command resumes after the last
finished run; a changed config is refused, except ``repeats`` and ``alternative``),
``curves.png`` and ``config.json``. A bad config is a one-line ``error: ...`` (exit 2)
before anything is written; Ctrl-C says how to resume (exit 130).
"""

import os
import sys

# Runnable as a script from a checkout without installing the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # noqa: E402

from experiments import cli  # noqa: E402  (defines --config and --workdir)


def main(argv):
  from glojax.train import experiment
  cli.run_search(argv, experiment.run)


if __name__ == "__main__":
  app.run(main, flags_parser=cli.parse_flags)
