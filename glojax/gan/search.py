"""TaylorGLO for GANs: a GA over loss triples + hyperparameters (dissertation §7.4).

Each genome is ``float32[15]``: the 12 Taylor parameters of a loss triple
(:mod:`glojax.gan.losses`, each in [−10, 10]), then ``log10`` of the learning rate, the
discriminator-feature-matching weight and the perceptual weight (their bounds are not
given in the dissertation; ours are in :func:`default_config`). A generation trains
every genome's conditional GAN as one compiled program
(:func:`glojax.gan.population.evaluate_population`) and scores it with
``17 · SSIM − perceptual distance`` on the validation split; the GA
(:mod:`glojax.gan.ga`) makes the next population. A candidate whose training diverges
(NaN/inf) gets fitness −inf and does not touch its neighbours.

The search has the shape every glojax search has:

* ``search = GanSearch(config)`` validates the config and builds data, embedding
  network and trainer (nothing is written);
* ``state = search.init(key)`` — one pytree (:class:`GanSearchState`), checkpointed whole;
* ``state, record = search.step(state, key)`` — one generation; ``record`` is JSON;
* ``results = search.finalize(state, log)`` — best triple vs baselines on the test split.

:func:`run` drives it in a workdir (config.json, log.jsonl, checkpoint.npz,
best_loss.txt, samples/gen_NNN.png, final.json, fitness.png) and resumes there.
"""

from __future__ import annotations

import os
import time
from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from glojax.gan import data as data_lib
from glojax.gan import ga
from glojax.gan import losses as gan_losses
from glojax.gan import metrics
from glojax.gan import plots
from glojax.gan import population as pop
from glojax.gan import trainer as tr
from glojax.search import common

GENOME_SIZE = gan_losses.NUM_PARAMS + 3
RESUMABLE_KEYS = ("search.generations", "final")
_PURPOSE_INIT, _PURPOSE_TRAIN, _PURPOSE_VARY = range(3)
EMBEDDING_FILE = "embedding.npz"


