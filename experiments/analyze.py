r"""Analysis binary: ch. 6 theory and plots for losses and/or a search workdir.

Usage::

  python experiments/analyze.py --loss=cross_entropy --loss=baikal \
      --loss='taylorglo(theta=[0, 0, -373.917, -65.132, -3.7396, 0.336, -0.603, 1.1103])' \
      --output_dir=runs/analysis
  python experiments/analyze.py --workdir=runs/quickstart --output_dir=runs/quickstart/analysis

Writes ``attraction.png`` (characteristic curves, eq. 6.51), ``fitness_curves.png`` (with
``--workdir``), ``report.md`` and ``report.json`` into ``--output_dir`` and prints the
Markdown report. A workdir's ``best_loss.txt`` is analysed as one more loss.
"""

import os
import sys

# Runnable as a script from a checkout without installing the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from experiments import flagparse  # noqa: E402

_LOSS = flags.DEFINE_multi_string(
    "loss", [], "Loss spec (glojax.losses.get), repeatable, e.g. --loss=baikal.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Search workdir with log.jsonl.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Folder for plots and the report.")
_NUM_CLASSES = flags.DEFINE_integer("num_classes", 10, "Number of classes n for the theory.")
flags.mark_flags_as_required(["output_dir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  from glojax.analysis import report
  try:
    report.analyze(_LOSS.value, _WORKDIR.value, output_dir=_OUTPUT_DIR.value,
                   num_classes=_NUM_CLASSES.value)
  except (ValueError, FileNotFoundError) as e:  # bad spec / workdir: one clear line
    flagparse.fail(str(e))
  with open(os.path.join(_OUTPUT_DIR.value, "report.md")) as f:
    print(f.read(), end="", flush=True)


if __name__ == "__main__":
  app.run(main, flags_parser=flagparse.parse_flags)
