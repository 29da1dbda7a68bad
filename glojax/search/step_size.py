r"""Step-size options of a loss search: scale normalization and a co-evolved learning rate.

A candidate loss's gradient scale acts as a learning rate (:mod:`glojax.analysis.scale`),
so a loss search partly searches the step size. Two options separate the two:

* ``search.normalize_scale``: each candidate is rescaled so that its effective learning
  rate at initialization equals cross-entropy's (1): the search then compares loss
  *shapes* at cross-entropy's step size. The ratio is measured once per candidate on
  fixed logits — a freshly initialized network (the run's seed) on the first training
  examples — so it costs no training. For TaylorGLO, scaling the loss by ``c`` is scaling
  θ2 … θ7 by ``c`` (θ0, θ1 are the expansion centre), so the normalized candidate is
  again a TaylorGLO θ.
* ``search.tune_learning_rate``: the learning rate becomes one more search variable,
  :math:`u = \ln(\eta/\eta_0)` (mean 0: the config's rate), as the dissertation's GAN
  experiments co-evolve it; candidates train with
  :class:`~glojax.train.trainer.ScaledLearningRate`.
"""

from __future__ import annotations

from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from glojax import losses
from glojax.analysis import scale as scale_lib
from glojax.train.trainer import ScaledLearningRate

NORMALIZE_EXAMPLES = 1024
_RATIO_FLOOR = 1e-12  # below this a loss has (almost) no gradient: left unscaled


def init_logits(model, dataset, key: jax.Array, *, preprocess: Optional[Callable] = None,
                max_examples: int = NORMALIZE_EXAMPLES) -> tuple[jax.Array, jax.Array]:
  """Logits of a freshly initialized ``model`` on the first training examples.

  Returns:
    ``(logits float32[N, n], labels float32[N, n] one-hot)``, ``N ≤ max_examples``.
  """
  images = jnp.asarray(dataset.train.images[:max_examples], jnp.float32)
  if preprocess is not None:
    images = preprocess(images)
  variables = model.init({"params": key, "dropout": key}, images[:1], train=False)
  logits = model.apply(variables, images, train=False).astype(jnp.float32)
  labels = jax.nn.one_hot(jnp.asarray(dataset.train.labels[:max_examples]),
                          logits.shape[-1])
  return logits, labels


def normalization_factors(loss_fn: Callable, loss_params, logits: jax.Array,
                          labels: jax.Array) -> jax.Array:
  """``1 / ELR`` of each candidate at ``logits`` (1 where the ratio is ~0 or not finite).

  Args:
    loss_fn: ``loss_fn(params, logits, labels) -> float[N]``.
    loss_params: pytree with a leading candidate axis ``K``.
    logits, labels: ``float32[N, n]``.

  Returns:
    ``float32[K]``: multiplying candidate ``k``'s loss by entry ``k`` gives it
    cross-entropy's mean logit-gradient norm at ``logits``.
  """
  def one(params):
    return scale_lib.gradient_norm_ratio(lambda z, x: loss_fn(params, z, x), logits,
                                         labels)
  ratio = jax.vmap(one)(loss_params)
  ok = jnp.isfinite(ratio) & (ratio > _RATIO_FLOOR)
  return jnp.where(ok, 1.0 / jnp.where(ok, ratio, 1.0), 1.0).astype(jnp.float32)


def normalize_taylorglo(thetas, logits: jax.Array, labels: jax.Array,
                        class_reduction: str = "mean") -> jax.Array:
  """TaylorGLO θs (``float[K, 8]``) rescaled to cross-entropy's effective learning rate
  at ``logits``: θ2 … θ7 multiplied by :func:`normalization_factors`."""
  thetas = jnp.asarray(thetas, jnp.float32)
  loss_fn = lambda th, z, x: losses.taylorglo(th, z, x, class_reduction=class_reduction)
  factors = normalization_factors(loss_fn, thetas, logits, labels)
  return thetas.at[:, 2:].multiply(factors[:, None])


def split_learning_rate(x) -> tuple[jax.Array, jax.Array]:
  """``x: float[K, d + 1]`` → ``(x[:, :d], learning-rate scales exp(x[:, d]))``."""
  x = jnp.asarray(x, jnp.float32)
  return x[:, :-1], jnp.exp(x[:, -1])


def with_learning_rate(loss_params, scales: Optional[jax.Array]):
  """``ScaledLearningRate(loss_params, scales)``, or ``loss_params`` if ``scales`` is
  None (no co-evolved rate)."""
  if scales is None:
    return loss_params
  return ScaledLearningRate(loss_params, jnp.asarray(scales, jnp.float32))


def describe(normalize_scale: bool, tune_learning_rate: bool) -> str:
  """A log phrase for the options in use ('' if none)."""
  parts = []
  if normalize_scale:
    parts.append("scale-normalized candidates (effective lr at init = cross-entropy's)")
  if tune_learning_rate:
    parts.append("learning rate co-evolved")
  return "; ".join(parts)


def as_float_list(x) -> list:
  """A JSON-able list of floats."""
  return np.asarray(x, np.float64).tolist()
