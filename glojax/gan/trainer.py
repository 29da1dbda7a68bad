"""Training one conditional GAN with a loss triple: pure functions of arrays.

A :class:`GanTrainer` binds the paired data, the loss triple's component functions
(:class:`glojax.gan.losses.ParamTriple`), the embedding network and a
:class:`GanTrainConfig`. Everything a candidate varies is a traced argument, a
:class:`Candidate`: the loss parameters (a :class:`~glojax.gan.losses.TaylorTriple`)
and the three evolved hyperparameters (learning rate, feature-matching weight,
perceptual weight). So one compiled program trains every candidate, and
:mod:`glojax.gan.population` vectorizes it over a candidate axis that carries the
generator and discriminator parameters, both optimizer states and the candidate.

One training step (pix2pix-HD's objective, dissertation §7.4.2):

* discriminator: ``mean d_real(D(x, y)) + mean d_fake(D(x, G(x)))`` (``G`` held fixed);
  spectral-norm statistics updated here;
* generator: ``mean g_fake(D(x, G(x))) + λ_FM · FM + λ_P · PD(G(x), y)``, with ``FM``
  the L1 distance between the discriminator's features of the real and generated pair
  (summed over layers) and ``PD`` the perceptual distance
  (:func:`glojax.gan.metrics.perceptual_distance`), against the same discriminator.

Both use Adam (β = (0.5, 0.999), pix2pix's) at the candidate's learning rate.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from glojax import config as config_lib
from glojax.gan import losses as gan_losses
from glojax.gan import metrics
from glojax.gan.data import PairedDataset
from glojax.gan.models import Networks

LOOPS = ("auto", "python", "scan")


@dataclasses.dataclass(frozen=True)
class GanTrainConfig(config_lib.Section):
  """``config.train``: how one candidate GAN is trained and evaluated.

  Attributes:
    steps: training steps (one discriminator and one generator update each).
    batch_size: pairs per step, drawn uniformly with replacement.
    learning_rate, feature_weight, perceptual_weight: defaults for candidates whose
      spec does not set them (pix2pix-HD: 2e-4, 10, 10).
    beta1, beta2: Adam's β (pix2pix: 0.5, 0.999).
    steps_per_call: steps fused into one compiled call (python loop; small values
      compile fast, and a GAN step is long enough that the call overhead is noise).
    loop: ``"python"`` (compiled chunks driven from Python: fast on CPU), ``"scan"``
      (one ``lax.scan``: accelerators) or ``"auto"``.
    eval_batch_size: pairs per evaluation batch (memory knob only).
    num_samples: generated images kept per candidate (the first pairs of the split)
      for sample grids.
  """
  steps: int = 400
  batch_size: int = 32
  learning_rate: float = 2e-4
  feature_weight: float = 10.0
  perceptual_weight: float = 10.0
  beta1: float = 0.5
  beta2: float = 0.999
  steps_per_call: int = 2
  loop: str = "auto"
  eval_batch_size: int = 250
  num_samples: int = 8

  def __post_init__(self):
    for name in ("steps", "batch_size", "steps_per_call", "eval_batch_size"):
      config_lib.check_int(self, name, 1)
    config_lib.check_int(self, "num_samples", 0)
    config_lib.check_number(self, "learning_rate", low=0.0, low_open=True)
    config_lib.check_number(self, "feature_weight", low=0.0)
    config_lib.check_number(self, "perceptual_weight", low=0.0)
    config_lib.check_number(self, "beta1", low=0.0, high=1.0, high_open=True)
    config_lib.check_number(self, "beta2", low=0.0, high=1.0, high_open=True)
    config_lib.check_choice(self, "loop", LOOPS)

  def resolved_loop(self) -> str:
    if self.loop != "auto":
      return self.loop
    return "python" if jax.default_backend() == "cpu" else "scan"


class Hyper(NamedTuple):
  """A candidate's evolved hyperparameters (``float32[]`` each, or ``[K]`` stacked)."""
  learning_rate: jax.Array
  feature_weight: jax.Array
  perceptual_weight: jax.Array


class Candidate(NamedTuple):
  """What varies between candidates: loss parameters and hyperparameters."""
  loss: Any
  hyper: Hyper


class GanState(NamedTuple):
  """State of one GAN training run (a pytree; stacked on a candidate axis)."""
  g_params: Any
  d_params: Any
  d_stats: Any           # spectral-norm power-iteration vectors ({} without SN)
  g_opt: Any
  d_opt: Any
  key: jax.Array         # uint32[2], advanced every step
  step: jax.Array        # int32[]
  finite: jax.Array      # bool[]: no non-finite loss or gradient so far
  d_loss: jax.Array      # float32[]: last discriminator loss
  g_loss: jax.Array      # float32[]: last generator loss (adversarial + additive)


