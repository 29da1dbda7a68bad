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

import json
import os
import time
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from glojax import workdir as workdir_lib
from glojax.gan import data as data_lib
from glojax.gan import final as final_lib
from glojax.gan import ga
from glojax.gan import losses as gan_losses
from glojax.gan import metrics
from glojax.gan import plots
from glojax.gan import population as pop
from glojax.gan import trainer as tr
from glojax.gan.config import Config
from glojax.search import driver

GENOME_SIZE = gan_losses.NUM_PARAMS + 3
_PURPOSE_INIT, _PURPOSE_EMBEDDING, _PURPOSE_TRAIN, _PURPOSE_VARY = range(4)


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
