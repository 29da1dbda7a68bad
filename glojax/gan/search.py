"""TaylorGLO for GANs: a GA over loss triples + hyperparameters (dissertation §7.4).

Each genome is ``float32[15]``: the 12 Taylor parameters of a loss triple
(:mod:`glojax.gan.losses`, each in [−10, 10]), then ``log10`` of the learning rate, the
discriminator-feature-matching weight and the perceptual weight (the dissertation
evolves these three too but does not give their ranges; ours are
``config.search.*_bounds``). A generation trains every genome's conditional GAN as one
compiled program (:func:`glojax.gan.population.evaluate_population`) and scores it with
``17 · SSIM − perceptual distance`` on the validation split; the GA
(:mod:`glojax.gan.ga`) breeds the next population. A candidate whose training diverges
(NaN/inf) gets fitness −inf (logged as ``null``) and does not touch its neighbours.

:class:`GanSearch` runs on the shared driver (:mod:`glojax.search.driver`): its state
is one pytree (:class:`State`, holding the embedding network's weights too, so a
resumed run scores with exactly the same network), checkpointed after every generation.
``glojax.search.run("gan", config, workdir)`` runs it; ``experiments/gan.py`` is the
binary. Files: the driver's (``config.json``, ``log.jsonl``, ``checkpoint.npz``), plus
``samples_gen_NNN.png`` (inputs / best candidate's samples / targets, each generation),
``best_loss.txt`` (a ``gan_taylor(...)`` spec with the evolved hyperparameters),
``fitness.png``, and the final comparison (:mod:`glojax.gan.final`): ``final.json``,
``final.md``, ``samples_final.png``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any, Mapping, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from glojax import config as config_lib
from glojax import workdir as workdir_lib
from glojax.gan import data as data_lib
from glojax.gan import final as final_lib
from glojax.gan import ga
from glojax.gan import losses as gan_losses
from glojax.gan import metrics
from glojax.gan import plots
from glojax.gan import population as pop
from glojax.gan import trainer as tr
from glojax.gan.models import Networks
from glojax.search import driver

GENOME_SIZE = gan_losses.NUM_PARAMS + 3
MODELS = ("pix2pix",)
_PURPOSE_INIT, _PURPOSE_EMBEDDING, _PURPOSE_TRAIN, _PURPOSE_VARY = range(4)


# ---- config sections ----------------------------------------------------------------


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


# ---- genomes <-> specs <-> candidates ---------------------------------------------


def genome_spec(genome) -> str:
  """The ``gan_taylor(theta=[...], learning_rate=..., ...)`` spec of a genome."""
  g = np.asarray(genome, np.float64)
  return gan_losses.taylor_spec(g[:12], learning_rate=float(10.0 ** g[12]),
                                feature_weight=float(g[13]), perceptual_weight=float(g[14]))


def genome_from_spec(spec: str, train: tr.GanTrainConfig) -> np.ndarray:
  """The ``float32[15]`` genome of a Taylor-representable spec (``wgan``, ``lsgan``,
  ``gan_taylor(...)``, ``taylorglo_facade``); hyperparameters default to ``train``'s.

  Raises:
    ValueError: for a bad spec or one with no Taylor form (minimax, non-saturating).
  """
  loss = gan_losses.as_taylor(spec)
  if loss is None:
    raise ValueError(f"{spec!r} is not a Taylor triple (use wgan, lsgan, "
                     "taylorglo_facade or gan_taylor(...))")
  hp = {k: loss.hparams.get(k, getattr(train, k)) for k in gan_losses.HPARAMS}
  return np.concatenate([np.asarray(loss.theta, np.float64),
                         [np.log10(hp["learning_rate"]), hp["feature_weight"],
                          hp["perceptual_weight"]]]).astype(np.float32)


def candidates_of(genomes) -> tr.Candidate:
  """``float32[K, 15]`` genomes → a stacked :class:`~glojax.gan.trainer.Candidate`."""
  g = jnp.asarray(genomes, jnp.float32)
  return tr.Candidate(gan_losses.TaylorTriple.from_theta(g[:, :12]),
                      tr.Hyper(10.0 ** g[:, 12], g[:, 13], g[:, 14]))


class State(NamedTuple):
  """The whole GAN search state (checkpointed as one pytree).

  Attributes:
    generation: finished generations.
    genomes: ``float32[K, 15]``, the population the next step evaluates.
    best_genome: ``float32[15]``, the best evaluated so far (NaN before any).
    best_fitness: its validation fitness (−inf before any).
    best_generation: the generation it came from (−1 before any).
    embedding: the perceptual network's weights (trained in ``init``).
    embedding_accuracy: its test accuracy (NaN if untrained).
    samples: ``float32[num_samples, H, W, C]``, the last generation's best
      candidate's samples of the first validation pairs.
  """
  generation: int
  genomes: np.ndarray
  best_genome: np.ndarray
  best_fitness: float
  best_generation: int
  embedding: Any
  embedding_accuracy: float
  samples: np.ndarray


_PAIRED: dict = {}


def _paired(config: Config) -> data_lib.PairedDataset:
  """The run's paired data, cached per (dataset, pairs) for runs in one process."""
  d, p = config.dataset, config.pairs
  key = workdir_lib.dumps({"dataset": d, "pairs": p})
  if key not in _PAIRED:
    if len(_PAIRED) >= 2:
      _PAIRED.pop(next(iter(_PAIRED)))
    if p.task == "pix2pix_folder":
      _PAIRED[key] = data_lib.load_pix2pix_folder(
          p.data_dir, image_size=p.image_size, direction=p.direction,
          max_train=p.max_train, max_eval=p.max_eval)
    else:
      _PAIRED[key] = data_lib.make_paired(d.name, p.task, seed=d.seed,
                                          max_train=p.max_train, max_eval=p.max_eval,
                                          **d.options)
  return _PAIRED[key]


