r"""Quick check of experiments/train.py: a small ResNet on real Fashion-MNIST, CPU.

Run::

  python experiments/train.py --config=experiments/configs/train_quick.py \
      --workdir=runs/train_quick

Needs: Fashion-MNIST IDX files (``apt-get install dataset-fashion-mnist``, or
``--config.dataset.options.data_dir=DIR``); no GPU. Trains ResNet-8 (the 6n + 2 family
of ResNet-20 with n = 1) with batch norm, random crop (pad 2) and flips, on 512 real
28×28 training images for 20 SGD-momentum steps, 2 seeds each for a TaylorGLO loss
(θ5 = 1: L = −(1/n) Σ x_i y_i) and cross-entropy; prints test accuracy mean ± std on
200 test images and Welch's p. Expected: under a minute on 2 CPU cores (mostly XLA
compilation); accuracies above chance (0.1). A smoke test, not a paper result.
"""

from glojax.train.experiment import default_config


def get_config():
  c = default_config()
  c.repeats = 2
  c.loss = "taylorglo(theta=[0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0])"
  c.compare_to_cross_entropy = True
  c.eval_every = 10
  c.dataset.name = "fashion_mnist"
  # data_dir "" = the Debian IDX files, else TFDS's default; set it to another folder
  # with --config.dataset.options.data_dir=DIR.
  c.dataset.options = {"num_train": 512, "num_validation": 200, "num_test": 200,
                       "data_dir": ""}
  c.model.name = "resnet"
  c.model.options = {"depth": 8}
  c.train.steps = 20
  c.train.batch_size = 32
  c.train.learning_rate = 0.05
  c.train.momentum = 0.9
  c.train.weight_decay = 5e-4
  c.train.steps_per_call = 1  # one compiled step: compiles fastest on CPU
  c.train.eval_batch_size = 200
  c.train.augment = "pad_crop=2,flip,normalize=per_channel"
  return c
