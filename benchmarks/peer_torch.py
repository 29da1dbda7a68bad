r"""The PyTorch peer: TaylorGLO candidates trained one at a time, as the original code does.

The authors' implementation evaluates a population by training each candidate loss on
its own network, one after another, with an ordinary framework training loop. This
module is that loop in PyTorch (CPU wheel), with the same models, data, batch size,
optimizer and step count as glojax's population trainer, so that
``benchmarks/population.py --peer=torch`` can time both side by side.

Usage (needs the optional extra: ``pip install -e ".[bench]"``)::

  python benchmarks/peer_torch.py --model=small_cnn --k=8 --steps=20

prints candidate-steps/s of training and the validation time per candidate, e.g.
``small_cnn K=8: train 215.3 cand-steps/s, eval 21.4 ms/candidate, accuracy 0.31``.

What one candidate does (:func:`train_candidate`): build the model (PyTorch's default
initialization), ``torch.optim.SGD(lr)``, then ``steps`` times: draw ``batch_size``
indices uniformly with replacement from the train split, forward, TaylorGLO loss
(:func:`taylorglo_loss`, the same formula as ``glojax.losses.taylorglo``), backward,
step; then evaluate accuracy on the validation split in batches of 1,000 under
``torch.no_grad()``.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

TORCH_MISSING = ("PyTorch is not installed; the peer benchmark needs the optional extra: "
                 "pip install -e \".[bench]\" (CPU wheel: pip install torch --index-url "
                 "https://download.pytorch.org/whl/cpu)")
try:  # optional: the `bench` extra
  import torch
  from torch import nn
except ImportError:  # pragma: no cover - depends on the environment
  torch = nn = None

MODELS = ("mlp", "small_cnn", "mnist_cnn")


def available() -> bool:
  """Whether PyTorch can be imported (the peer is optional)."""
  return torch is not None


def _require_torch():
  if torch is None:
    raise RuntimeError(TORCH_MISSING)


def build_model(name: str, num_classes: int = 10, image_shape=(28, 28, 1)):
  """The PyTorch twin of ``glojax.models.get(name)`` (same layers, shapes, padding).

  * ``mlp``: flatten → fc 128 + ReLU → fc ``num_classes`` (glojax ``hidden=(128,)``);
  * ``small_cnn``: conv 3×3·8 'same' + ReLU → max-pool 2 → conv 3×3·16 + ReLU → max-pool
    2 → fc 64 + ReLU → fc;
  * ``mnist_cnn``: conv 5×5·32 + ReLU → pool → conv 5×5·64 + ReLU → pool → fc 1024 + ReLU
    → dropout 0.4 → fc (the papers' MNIST CNN, 3,274,634 parameters).

  Raises:
    ValueError: for an unknown name.
  """
  _require_torch()
  h, w, c = image_shape
  if name == "mlp":
    return nn.Sequential(nn.Flatten(), nn.Linear(h * w * c, 128), nn.ReLU(),
                         nn.Linear(128, num_classes))
  if name == "small_cnn":
    return nn.Sequential(
        nn.Conv2d(c, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(16 * (h // 4) * (w // 4), 64), nn.ReLU(), nn.Linear(64, num_classes))
  if name == "mnist_cnn":
    return nn.Sequential(
        nn.Conv2d(c, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(64 * (h // 4) * (w // 4), 1024), nn.ReLU(), nn.Dropout(0.4),
        nn.Linear(1024, num_classes))
  raise ValueError(f"peer_torch: unknown model {name!r}; known: {MODELS}")


def taylorglo_loss(theta, logits, labels):
  r"""TaylorGLO loss per example, ``glojax.losses.taylorglo``'s formula in PyTorch.

  ``f(x, y) = θ2 (y-θ1) + θ3 (y-θ1)² + θ4 (y-θ1)³ + θ5 (x-θ0)(y-θ1) + θ6 (x-θ0)(y-θ1)²
  + θ7 (x-θ0)² (y-θ1)`` with ``y = softmax(logits)``, ``x`` = one-hot labels;
  ``L = -mean_classes f``. Dissertation eq. 5.7 (factorial-free layout).

  Args:
    theta: ``float32[8]`` tensor.
    logits, labels: ``float32[batch, n]`` tensors (labels one-hot).

  Returns:
    ``float32[batch]`` tensor.
  """
  y = torch.softmax(logits, dim=-1)
  dx, dy = labels - theta[0], y - theta[1]
  f = (theta[2] * dy + theta[3] * dy ** 2 + theta[4] * dy ** 3 + theta[5] * dx * dy
       + theta[6] * dx * dy ** 2 + theta[7] * dx ** 2 * dy)
  return -f.mean(dim=-1)


@dataclasses.dataclass
class TorchData:
  """The splits as contiguous NCHW float32 tensors (converted once, outside timing)."""
  train_images: "torch.Tensor"
  train_labels: "torch.Tensor"
  val_images: "torch.Tensor"
  val_labels: "torch.Tensor"
  num_classes: int
  image_shape: tuple

  @classmethod
  def from_dataset(cls, dataset) -> "TorchData":
    _require_torch()
    nchw = lambda a: torch.from_numpy(np.ascontiguousarray(
        np.transpose(np.asarray(a, np.float32), (0, 3, 1, 2))))
    return cls(nchw(dataset.train.images),
               torch.from_numpy(np.asarray(dataset.train.labels, np.int64)),
               nchw(dataset.validation.images),
               torch.from_numpy(np.asarray(dataset.validation.labels, np.int64)),
               dataset.num_classes, tuple(dataset.image_shape))


@dataclasses.dataclass
class CandidateResult:
  train_s: float      # wall time of the training loop (model built, before evaluation)
  eval_s: float       # wall time of the validation pass
  accuracy: float     # validation accuracy in [0, 1]
  last_loss: float    # candidate loss on the last batch


def train_candidate(model_name: str, theta, tdata: TorchData, *, steps: int,
                    batch_size: int = 100, learning_rate: float = 0.01, seed: int = 0,
                    eval_batch_size: int = 1000) -> CandidateResult:
  """Trains one candidate loss ``theta: float[8]`` and evaluates it on validation."""
  _require_torch()
  torch.manual_seed(seed)
  gen = torch.Generator().manual_seed(seed)
  model = build_model(model_name, tdata.num_classes, tdata.image_shape)
  opt = torch.optim.SGD(model.parameters(), lr=learning_rate)
  theta = torch.tensor(np.array(theta, np.float32))
  eye = torch.eye(tdata.num_classes)
  n = tdata.train_labels.shape[0]
  model.train()
  t0 = time.perf_counter()
  for _ in range(steps):
    idx = torch.randint(n, (batch_size,), generator=gen)
    logits = model(tdata.train_images[idx])
    loss = taylorglo_loss(theta, logits, eye[tdata.train_labels[idx]]).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
  last_loss = float(loss.detach())
  t1 = time.perf_counter()
  model.eval()
  correct = 0
  with torch.no_grad():
    for s in range(0, tdata.val_labels.shape[0], eval_batch_size):
      logits = model(tdata.val_images[s:s + eval_batch_size])
      correct += int((logits.argmax(-1) == tdata.val_labels[s:s + eval_batch_size]).sum())
  t2 = time.perf_counter()
  return CandidateResult(t1 - t0, t2 - t1, correct / tdata.val_labels.shape[0], last_loss)


def train_population(model_name: str, thetas, tdata: TorchData, *, steps: int,
                     batch_size: int = 100, learning_rate: float = 0.01,
                     seed: int = 0) -> list[CandidateResult]:
  """Trains ``thetas: float[K, 8]`` one candidate after another (the original loop)."""
  return [train_candidate(model_name, th, tdata, steps=steps, batch_size=batch_size,
                          learning_rate=learning_rate, seed=seed + i)
          for i, th in enumerate(np.asarray(thetas))]


def set_threads(threads: int) -> None:
  """Sets PyTorch's intra-op threads (may change between runs in one process)."""
  _require_torch()
  torch.set_num_threads(threads)


def main(argv):
  from glojax import data
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  f = flags.FLAGS
  if not available():
    print(f"error: {TORCH_MISSING}", file=sys.stderr)
    return 2
  set_threads(f.threads)
  tdata = TorchData.from_dataset(data.load("mnist5k", seed=0))
  thetas = np.random.default_rng(0).normal(size=(f.k, 8)).astype(np.float32) * 1.2
  for model_name in f.models:
    rows = train_population(model_name, thetas, tdata, steps=f.steps)
    train_s = sum(r.train_s for r in rows)
    print(f"{model_name} K={f.k}: train {f.k * f.steps / train_s:.1f} cand-steps/s, eval "
          f"{1e3 * np.mean([r.eval_s for r in rows]):.1f} ms/candidate, accuracy "
          f"{np.mean([r.accuracy for r in rows]):.2f}", flush=True)
  return 0


if __name__ == "__main__":
  flags.DEFINE_list("models", list(MODELS), f"Models to train, from {MODELS}.")
  flags.DEFINE_integer("k", 8, "Candidates (trained one at a time).")
  flags.DEFINE_integer("steps", 20, "SGD steps per candidate (batch 100).")
  flags.DEFINE_integer("threads", 2, "torch.set_num_threads.")
  app.run(main)
