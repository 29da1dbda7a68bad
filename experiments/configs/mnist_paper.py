r"""TaylorGLO on MNIST with the papers' basic CNN — the full-size experiment (GPU).

Run::

  python experiments/taylorglo.py --config=experiments/configs/mnist_paper.py \
      --workdir=runs/mnist_paper

Needs: a GPU (the paper's CNN trains at ~5 steps/s on a 2-core CPU, so the
60 × 20 × 2,000 = 2.4 M candidate steps would take days there) and the full MNIST
data set (55k/5k/10k split) prepared for TFDS (``tfds build mnist
--file_format=array_record`` on a machine with internet; pass its folder with
``--config.dataset.options='{"data_dir": "DIR"}'`` or set ``TFDS_DATA_DIR=DIR``).
Without it the run stops at once with
``error: dataset 'mnist' is not prepared at DIR`` and how to obtain it;
``--config.dataset.name=mnist5k`` runs the same search on the embedded subset (but does
not reproduce the paper's numbers).

Settings (dissertation §5.3): CMA-ES population 20, σ = 1.2, mean 0,
60 generations; fitness = validation accuracy after 2,000 SGD steps (lr 0.01,
batch 100); final protocol 10 runs × 20,000 steps each for the best θ and CE.

Paper result (dissertation Table 5.1, MNIST basic CNN): TaylorGLO 0.9951 vs
cross-entropy 0.9899 test accuracy (10 runs each, p < 0.05 one-tailed Welch).
"""

from glojax.search.taylorglo import default_config


def get_config():
  c = default_config()
  c.seed = 0
  c.dataset.name = "mnist"
  c.model.name = "mnist_cnn"
  c.train.steps = 2000
  c.train.batch_size = 100
  c.train.learning_rate = 0.01
  c.search.population_size = 20
  c.search.generations = 60
  c.search.sigma = 1.2
  c.final.repeats = 10
  c.final.steps = 20000
  return c
