r"""GAN quickstart: evolve GAN loss triples for digit inpainting on a 2-core CPU.

Run::

  python experiments/gan.py --config=experiments/configs/gan_quickstart.py \
      --workdir=runs/gan_quickstart

(prefix ``nice -n 10`` on a shared machine)

Task: the embedded MNIST digits (mnist5k: 4,000 train / 500 validation / 500 test); the
input is the digit with a random 14×14 square greyed out, the target the clean digit.
Networks: a small pix2pix (U-Net 8/16 channels; PatchGAN 8/16 with spectral norm).
Perceptual network: small_cnn (8/16 conv, fc 64) trained 300 steps on the digits
(~95 % test accuracy), standing in for VGG-16. Search: GA, population 8, 5 generations,
each candidate a GAN trained 250 steps (batch 16); fitness 17·SSIM − perceptual distance
on the validation split. Final: the best triple, WGAN and non-saturating (at pix2pix-HD's
learning rate and weights, and at the best triple's evolved ones), 3 seeds × 250 steps
each, on the test split.

Expected output: the embedding's accuracy, one line per generation (best / median
fitness, failed candidates: expect some of the random cubic triples to diverge), the
best spec, then a table of test SSIM, perceptual distance and fitness (mean ± std over
3 seeds) with one-tailed Welch p-values. Time: about 10 minutes of CPU time; measured
numbers are in docs/gan.md.
"""

from glojax.gan.search import default_config


def get_config():
  c = default_config()
  c.seed = 0
  c.dataset.name = "mnist5k"
  c.pairs.task = "inpaint"
  c.model.options = {"generator_features": (8, 16), "discriminator_features": (8, 16),
                     "spectral_norm": True}
  c.embedding.model = "small_cnn"
  c.embedding.options = {"features": (8, 16), "dense": 64}
  c.embedding.steps = 300
  c.train.steps = 250
  c.train.batch_size = 16
  c.train.steps_per_call = 2
  c.search.population_size = 8
  c.search.generations = 5
  c.search.elites = 2
  # Measured on CPU (docs/gan.md): one GAN at a time compiles ~2.5× faster than groups
  # of 4 unrolled copies and costs the same CPU time per step.
  c.search.strategy = "sequential"
  c.final.repeats = 3
  c.final.steps = 250
  # The baselines at the config's learning rate and weights (pix2pix-HD's 2e-4, 10, 10),
  # and at the best triple's evolved ones ("@best": isolates the triple's effect).
  c.final.baselines = ("wgan", "non_saturating", "wgan@best", "non_saturating@best")
  return c
