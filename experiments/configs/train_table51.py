r"""Dissertation Table 5.1 rows: train one model R = 10 times with a loss (default CE).

Run one row (the part after ``:`` picks it)::

  python experiments/train.py --config=experiments/configs/train_table51.py:allcnn_c \
      --workdir=runs/allcnn_c --config.dataset.options.data_dir=/data/tfds \
      --config.loss='taylorglo(theta=[...])' --config.compare_to_cross_entropy=True

Needs: a GPU (CPU would take days) and the TFDS dataset prepared in ArrayRecord format
under ``data_dir`` (on a machine with internet: ``tfds build cifar10
--file_format=array_record --data_dir DIR``). Without it the run stops at once with
``error: dataset 'cifar10' is not prepared at DIR`` (or cifar100, svhn) and these
instructions.
Without ``--config.loss`` the row trains the cross-entropy baseline.

Paper numbers (Table 5.1, test accuracy, mean (std) of 10 runs; TaylorGLO vs CE):

=======================  ==========  =================  =================  ==============
row                      dataset     TaylorGLO          cross-entropy      steps (epochs)
=======================  ==========  =================  =================  ==============
alexnet                  CIFAR-10    0.7901 (0.0026)    0.7638 (0.0046)    57.7k (164)
alexnet_cutout           CIFAR-10    0.7786 (0.0022)    0.7741 (0.0040)    57.7k (164)
alexnet_cutmix           CIFAR-10    0.7928 (0.0027)    0.7856 (0.0026)    57.7k (164)
resnet20                 CIFAR-10    0.9136 (0.0029)    0.9146 (0.0019)    64k
preact_resnet20          CIFAR-10    0.9169 (0.0014)    0.9153 (0.0021)    64k
allcnn_c                 CIFAR-10    0.9271 (0.0013)    0.8965 (0.0021)    123k (350)
allcnn_c_cutout          CIFAR-10    0.9329 (0.0022)    0.8911 (0.0037)    123k (350)
allcnn_c_cutmix          CIFAR-10    0.9327 (0.0014)    0.8749 (0.0042)    123k (350)
wrn16_8                  CIFAR-10    0.9558 (0.0011)    0.9528 (0.0012)    70.4k (200)
wrn16_8_cutout           CIFAR-10    0.9618 (0.0010)    0.9582 (0.0011)    70.4k (200)
wrn28_5                  CIFAR-10    0.9548 (0.0015)    0.9556 (0.0011)    70.4k (200)
wrn28_5_cutout           CIFAR-10    0.9621 (0.0013)    0.9616 (0.0011)    70.4k (200)
pyramidnet110_a48        CIFAR-100   0.7409 (0.0040)    0.7523 (0.0037)    106k (300)
pyramidnet110_a48_cutout CIFAR-100   0.7708 (0.0029)    0.7674 (0.0036)    106k (300)
svhn_wrn16_8             SVHN        0.9658 (0.0007)    0.9597 (0.0006)    59.0k (160)
svhn_wrn16_8_cutout      SVHN        0.9714 (0.0010)    0.9673 (0.0008)    59.0k (160)
svhn_wrn28_5             SVHN        0.9657 (0.0009)    0.9634 (0.0006)    59.0k (160)
svhn_wrn28_5_cutout      SVHN        0.9727 (0.0006)    0.9709 (0.0006)    59.0k (160)
allcnn_c_aux             CIFAR-10    0.9307 (0.0021)    0.9112 (0.0022)    123k (Table 7.1)
=======================  ==========  =================  =================  ==============

Data pipeline (dissertation §3.1.2–3.1.3, followed here for every row): inputs normalized
by their mean and standard deviation (per channel, training-split statistics), random
horizontal flips and random crops with **two-pixel** padding during training — on
CIFAR-10, CIFAR-100 *and SVHN* ("As with CIFAR-10 and CIFAR-100, models were trained ...
with the same data augmentation pipeline", §3.1.3). Where the architectures' papers
differ, we follow the dissertation and say so: ResNet/WRN/PyramidNet papers pad 4 pixels;
the WRN paper trains SVHN without augmentation (and flipping digits is unusual). To run
those literature variants instead: ``--config.train.augment=pad_crop=4,flip,normalize=
per_channel`` (CIFAR) or ``--config.train.augment=normalize=per_channel`` (SVHN).

Recipes (the dissertation gives none for these models; these are the architectures'
literature settings): SGD momentum 0.9, batch 128, steps counted from 45,000
training images (352 steps per epoch; SVHN 47,225 → 369).
ResNet-20 / PreAct: lr 0.1, wd 1e-4, ×0.1 at 32k and 48k of 64k steps (He et al. 2016).
AlexNet: lr 0.01 (our choice for a net without batch norm; untested), wd 5e-4, 164 epochs, ×0.1 at
epochs 81 and 122 (bearpaw/pytorch-classification's CIFAR schedule). AllCNN-C: lr 0.01
(dissertation Fig. 5.6), wd 1e-3, 350 epochs, ×0.1 at 200, 250, 300 (Springenberg et
al. 2015). WRN: Nesterov, lr 0.1, wd 5e-4, dropout 0.3, ×0.2 at epochs 60, 120, 160 of
200 (Zagoruyko & Komodakis 2016); SVHN: lr 0.01, dropout 0.4, ×0.1 at 80, 120 of 160.
PyramidNet (CIFAR-100): Nesterov, lr 0.5, wd 1e-4, ×0.1 at epochs 150, 225 of 300 (Han
et al. 2017). Augmentation beyond the pipeline above: Cutout 16 px on CIFAR-10, 8 px on
CIFAR-100, 20 px on SVHN
(DeVries & Taylor 2017's per-dataset sizes); CutMix p = 0.5, α = 1. Batches come from a
fresh shuffle each epoch (``sampling="epoch"``).

Expected GPU time: not measured in this project yet (no GPU was available when these
configs were written). The dissertation (§3.2.8, RTX 2080 Ti) reports from under ten
minutes per AlexNet run to over four hours per WRN-28-10 run; ×10 runs per loss.
"""

