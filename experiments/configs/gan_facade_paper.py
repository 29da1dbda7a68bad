r"""Paper scale: TaylorGLO for GANs on CMP Facade with pix2pix networks (diss. §7.4).

Run (needs a GPU and the data; not runnable on the 2-core CPU machines)::

  python experiments/gan.py --config=experiments/configs/gan_facade_paper.py \
      --workdir=runs/gan_facade --config.pairs.data_dir=/data/facades

What it needs:

* **Data**: CMP Facade pairs in pix2pix's folder layout (``facades/{train,val,test}``,
  photo | label map side by side; pix2pix's ``facades.tar.gz``). TFDS has no paired
  CMP Facade (its ``cycle_gan/facades`` is unpaired), so the folder is read directly.
  The dissertation split the 606 pairs 80/10/10; pix2pix's folders are 400/100/106.
* **Perceptual network**: the dissertation uses VGG-16 ImageNet embeddings, which cannot
  be downloaded here. The pairs have no class labels, so no classifier can be trained
  on them either: this config uses a randomly initialized small CNN's features
  (``embedding.steps = 0``), a weaker perceptual metric. With VGG-16 weights available,
  register a VGG-16 model in ``glojax.models`` and set ``embedding.model``.
* **Networks and schedule**: 256×256 RGB; pix2pix-sized U-Net / PatchGAN (64-128-256-512
  channels; pix2pix-HD's global generator is larger), spectral norm, 60 epochs of 400
  pairs (batch 1 in pix2pix-HD; 16 here: 1,500 steps).
* **Compute**: population 20 × 49 generations ≈ 1,000 GAN trainings; one GPU.

What the dissertation reports (§7.4.3, 49 generations): the evolved triple (eqs.
7.2–7.4, ``glojax.gan.get("taylorglo_facade")``, lr 1e-4, weights 4.0877 / 10.3155)
against ten WGAN + spectral-norm runs: test SSIM (×17) 11.6615 vs 9.4359 and perceptual
distance 2040.2561 vs 2129.5069 (VGG-16 units; ours are not comparable).
"""

from glojax.gan.search import default_config


def get_config():
  c = default_config()
  c.pairs.task = "pix2pix_folder"
  c.pairs.data_dir = "/data/facades"
  c.pairs.image_size = 256
  c.pairs.direction = "BtoA"
  c.model.options = {"generator_features": (64, 128, 256, 512),
                     "discriminator_features": (64, 128, 256), "spectral_norm": True}
  c.embedding.model = "small_cnn"
  c.embedding.options = {"features": (32, 64), "dense": 256}
  c.embedding.steps = 0
  c.train.steps = 1500
  c.train.batch_size = 16
  c.train.learning_rate = 2e-4
  c.train.steps_per_call = 10
  c.train.eval_batch_size = 32
  c.search.population_size = 20
  c.search.generations = 49
  c.search.elites = 2
  c.search.strategy = "auto"
  c.search.log10_learning_rate_bounds = (-5.0, -3.0)
  c.final.repeats = 10
  c.final.steps = 1500
  c.final.baselines = ("wgan", "taylorglo_facade")
  return c
