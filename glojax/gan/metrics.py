"""Image-quality metrics of the GAN search: SSIM and perceptual distance.

Dissertation §7.4.2 scores a candidate by ``17 · SSIM − perceptual distance`` on held-out
pairs, the perceptual distance being the L1 distance between VGG-16 ImageNet embeddings.
VGG-16 weights cannot be downloaded on an offline machine, so the embedding network here
is configurable: any :mod:`glojax.models` classifier, trained once on the same data
(:func:`train_embedding`); its embeddings are the outputs of every ``Conv`` and
``Dense`` layer except the logits. The same distance, used as a training loss, is
pix2pix-HD's additive perceptual loss.

SSIM is dm-pix's (``dm_pix.ssim``: Gaussian window 11, σ 1.5, Wang et al. 2004).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import dm_pix
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class Embedding:
  """A trained classifier whose layer outputs embed images.

  Attributes:
    model: the flax classifier.
    variables: its variables (``{"params": ...}``), passed to compiled code as an
      argument (never closed over).
    name: the model's registry name.
    test_accuracy: its accuracy on the source data's test split (a sanity check).
  """
  model: nn.Module
  variables: Any
  name: str
  test_accuracy: float

  def features(self, variables, images) -> list:
    """Embeddings of ``images: float32[B, H, W, C]`` in [0, 1].

    Returns:
      A list of ``float32[B, ...]`` arrays, one per ``Conv``/``Dense`` layer other than
      the logits, in a fixed order.
    """
    logits, state = self.model.apply(
        variables, images, train=False,
        capture_intermediates=lambda m, method: isinstance(m, (nn.Conv, nn.Dense)))
    leaves = jax.tree_util.tree_leaves(state["intermediates"])
    return [x for x in leaves if x is not logits and x.shape != logits.shape]


def perceptual_distance(embedding: Embedding, variables, a, b) -> jax.Array:
  r"""Per-example L1 distance between the embeddings of two image batches.

  .. math:: PD(a, b) = \sum_l \operatorname{mean} |\phi_l(a) - \phi_l(b)|

  Args:
    embedding: the :class:`Embedding`; ``variables`` its variables (traced).
    a, b: ``float32[B, H, W, C]`` images in [0, 1].

  Returns:
    ``float32[B]`` (embedding units; 0 for identical images).

  References:
    Dissertation §7.4.2 (L1 between VGG-16 embeddings); Wang et al. 2018 (pix2pix-HD
    VGG loss: per-layer mean L1, summed).
  """
  fa = embedding.features(variables, a)
  fb = embedding.features(variables, b)
  return sum(jnp.mean(jnp.abs(x - y).reshape(x.shape[0], -1), axis=1)
             for x, y in zip(fa, fb))


def ssim(a, b) -> jax.Array:
  """Per-example SSIM of ``float32[B, H, W, C]`` images in [0, 1] (``float32[B]``)."""
  return dm_pix.ssim(a, b, max_val=1.0)


def embedding_model(model_name: str, options, num_classes: int, image_shape) -> nn.Module:
  """The flax classifier of an embedding network.

  Raises:
    ValueError: for an unknown model or option, or a model with batch norm.
  """
  from glojax import models as models_lib
  # Lists (from JSON configs) become tuples: flax modules must be hashable.
  options = {k: tuple(v) if isinstance(v, list) else v for k, v in (options or {}).items()}
  model = models_lib.get(model_name, num_classes=num_classes, **options)
  if models_lib.has_batch_norm(model, tuple(image_shape)):
    raise ValueError(f"embedding model {model_name!r} has batch norm; pick one without "
                     "(e.g. small_cnn, mnist_cnn, mlp)")
  return model


def train_embedding(images, labels, validation, test, *, model_name: str = "small_cnn",
                    options=None, steps: int = 1000, batch_size: int = 100,
                    learning_rate: float = 0.1, key=None) -> Embedding:
  """Trains the embedding classifier with cross-entropy (SGD, momentum 0.9), once per run.

  Args:
    images, labels: training data, ``float32[N, H, W, C]`` in [0, 1] and ``int32[N]``.
    validation, test: ``(images, labels)`` pairs (test accuracy is reported).
    model_name: a :func:`glojax.models.names` classifier without batch norm.
    options: the model's options (e.g. ``{"features": (16, 32)}``).
    steps, batch_size, learning_rate: SGD schedule (``steps=0``: the untrained,
      randomly initialized network, whose features are a known weaker baseline).
    key: PRNG key of weights and batches (default ``PRNGKey(0)``).

  Returns:
    The trained :class:`Embedding`.

  Raises:
    ValueError: for an unknown model or option, a model with batch norm, or
      ``steps < 0``.
  """
  from glojax import data as data_lib
  from glojax import losses
  from glojax.train.trainer import TrainConfig, Trainer
  if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
    raise ValueError(f"embedding steps must be an integer >= 0, got {steps!r}")
  key = jax.random.PRNGKey(0) if key is None else key
  num_classes = int(max(np.max(labels), np.max(test[1]))) + 1
  model = embedding_model(model_name, options, num_classes, images.shape[1:])
  split = lambda x, y: data_lib.Split(np.asarray(x, np.float32), np.asarray(y, np.int32))
  dataset = data_lib.Dataset("embedding", split(images, labels), split(*validation),
                             split(*test), num_classes)
  config = TrainConfig(steps=max(int(steps), 1), batch_size=min(batch_size, len(labels)),
                       learning_rate=learning_rate, momentum=0.9, steps_per_call=10,
                       loop="python")
  if steps == 0:
    params = _init_program(model, tuple(images.shape[1:]))(key)
    return Embedding(model, {"params": params}, model_name, float("nan"))
  trainer = Trainer(model, dataset, lambda p, lg, lb: losses.cross_entropy(lg, lb), config)
  state = jax.jit(trainer.init)(key)
  chunk = jax.jit(functools.partial(trainer.train_chunk, num_steps=config.steps_per_call))
  for _ in range(steps // config.steps_per_call):
    state = chunk(state, (), trainer.data)
  if steps % config.steps_per_call:
    state = jax.jit(functools.partial(trainer.train_chunk,
                                      num_steps=steps % config.steps_per_call))(
                                          state, (), trainer.data)
  correct = 0
  evaluate = jax.jit(trainer.eval_batch)
  for x, y, mask in trainer.eval_batches("test"):
    correct += int(evaluate(state.params, x, y, mask)["correct"])
  return Embedding(model, {"params": state.params}, model_name,
                   correct / len(dataset.test))


@functools.lru_cache(maxsize=8)
def _init_program(model: nn.Module, image_shape: tuple):
  """A compiled ``key -> params`` of ``model`` (cached: it compiles slowly on CPU)."""
  return jax.jit(lambda key: model.init(key, jnp.zeros((1,) + image_shape),
                                        train=False)["params"])