class GanSearch(driver.Search):
  """The GAN loss search (module docstring) on the shared driver."""
  name = "GAN"
  config_class = Config
  resumable_keys = ("search.generations", "final")

  def __init__(self, config: Config):
    # No driver.Problem: the candidates are GANs, not classifiers of config.model.
    self.config, self.problem = config, None
    self.dataset = _paired(config)
    t, s, e = config.train, config.search, config.embedding
    if t.batch_size > len(self.dataset.train):
      raise ValueError(f"config.train.batch_size={t.batch_size} is larger than the "
                       f"train split of {self.dataset.name} ({len(self.dataset.train)} "
                       "pairs)")
    self.networks = config.model.networks()
    try:
      self.networks.check_image_shape(self.dataset.image_shape)
    except ValueError as err:
      raise ValueError(f"config.model.options: {err}") from None
    labels = np.concatenate([self.dataset.train.labels, self.dataset.test.labels])
    self.num_classes = int(labels.max()) + 1
    if self.num_classes < 2 and e.steps > 0:
      raise ValueError(f"config.embedding.steps={e.steps} must be 0: the pairs of "
                       f"{self.dataset.name} have no class labels to train the embedding "
                       "classifier on (steps=0 uses its random features)")
    try:
      model = metrics.embedding_model(e.model, e.options, self.num_classes,
                                      self.dataset.image_shape)
    except (TypeError, ValueError) as err:
      raise ValueError(f"config.embedding.options={dict(e.options)!r} cannot build "
                       f"{e.model!r}: {err}") from None
    for spec in s.init_specs:
      try:
        genome_from_spec(spec, t)
      except ValueError as err:
        raise ValueError(f"config.search.init_specs: {err}") from None
    self.low, self.high = (jnp.asarray(a) for a in s.bounds())
    for spec in s.init_specs:
      g = genome_from_spec(spec, t)
      out = np.flatnonzero((g < np.asarray(self.low)) | (g > np.asarray(self.high)))
      if out.size:
        raise ValueError(f"config.search.init_specs: {spec!r} lies outside the search "
                         f"bounds at genome entries {out.tolist()}")
    template = jax.eval_shape(lambda: model.init(
        jax.random.PRNGKey(0), jnp.zeros((1,) + self.dataset.image_shape),
        train=False)["params"])
    self._embedding_template = jax.tree_util.tree_map(
        lambda a: np.zeros(a.shape, a.dtype), template)
    self.trainer = tr.GanTrainer(
        self.dataset, gan_losses.TAYLOR_FNS, t,
        metrics.Embedding(model, {"params": self._embedding_template}, e.model,
                          float("nan")), self.networks)
    self._workdir: Optional[str] = None

  # -- the algorithm --

  def init(self, key: jax.Array) -> State:
    """Trains the embedding network; the first population (``init_specs``, then
    uniform in the bounds)."""
    e, ds, s = self.config.embedding, self.dataset, self.config.search
    emb = metrics.train_embedding(
        ds.train.targets, ds.train.labels, (ds.validation.targets, ds.validation.labels),
        (ds.test.targets, ds.test.labels), model_name=e.model, options=e.options,
        steps=e.steps, batch_size=e.batch_size, learning_rate=e.learning_rate,
        key=jax.random.fold_in(key, _PURPOSE_EMBEDDING))
    seeded = [genome_from_spec(spec, self.config.train) for spec in s.init_specs]
    rest = ga.sample_uniform(jax.random.fold_in(key, _PURPOSE_INIT),
                             s.population_size - len(seeded), self.low, self.high)
    genomes = np.concatenate([np.reshape(seeded, (-1, GENOME_SIZE)).astype(np.float32),
                              np.asarray(rest)])
    n = self.config.train.num_samples
    return State(0, genomes, np.full(GENOME_SIZE, np.nan, np.float32), float("-inf"), -1,
                 jax.tree_util.tree_map(np.asarray, emb.variables["params"]),
                 float(emb.test_accuracy),
                 np.zeros((min(n, len(ds.validation)),) + ds.image_shape, np.float32))

  def abstract_state(self):
    return workdir_lib.spec_of(State(
        0, np.zeros((self.config.search.population_size, GENOME_SIZE), np.float32),
        np.zeros(GENOME_SIZE, np.float32), 0.0, 0, self._embedding_template, 0.0,
        np.zeros((min(self.config.train.num_samples, len(self.dataset.validation)),)
                 + self.dataset.image_shape, np.float32)))

  def done(self, state: State) -> bool:
    return state.generation >= self.config.search.generations

  def step(self, state: State, key: jax.Array) -> tuple[State, dict]:
    """Trains and scores ``state.genomes``; breeds the next population."""
    t0 = time.time()
    s, g = self.config.search, state.generation
    trainer = self.trainer.with_embedding({"params": state.embedding})
    keys = jax.random.split(jax.random.fold_in(key, _PURPOSE_TRAIN), s.population_size)
    result = pop.evaluate_population(trainer, candidates_of(state.genomes), keys,
                                     strategy=s.strategy, ssim_weight=s.ssim_weight)
    fitness = result.fitness
    i = int(np.argmax(ga.ranking_fitness(fitness)))
    best = (state.best_genome, state.best_fitness, state.best_generation)
    if np.isfinite(fitness[i]) and fitness[i] > state.best_fitness:
      best = (np.asarray(state.genomes[i], np.float32), float(fitness[i]), g)
    genomes = ga.next_generation(
        jax.random.fold_in(key, _PURPOSE_VARY), jnp.asarray(state.genomes),
        jnp.asarray(fitness), low=self.low, high=self.high, elites=s.elites,
        tournament_size=s.tournament_size, crossover_probability=s.crossover_probability,
        mutation_probability=s.mutation_probability, mutation_scale=s.mutation_scale)
    finite = np.isfinite(fitness)
    nullable = lambda a: [float(v) if ok else None for v, ok in zip(a, finite)]
    record = {
        "generation": g,
        "fitness": nullable(fitness),
        "ssim": nullable(result.metrics["ssim"]),
        "perceptual": nullable(result.metrics["perceptual"]),
        "best": float(fitness[i]) if finite[i] else None,
        "mean": float(np.mean(fitness[finite])) if finite.any() else None,
        "median": float(np.median(fitness[finite])) if finite.any() else None,
        "failed": int(np.sum(~finite)),
        "best_spec": genome_spec(state.genomes[i]) if finite[i] else None,
        "genomes": np.asarray(state.genomes).tolist(),
        "best_ever": best[1] if np.isfinite(best[1]) else None,
        "sample_grid": _grid_name(g),
        "wall_time_s": time.time() - t0,
    }
    samples = np.asarray(result.samples[i], np.float32) if finite[i] else state.samples
    return State(g + 1, np.asarray(genomes), *best, state.embedding,
                 state.embedding_accuracy, samples), record

  # -- messages and files --

  def describe(self, workdir: str) -> str:
    self._workdir = workdir  # where progress() writes each generation's sample grid
    s, t = self.config.search, self.config.train
    return (f"GAN loss search: {self.dataset.describe()}; pix2pix {self.networks}; "
            f"population {s.population_size}, {s.generations} generations, {t.steps} "
            f"steps per candidate (strategy {pop.resolve_strategy(s.strategy)}); workdir {workdir}")

  def init_message(self, state: State) -> str:
    return (f"embedding network {self.config.embedding.model} trained for "
            f"{self.config.embedding.steps} steps: test accuracy "
            f"{state.embedding_accuracy:.3f}")

  def resume_message(self, state: State) -> str:
    best = ("none yet" if not np.isfinite(state.best_fitness)
            else f"{state.best_fitness:.4f}")
    return f"resuming from generation {state.generation} (best so far {best})"

  def progress(self, state: State, record: dict) -> str:
    if self._workdir is not None and record["best"] is not None:
      self._write_grid(state.samples, os.path.join(self._workdir, record["sample_grid"]),
                       f"generation {record['generation'] + 1}: best candidate "
                       f"(fitness {record['best']:.3f})")
    fmt = lambda v: "failed" if v is None else f"{v:.4f}"
    s = self.config.search
    return (f"gen {record['generation'] + 1:3d}/{s.generations}  best "
            f"{fmt(record['best'])}  median {fmt(record['median'])}  best-ever "
            f"{fmt(record['best_ever'])}  failed {record['failed']}/{s.population_size}  "
            f"{record['wall_time_s']:.1f}s")

  def _write_grid(self, samples, path: str, title: str) -> None:
    ds = self.dataset.validation
    n = samples.shape[0]
    plots.image_grid({"input": ds.inputs[:n], "best": samples, "target": ds.targets[:n]},
                     path, title=title)

  def best_spec(self, state: State) -> Optional[str]:
    """The best genome's spec, or None if no candidate has trained yet."""
    return genome_spec(state.best_genome) if np.isfinite(state.best_fitness) else None

  def finalize(self, state: State, workdir: str, log) -> dict:
    """Writes ``best_loss.txt``, ``fitness.png`` and the final comparison (best triple
    vs ``final.baselines`` on the test split: ``final.json``, ``final.md``,
    ``samples_final.png``)."""
    out = {"best_spec": self.best_spec(state),
           "best_fitness": state.best_fitness if np.isfinite(state.best_fitness) else None,
           "generations": state.generation, "final": None}
    plots.plot_fitness(workdir, log)
    if out["best_spec"] is None:
      log("no candidate trained (no generation run, or every one diverged): nothing to "
          "compare. Try narrower search bounds or a smaller learning-rate range")
      return out
    workdir_lib.write_text(os.path.join(workdir, "best_loss.txt"), out["best_spec"] + "\n")
    log(f"best validation fitness {state.best_fitness:.4f} (generation "
        f"{state.best_generation + 1}): {out['best_spec']}")
    if self.config.final.enabled:
      trainer = self.trainer.with_embedding({"params": state.embedding})
      out["final"] = final_lib.run(self.config, trainer, out["best_spec"], workdir,
                                   log=log)
    return json.loads(workdir_lib.dumps(out))


def _grid_name(generation: int) -> str:
  return f"samples_gen_{generation + 1:03d}.png"


def default_config():
  """Every key a GAN search config may set, with its defaults (locked)."""
  return GanSearch.default_config()


def run(config, workdir: str, *, log=print, on_step=None) -> dict:
  """Runs (or resumes) a GAN loss search in ``workdir`` (:func:`glojax.search.driver.run`).

  Returns:
    ``{"best_spec", "best_fitness", "generations", "final"}``.

  Raises:
    ValueError: for a bad config, or a workdir holding a different run.
    FileNotFoundError: if the data set is not installed.
  """
  return driver.run(GanSearch, config, workdir, log=log, on_step=on_step)