def default_config() -> ml_collections.ConfigDict:
  """Every key a GAN search config may set, with defaults sized for a CPU."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.data = ml_collections.ConfigDict({
      "dataset": "mnist5k", "task": "inpaint", "seed": 0, "max_train": 0,
      "max_eval": 0, "options": {}})
  # The perceptual network: a glojax.models classifier trained once on the data
  # (VGG-16 ImageNet weights cannot be downloaded offline; steps=0: untrained).
  c.embedding = ml_collections.ConfigDict({
      "model": "small_cnn", "options": {"features": (16, 32), "dense": 64},
      "steps": 500, "batch_size": 100, "learning_rate": 0.05})
  c.train = ml_collections.ConfigDict({
      "steps": 400, "batch_size": 32, "learning_rate": 2e-4, "feature_weight": 10.0,
      "perceptual_weight": 10.0, "beta1": 0.5, "beta2": 0.999,
      "generator_features": (32, 64), "discriminator_features": (32, 64),
      "spectral_norm": True, "steps_per_call": 5, "loop": "auto",
      "eval_batch_size": 250, "num_samples": 8})
  c.search = ml_collections.ConfigDict({
      "population_size": 8, "generations": 10, "elites": 2, "tournament_size": 3,
      "crossover_probability": 0.5, "mutation_probability": 0.25,
      "mutation_scale": 0.1, "ssim_weight": pop.SSIM_WEIGHT, "strategy": "auto",
      # Specs put into the first population (e.g. ["wgan"]); the rest is uniform.
      "init_specs": (),
      "bounds": {"theta": (-10.0, 10.0), "log10_learning_rate": (-5.0, -3.0),
                 "feature_weight": (0.0, 20.0), "perceptual_weight": (0.0, 20.0)}})
  c.final = ml_collections.ConfigDict({
      "enabled": True, "repeats": 3, "steps": 0, "seed": 1,
      "baselines": ("wgan", "non_saturating")})
  return c


def validate_config(config) -> dict:
  """Checks ``config`` against :func:`default_config`; returns it as a plain dict.

  Raises:
    ValueError: for unknown keys, bad names or values out of range, naming the key.
  """
  cfg = common.with_defaults(config, default_config())
  s, f = cfg["search"], cfg["final"]
  for key, low in (("population_size", 2), ("generations", 0), ("elites", 0),
                   ("tournament_size", 1)):
    _check_int(f"search.{key}", s[key], low)
  if s["elites"] >= s["population_size"]:
    raise ValueError(f"config.search.elites={s['elites']} must be smaller than "
                     f"population_size={s['population_size']}")
  for key in ("crossover_probability", "mutation_probability"):
    if not 0.0 <= s[key] <= 1.0:
      raise ValueError(f"config.search.{key}={s[key]!r} must be in [0, 1]")
  if not s["mutation_scale"] > 0:
    raise ValueError(f"config.search.mutation_scale={s['mutation_scale']!r} must be > 0")
  if s["strategy"] not in pop.STRATEGIES:
    raise ValueError(f"config.search.strategy={s['strategy']!r} is not one of "
                     f"{pop.STRATEGIES}")
  if len(s["init_specs"]) > s["population_size"]:
    raise ValueError(f"config.search.init_specs has {len(s['init_specs'])} specs, more "
                     f"than population_size={s['population_size']}")
  bounds = bounds_arrays(cfg)  # checks the bounds
  for spec in s["init_specs"]:
    genome_from_spec(spec, cfg)  # a bad spec, a non-Taylor one or out of bounds
  del bounds
  _check_int("final.repeats", f["repeats"], 1)
  _check_int("final.steps", f["steps"], 0)
  for spec in f["baselines"]:
    gan_losses.get(spec)
  if cfg["data"]["task"] not in data_lib.TASKS:
    raise ValueError(f"config.data.task={cfg['data']['task']!r} is not one of "
                     f"{data_lib.TASKS}")
  _check_int("embedding.steps", cfg["embedding"]["steps"], 0)
  train_config(cfg)  # GanTrainConfig's own checks
  return cfg


def _check_int(key: str, value, low: int) -> None:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
    raise ValueError(f"config.{key}={value!r} must be an integer >= {low}")


def train_config(cfg: dict, steps: int = 0) -> tr.GanTrainConfig:
  """The :class:`~glojax.gan.trainer.GanTrainConfig` of ``cfg`` (``steps`` overrides)."""
  t = dict(cfg["train"])
  if steps:
    t["steps"] = steps
  try:
    return tr.GanTrainConfig(**t)
  except TypeError as e:  # a key GanTrainConfig does not take
    raise ValueError(f"config.train: {e}") from None


def bounds_arrays(cfg: dict) -> tuple[np.ndarray, np.ndarray]:
  """``(low, high)``: ``float32[15]`` genome bounds of ``cfg``.

  Raises:
    ValueError: if a bound is not a ``(low, high)`` pair with ``low <= high`` or the
      learning-rate range is not within ``[-10, 0]`` (``log10``).
  """
  b = cfg["search"]["bounds"]
  pairs = []
  for key in ("theta", "log10_learning_rate", "feature_weight", "perceptual_weight"):
    pair = b[key]
    if len(pair) != 2 or not pair[0] <= pair[1] or not all(np.isfinite(pair)):
      raise ValueError(f"config.search.bounds.{key}={pair!r} must be a finite (low, "
                       "high) pair with low <= high")
    pairs += [pair] * (gan_losses.NUM_PARAMS if key == "theta" else 1)
  low, high = np.asarray(pairs, np.float32).T
  if low[12] < -10 or high[12] > 0:
    raise ValueError(f"config.search.bounds.log10_learning_rate={b['log10_learning_rate']!r}"
                     " must lie in [-10, 0]")
  if low[13] < 0 or low[14] < 0:
    raise ValueError("config.search.bounds of the additive-loss weights must be >= 0")
  return low, high


# ---- genomes <-> specs <-> candidates ---------------------------------------------


def genome_spec(genome) -> str:
  """The ``gan_taylor(theta=[...], learning_rate=..., ...)`` spec of a genome."""
  g = np.asarray(genome, np.float64)
  return gan_losses.taylor_spec(g[:12], learning_rate=float(10.0 ** g[12]),
                                feature_weight=float(g[13]), perceptual_weight=float(g[14]))


def genome_from_spec(spec: str, cfg: dict) -> np.ndarray:
  """The ``float32[15]`` genome of a Taylor-representable spec (``wgan``, ``lsgan``,
  ``gan_taylor(...)``, ``taylorglo_facade``); hyperparameters default to ``cfg["train"]``.

  Raises:
    ValueError: for a spec with no Taylor form (minimax, non-saturating) or outside
      the search bounds.
  """
  loss = gan_losses.as_taylor(spec)
  if loss is None:
    raise ValueError(f"config.search.init_specs: {spec!r} is not a Taylor triple "
                     f"(use one of wgan, lsgan, taylorglo_facade, gan_taylor(...))")
  theta = loss.theta
  hp = {k: loss.hparams.get(k, cfg["train"][k]) for k in gan_losses.HPARAMS}
  genome = np.concatenate([np.asarray(theta, np.float64),
                           [np.log10(hp["learning_rate"]), hp["feature_weight"],
                            hp["perceptual_weight"]]]).astype(np.float32)
  low, high = bounds_arrays(cfg)
  out = (genome < low) | (genome > high)
  if out.any():
    raise ValueError(f"config.search.init_specs: {spec!r} lies outside the search bounds "
                     f"at genome entries {np.flatnonzero(out).tolist()}")
  return genome


def candidates_of(genomes) -> tr.Candidate:
  """``float32[K, 15]`` genomes → a stacked :class:`~glojax.gan.trainer.Candidate`."""
  g = jnp.asarray(genomes, jnp.float32)
  return tr.Candidate(gan_losses.TaylorTriple.from_theta(g[:, :12]),
                      tr.Hyper(10.0 ** g[:, 12], g[:, 13], g[:, 14]))


class GanSearchState(NamedTuple):
  """The whole search state (a pytree of arrays; checkpointed as one)."""
  generation: jax.Array       # int32[]: generations finished
  genomes: jax.Array          # float32[K, 15]: the population the next step evaluates
  best_genome: jax.Array      # float32[15]: best evaluated so far
  best_fitness: jax.Array     # float32[]: its fitness (−inf before any)
  best_generation: jax.Array  # int32[]: where it was found (−1 before any)


# ---- the search -------------------------------------------------------------------


class GanSearch:
  """The GAN loss search of one config (module docstring).

  ``GanSearch(config)`` validates the config and builds the paired data (cheap; nothing
  is written); :meth:`build` then trains (or loads) the embedding network and builds
  the trainer, which :meth:`init`, :meth:`step` and :meth:`finalize` need.

  Args:
    config: a ConfigDict/mapping with the keys of :func:`default_config`.
    log: progress printer.

  Raises:
    ValueError: for a bad config; FileNotFoundError if the data set is not installed.
  """

  def __init__(self, config, *, log: Callable[[str], None] = print):
    self.cfg = validate_config(config)
    self.log = log
    d = self.cfg["data"]
    self.dataset = data_lib.make_paired(d["dataset"], d["task"], seed=d["seed"],
                                        max_train=d["max_train"], max_eval=d["max_eval"],
                                        **d["options"])
    self.train_config = train_config(self.cfg)
    if self.train_config.batch_size > len(self.dataset.train):
      raise ValueError(f"config.train.batch_size={self.train_config.batch_size} is larger "
                       f"than the train split ({len(self.dataset.train)} pairs)")
    h, w = self.dataset.image_shape[:2]
    for key in ("generator_features", "discriminator_features"):
      levels = 2 ** len(getattr(self.train_config, key))
      if h % levels or w % levels:
        raise ValueError(f"config.train.{key}: images {h}×{w} are not divisible by "
                         f"2**{len(getattr(self.train_config, key))}; use fewer levels")
    e = self.cfg["embedding"]
    labels = self.dataset.train.labels
    self._num_classes = int(max(labels.max(), self.dataset.test.labels.max())) + 1
    metrics.embedding_model(e["model"], e["options"], self._num_classes,
                            self.dataset.image_shape)  # a bad model/option fails here
    self.low, self.high = (jnp.asarray(a) for a in bounds_arrays(self.cfg))
    self.embedding: Optional[metrics.Embedding] = None
    self.trainer: Optional[tr.GanTrainer] = None
    self.last_samples: Optional[np.ndarray] = None  # best candidate's, last step

  def build(self, embedding_path: Optional[str] = None) -> "GanSearch":
    """Trains the embedding network (or loads it from ``embedding_path`` if that file
    exists; a trained one is saved there) and builds the trainer. Returns ``self``."""
    if self.trainer is not None:
      return self
    e = self.cfg["embedding"]
    if embedding_path and os.path.exists(embedding_path):
      self.embedding = self._load_embedding(embedding_path)
      self.log(f"embedding network {e['model']} loaded from {embedding_path} (test "
               f"accuracy {self.embedding.test_accuracy:.3f})")
    else:
      self.embedding = self._train_embedding()
      if embedding_path:
        _save_npz(embedding_path, {
            **common.flatten_state("embedding", self.embedding.variables),
            "test_accuracy": np.float64(self.embedding.test_accuracy)})
    self.trainer = tr.GanTrainer(self.dataset, gan_losses.TAYLOR_FNS, self.train_config,
                                 self.embedding)
    return self

  def _train_embedding(self) -> metrics.Embedding:
    e, ds = self.cfg["embedding"], self.dataset
    t0 = time.time()
    emb = metrics.train_embedding(
        ds.train.targets, ds.train.labels, (ds.validation.targets, ds.validation.labels),
        (ds.test.targets, ds.test.labels), model_name=e["model"], options=e["options"],
        steps=e["steps"], batch_size=e["batch_size"], learning_rate=e["learning_rate"],
        seed=self.cfg["seed"])
    self.log(f"embedding network {e['model']} trained for {e['steps']} steps: test "
             f"accuracy {emb.test_accuracy:.3f} ({time.time() - t0:.0f}s)")
    return emb

  def _load_embedding(self, path: str) -> metrics.Embedding:
    e = self.cfg["embedding"]
    model = metrics.embedding_model(e["model"], e["options"], self._num_classes,
                                    self.dataset.image_shape)
    template = jax.eval_shape(lambda: {"params": model.init(
        jax.random.PRNGKey(0), jnp.zeros((1,) + self.dataset.image_shape),
        train=False)["params"]})
    template = jax.tree_util.tree_map(lambda a: np.zeros(a.shape, a.dtype), template)
    try:
      with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
      variables = common.unflatten_state("embedding", arrays, template)
      accuracy = float(arrays["test_accuracy"])
    except Exception as err:  # damaged file or a different embedding network
      raise ValueError(f"{path} is unreadable or belongs to another embedding network "
                       f"({type(err).__name__}: {err}); delete it to retrain") from None
    return metrics.Embedding(model, variables, e["model"], accuracy)

  def _require_built(self):
    if self.trainer is None:
      raise RuntimeError("call GanSearch.build() before init/step/finalize")

  @property
  def population_size(self) -> int:
    return self.cfg["search"]["population_size"]

  def train_embedding(self) -> metrics.Embedding:
    """Trains the perceptual network once on the train split (deterministic in seed)."""
    e, ds = self.cfg["embedding"], self.dataset
    t0 = time.time()
    emb = metrics.train_embedding(
        ds.train.targets, ds.train.labels, (ds.validation.targets, ds.validation.labels),
        (ds.test.targets, ds.test.labels), model_name=e["model"], options=e["options"],
        steps=e["steps"], batch_size=e["batch_size"], learning_rate=e["learning_rate"],
        seed=self.cfg["seed"])
    self.log(f"embedding network {e['model']} trained for {e['steps']} steps: test "
             f"accuracy {emb.test_accuracy:.3f} ({time.time() - t0:.0f}s)")
    return emb

  def init(self, key: jax.Array) -> GanSearchState:
    """The first population: ``init_specs`` genomes, the rest uniform in the bounds."""
    self._require_built()
    s = self.cfg["search"]
    seeded = [genome_from_spec(spec, self.cfg) for spec in s["init_specs"]]
    rest = ga.sample_uniform(key, self.population_size - len(seeded), self.low, self.high)
    genomes = jnp.concatenate([jnp.asarray(np.reshape(seeded, (-1, GENOME_SIZE)),
                                           jnp.float32), rest])
    return GanSearchState(jnp.int32(0), genomes, jnp.full((GENOME_SIZE,), jnp.nan),
                          jnp.float32(-jnp.inf), jnp.int32(-1))

  def step(self, state: GanSearchState, key: jax.Array
           ) -> tuple[GanSearchState, dict]:
    """Evaluates ``state.genomes`` and breeds the next population.

    Returns:
      ``(state, record)``; ``record`` is a JSON-able dict of this generation
      (fitness/SSIM/perceptual per candidate, ``None`` for failed ones, the best spec).
    """
    self._require_built()
    s = self.cfg["search"]
    t0 = time.time()
    train_key, vary_key = jax.random.split(key)
    keys = jax.random.split(train_key, self.population_size)
    result = pop.evaluate_population(self.trainer, candidates_of(state.genomes), keys,
                                     strategy=s["strategy"], ssim_weight=s["ssim_weight"])
    fitness = result.fitness
    i = int(np.argmax(ga.ranking_fitness(fitness)))
    best_genome, best_fitness, best_gen = (state.best_genome, state.best_fitness,
                                           state.best_generation)
    if np.isfinite(fitness[i]) and fitness[i] > float(state.best_fitness):
      best_genome, best_fitness = state.genomes[i], jnp.float32(fitness[i])
      best_gen = state.generation
    self.last_samples = result.samples[i]
    genomes = ga.next_generation(
        vary_key, state.genomes, jnp.asarray(fitness), low=self.low, high=self.high,
        elites=s["elites"], tournament_size=s["tournament_size"],
        crossover_probability=s["crossover_probability"],
        mutation_probability=s["mutation_probability"], mutation_scale=s["mutation_scale"])
    finite = np.isfinite(fitness)
    nullable = lambda a: [float(v) if ok else None for v, ok in zip(a, finite)]
    record = {
        "generation": int(state.generation),
        "fitness": nullable(fitness),
        "ssim": nullable(result.metrics["ssim"]),
        "perceptual": nullable(result.metrics["perceptual"]),
        "best": float(fitness[i]) if finite[i] else None,
        "mean": float(np.mean(fitness[finite])) if finite.any() else None,
        "median": float(np.median(fitness[finite])) if finite.any() else None,
        "failed": int(np.sum(~finite)),
        "best_spec": genome_spec(state.genomes[i]),
        "genomes": np.asarray(state.genomes).tolist(),
        "best_ever": float(best_fitness) if np.isfinite(float(best_fitness)) else None,
        "wall_time_s": time.time() - t0,
    }
    new = GanSearchState(state.generation + 1, genomes, best_genome, best_fitness, best_gen)
    return new, record

  def best_spec(self, state: GanSearchState) -> Optional[str]:
    """The best genome's spec, or None if no candidate has trained yet."""
    if not np.isfinite(float(state.best_fitness)):
      return None
    return genome_spec(state.best_genome)

  def finalize(self, state: GanSearchState, *, log: Optional[Callable] = None) -> dict:
    """Best triple vs the baselines on the test split, ``final.repeats`` seeds each.

    Returns:
      ``{"best_spec", "best_fitness", "final": {spec: summary} | None}`` where each
      summary holds the per-seed ``ssim``, ``perceptual`` and ``fitness`` lists and
      their means and standard deviations.
    """
    from glojax.gan import final as final_lib
    self._require_built()
    log = log or self.log
    out = {"best_spec": self.best_spec(state),
           "best_fitness": float(state.best_fitness) if np.isfinite(
               float(state.best_fitness)) else None,
           "generations": int(state.generation), "final": None}
    if out["best_spec"] is None:
      log("no candidate trained (no generation run, or every one diverged): nothing to "
          "compare")
      return out
    if self.cfg["final"]["enabled"]:
      out["final"] = final_lib.compare(self, [out["best_spec"]]
                                       + list(self.cfg["final"]["baselines"]), log=log)
    return out


def _save_npz(path: str, arrays: dict) -> None:
  """Writes ``arrays`` to ``path`` atomically (temp file + ``os.replace``)."""
  tmp = f"{path}.tmp.npz"
  with open(tmp, "wb") as f:
    np.savez(f, **arrays)
  os.replace(tmp, path)
