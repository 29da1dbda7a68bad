"""Training one network with a parameterized loss: a pure function of arrays.

A :class:`Trainer` binds a model, an in-memory dataset, a loss
``loss_fn(loss_params, logits, labels) -> per_example_loss`` and a
:class:`TrainConfig`. Its building blocks are pure functions of arrays:

* ``init(key) -> TrainState``
* ``train_steps(state, loss_params, data, num_steps) -> TrainState`` (SGD steps, batches
  sampled by index inside the compiled step)
* ``evaluate(state, split) -> metrics``

and :meth:`Trainer.train` composes them: ``train(loss_params, key) -> metrics`` for one
candidate. :mod:`glojax.train.population` vectorizes the same functions over a
population of candidates. Loss parameters are always *traced* arguments, so every
candidate shares one compiled program.

Models with batch norm keep their running statistics in ``TrainState.batch_stats``
(updated in every training step, used in evaluation). Data augmentation
(:mod:`glojax.data.augment`, ``TrainConfig.augment``) runs inside the compiled step.
Models that sow ``intermediates/aux_logits`` (AllCNN-C with ``aux_heads=True``) add
``aux_loss_weight ×`` their losses to the objective (dissertation §7.1).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from glojax.config import (FieldError, Section, check_bool, check_choice, check_int,
                           check_number)
from glojax.data import Dataset
from glojax.data import augment as augment_lib

LossFn = Callable[[Any, jax.Array, jax.Array], jax.Array]
LOOPS = ("auto", "python", "scan")
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "step", "cosine")
SAMPLINGS = ("replacement", "epoch")


@dataclasses.dataclass(frozen=True)
class TrainConfig(Section):
  """How one candidate is trained.

  Attributes:
    steps: number of SGD steps (one batch each).
    batch_size: examples per step, drawn uniformly with replacement from the train split.
    learning_rate: SGD learning rate.
    momentum: SGD momentum (0 = plain SGD, the GLO/TaylorGLO MNIST setting).
    weight_decay: L2 coefficient added to the gradient, i.e. ``wd · w`` (PyTorch's
      ``weight_decay``; for ``"adamw"`` it is AdamW's decoupled decay instead).
    eval_batch_size: examples per evaluation batch (memory knob only).
    steps_per_call: SGD steps fused into one compiled call (unrolled, see ``loop``).
    loop: ``"python"`` drives compiled chunks of ``steps_per_call`` unrolled steps from
      Python (fast on CPU, where convs inside ``lax.scan`` run ~5× slower — jax issue
      12868); ``"scan"`` runs the whole training as one ``lax.scan`` over chunks (best
      on accelerators); ``"auto"`` picks ``python`` on CPU and ``scan`` elsewhere.
    optimizer: ``"sgd"`` (with ``momentum``/``nesterov``), ``"adam"`` (L2 via
      ``weight_decay``) or ``"adamw"``.
    nesterov: Nesterov momentum for SGD (WRN and PyramidNet recipes).
    schedule: learning-rate schedule over steps: ``"constant"``, ``"step"``
      (multiply by ``decay_factor`` at each step in ``boundaries``) or ``"cosine"``
      (cosine decay to 0 at ``steps``).
    boundaries: step numbers of the ``"step"`` schedule (e.g. He et al.: 32k, 48k).
    decay_factor: factor of the ``"step"`` schedule (0.1; WRN: 0.2).
    warmup_steps: linear warm-up from 0 before the schedule (0 = none).
    augment: augmentation spec string (:func:`glojax.data.augment.parse`), e.g.
      ``"pad_crop=4,flip,normalize=per_channel"``; ``""`` = none.
    sampling: how batches are drawn from the train split: ``"replacement"``
      (uniformly with replacement, the default) or ``"epoch"`` (a fresh permutation
      every epoch, without replacement; the last partial batch is dropped).
    aux_loss_weight: weight of the auxiliary heads' losses (0.3, dissertation §7.1).
    separate_aux_losses: if True, ``loss_params`` is a tuple ``(main, aux1, aux2, ...)``
      with one loss-parameter set per head (TaylorGLO with auxiliary classifiers);
      otherwise every head uses ``loss_params``.
  """
  steps: int = 1000
  batch_size: int = 100
  learning_rate: float = 0.01
  momentum: float = 0.0
  weight_decay: float = 0.0
  eval_batch_size: int = 1000
  steps_per_call: int = 10
  loop: str = "auto"
  optimizer: str = "sgd"
  nesterov: bool = False
  schedule: str = "constant"
  boundaries: tuple = ()
  decay_factor: float = 0.1
  warmup_steps: int = 0
  augment: str = ""
  sampling: str = "replacement"
  aux_loss_weight: float = 0.3
  separate_aux_losses: bool = False

  def __post_init__(self):
    try:
      object.__setattr__(self, "boundaries", tuple(int(b) for b in self.boundaries))
    except (TypeError, ValueError):
      raise FieldError("TrainConfig", "boundaries", self.boundaries,
                       "must be a sequence of step numbers") from None
    for name in ("steps", "batch_size", "eval_batch_size", "steps_per_call"):
      check_int(self, name, 1)
    check_int(self, "warmup_steps", 0)
    check_number(self, "learning_rate", low=0.0, low_open=True)
    check_number(self, "momentum", low=0.0, high=1.0, high_open=True)
    check_number(self, "weight_decay", low=0.0)
    check_number(self, "decay_factor", low=0.0, low_open=True)
    check_number(self, "aux_loss_weight", low=0.0)
    check_choice(self, "loop", LOOPS)
    check_choice(self, "optimizer", OPTIMIZERS)
    check_choice(self, "schedule", SCHEDULES)
    check_choice(self, "sampling", SAMPLINGS)
    check_bool(self, "nesterov")
    check_bool(self, "separate_aux_losses")
    if self.schedule == "step" and not self.boundaries:
      raise FieldError("TrainConfig", "boundaries", self.boundaries,
                       "must list step numbers for schedule='step'")
    if any(b <= 0 for b in self.boundaries) or list(self.boundaries) != sorted(
        self.boundaries):
      raise FieldError("TrainConfig", "boundaries", self.boundaries,
                       "must be increasing positive step numbers")
    if not isinstance(self.augment, str):
      raise FieldError("TrainConfig", "augment", self.augment, "must be a spec string")
    try:
      augment_lib.parse(self.augment)
    except ValueError as e:
      raise FieldError("TrainConfig", "augment", self.augment, f"is not valid: {e}"
                       ) from None

  def resolved_loop(self) -> str:
    if self.loop != "auto":
      return self.loop
    return "python" if jax.default_backend() == "cpu" else "scan"


class ScaledLearningRate(NamedTuple):
  """Loss parameters with a per-candidate learning-rate multiplier.

  Passing ``ScaledLearningRate(loss_params, scale)`` as a trainer's loss parameters
  trains with ``loss_params`` and learning rate ``scale × TrainConfig.learning_rate``
  (schedule included): the optimizer's update is multiplied by ``scale``, which for
  every optimizer here (SGD with momentum/Nesterov/L2 weight decay, Adam, AdamW) equals
  scaling the learning rate, since each update is the learning rate times a direction
  that does not depend on it. ``scale`` is traced, so a population with one learning
  rate per candidate (``scale: float32[K]``) is one compiled program — how a search
  tunes or co-evolves the learning rate (dissertation §8, GAN section) without
  recompiling.

  Attributes:
    loss_params: the loss's parameters (any pytree).
    scale: ``float32[]`` learning-rate multiplier (> 0).
  """
  loss_params: Any
  scale: Any


class TrainState(NamedTuple):
  """State of one training run (a pytree; stack it for a population)."""
  params: Any
  opt_state: Any
  key: jax.Array          # uint32[2] raw PRNG key, advanced every step
  step: jax.Array         # int32[]
  finite: jax.Array       # bool[]: no non-finite loss or gradient seen so far
  last_loss: jax.Array    # float32[]: training loss of the last step
  batch_stats: Any = None  # batch-norm running statistics ({} for models without BN)
  data_key: Any = None     # uint32[2], fixed per run: epoch permutations (sampling="epoch")


@dataclasses.dataclass(frozen=True, eq=False)
class Trainer:
  """Trains ``model`` on ``dataset`` with ``loss_fn``; see the module docstring.

  Immutable: everything derived from the arguments (optimizer, device copy of the
  train split, input shape) is computed once here, and compiled programs live in
  :mod:`glojax.train.population` (keyed by the trainer), never on the instance. Use
  ``dataclasses.replace(trainer, ...)`` for a variant (e.g. a ``batch_sharding``).

  Args:
    model: a flax module from :mod:`glojax.models`.
    dataset: a :class:`glojax.data.Dataset`.
    loss_fn: ``loss_fn(loss_params, logits, labels) -> float[batch]`` (per example);
      ``labels`` are one-hot ``float32[batch, num_classes]``.
    config: a :class:`TrainConfig`.
    batch_sharding: the sharding of a training batch for data-parallel training
      (:class:`glojax.train.parallel.DataParallel` sets it), or None.
    custom_optimizer: optional optax transformation replacing the one built from
      ``config`` (e.g. ``optax.inject_hyperparams`` for a learning rate and momentum per
      member, as population-based training needs).
  """
  model: Any
  dataset: Dataset
  loss_fn: LossFn
  config: TrainConfig
  batch_sharding: Any = None
  custom_optimizer: Any = None
  num_classes: int = dataclasses.field(init=False)
  optimizer: Any = dataclasses.field(init=False)
  data: dict = dataclasses.field(init=False)
  loop: str = dataclasses.field(init=False)
  augmentation: Any = dataclasses.field(init=False)
  input_shape: tuple = dataclasses.field(init=False)
  has_batch_stats: bool = dataclasses.field(init=False)
  has_aux_heads: bool = dataclasses.field(init=False)

  def __post_init__(self):
    derived = {
        "num_classes": self.dataset.num_classes,
        "optimizer": (self._make_optimizer(self.config) if self.custom_optimizer is None
                      else self.custom_optimizer),
        # Data is passed to compiled functions as arguments (never closed over:
        # closed-over arrays become compile-time constants).
        "data": {"train_images": jnp.asarray(self.dataset.train.images),
                 "train_labels": jnp.asarray(self.dataset.train.labels)},
        "loop": self.config.resolved_loop(),
        "augmentation": augment_lib.parse(self.config.augment).with_statistics(
            self.dataset.train.images),
        "has_aux_heads": bool(getattr(self.model, "aux_heads", False)),
    }
    derived["input_shape"] = derived["augmentation"].output_shape(self.dataset.image_shape)
    shapes = jax.eval_shape(lambda: self.model.init(
        {"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(0)},
        jnp.zeros((1,) + derived["input_shape"], jnp.float32), train=False))
    derived["has_batch_stats"] = "batch_stats" in shapes
    for name, value in derived.items():
      object.__setattr__(self, name, value)

  @staticmethod
  def _make_schedule(config: TrainConfig):
    """The learning rate as a float (constant) or an optax schedule of the step."""
    lr = config.learning_rate
    if config.schedule == "constant":
      sched = lr
    elif config.schedule == "step":
      sched = optax.piecewise_constant_schedule(
          lr, {b - config.warmup_steps: config.decay_factor for b in config.boundaries})
    else:
      sched = optax.cosine_decay_schedule(lr, max(config.steps - config.warmup_steps, 1))
    if config.warmup_steps:
      const = (lambda _: lr) if isinstance(sched, float) else sched
      sched = optax.join_schedules(
          [optax.linear_schedule(0.0, lr, config.warmup_steps), const],
          [config.warmup_steps])
    return sched

  @classmethod
  def _make_optimizer(cls, config: TrainConfig):
    lr = cls._make_schedule(config)
    if config.optimizer == "sgd":
      tx = optax.sgd(lr, momentum=config.momentum or None, nesterov=config.nesterov)
    elif config.optimizer == "adam":
      tx = optax.adam(lr)
    else:
      return optax.adamw(lr, weight_decay=config.weight_decay)
    if config.weight_decay:
      tx = optax.chain(optax.add_decayed_weights(config.weight_decay), tx)
    return tx

  def _apply(self, params, batch_stats, images, *, train: bool, dropout_key=None):
    """Runs the model; returns ``(logits, aux_logits tuple, new batch_stats)``."""
    variables = {"params": params}
    if self.has_batch_stats:
      variables["batch_stats"] = batch_stats
    mutable = []
    if train and self.has_batch_stats:
      mutable.append("batch_stats")
    if train and self.has_aux_heads:
      mutable.append("intermediates")
    rngs = {"dropout": dropout_key} if dropout_key is not None else {}
    if not mutable:
      return self.model.apply(variables, images, train=train, rngs=rngs), (), batch_stats
    logits, updates = self.model.apply(variables, images, train=train, rngs=rngs,
                                       mutable=mutable)
    aux = tuple(updates.get("intermediates", {}).get("aux_logits", ()))
    return logits, aux, updates.get("batch_stats", batch_stats)

  def _objective(self, loss_params, logits, aux_logits, labels):
    """Mean candidate loss, plus ``aux_loss_weight ×`` the auxiliary heads' losses."""
    if not aux_logits:
      return jnp.mean(self.loss_fn(loss_params, logits, labels))
    if self.config.separate_aux_losses:
      if not isinstance(loss_params, (tuple, list)) or len(loss_params) != 1 + len(
          aux_logits):
        raise ValueError(f"separate_aux_losses needs loss_params as a tuple of "
                         f"{1 + len(aux_logits)} parameter sets (main, aux...)")
      main_params, aux_params = loss_params[0], tuple(loss_params[1:])
    else:
      main_params, aux_params = loss_params, (loss_params,) * len(aux_logits)
    total = jnp.mean(self.loss_fn(main_params, logits, labels))
    for p, a in zip(aux_params, aux_logits):
      total = total + self.config.aux_loss_weight * jnp.mean(self.loss_fn(p, a, labels))
    return total

  # ---- pure building blocks -------------------------------------------------------

  def init(self, key: jax.Array) -> TrainState:
    """Initializes weights and optimizer state from ``key`` (``uint32[2]``)."""
    init_key, run_key = jax.random.split(key)
    dummy = jnp.zeros((1,) + self.input_shape, jnp.float32)
    variables = self.model.init({"params": init_key, "dropout": init_key}, dummy,
                                train=False)
    params = variables["params"]
    return TrainState(params=params, opt_state=self.optimizer.init(params), key=run_key,
                      step=jnp.zeros((), jnp.int32), finite=jnp.ones((), jnp.bool_),
                      last_loss=jnp.zeros((), jnp.float32),
                      batch_stats=variables.get("batch_stats", {}),
                      data_key=jax.random.fold_in(run_key, 0x5eed))

  def train_step(self, state: TrainState, loss_params: Any, data: dict) -> TrainState:
    """One optimizer step on a batch sampled (with replacement) by index from ``data``.

    ``loss_params`` may be a :class:`ScaledLearningRate` (per-candidate learning rate).

    The batch is augmented (``config.augment``) inside the step; batch-norm statistics
    are updated from the batch.
    """
    lr_scale = None
    if isinstance(loss_params, ScaledLearningRate):
      loss_params, lr_scale = loss_params
    key, batch_key, dropout_key = jax.random.split(state.key, 3)
    idx = self.batch_indices(state, batch_key, data["train_labels"].shape[0])
    images = data["train_images"][idx]
    labels = jax.nn.one_hot(data["train_labels"][idx], self.num_classes)
    if self.batch_sharding is not None:
      images = jax.lax.with_sharding_constraint(images, self.batch_sharding)
      labels = jax.lax.with_sharding_constraint(labels, self.batch_sharding)
    if not self.augmentation.is_identity:
      images, labels = self.augmentation.train(
          jax.random.fold_in(batch_key, 1), images, labels,
          progress=state.step / self.config.steps)

    def objective(params):
      logits, aux, batch_stats = self._apply(params, state.batch_stats, images, train=True,
                                             dropout_key=dropout_key)
      return self._objective(loss_params, logits, aux, labels), batch_stats

    (loss, batch_stats), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
    updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
    if lr_scale is not None:  # = learning rate × lr_scale (see ScaledLearningRate)
      updates = jax.tree_util.tree_map(lambda u: u * jnp.asarray(lr_scale, u.dtype),
                                       updates)
    params = optax.apply_updates(state.params, updates)
    grads_finite = jnp.all(jnp.asarray(
        [jnp.all(jnp.isfinite(g)) for g in jax.tree_util.tree_leaves(grads)]))
    finite = state.finite & jnp.isfinite(loss) & grads_finite
    return TrainState(params, opt_state, key, state.step + 1, finite,
                      loss.astype(jnp.float32), batch_stats, state.data_key)

  def batch_indices(self, state: TrainState, batch_key: jax.Array, n_train: int):
    """``int32[batch_size]`` indices of this step's batch into the train split.

    ``sampling="replacement"``: uniform with replacement from ``batch_key``.
    ``sampling="epoch"``: slice ``step mod E`` of a permutation of ``range(n_train)``
    drawn from ``fold_in(state.data_key, epoch)``, ``E = n_train // batch_size``.
    """
    bs = self.config.batch_size
    if self.config.sampling == "replacement":
      return jax.random.randint(batch_key, (bs,), 0, n_train)
    per_epoch = n_train // bs
    if per_epoch < 1:
      raise ValueError(f"sampling='epoch' needs batch_size={bs} <= train examples "
                       f"({n_train})")
    epoch, pos = jnp.divmod(state.step, per_epoch)
    perm = jax.random.permutation(jax.random.fold_in(state.data_key, epoch), n_train)
    return jax.lax.dynamic_slice(perm, (pos * bs,), (bs,))

  def train_chunk(self, state: TrainState, loss_params: Any, data: dict,
                  num_steps: int) -> TrainState:
    """``num_steps`` unrolled steps (a static count: one compile per distinct count)."""
    for _ in range(num_steps):
      state = self.train_step(state, loss_params, data)
    return state

  def train_all(self, state: TrainState, loss_params: Any, data: dict) -> TrainState:
    """All ``config.steps`` steps as one traced program (``lax.scan`` over chunks)."""
    chunk = self.config.steps_per_call
    n_chunks, rest = divmod(self.config.steps, chunk)

    def body(s, _):
      return self.train_chunk(s, loss_params, data, chunk), None

    state, _ = jax.lax.scan(body, state, None, length=n_chunks)
    return self.train_chunk(state, loss_params, data, rest)

  def eval_batch(self, state_or_params, images, labels, mask) -> dict:
    """Sums of correct predictions and cross-entropy over one masked eval batch.

    Args:
      state_or_params: a :class:`TrainState` (needed for batch-norm models: its
        running statistics are used) or just the ``params`` of a model without BN.
      images: ``float32[B, H, W, C]`` raw images (eval preprocessing is applied here).
      labels: ``int32[B]``; mask: ``bool[B]`` (False for padding).
    """
    if isinstance(state_or_params, TrainState):
      params, batch_stats = state_or_params.params, state_or_params.batch_stats
    else:
      params, batch_stats = state_or_params, {}
      if self.has_batch_stats:
        raise ValueError("this model has batch norm: pass the TrainState to eval_batch")
    images = self.augmentation.evaluate(images)
    logits, _, _ = self._apply(params, batch_stats, images, train=False)
    correct = (jnp.argmax(logits, -1) == labels) & mask
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    return {"correct": jnp.sum(correct),
            "ce_sum": jnp.sum(jnp.where(mask, ce, 0.0)),
            "finite_logits": jnp.all(jnp.isfinite(logits) | ~mask[:, None])}

  # ---- data for evaluation ---------------------------------------------------------

  def eval_batches(self, split: str) -> tuple:
    """``split`` (``"train"``, ``"validation"`` or ``"test"``) as padded device batches:
    a tuple of ``(images, labels, mask)`` (built on each call; callers keep them).

    Raises:
      ValueError: for an unknown split.
    """
    if split not in ("train", "validation", "test"):
      raise ValueError(f"unknown split {split!r}; use 'train', 'validation' or 'test'")
    s = getattr(self.dataset, split)
    n, bs = len(s), min(self.config.eval_batch_size, len(s))
    n_batches = -(-n // bs)
    pad = n_batches * bs - n
    images = np.concatenate([s.images, np.zeros((pad,) + s.images.shape[1:],
                                                s.images.dtype)])
    labels = np.concatenate([s.labels, np.zeros((pad,), s.labels.dtype)])
    mask = np.arange(n_batches * bs) < n
    return tuple(
        (jnp.asarray(images[i * bs:(i + 1) * bs]), jnp.asarray(labels[i * bs:(i + 1) * bs]),
         jnp.asarray(mask[i * bs:(i + 1) * bs])) for i in range(n_batches))

  # ---- one candidate --------------------------------------------------------------

  def train(self, loss_params: Any, key: jax.Array, split: str = "validation") -> dict:
    """Trains one candidate and evaluates it: ``train(theta, key) -> metrics``.

    The same compiled pieces as ``evaluate_population(..., strategy="sequential")``
    (chunks of ``steps_per_call`` steps), compiled once per trainer by ``jax.jit``'s
    own cache (the trainer is a static argument).

    Args:
      loss_params: the loss parameters (e.g. TaylorGLO ``theta: float32[8]``).
      key: ``uint32[2]`` PRNG key (weights init, batch sampling, dropout).
      split: the split to evaluate on.

    Returns:
      A dict of NumPy scalars: ``accuracy`` (fraction in [0, 1]), ``loss`` (mean
      cross-entropy on ``split``, nats), ``train_loss`` (the candidate loss on the last
      batch), ``finite`` (bool; False if training produced NaN/inf anywhere).
    """
    batches = self.eval_batches(split)
    state = _jit_init(self, jnp.asarray(key))
    if self.loop == "scan":
      state = _jit_train_all(self, state, loss_params, self.data)
    else:
      done = 0
      while done < self.config.steps:
        n = min(self.config.steps_per_call, self.config.steps - done)
        state = _jit_chunk(self, n, state, loss_params, self.data)
        done += n
    correct = ce_sum = 0.0
    finite = state.finite & _jit_params_finite(state.params)
    for images, labels, mask in batches:
      out = _jit_eval(self, state, images, labels, mask)
      correct, ce_sum = correct + out["correct"], ce_sum + out["ce_sum"]
      finite = finite & out["finite_logits"]
    n = len(getattr(self.dataset, split))
    return {"accuracy": np.asarray(correct, np.float32) / n,
            "loss": np.asarray(ce_sum, np.float32) / n,
            "train_loss": np.asarray(state.last_loss, np.float32),
            "finite": np.asarray(finite, bool)}


def all_finite(tree) -> jax.Array:
  """``bool[]``: every leaf of ``tree`` is finite everywhere."""
  leaves = jax.tree_util.tree_leaves(tree)
  return jnp.all(jnp.asarray([jnp.all(jnp.isfinite(x)) for x in leaves]))


# One candidate's compiled pieces for Trainer.train: jax.jit caches them per trainer
# (a static, identity-hashed argument), so nothing compiled is stored on a Trainer.
_jit_init = jax.jit(lambda t, key: t.init(key), static_argnums=0)
_jit_train_all = jax.jit(lambda t, s, p, d: t.train_all(s, p, d), static_argnums=0)
_jit_chunk = jax.jit(lambda t, n, s, p, d: t.train_chunk(s, p, d, n), static_argnums=(0, 1))
_jit_eval = jax.jit(lambda t, s, i, l, m: t.eval_batch(s, i, l, m), static_argnums=0)
_jit_params_finite = jax.jit(all_finite)
