"""The GAN search's config: typed sections, each validated when it is built.

``glojax.gan.search.default_config()`` is generated from :class:`Config` (locked: a typo
fails where it is written); every bad value is a one-line ``ValueError`` naming
``config.<section>.<key>`` (:mod:`glojax.config`).
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Optional

import numpy as np

from glojax import config as config_lib
from glojax.gan import data as data_lib
from glojax.gan import final as final_lib
from glojax.gan import losses as gan_losses
from glojax.gan import population as pop
from glojax.gan import trainer as tr
from glojax.gan.models import Networks
from glojax.search import driver

MODELS = ("pix2pix",)


@dataclasses.dataclass(frozen=True)
class PairsConfig(config_lib.Section):
  """``config.pairs``: the image pairs (:mod:`glojax.gan.data`).

  Attributes:
    task: ``"inpaint"``, ``"edges"`` or ``"denoise"`` (pairs made from
      ``config.dataset``), or ``"pix2pix_folder"`` (real pairs read from ``data_dir``;
      ``config.dataset`` is then unused).
    max_train: keep the first ``max_train`` training pairs (0: all).
    max_eval: keep the first ``max_eval`` validation and test pairs (0: all).
    data_dir, image_size, direction: the ``pix2pix_folder`` options
      (:func:`glojax.gan.data.load_pix2pix_folder`).
  """
  task: str = "inpaint"
  max_train: int = 0
  max_eval: int = 0
  data_dir: str = ""
  image_size: int = 256
  direction: str = "BtoA"

  def __post_init__(self):
    config_lib.check_choice(self, "task", data_lib.TASKS + ("pix2pix_folder",))
    config_lib.check_int(self, "max_train", 0)
    config_lib.check_int(self, "max_eval", 0)
    config_lib.check_int(self, "image_size", 1)
    config_lib.check_choice(self, "direction", data_lib.DIRECTIONS)
    if self.task == "pix2pix_folder" and not (isinstance(self.data_dir, str)
                                              and self.data_dir):
      raise config_lib.FieldError(type(self).__name__, "data_dir", self.data_dir,
                                  "must name the pix2pix folder (task='pix2pix_folder')")


@dataclasses.dataclass(frozen=True)
class GanModelConfig(config_lib.Section):
  """``config.model``: the GAN's networks.

  Attributes:
    name: ``"pix2pix"`` (U-Net generator, PatchGAN discriminator).
    options: :class:`glojax.gan.models.Networks` fields (``generator_features``,
      ``discriminator_features``, ``spectral_norm``); unset ones take Networks'
      defaults ((32, 64), (32, 64), True).
  """
  name: str = "pix2pix"
  options: Mapping = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    config_lib.check_choice(self, "name", MODELS)
    config_lib.check_mapping(self, "options", "{'generator_features': (32, 64)}")
    try:
      self.networks()
    except (TypeError, ValueError) as e:
      raise config_lib.FieldError(type(self).__name__, "options", dict(self.options),
                                  f"cannot build {self.name} networks: {e}") from None

  def networks(self) -> Networks:
    return Networks(**self.options)


@dataclasses.dataclass(frozen=True)
class EmbeddingConfig(config_lib.Section):
  """``config.embedding``: the perceptual network, a classifier trained once per run.

  VGG-16 ImageNet weights (the dissertation's) cannot be downloaded offline; any
  :mod:`glojax.models` classifier without batch norm works (``steps=0``: untrained).

  Attributes:
    model, options: the classifier (:func:`glojax.models.get`).
    steps, batch_size, learning_rate: its SGD training (momentum 0.9).
  """
  model: str = "small_cnn"
  options: Mapping = dataclasses.field(default_factory=dict)
  steps: int = 500
  batch_size: int = 100
  learning_rate: float = 0.05

  def __post_init__(self):
    from glojax import models as models_lib
    config_lib.check_choice(self, "model", models_lib.names())
    config_lib.check_mapping(self, "options", "{'features': (8, 16)}")
    config_lib.check_int(self, "steps", 0)
    config_lib.check_int(self, "batch_size", 1)
    config_lib.check_number(self, "learning_rate", low=0.0, low_open=True)


@dataclasses.dataclass(frozen=True)
class SearchConfig(config_lib.Section):
  """``config.search``: the GA (:mod:`glojax.gan.ga`) and the fitness.

  Attributes:
    population_size, generations: GA size (generations may grow on resume).
    elites, tournament_size, crossover_probability, mutation_probability,
      mutation_scale: the GA's operators.
    ssim_weight: fitness = ``ssim_weight · SSIM − perceptual distance`` (17).
    strategy: population strategy (:data:`glojax.gan.population.STRATEGIES`).
    init_specs: Taylor-representable specs put into the first population (e.g.
      ``("wgan",)``); the rest is uniform in the bounds.
    theta_bounds, log10_learning_rate_bounds, feature_weight_bounds,
      perceptual_weight_bounds: ``(low, high)`` of the genome's parts.
  """
  population_size: int = 8
  generations: int = 10
  elites: int = 2
  tournament_size: int = 3
  crossover_probability: float = 0.5
  mutation_probability: float = 0.25
  mutation_scale: float = 0.1
  ssim_weight: float = pop.SSIM_WEIGHT
  strategy: str = "auto"
  init_specs: tuple = ()
  theta_bounds: tuple = gan_losses.THETA_BOUNDS
  log10_learning_rate_bounds: tuple = (-5.0, -3.0)
  feature_weight_bounds: tuple = (0.0, 20.0)
  perceptual_weight_bounds: tuple = (0.0, 20.0)

  def __post_init__(self):
    config_lib.check_int(self, "population_size", 2)
    config_lib.check_int(self, "generations", 0)
    config_lib.check_int(self, "elites", 0, self.population_size - 1,
                         why=" (smaller than population_size)")
    config_lib.check_int(self, "tournament_size", 1)
    config_lib.check_number(self, "crossover_probability", 0.0, 1.0)
    config_lib.check_number(self, "mutation_probability", 0.0, 1.0)
    config_lib.check_number(self, "mutation_scale", low=0.0, low_open=True)
    config_lib.check_number(self, "ssim_weight", low=0.0)
    config_lib.check_choice(self, "strategy", pop.STRATEGIES)
    for name, low, high in (("theta_bounds", None, None),
                            ("log10_learning_rate_bounds", -10.0, 0.0),
                            ("feature_weight_bounds", 0.0, None),
                            ("perceptual_weight_bounds", 0.0, None)):
      _check_bounds(self, name, low, high)
    if not isinstance(self.init_specs, (list, tuple)) or len(self.init_specs) > (
        self.population_size):
      raise config_lib.FieldError(type(self).__name__, "init_specs", self.init_specs,
                                  "must be a list of at most population_size specs")
    object.__setattr__(self, "init_specs", tuple(self.init_specs))

  def bounds(self) -> tuple[np.ndarray, np.ndarray]:
    """``(low, high)``: ``float32[15]`` genome bounds."""
    pairs = ([self.theta_bounds] * gan_losses.NUM_PARAMS
             + [self.log10_learning_rate_bounds, self.feature_weight_bounds,
                self.perceptual_weight_bounds])
    low, high = np.asarray(pairs, np.float32).T
    return low, high


def _check_bounds(obj, name: str, low: Optional[float], high: Optional[float]) -> None:
  pair = getattr(obj, name)
  ok = (isinstance(pair, (list, tuple)) and len(pair) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                and np.isfinite(v) for v in pair) and pair[0] <= pair[1])
  ok = ok and (low is None or pair[0] >= low) and (high is None or pair[1] <= high)
  if not ok:
    within = "" if low is None and high is None else f" within [{low}, {high}]"
    raise config_lib.FieldError(type(obj).__name__, name, pair,
                                f"must be a finite (low, high) pair, low <= high{within}")
  object.__setattr__(obj, name, (float(pair[0]), float(pair[1])))


@dataclasses.dataclass(frozen=True)
class Config(driver.RunConfig):
  """A GAN loss search config; defaults are sized for a CPU (the quickstart's)."""
  model: GanModelConfig = dataclasses.field(default_factory=GanModelConfig)
  train: tr.GanTrainConfig = dataclasses.field(default_factory=tr.GanTrainConfig)
  final: final_lib.GanFinalConfig = dataclasses.field(
      default_factory=final_lib.GanFinalConfig)
  pairs: PairsConfig = dataclasses.field(default_factory=PairsConfig)
  embedding: EmbeddingConfig = dataclasses.field(default_factory=EmbeddingConfig)
  search: SearchConfig = dataclasses.field(default_factory=SearchConfig)
