r"""EPBT paper experiments (Liang, Gonzalez & Miikkulainen 2020, §4, Table 1) — GPU.

Run one row (the part after ``:`` picks it)::

  python experiments/epbt.py --config=experiments/configs/epbt_paper.py:cifar10_resnet32 \
      --workdir=runs/epbt_cifar10_resnet32 --config.dataset.options.data_dir=/data/tfds

Rows: ``cifar10_resnet32`` (the paper's main experiment, with all three baselines),
``cifar10_wrn16_8`` and ``svhn_resnet32`` (cross-entropy baseline, as in the paper).

Paper numbers (Table 1, test accuracy in %, mean (std) over 5 runs):

=====================  ====================  ==================  ==============
method                 CIFAR-10, ResNet-32   CIFAR-10, WRN-16-8  SVHN, ResNet-32
=====================  ====================  ==================  ==============
baseline 1 (no PBT)    91.38 (0.65)          95.15 (0.15)        97.75 (0.03)
baseline 2 (PBT, θ)    91.19 (0.35)          —                   —
baseline 3 (PBT, SGD)  90.48 (0.60)          —                   —
EPBT (TaylorGLO)       92.13 (0.18)          95.29 (0.15)        98.00 (0.05)
=====================  ====================  ==================  ==============

Settings from the paper: population 40, elitism k = 20, tournament t = 2, uniform
crossover 50 %, θ initialized uniformly in [-10, 10]; CIFAR-10: 25 generations × 8 epochs
(200 epochs), SGD batch 128, momentum 0.9, lr 0.1 ×0.1 at epochs 100 and 150, random
flips and translations, zero-mean unit-variance inputs, validation = 5,000 training
images; SVHN: 40 generations × 1 epoch, lr 0.1 ×0.1 at epochs 20 and 30, no
augmentation. PBT baselines: top 25 % copied over the bottom 25 %, ×1.2/×0.8 or
resample, θ initialized around zero (here uniform in ±1), bounds [-10, 10].

Our choices where the paper is silent (docs/epbt.md): mutation σ = 0.2 (multiplicative),
reset rate 0.05 per variable; weight decay 1e-4 (He et al.) for ResNet-32; WRN-16-8 uses
its literature recipe (Nesterov, lr 0.1, wd 5e-4, dropout 0.3, ×0.2 at epochs 60, 120,
160); batches from shuffled epochs; the cross-entropy baseline is a population of 40
independent networks whose best-validation member is reported (the same rule as EPBT's).
Data: our CIFAR-10 split is 45,000 / 5,000 / 10,000 (352 steps per epoch); our SVHN is
``svhn_cropped`` without ``extra`` (47,225 / 26,032 / 26,032, 369 steps per epoch), while
the paper trained on ~600,000 SVHN images with 30,000 for validation — the SVHN row's
numbers are therefore not directly comparable.

Needs: a GPU and the TFDS datasets prepared in ArrayRecord format under ``data_dir``
(``tfds build cifar10 --file_format=array_record --data_dir DIR`` on a machine with
internet; svhn_cropped likewise). The paper ran each EPBT run on 4 V100s for about six
hours (one GPU-day); here the 40 members train as one vmapped program on one device
(40 × 70,400 steps of ResNet-32 per run, plus the baselines × 5 seeds with
``final.enabled``; set ``--config.final.enabled=False`` for the EPBT run alone). Without
the data the run stops at once: "dataset ... is not prepared at DIR", with how to obtain it.
"""

import ml_collections

from glojax.search.epbt import default_config

_EPOCH = 352        # ceil(45,000 / 128)
_EPOCH_SVHN = 369   # ceil(47,225 / 128)
ROWS = ("cifar10_resnet32", "cifar10_wrn16_8", "svhn_resnet32")


def get_config(row: str = "cifar10_resnet32") -> ml_collections.ConfigDict:
  """The config of one Table 1 column (see the module docstring)."""
  if row not in ROWS:
    raise ValueError(f"unknown EPBT paper row {row!r}; rows: {', '.join(ROWS)}")
  c = default_config()
  c.seed = 0
  c.dataset.name = "cifar10"
  c.dataset.options = {"data_dir": ""}  # "" = TFDS default / $TFDS_DATA_DIR
  c.train.batch_size = 128
  c.train.learning_rate = 0.1
  c.train.momentum = 0.9
  c.train.weight_decay = 1e-4
  c.train.schedule = "step"
  c.train.decay_factor = 0.1
  c.train.sampling = "epoch"
  c.train.eval_batch_size = 1000
  c.train.augment = "pad_crop=4,flip,normalize=per_channel"
  c.train.steps_per_call = 32
  s = c.search
  s.method, s.loss, s.hparams = "epbt", "taylorglo", ("theta",)
  s.population_size = 40
  s.elite_fraction = 0.5
  s.tournament_size = 2
  s.crossover_rate = 0.5
  s.theta_bound = s.theta_init = 10.0
  s.generations = 25
  s.steps_per_generation = 8 * _EPOCH
  c.train.boundaries = (100 * _EPOCH, 150 * _EPOCH)
  c.model.name = "resnet32"
  c.final.repeats = 5
  c.final.baselines = ("cross_entropy", "pbt_theta", "pbt_sgd")
  if row == "cifar10_wrn16_8":
    c.model.name = "wrn16_8"
    c.model.options = {"dropout_rate": 0.3}
    c.train.weight_decay = 5e-4
    c.train.nesterov = True
    c.train.decay_factor = 0.2
    c.train.boundaries = (60 * _EPOCH, 120 * _EPOCH, 160 * _EPOCH)
    c.final.baselines = ("cross_entropy",)
  elif row == "svhn_resnet32":
    c.dataset.name = "svhn"
    c.train.augment = "normalize=per_channel"
    s.generations = 40
    s.steps_per_generation = _EPOCH_SVHN
    c.train.steps_per_call = 41  # 369 = 9 × 41
    c.train.boundaries = (20 * _EPOCH_SVHN, 30 * _EPOCH_SVHN)
    c.final.baselines = ("cross_entropy",)
  return c
