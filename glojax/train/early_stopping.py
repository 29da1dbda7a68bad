"""Early stopping for population training: hopeless candidates stop at chunk boundaries.

NLFS §3.7 stops a training whose *training accuracy* is below a hand-tuned threshold
after a given number of steps (37 % after 800 ConvNet steps; 25 % after 3,000 surrogate
steps). :class:`EarlyStopping` holds such checks; ``evaluate_population(...,
early_stopping=...)`` applies them to any population and any search:

* A check ``(step, min_train_accuracy)`` is applied at the first chunk boundary at or
  after ``step`` (``TrainConfig.steps_per_call`` steps per chunk; the last boundary is the
  end of training). A candidate whose training accuracy there is below the threshold
  **stops**: it trains no further.
* **Training accuracy** is the accuracy of the current weights, in evaluation mode (no
  dropout or augmentation; batch-norm running statistics), on the first
  ``train_examples`` examples of the train split.
* **Fitness of a stopped candidate**: its accuracy on the evaluated split (validation
  during a search) with the weights it had when it stopped — the best, indeed the only,
  validation accuracy it reached (NLFS §3.7: "the best validation accuracy was returned
  as the fitness score"). A search that *rejects* such candidates instead (NLFS's first
  check) reads ``metrics["stopped"]``.
* **Neighbours are unchanged**: candidates never interact, and the survivors of a check
  continue from their own states through the same compiled chunk function, so each
  survivor's result equals its result without early stopping (bit for bit with
  ``"sequential"`` and ``"unroll"``; ``"vmap"`` re-packs the survivors into a smaller
  batch, which may change float rounding).
* **Stopped steps cost nothing**: after a check the survivors are re-packed — into
  groups of ``UNROLL_GROUP`` for ``"unroll"``, into a batch of the next power of two for
  ``"vmap"`` (a handful of compiled sizes) — and stopped candidates are dropped.

The runner always drives chunks from Python (``loop="python"``), whatever
``TrainConfig.loop`` says: the checks happen between chunks.
"""

from __future__ import annotations

