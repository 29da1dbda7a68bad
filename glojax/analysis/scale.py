r"""The effective learning rate of a loss: how much it scales the gradient of cross-entropy.

Chapter 6's view (dissertation eq. 6.3): SGD on a per-example loss moves weight
:math:`\theta_j` by :math:`\eta\,\frac1n\sum_k \gamma_k D_j h_k`. Multiplying every
:math:`\gamma_k` by a constant :math:`c` is the same update as multiplying the learning
rate :math:`\eta` by :math:`c`. So part of what a searched loss "learns" can be a step
size: a loss equal to :math:`c\times` cross-entropy trains exactly like cross-entropy at
learning rate :math:`c\eta`. The number here measures that part:

.. math::
   \mathrm{ELR}(L) = \frac{\mathbb{E}_i\,\lVert \nabla_z L(z_i, x_i) \rVert_2}
                          {\mathbb{E}_i\,\lVert \nabla_z \mathrm{CE}(z_i, x_i) \rVert_2}

over examples :math:`i` (logits :math:`z_i` of a network, labels :math:`x_i`): the ratio
of the loss's mean per-example gradient norm with respect to the logits to
cross-entropy's at the same logits. Cross-entropy gives exactly 1 and ``c × CE`` exactly
``c`` (same computation, scaled). A discovered loss that beats cross-entropy only when its
ELR differs from 1 may be winning on step size; compare it with the cross-entropy
baseline whose learning rate was tuned (``final.baselines``, docs/baselines.md).

The ratio depends on where it is measured: :func:`effective_learning_rate` takes the
network's variables (e.g. at initialization, where every loss sees logits near 0, or at a
trained checkpoint).
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np

from glojax import losses as losses_lib

LossLike = Union[str, Callable[[jax.Array, jax.Array], jax.Array]]


def _as_loss(loss: LossLike, what: str) -> Callable:
  if isinstance(loss, str):
    return losses_lib.get(loss)
  if not callable(loss):
    raise ValueError(f"{what}={loss!r} must be a loss spec string or a callable "
                     "loss(logits, labels) -> float[batch]")
  return loss


def mean_gradient_norm(loss: Callable, logits: jax.Array, labels: jax.Array) -> jax.Array:
  r""":math:`\frac1N\sum_i \lVert\nabla_{z_i} \ell(z_i, x_i)\rVert_2` over a batch.

  Args:
    loss: ``loss(logits, labels) -> float[N]`` per-example loss.
    logits: ``float[N, n]``.
    labels: ``float[N, n]`` (one-hot or soft).

  Returns:
    ``float32[]``. jit/vmap-compatible (vmap over a loss parameter by closing over it).
  """
  # Per-example losses are independent, so the gradient of their sum holds every
  # example's gradient in its row.
  grads = jax.grad(lambda z: jnp.sum(loss(z, labels)))(logits)
  return jnp.mean(jnp.linalg.norm(grads.astype(jnp.float32), axis=-1))


def gradient_norm_ratio(loss: LossLike, logits, labels,
                        reference: LossLike = "cross_entropy") -> jax.Array:
  """ELR at given logits: mean gradient norm of ``loss`` / that of ``reference``.

  Args:
    loss: a loss spec (``"baikal"``) or ``loss(logits, labels) -> float[N]``.
    logits: ``float[N, n]``.
    labels: ``float[N, n]`` one-hot/soft, or ``int[N]`` class indices.
    reference: the denominator's loss (cross-entropy).

  Returns:
    ``float32[]`` (NaN if the reference's gradients are all 0, e.g. perfectly confident
    logits). jit/vmap-compatible for callable losses.

  Raises:
    ValueError: for a bad loss spec or mismatched shapes.
  """
  loss, reference = _as_loss(loss, "loss"), _as_loss(reference, "reference")
  logits = jnp.asarray(logits, jnp.float32)
  labels = jnp.asarray(labels)
  if labels.ndim == logits.ndim - 1 and jnp.issubdtype(labels.dtype, jnp.integer):
    labels = jax.nn.one_hot(labels, logits.shape[-1])
  if logits.ndim != 2 or labels.shape != logits.shape:
    raise ValueError(f"logits must be float[N, n] and labels float[N, n] or int[N]; got "
                     f"logits{tuple(logits.shape)}, labels{tuple(labels.shape)}")
  labels = labels.astype(jnp.float32)
  return (mean_gradient_norm(loss, logits, labels)
          / mean_gradient_norm(reference, logits, labels))


def effective_learning_rate(loss: LossLike, model, data, *,
                            variables: Optional[Any] = None,
                            key: Optional[jax.Array] = None,
                            preprocess: Optional[Callable] = None,
                            max_examples: int = 1024,
                            reference: LossLike = "cross_entropy") -> float:
  """The effective learning rate of ``loss`` relative to cross-entropy (module docstring).

  Args:
    loss: a loss spec (``"baikal"``, ``"taylorglo(theta=[...])"``) or a callable
      ``loss(logits, labels) -> float[N]``.
    model: a flax module (``model.apply(variables, images, train=False)`` → logits).
    data: a :class:`glojax.data.Dataset` (its *train* split is used: the examples whose
      gradients training applies) or a tuple ``(images float[N, ...], labels int[N] |
      float[N, n])``.
    variables: the network's flax variables (``{"params": ..., ["batch_stats": ...]}``);
      default: ``model.init`` with ``key`` — the ratio at initialization.
    key: PRNG key for the initialization (default ``PRNGKey(0)``).
    preprocess: optional function applied to the images first (e.g. a trainer's
      evaluation normalization).
    max_examples: at most this many (the first) examples are used.
    reference: the denominator loss (default cross-entropy).

  Returns:
    The ratio as a Python float: exactly 1.0 for cross-entropy, 2.0 for ``2 × CE``.

  Raises:
    ValueError: for a bad loss spec, ``max_examples < 1`` or malformed data.

  References:
    Dissertation (Gonzalez 2020) ch. 6, eq. 6.3 (γ and the learning rate).
  """
  if max_examples < 1:
    raise ValueError(f"max_examples={max_examples!r} must be ≥ 1")
  if hasattr(data, "train"):
    images, labels = data.train.images, data.train.labels
  else:
    try:
      images, labels = data
    except (TypeError, ValueError):
      raise ValueError("data must be a glojax Dataset or a tuple (images, labels)"
                       ) from None
  images = jnp.asarray(np.asarray(images)[:max_examples], jnp.float32)
  labels = jnp.asarray(np.asarray(labels)[:max_examples])
  if preprocess is not None:
    images = preprocess(images)
  if variables is None:
    k = jax.random.PRNGKey(0) if key is None else key
    variables = model.init({"params": k, "dropout": k}, images[:1], train=False)
  logits = model.apply(variables, images, train=False)
  return float(gradient_norm_ratio(loss, logits, labels, reference))
