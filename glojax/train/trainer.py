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
candidate shares one compiled program (DESIGN.md, "Recompiles").
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from glojax.data import Dataset

LossFn = Callable[[Any, jax.Array, jax.Array], jax.Array]
LOOPS = ("auto", "python", "scan")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """How one candidate is trained.

  Attributes:
    steps: number of SGD steps (one batch each).
    batch_size: examples per step, drawn uniformly with replacement from the train split.
    learning_rate: SGD learning rate.
    momentum: SGD momentum (0 = plain SGD, the GLO/TaylorGLO MNIST setting).
    weight_decay: L2 coefficient added to the gradient (decoupled from the loss).
    eval_batch_size: examples per evaluation batch (memory knob only).
    steps_per_call: SGD steps fused into one compiled call (unrolled, see ``loop``).
    loop: ``"python"`` drives compiled chunks of ``steps_per_call`` unrolled steps from
      Python (fast on CPU, where convs inside ``lax.scan`` run ~5× slower — jax issue
      12868); ``"scan"`` runs the whole training as one ``lax.scan`` over chunks (best
      on accelerators); ``"auto"`` picks ``python`` on CPU and ``scan`` elsewhere.
  """
  steps: int = 1000
  batch_size: int = 100
  learning_rate: float = 0.01
  momentum: float = 0.0
  weight_decay: float = 0.0
  eval_batch_size: int = 1000
  steps_per_call: int = 10
  loop: str = "auto"

  def __post_init__(self):
    for name in ("steps", "batch_size", "eval_batch_size", "steps_per_call"):
      value = getattr(self, name)
      if not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"TrainConfig.{name} must be a positive integer, got {value!r}")
    if not self.learning_rate > 0:
      raise ValueError(f"TrainConfig.learning_rate must be > 0, got {self.learning_rate!r}")
    if self.loop not in LOOPS:
      raise ValueError(f"TrainConfig.loop={self.loop!r} is not one of {LOOPS}")

  def resolved_loop(self) -> str:
    if self.loop != "auto":
      return self.loop
    return "python" if jax.default_backend() == "cpu" else "scan"


class TrainState(NamedTuple):
  """State of one training run (a pytree; stack it for a population)."""
  params: Any
  opt_state: Any
  key: jax.Array          # uint32[2] raw PRNG key, advanced every step
  step: jax.Array         # int32[]
  finite: jax.Array       # bool[]: no non-finite loss or gradient seen so far
  last_loss: jax.Array    # float32[]: training loss of the last step


