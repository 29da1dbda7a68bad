"""Flax (linen) models, selectable by name from configs.

Every model is called as ``model.apply(variables, images, train=bool, rngs=...)`` and
returns ``logits: float32[batch, num_classes]``; ``images`` are ``float32[batch, H, W, C]``.
"""

from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp

from glojax.models.pooling import relu_max_pool


class MLP(nn.Module):
  """Multilayer perceptron on flattened images (ReLU hidden layers)."""
  num_classes: int = 10
  hidden: Sequence[int] = (128,)

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = x.reshape((x.shape[0], -1))
    for width in self.hidden:
      x = nn.relu(nn.Dense(width)(x))
    return nn.Dense(self.num_classes)(x)


class SmallCNN(nn.Module):
  """A small CNN for quick CPU runs: conv3×3·8, pool, conv3×3·16, pool, fc 64."""
  num_classes: int = 10
  features: Sequence[int] = (8, 16)
  dense: int = 64

  @nn.compact
  def __call__(self, x, train: bool = False):
    for f in self.features:
      x = relu_max_pool(nn.Conv(f, (3, 3))(x), (2, 2), strides=(2, 2))
    x = x.reshape((x.shape[0], -1))
    x = nn.relu(nn.Dense(self.dense)(x))
    return nn.Dense(self.num_classes)(x)


class MnistCNN(nn.Module):
  """The GLO/TaylorGLO papers' MNIST basic CNN (``docs/models_and_data.md``).

  conv 5×5·32 → max-pool 2×2 → conv 5×5·64 → max-pool 2×2 → fc 1024 → dropout 0.4 →
  fc ``num_classes``; ReLU activations, 'SAME' padding (the TensorFlow tutorial model
  the papers use). ~3.27 M parameters for 28×28×1 inputs.

  References: GLO paper §IV-A; dissertation §4.3.
  """
  num_classes: int = 10
  dropout_rate: float = 0.4

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = relu_max_pool(nn.Conv(32, (5, 5))(x), (2, 2), strides=(2, 2))
    x = relu_max_pool(nn.Conv(64, (5, 5))(x), (2, 2), strides=(2, 2))
    x = x.reshape((x.shape[0], -1))
    x = nn.relu(nn.Dense(1024)(x))
    x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
    return nn.Dense(self.num_classes)(x)


_MODELS: dict[str, Callable[..., nn.Module]] = {
    "mlp": MLP,
    "small_cnn": SmallCNN,
    "mnist_cnn": MnistCNN,
}

# Kind of each model, used by strategy="auto" (vmap over convs is slow on CPU).
MODEL_KINDS: dict[str, str] = {"mlp": "dense", "small_cnn": "conv", "mnist_cnn": "conv"}


def names() -> list[str]:
  """The registered model names."""
  return sorted(_MODELS)


def register(name: str, kind: str = "conv"):
  """Decorator registering a flax module class under ``name`` (``kind``: dense|conv)."""
  def wrap(cls):
    _MODELS[name] = cls
    MODEL_KINDS[name] = kind
    return cls
  return wrap


def get(name: str, *, num_classes: int, **kwargs) -> nn.Module:
  """Builds a model by name.

  Args:
    name: a registered name (see :func:`names`).
    num_classes: size of the output layer.
    **kwargs: module fields (e.g. ``hidden=(256,)`` for ``mlp``).

  Raises:
    ValueError: for an unknown name or an unknown module field.
  """
  accepted = options(name)
  unknown = set(kwargs) - set(accepted)
  if unknown:
    raise ValueError(f"model {name!r} has no option(s) {sorted(unknown)}; "
                     f"options: {accepted}")
  return _MODELS[name](num_classes=num_classes, **kwargs)


def options(name: str) -> list[str]:
  """The options (module fields besides ``num_classes``) model ``name`` accepts, sorted.

  Raises:
    ValueError: for an unknown name.
  """
  if name not in _MODELS:
    raise ValueError(f"unknown model {name!r}; known models: {names()}")
  fields = set(getattr(_MODELS[name], "__dataclass_fields__", {}))
  return sorted(fields - {"parent", "name", "num_classes"})


def count_params(variables) -> int:
  """Number of scalars in the ``params`` collection of ``variables``.

  Works on concrete arrays and on ``jax.ShapeDtypeStruct`` trees (from
  ``jax.eval_shape``), so big models can be counted without allocating them.
  """
  import jax
  import numpy as np
  params = variables.get("params", variables)
  return int(sum(int(np.prod(p.shape)) for p in jax.tree_util.tree_leaves(params)))


def has_batch_norm(model: nn.Module, image_shape: tuple[int, ...]) -> bool:
  """Whether ``model`` keeps a ``batch_stats`` collection (for ``[H, W, C]`` images)."""
  import jax
  variables = jax.eval_shape(
      lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1,) + tuple(image_shape)),
                         train=False))
  return "batch_stats" in variables


# The CIFAR model zoo (docs/models_and_data.md), registered after the helpers above exist.
from glojax.models import cifar as _cifar  # noqa: E402
from glojax.models import pyramidnet as _pyramidnet  # noqa: E402
from glojax.models import resnet as _resnet  # noqa: E402
from glojax.models import wrn as _wrn  # noqa: E402

for _name, _cls in {
    "glo_cifar_cnn": _cifar.GloCifarCNN,
    "alexnet": _cifar.AlexNet,
    "allcnn_c": _cifar.AllCNNC,
    "resnet": _resnet.ResNet,
    "resnet20": _resnet.ResNet20,
    "resnet32": _resnet.ResNet32,
    "resnet56": _resnet.ResNet56,
    "preact_resnet20": _resnet.PreActResNet20,
    "wrn": _wrn.WideResNet,
    "wrn16_8": _wrn.WRN16_8,
    "wrn28_5": _wrn.WRN28_5,
    "wrn28_10": _wrn.WRN28_10,
    "pyramidnet": _pyramidnet.PyramidNet,
    "pyramidnet110_a48": _pyramidnet.PyramidNet110A48,
}.items():
  register(_name, "conv")(_cls)

# The NLFS surrogates (NLFS paper §3.5.1).
from glojax.models import nlfs as _nlfs  # noqa: E402

register("nlfs_convnet", "conv")(_nlfs.NLFSConvNet)
register("resnet9v2", "conv")(_nlfs.ResNet9V2)
from glojax.models import efficientnet as _efficientnet  # noqa: E402

register("efficientnetv2_s", "conv")(_efficientnet.EfficientNetV2S)