import dataclasses
import weakref
from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class EarlyStopping:
  """Training-accuracy checks applied during population training.

  Attributes:
    checks: ``((step, min_train_accuracy), ...)`` with increasing steps ≥ 1 and
      thresholds in [0, 1]; a candidate below the threshold at ``step`` stops.
    train_examples: examples of the train split (the first ones) the training
      accuracy is measured on.
  """
  checks: tuple = ()
  train_examples: int = 10_000

  def __post_init__(self):
    checks = tuple((int(s), float(a)) for s, a in self.checks)
    object.__setattr__(self, "checks", checks)
    steps = [s for s, _ in checks]
    if any(s < 1 for s in steps) or steps != sorted(set(steps)):
      raise ValueError(f"EarlyStopping.checks must have increasing steps ≥ 1, got "
                       f"{list(self.checks)}")
    if any(not 0.0 <= a <= 1.0 for _, a in checks):
      raise ValueError(f"EarlyStopping thresholds must be accuracies in [0, 1], got "
                       f"{list(self.checks)}")
    if not isinstance(self.train_examples, int) or self.train_examples < 1:
      raise ValueError(f"EarlyStopping.train_examples must be a positive integer, got "
                       f"{self.train_examples!r}")

  def boundaries(self, total_steps: int, steps_per_call: int) -> list[tuple[int, float]]:
    """``[(boundary_step, threshold)]`` per check: the first chunk boundary at or after
    its step (at most the end of training)."""
    return [(min(-(-step // steps_per_call) * steps_per_call, total_steps), threshold)
            for step, threshold in self.checks]


# Train-split batches for the training accuracy, per trainer (the trainer's own cache
# holds whole splits).
_TRAIN_BATCHES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _train_batches(trainer, examples: int):
  cache = _TRAIN_BATCHES.setdefault(trainer, {})
  if examples not in cache:
    split = trainer.dataset.train
    n = min(examples, len(split))
    bs = min(trainer.config.eval_batch_size, n)
    n_batches = -(-n // bs)
    pad = n_batches * bs - n
    images = np.concatenate([split.images[:n],
                             np.zeros((pad,) + split.images.shape[1:], split.images.dtype)])
    labels = np.concatenate([split.labels[:n], np.zeros((pad,), split.labels.dtype)])
    mask = np.arange(n_batches * bs) < n
    cache[examples] = (n, tuple(
        (jnp.asarray(images[i * bs:(i + 1) * bs]), jnp.asarray(labels[i * bs:(i + 1) * bs]),
         jnp.asarray(mask[i * bs:(i + 1) * bs])) for i in range(n_batches)))
  return cache[examples]


def _take(tree, rows):
  return jax.tree_util.tree_map(lambda a: a[rows], tree)


def _stack(states: Sequence[Any]):
  return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *states)


def _bucket(n: int, limit: int) -> int:
  return min(1 << (n - 1).bit_length(), limit)


class _Runner:
  """Trains groups of candidates between boundaries; keeps one state per candidate."""

  def __init__(self, programs, batched: bool, group: Callable[[int], int], trainer,
               loss_params, keys):
    self.programs, self.batched, self.group = programs, batched, group
    self.trainer, self.loss_params, self.keys = trainer, loss_params, keys
    self.states: dict[int, Any] = {}

  def _groups(self, rows: list[int]):
    size = self.group(len(rows)) if self.batched else 1
    for start in range(0, len(rows), size):
      idx = rows[start:start + size]
      yield idx, np.asarray(idx + [idx[0]] * (size - len(idx)))

  def _batch_state(self, padded):
    if not self.batched:
      return self.states[int(padded[0])]
    return _stack([self.states[int(i)] for i in padded])

  def advance(self, rows: list[int], start: int, end: int, progress=None) -> None:
    """Trains ``rows`` from step ``start`` to ``end`` (chunk boundaries)."""
    t = self.trainer
    for idx, padded in self._groups(rows):
      params = _take(self.loss_params, padded if self.batched else int(padded[0]))
      if start == 0:
        state = self.programs.init(self.keys[padded] if self.batched
                                   else self.keys[int(padded[0])])
      else:
        state = self._batch_state(padded)
      done = start
      while done < end:
        n = min(t.config.steps_per_call, end - done)
        state = self.programs.chunk(n)(state, params, t.data)
        done += n
        if progress is not None:
          progress(done, t.config.steps)
      for j, i in enumerate(idx):
        self.states[i] = _take(state, j) if self.batched else state

  def evaluate(self, rows: list[int], batches) -> dict[int, dict]:
    """Correct count, CE sum and finiteness of each row's current state on ``batches``."""
    out = {}
    for idx, padded in self._groups(rows):
      state = self._batch_state(padded)
      correct = ce_sum = 0.0
      finite_logits = True
      for images, labels, mask in batches:
        r = self.programs.eval_batch(state, images, labels, mask)
        correct = correct + r["correct"]
        ce_sum = ce_sum + r["ce_sum"]
        finite_logits = finite_logits & r["finite_logits"]
      finite = state.finite & self.programs.params_finite(state.params) & finite_logits
      values = [np.atleast_1d(np.asarray(v)) for v in
                (correct, ce_sum, finite, state.last_loss)]
      for j, i in enumerate(idx):
        out[i] = {"correct": float(values[0][j]), "ce_sum": float(values[1][j]),
                  "finite": bool(values[2][j]), "train_loss": float(values[3][j])}
    return out


def run(trainer, programs_for: Callable[[str], Any], loss_params, keys, split: str,
        early_stopping: EarlyStopping, strategy: str,
        progress: Optional[Callable[[int, int], None]] = None) -> dict:
  """Trains ``K`` candidates with early stopping; the metrics of ``evaluate_population``.

  Args:
    trainer: the :class:`~glojax.train.trainer.Trainer`.
    programs_for: ``mode -> compiled programs`` (``"single"``, ``"unroll"``, ``"vmap"``)
      with ``init``, ``chunk(n)``, ``eval_batch`` and ``params_finite``.
    loss_params: pytree with leading axis ``K``.
    keys: ``uint32[K, 2]``.
    split: the split the fitness is measured on.
    early_stopping: the checks.
    strategy: a resolved strategy: ``"sequential"``, ``"unroll"`` or ``"vmap"``.
    progress: optional ``progress(steps_done, steps_total)`` callback.

  Returns:
    ``{"accuracy", "loss", "train_loss", "finite"}`` as in ``evaluate_population``, plus
    ``stopped`` (``bool[K]``), ``steps_trained`` (``int32[K]``), ``stopped_check``
    (``int32[K]``, index into ``early_stopping.checks`` or -1) and ``train_accuracy``
    (``float32[K]`` at the last check the candidate reached; NaN if none).

  Raises:
    ValueError: for a strategy other than the three above.
  """
  from glojax.train.population import UNROLL_GROUP
  k = int(keys.shape[0])
  if strategy == "sequential":
    runner = _Runner(programs_for("single"), False, lambda n: 1, trainer, loss_params, keys)
  elif strategy == "unroll":
    runner = _Runner(programs_for("unroll"), True, lambda n: min(UNROLL_GROUP, k), trainer,
                     loss_params, keys)
  elif strategy == "vmap":
    runner = _Runner(programs_for("vmap"), True, lambda n: _bucket(n, k), trainer,
                     loss_params, keys)
  else:
    raise ValueError(f"early stopping supports the strategies 'sequential', 'unroll' "
                     f"and 'vmap', not {strategy!r}")
  total = trainer.config.steps
  boundaries = early_stopping.boundaries(total, trainer.config.steps_per_call)
  stopped = np.zeros(k, bool)
  steps_trained = np.full(k, total, np.int32)
  stopped_check = np.full(k, -1, np.int32)
  train_accuracy = np.full(k, np.nan, np.float32)
  alive = list(range(k))
  done = 0
  n_train, train_batches = _train_batches(trainer, early_stopping.train_examples)
  for check, (boundary, threshold) in enumerate(boundaries):
    if not alive:
      break
    runner.advance(alive, done, boundary, progress)
    done = boundary
    measured = runner.evaluate(alive, train_batches)
    for i in alive:
      train_accuracy[i] = measured[i]["correct"] / n_train
    losing = [i for i in alive if train_accuracy[i] < threshold]
    for i in losing:
      stopped[i] = True
      steps_trained[i] = boundary
      stopped_check[i] = check
    alive = [i for i in alive if not stopped[i]]
  if alive and done < total:
    runner.advance(alive, done, total, progress)
  n_eval = len(getattr(trainer.dataset, split))
  final = runner.evaluate(list(range(k)), trainer.eval_batches(split))
  return {
      "accuracy": np.array([final[i]["correct"] / n_eval for i in range(k)], np.float32),
      "loss": np.array([final[i]["ce_sum"] / n_eval for i in range(k)], np.float32),
      "train_loss": np.array([final[i]["train_loss"] for i in range(k)], np.float32),
      "finite": np.array([final[i]["finite"] for i in range(k)], bool),
      "stopped": stopped, "steps_trained": steps_trained,
      "stopped_check": stopped_check, "train_accuracy": train_accuracy,
  }
