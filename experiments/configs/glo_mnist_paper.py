r"""GLO on MNIST with the papers' basic CNN — the full-size experiment (for a GPU).

Run::

  python experiments/glo.py --config=experiments/configs/glo_mnist_paper.py \
      --workdir=runs/glo_mnist_paper

Needs: a GPU (the paper's CNN trains at ~5 steps/s on a 2-core CPU; this search runs
up to 100 × 80 trees (minus cache hits) plus 35 × 32 coefficient candidates, each for
2,000 steps — millions of CNN steps) and the full MNIST data set (55k/5k/10k split)
prepared for TFDS (``tfds build mnist --file_format=array_record`` on a machine with
internet; pass its folder by setting ``TFDS_DATA_DIR=DIR``). Without it the
run stops at once with ``error: dataset 'mnist' is not prepared at DIR`` and how to
obtain it; ``--config.dataset.name=mnist5k`` runs the same search on the embedded subset
(but does not reproduce the paper's numbers).

Settings (GLO paper §III–IV; docs/glo.md): GA population 80, 6 elites, roulette
selection, crossover p = 0.8, mutations 5 / 5 / 2.5 / 2.5 %, depth-≤2 initial trees;
up to 100 generations (dissertation §4.2); fitness = validation accuracy after 2,000
SGD steps (lr 0.01, batch 100); coefficients by CMA-ES, population 32, σ = 1.5,
35 generations; final protocol 10 runs × 20,000 steps for the best loss and CE.

Paper results (GLO paper §IV, dissertation ch. 4): 2,000-step validation accuracy
Baikal 0.9838, BaikalCMA 0.9902, cross-entropy 0.9700; test accuracy after 20,000
steps (10 runs) CE 0.9899, Baikal 0.9933, BaikalCMA 0.9947. The original search
needed 11,120 partial trainings (100 × 100 GA + 32 × 35 CMA-ES) on a GPU cluster.
"""

from glojax.search.glo import default_config


def get_config():
  c = default_config()
  c.seed = 0
  c.dataset.name = "mnist"
  c.model.name = "mnist_cnn"
  c.train.steps = 2000
  c.train.batch_size = 100
  c.train.learning_rate = 0.01
  c.search.population_size = 80
  c.search.generations = 100
  c.search.elites = 6
  c.search.max_len = 32
  c.search.batch_candidates = 40
  c.search.strategy = "auto"
  c.coefficients.population_size = 32
  c.coefficients.generations = 35
  c.coefficients.sigma = 1.5
  c.final.enabled = True
  c.final.repeats = 10
  c.final.steps = 20000
  return c
