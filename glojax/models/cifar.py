"""Plain (non-residual) CIFAR models: the GLO CIFAR-10 CNN, AlexNet, AllCNN-C.

All take ``images: float32[batch, H, W, C]`` and return ``logits: float32[batch,
num_classes]``; none uses batch norm. AllCNN-C can grow two auxiliary heads, whose
logits are sown into the ``"intermediates"`` collection under ``"aux_logits"`` (the
trainer collects them; the model's return value stays the main logits).
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from glojax.models.pooling import max_pool, relu_max_pool


def local_response_norm(x, depth_radius: int = 4, bias: float = 1.0,
                        alpha: float = 0.001 / 9.0, beta: float = 0.75):
  """Local response normalization across channels (``tf.nn.lrn`` semantics).

  ``out[..., c] = x[..., c] / (bias + alpha * sum_{|d - c| <= r} x[..., d]^2)^beta``.

  Args:
    x: ``float[..., C]`` activations (channels last).
    depth_radius: half-width ``r`` of the channel window (window ``2r + 1``).
    bias, alpha, beta: the normalization constants; defaults are the GLO CIFAR-10
      CNN's ``k = 1, alpha = 0.001/9, beta = 0.75`` (dissertation §3.2.1).

  Returns:
    An array of ``x``'s shape and dtype.

  References: Krizhevsky et al. 2012 §3.3; dissertation §3.2.1.
  """
  sq = jnp.square(x)
  channels = x.shape[-1]
  pad = [(0, 0)] * (x.ndim - 1) + [(depth_radius, depth_radius)]
  sq = jnp.pad(sq, pad)
  window = sum(sq[..., d:d + channels] for d in range(2 * depth_radius + 1))
  return x / jnp.power(bias + alpha * window, beta)


class GloCifarCNN(nn.Module):
  """The GLO paper's CIFAR-10 CNN (TensorFlow's CIFAR-10 tutorial model).

  conv 5×5·64 + ReLU → max-pool 3×3/2 → LRN → conv 5×5·64 + ReLU → LRN → max-pool
  3×3/2 → fc 384 + ReLU → fc 192 (linear, as printed) → fc ``num_classes``. Trained on
  24×24 crops with per-image standardization (augmentation spec
  ``"crop=24,flip,brightness=63,contrast=0.2:1.8,normalize=per_image"``); 1,068,298
  parameters at 24×24×3 (the TensorFlow tutorial's own count).

  References: GLO paper §IV-B; dissertation §3.2.1.
  """
  num_classes: int = 10

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = relu_max_pool(nn.Conv(64, (5, 5))(x), (3, 3), strides=(2, 2), padding="SAME")
    x = local_response_norm(x)
    x = nn.relu(nn.Conv(64, (5, 5))(x))
    x = local_response_norm(x)
    x = max_pool(x, (3, 3), strides=(2, 2), padding="SAME")
    x = x.reshape((x.shape[0], -1))
    x = nn.relu(nn.Dense(384)(x))
    x = nn.Dense(192)(x)
    return nn.Dense(self.num_classes)(x)


class AlexNet(nn.Module):
  """AlexNet, CIFAR variant (five convs, three max-pools, one linear classifier).

  conv 11×11·64 stride 4 (pad 5) → pool 2 → conv 5×5·192 → pool 2 → conv 3×3·384 →
  conv 3×3·256 → conv 3×3·256 → pool 2 → fc ``num_classes``; ReLU after every conv.
  This is the widely used CIFAR adaptation (bearpaw/pytorch-classification,
  ``models/cifar/alexnet.py``), 2,472,266 parameters for 10 classes (its README: 2.47 M,
  22.78 % CIFAR-10 error, i.e. the ~0.76-0.77 accuracy of dissertation Table 5.1).

  References: Krizhevsky et al. 2012; dissertation §3.2.2 (Figure 3.2).
  """
  num_classes: int = 10

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = relu_max_pool(nn.Conv(64, (11, 11), strides=(4, 4), padding=5)(x), (2, 2),
                      strides=(2, 2))
    x = relu_max_pool(nn.Conv(192, (5, 5), padding=2)(x), (2, 2), strides=(2, 2))
    x = nn.relu(nn.Conv(384, (3, 3), padding=1)(x))
    x = nn.relu(nn.Conv(256, (3, 3), padding=1)(x))
    x = relu_max_pool(nn.Conv(256, (3, 3), padding=1)(x), (2, 2), strides=(2, 2))
    x = x.reshape((x.shape[0], -1))
    return nn.Dense(self.num_classes)(x)


class AllCNNC(nn.Module):
  """All-convolutional network, model C (Springenberg et al. 2015, Table 2).

  dropout 0.2 on the input → conv 3×3·96 ×2 → conv 3×3·96 stride 2 → dropout 0.5 →
  conv 3×3·192 ×2 → conv 3×3·192 stride 2 → dropout 0.5 → conv 3×3·192 ('VALID') →
  conv 1×1·192 → conv 1×1·``num_classes`` → global average pool. ReLU after every conv
  but the last. 1,369,738 parameters for 10 classes (paper: 1.4 M; dissertation §7.1.2:
  1.37 M).

  With ``aux_heads=True`` two auxiliary classifiers follow the two inner dropout layers
  (dissertation §7.1.1, Figure 7.1): conv 1×1·96 + ReLU → conv 1×1·``num_classes`` +
  ReLU (as printed) → global average pool. Their logits are sown as
  ``intermediates/aux_logits`` (a tuple of two ``float32[batch, num_classes]``), in the
  order they occur; the model still returns the main logits. 1,399,518 parameters
  (dissertation: 1.40 M).

  Attributes:
    num_classes: output size.
    aux_heads: add the two auxiliary classifiers.
    input_dropout, hidden_dropout: dropout rates (0.2 and 0.5 in the paper).
  """
  num_classes: int = 10
  aux_heads: bool = False
  input_dropout: float = 0.2
  hidden_dropout: float = 0.5

  @nn.compact
  def __call__(self, x, train: bool = False):
    def conv(f, k=3, s=1, pad="SAME"):
      return nn.Conv(f, (k, k), strides=(s, s), padding=pad)

    def aux(h):
      h = nn.relu(conv(96, 1)(h))
      h = nn.relu(conv(self.num_classes, 1)(h))
      self.sow("intermediates", "aux_logits", jnp.mean(h, axis=(1, 2)))

    x = nn.Dropout(self.input_dropout, deterministic=not train)(x)
    x = nn.relu(conv(96)(x))
    x = nn.relu(conv(96)(x))
    x = nn.relu(conv(96, s=2)(x))
    x = nn.Dropout(self.hidden_dropout, deterministic=not train)(x)
    if self.aux_heads:
      aux(x)
    x = nn.relu(conv(192)(x))
    x = nn.relu(conv(192)(x))
    x = nn.relu(conv(192, s=2)(x))
    x = nn.Dropout(self.hidden_dropout, deterministic=not train)(x)
    if self.aux_heads:
      aux(x)
    x = nn.relu(conv(192, pad="VALID")(x))
    x = nn.relu(conv(192, 1)(x))
    x = conv(self.num_classes, 1)(x)
    return jnp.mean(x, axis=(1, 2))