def candidate(spec, config: GanTrainConfig) -> Candidate:
  """The :class:`Candidate` of a GAN loss spec, hyperparameters defaulting to ``config``.

  Raises:
    ValueError: for a bad spec (:func:`glojax.gan.get`).
  """
  loss = gan_losses.get(spec)
  hp = {k: loss.hparams.get(k, getattr(config, k)) for k in gan_losses.HPARAMS}
  return Candidate(jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32),
                                          loss.params),
                   Hyper(*(jnp.float32(hp[k]) for k in gan_losses.HPARAMS)))


def stack(candidates: Sequence[Candidate]) -> Candidate:
  """Stacks candidates of the same loss family on a new leading axis ``K``."""
  return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *candidates)


class GanTrainer:
  """Trains one conditional GAN; see the module docstring.

  Args:
    dataset: a :class:`~glojax.gan.data.PairedDataset`.
    fns: the loss triple's :class:`~glojax.gan.losses.ParamTriple` (``TAYLOR_FNS`` for
      the Taylor family; ``glojax.gan.get("wgan").fns`` for a fixed formulation).
    config: a :class:`GanTrainConfig`.
    embedding: the :class:`~glojax.gan.metrics.Embedding` of the perceptual distance.
    networks: the :class:`~glojax.gan.models.Networks` (default: pix2pix-small).

  Raises:
    ValueError: if the image size is not divisible by ``2 ** len(features)``.
  """

  def __init__(self, dataset: PairedDataset, fns: gan_losses.ParamTriple,
               config: GanTrainConfig, embedding: metrics.Embedding,
               networks: Networks = Networks()):
    self.dataset, self.fns, self.config, self.embedding = dataset, fns, config, embedding
    self.networks = networks
    networks.check_image_shape(dataset.image_shape)
    self.generator = networks.generator(dataset.image_shape[-1])
    self.discriminator = networks.discriminator()
    self.tx = optax.scale_by_adam(b1=config.beta1, b2=config.beta2)
    self.loop = config.resolved_loop()
    # Passed to compiled functions as an argument: closed-over arrays become constants.
    self.data = {"inputs": jnp.asarray(dataset.train.inputs),
                 "targets": jnp.asarray(dataset.train.targets),
                 "embedding": embedding.variables}
    self._eval: dict[str, tuple] = {}

  def signature(self) -> tuple:
    """Everything static in this trainer's compiled programs (hashable): two trainers
    with equal signatures run the same programs on their own data."""
    return (self.fns, self.config, self.networks, self.dataset.image_shape,
            self.embedding.model)

  def with_embedding(self, variables) -> "GanTrainer":
    """This trainer with other embedding-network weights (same compiled programs)."""
    other = copy.copy(self)
    other.data = {**self.data, "embedding": variables}
    other.embedding = dataclasses.replace(self.embedding, variables=variables)
    return other

  # ---- pure building blocks -------------------------------------------------------

  def init(self, key: jax.Array) -> GanState:
    """Weights and optimizer states from ``key`` (``uint32[2]``)."""
    g_key, d_key, run_key = jax.random.split(key, 3)
    x = jnp.zeros((1,) + self.dataset.image_shape, jnp.float32)
    g_params = self.generator.init(g_key, x)["params"]
    d_vars = self.discriminator.init(d_key, x, x)
    d_params = d_vars["params"]
    return GanState(g_params, d_params, d_vars.get("batch_stats", {}),
                    self.tx.init(g_params), self.tx.init(d_params), run_key,
                    jnp.zeros((), jnp.int32), jnp.ones((), jnp.bool_),
                    jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32))

  def _d_apply(self, d_params, d_stats, x, y, update_stats: bool):
    variables = {"params": d_params}
    if d_stats:
      variables["batch_stats"] = d_stats
    if update_stats and d_stats:
      (out, feats), upd = self.discriminator.apply(variables, x, y, update_stats=True,
                                                   mutable=["batch_stats"])
      return out, feats, upd["batch_stats"]
    out, feats = self.discriminator.apply(variables, x, y, update_stats=False)
    return out, feats, d_stats

  def train_step(self, state: GanState, cand: Candidate, data: dict) -> GanState:
    """One discriminator and one generator update on a batch drawn by index."""
    key, batch_key = jax.random.split(state.key)
    n = data["inputs"].shape[0]
    idx = jax.random.randint(batch_key, (self.config.batch_size,), 0, n)
    x = data["inputs"][idx] * 2.0 - 1.0
    y = data["targets"][idx] * 2.0 - 1.0
    b = x.shape[0]
    fake, g_vjp = jax.vjp(lambda p: self.generator.apply({"params": p}, x), state.g_params)
    fake_fixed = jax.lax.stop_gradient(fake)

    def d_objective(d_params):
      out, feats, stats = self._d_apply(d_params, state.d_stats,
                                        jnp.concatenate([x, x]),
                                        jnp.concatenate([y, fake_fixed]), True)
      loss = (jnp.mean(self.fns.d_real(cand.loss, out[:b]))
              + jnp.mean(self.fns.d_fake(cand.loss, out[b:])))
      return loss, (stats, [f[:b] for f in feats])

    (d_loss, (d_stats, real_feats)), d_grads = jax.value_and_grad(
        d_objective, has_aux=True)(state.d_params)
    real_feats = jax.lax.stop_gradient(real_feats)
    target01 = (y + 1.0) / 2.0

    def g_objective(fake_img):
      out, feats, _ = self._d_apply(state.d_params, d_stats, x, fake_img, False)
      adv = jnp.mean(self.fns.g_fake(cand.loss, out))
      fm = sum(jnp.mean(jnp.abs(f - r)) for f, r in zip(feats, real_feats))
      pd = jnp.mean(metrics.perceptual_distance(self.embedding, data["embedding"],
                                                (fake_img + 1.0) / 2.0, target01))
      return adv + cand.hyper.feature_weight * fm + cand.hyper.perceptual_weight * pd

    g_loss, d_fake_img = jax.value_and_grad(g_objective)(fake)
    (g_grads,) = g_vjp(d_fake_img)

    lr = cand.hyper.learning_rate
    g_upd, g_opt = self.tx.update(g_grads, state.g_opt)
    d_upd, d_opt = self.tx.update(d_grads, state.d_opt)
    g_params = jax.tree_util.tree_map(lambda p, u: p - lr * u, state.g_params, g_upd)
    d_params = jax.tree_util.tree_map(lambda p, u: p - lr * u, state.d_params, d_upd)
    finite = (state.finite & jnp.isfinite(d_loss) & jnp.isfinite(g_loss)
              & _all_finite(g_grads) & _all_finite(d_grads))
    return GanState(g_params, d_params, d_stats, g_opt, d_opt, key, state.step + 1,
                    finite, d_loss.astype(jnp.float32), g_loss.astype(jnp.float32))

  def train_chunk(self, state: GanState, cand: Candidate, data: dict,
                  num_steps: int) -> GanState:
    """``num_steps`` unrolled steps (static count)."""
    for _ in range(num_steps):
      state = self.train_step(state, cand, data)
    return state

  def train_all(self, state: GanState, cand: Candidate, data: dict) -> GanState:
    """All ``config.steps`` steps as one ``lax.scan`` over chunks."""
    chunk = self.config.steps_per_call
    n_chunks, rest = divmod(self.config.steps, chunk)
    state, _ = jax.lax.scan(lambda s, _: (self.train_chunk(s, cand, data, chunk), None),
                            state, None, length=n_chunks)
    return self.train_chunk(state, cand, data, rest)

  def generate(self, state: GanState, inputs: jax.Array) -> jax.Array:
    """Generated images in [0, 1] for ``inputs: float32[B, H, W, C]`` in [0, 1]."""
    return (self.generator.apply({"params": state.g_params}, inputs * 2.0 - 1.0) + 1.0) / 2.0

  def eval_batch(self, state: GanState, inputs, targets, mask, embedding_vars) -> dict:
    """Sums of SSIM and perceptual distance over one masked batch.

    Returns:
      ``{"ssim_sum", "pd_sum": float32[], "finite": bool[], "samples":
      float32[num_samples, H, W, C]}``: ``finite`` is False if a score or any weight
      is NaN/inf; ``samples`` are the generated images of the batch's first pairs.
    """
    fake = self.generate(state, inputs)
    s = metrics.ssim(fake, targets)
    pd = metrics.perceptual_distance(self.embedding, embedding_vars, fake, targets)
    finite = (jnp.all((jnp.isfinite(s) & jnp.isfinite(pd)) | ~mask)
              & _all_finite((state.g_params, state.d_params)))
    return {"ssim_sum": jnp.sum(jnp.where(mask, s, 0.0)),
            "pd_sum": jnp.sum(jnp.where(mask, pd, 0.0)),
            "finite": finite, "samples": fake[:self.config.num_samples]}

  def eval_batches(self, split: str):
    """``split`` as padded device batches ``(inputs, targets, mask)``.

    Raises:
      ValueError: for an unknown split.
    """
    if split not in self._eval:
      s = self.dataset.split(split)
      n, bs = len(s), min(self.config.eval_batch_size, len(s))
      n_batches = -(-n // bs)
      pad = n_batches * bs - n
      padded = lambda a: np.concatenate([a, np.zeros((pad,) + a.shape[1:], a.dtype)])
      inputs, targets = padded(s.inputs), padded(s.targets)
      mask = np.arange(n_batches * bs) < n
      self._eval[split] = tuple(
          (jnp.asarray(inputs[i * bs:(i + 1) * bs]), jnp.asarray(targets[i * bs:(i + 1) * bs]),
           jnp.asarray(mask[i * bs:(i + 1) * bs])) for i in range(n_batches))
    return self._eval[split]


def _all_finite(tree) -> jax.Array:
  return jnp.all(jnp.asarray([jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree)]))
