r"""GLO's CIFAR-10 transfer setting: the basic CNN with LRN (GLO paper §IV-A2, Fig. 5).

Run (Baikal transferred from MNIST vs cross-entropy; ``baikal`` needs the loss
registry, ``glojax.losses.get``)::

  python experiments/train.py --config=experiments/configs/train_glo_cifar.py \
      --workdir=runs/glo_cifar --config.dataset.options.data_dir=/data/tfds \
      --config.loss=baikal --config.compare_to_cross_entropy=True

Needs: a GPU (hours on CPU) and CIFAR-10 prepared for ``tfds.data_source`` in
``data_dir`` (see docs/models_and_data.md); without it the run stops at once with
``error: dataset 'cifar10' is not prepared at DIR`` and how to prepare it.

Recipe as printed (GLO paper §IV-A2; dissertation §3.2.1): random 24×24 crops, flips,
random brightness and contrast, per-image standardization (train and eval; centre crop
at eval); SGD, weight decay 0.004, batch 1024, learning rate 0.05 ×0.1 every 350
epochs. The papers do not state the total training length in the text (Fig. 5 sweeps
it); 20,000 steps (≈ 455 epochs of 45,000 images) is our choice. Weight decay here
applies to every weight (the TensorFlow tutorial decays only the fully connected layers).

Paper result: Baikal beats cross-entropy at every training length in Fig. 5 (no table of
numbers). Expected GPU time: not measured yet (no GPU in the session that wrote this).
"""

from glojax.train.experiment import default_config

_EPOCH = 44  # ceil(45,000 / 1024)


def get_config():
  c = default_config()
  c.repeats = 10
  c.eval_every = 1000
  c.dataset.name = "cifar10"
  c.dataset.options = {"data_dir": ""}
  c.model.name = "glo_cifar_cnn"
  c.train.steps = 20000
  c.train.batch_size = 1024
  c.train.learning_rate = 0.05
  c.train.weight_decay = 0.004
  c.train.schedule = "step"
  c.train.boundaries = (350 * _EPOCH,)
  c.train.steps_per_call = 50
  c.train.sampling = "epoch"  # shuffled epochs, as the reference implementations
  c.train.augment = "crop=24,flip,brightness=63,contrast=0.2:1.8,normalize=per_image"
  return c
