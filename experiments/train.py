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
finished run), ``curves.png`` and ``config.json``.
"""

import os
import sys

# Runnable as a script from a checkout without installing the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from experiments import compile_cache  # noqa: E402  (defines --compilation_cache)

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Path to an ml_collections config file (experiments/configs/train_*.py).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Run folder; rerunning on it resumes.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  logging.set_verbosity(logging.WARNING)
  from glojax.train import experiment
  try:
    compile_cache.enable_from_flags()
    experiment.run(_CONFIG.value, _WORKDIR.value, log=lambda msg: print(msg, flush=True))
  except (ValueError, FileNotFoundError) as e:  # bad config / missing data: no traceback
    print(f"error: {e}", file=sys.stderr, flush=True)
    sys.exit(2)


if __name__ == "__main__":
  app.run(main)