class Trainer:
  """Trains ``model`` on ``dataset`` with ``loss_fn``; see the module docstring.

  Args:
    model: a flax module from :mod:`glojax.models`.
    dataset: a :class:`glojax.data.Dataset`.
    loss_fn: ``loss_fn(loss_params, logits, labels) -> float[batch]`` (per example);
      ``labels`` are one-hot ``float32[batch, num_classes]``.
    config: a :class:`TrainConfig`.
  """

  def __init__(self, model, dataset: Dataset, loss_fn: LossFn, config: TrainConfig):
    self.model = model
    self.dataset = dataset
    self.loss_fn = loss_fn
    self.config = config
    self.num_classes = dataset.num_classes
    self.optimizer = self._make_optimizer(config)
    # Data is passed to compiled functions as arguments (never closed over: closed-over
    # arrays become compile-time constants).
    self.data = {
        "train_images": jnp.asarray(dataset.train.images),
        "train_labels": jnp.asarray(dataset.train.labels),
    }
    self._eval_data: dict[str, tuple] = {}
    self.loop = config.resolved_loop()

  @staticmethod
  def _make_optimizer(config: TrainConfig):
    tx = optax.sgd(config.learning_rate, momentum=config.momentum or None)
    if config.weight_decay:
      tx = optax.chain(optax.add_decayed_weights(config.weight_decay), tx)
    return tx

  # ---- pure building blocks -------------------------------------------------------

  def init(self, key: jax.Array) -> TrainState:
    """Initializes weights and optimizer state from ``key`` (``uint32[2]``)."""
    init_key, run_key = jax.random.split(key)
    dummy = jnp.zeros((1,) + self.dataset.image_shape, jnp.float32)
    variables = self.model.init({"params": init_key, "dropout": init_key}, dummy,
                                train=False)
    params = variables["params"]
    return TrainState(params=params, opt_state=self.optimizer.init(params), key=run_key,
                      step=jnp.zeros((), jnp.int32), finite=jnp.ones((), jnp.bool_),
                      last_loss=jnp.zeros((), jnp.float32))

  def train_step(self, state: TrainState, loss_params: Any, data: dict) -> TrainState:
    """One SGD step on a batch sampled (with replacement) by index from ``data``."""
    key, batch_key, dropout_key = jax.random.split(state.key, 3)
    n_train = data["train_labels"].shape[0]
    idx = jax.random.randint(batch_key, (self.config.batch_size,), 0, n_train)
    images = data["train_images"][idx]
    labels = jax.nn.one_hot(data["train_labels"][idx], self.num_classes)

    def objective(params):
      logits = self.model.apply({"params": params}, images, train=True,
                                rngs={"dropout": dropout_key})
      return jnp.mean(self.loss_fn(loss_params, logits, labels))

    loss, grads = jax.value_and_grad(objective)(state.params)
    updates, opt_state = self.optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    grads_finite = jnp.all(jnp.asarray(
        [jnp.all(jnp.isfinite(g)) for g in jax.tree_util.tree_leaves(grads)]))
    finite = state.finite & jnp.isfinite(loss) & grads_finite
    return TrainState(params, opt_state, key, state.step + 1, finite,
                      loss.astype(jnp.float32))

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

  def eval_batch(self, params, images, labels, mask) -> dict:
    """Sums of correct predictions and cross-entropy over one masked eval batch."""
    logits = self.model.apply({"params": params}, images, train=False)
    correct = (jnp.argmax(logits, -1) == labels) & mask
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    return {"correct": jnp.sum(correct),
            "ce_sum": jnp.sum(jnp.where(mask, ce, 0.0)),
            "finite_logits": jnp.all(jnp.isfinite(logits) | ~mask[:, None])}

  # ---- data for evaluation ---------------------------------------------------------

  def eval_batches(self, split: str):
    """``split`` (``"validation"`` or ``"test"``) as padded device batches + masks."""
    if split not in self._eval_data:
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
      self._eval_data[split] = tuple(
          (jnp.asarray(images[i * bs:(i + 1) * bs]), jnp.asarray(labels[i * bs:(i + 1) * bs]),
           jnp.asarray(mask[i * bs:(i + 1) * bs])) for i in range(n_batches))
    return self._eval_data[split]

  # ---- one candidate --------------------------------------------------------------

  def train(self, loss_params: Any, key: jax.Array, split: str = "validation") -> dict:
    """Trains one candidate and evaluates it: ``train(theta, key) -> metrics``.

    Args:
      loss_params: the loss parameters (e.g. TaylorGLO ``theta: float32[8]``).
      key: ``uint32[2]`` PRNG key (weights init, batch sampling, dropout).
      split: the split to evaluate on.

    Returns:
      A dict of NumPy scalars: ``accuracy`` (fraction in [0, 1]), ``loss`` (mean
      cross-entropy on ``split``, nats), ``train_loss`` (the candidate loss on the last
      batch), ``finite`` (bool; False if training produced NaN/inf anywhere).
    """
    from glojax.train.population import evaluate_population
    batched = jax.tree_util.tree_map(lambda a: jnp.asarray(a)[None], loss_params)
    result = evaluate_population(self, batched, jnp.asarray(key)[None],
                                 strategy="sequential", nan_retries=0, split=split)
    return {k: np.asarray(v)[0] for k, v in result.metrics.items()}