import ml_collections

from glojax.train.experiment import default_config

_EPOCH = 352        # ceil(45,000 / 128)
_EPOCH_SVHN = 369   # ceil(47,225 / 128)
# Dissertation §3.1.2 (CIFAR) and §3.1.3 (SVHN: "the same data augmentation pipeline").
_PIPELINE = "pad_crop=2,flip,normalize=per_channel"


def _recipe(c, *, epochs, milestones, lr, wd, factor=0.1, nesterov=False, epoch=_EPOCH):
  c.train.steps = epochs * epoch
  c.train.boundaries = tuple(m * epoch for m in milestones)
  c.train.learning_rate = lr
  c.train.weight_decay = wd
  c.train.decay_factor = factor
  c.train.nesterov = nesterov


ROWS = ("alexnet", "alexnet_cutout", "alexnet_cutmix", "resnet20", "preact_resnet20",
        "allcnn_c", "allcnn_c_cutout", "allcnn_c_cutmix", "allcnn_c_aux", "wrn16_8",
        "wrn16_8_cutout", "wrn28_5", "wrn28_5_cutout", "pyramidnet110_a48",
        "pyramidnet110_a48_cutout", "svhn_wrn16_8", "svhn_wrn16_8_cutout", "svhn_wrn28_5",
        "svhn_wrn28_5_cutout")


def get_config(row: str = "resnet20") -> ml_collections.ConfigDict:
  """The config of one Table 5.1 row (see the module docstring for the names)."""
  if row not in ROWS:
    raise ValueError(f"unknown Table 5.1 row {row!r}; rows: {', '.join(ROWS)}")
  c = default_config()
  c.repeats = 10
  c.eval_every = 10 * _EPOCH
  c.dataset.name = "cifar10"
  c.dataset.options = {"data_dir": ""}  # "" = TFDS default / $TFDS_DATA_DIR
  c.train.batch_size = 128
  c.train.momentum = 0.9
  c.train.schedule = "step"
  c.train.steps_per_call = 50
  c.train.sampling = "epoch"  # shuffled epochs, as the reference implementations
  c.train.eval_batch_size = 1000
  c.train.augment = _PIPELINE
  base = row.removesuffix("_cutout").removesuffix("_cutmix").removesuffix("_aux")
  if base.startswith("svhn_"):
    c.dataset.name = "svhn"
    base = base.removeprefix("svhn_")
  c.model.name = base
  cutout = 16
  if base in ("resnet20", "preact_resnet20"):
    c.train.steps = 64000
    c.train.boundaries = (32000, 48000)
    c.train.learning_rate = 0.1
    c.train.weight_decay = 1e-4
  elif base == "alexnet":
    _recipe(c, epochs=164, milestones=(81, 122), lr=0.01, wd=5e-4)
  elif base == "allcnn_c":
    _recipe(c, epochs=350, milestones=(200, 250, 300), lr=0.01, wd=1e-3)
    if row.endswith("_aux"):
      c.model.options = {"aux_heads": True}
  elif base.startswith("wrn") and c.dataset.name == "cifar10":
    _recipe(c, epochs=200, milestones=(60, 120, 160), lr=0.1, wd=5e-4, factor=0.2,
            nesterov=True)
    c.model.options = {"dropout_rate": 0.3}
  elif base.startswith("wrn"):  # SVHN: the WRN recipe, the dissertation's pipeline
    _recipe(c, epochs=160, milestones=(80, 120), lr=0.01, wd=5e-4, nesterov=True,
            epoch=_EPOCH_SVHN)
    c.model.options = {"dropout_rate": 0.4}
    c.eval_every = 10 * _EPOCH_SVHN
    cutout = 20
  elif base == "pyramidnet110_a48":
    c.dataset.name = "cifar100"
    _recipe(c, epochs=300, milestones=(150, 225), lr=0.5, wd=1e-4, nesterov=True)
    cutout = 8
  if row.endswith("_cutout"):
    c.train.augment += f",cutout={cutout}"
  if row.endswith("_cutmix"):
    c.train.augment += ",cutmix=0.5,cutmix_alpha=1.0"
  return c
