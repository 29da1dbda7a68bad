"""Run in a subprocess with XLA_FLAGS=--xla_force_host_platform_device_count=2 (see
tests/test_parallel.py): prints one JSON line comparing 1-device and 2-device runs."""

import json
import sys
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from glojax import data, models
from glojax.data import Dataset, Split
from glojax.losses import core
from glojax.train import parallel
from glojax.train.population import evaluate_population
from glojax.train.trainer import Trainer, TrainConfig


class TinyBNNet(nn.Module):
  """conv 3×3·8 → BatchNorm → ReLU → pool → dense: batch norm at the smallest cost."""
  num_classes: int = 10

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = nn.Conv(8, (3, 3), use_bias=False)(x)
    x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9)(x))
    x = nn.max_pool(x, (2, 2), strides=(2, 2)).reshape((x.shape[0], -1))
    return nn.Dense(self.num_classes)(x)


def tiny_dataset():
  full = data.load("mnist5k")
  take = lambda s, n: Split(s.images[:n, ::2, ::2], s.labels[:n])  # 14×14, fast
  return Dataset("tiny", take(full.train, 256), take(full.validation, 64),
                 take(full.test, 64), 10)


def main():
  assert len(jax.devices()) == 2, jax.devices()
  t0 = time.time()
  ds = tiny_dataset()
  ce = lambda p, logits, labels: core.cross_entropy(logits, labels)
  out = {}
  # Data parallel: a tiny ResNet with batch norm (global-batch statistics) + augmentation.
  model = TinyBNNet()
  cfg = TrainConfig(steps=4, batch_size=16, learning_rate=0.05, momentum=0.9,
                    weight_decay=5e-4, steps_per_call=1, eval_batch_size=32,
                    augment="pad_crop=2,flip,normalize=per_channel", loop="python")
  trainer = Trainer(model, ds, ce, cfg)
  curves = {}
  for n in (1, 2):
    dp = parallel.DataParallel(trainer, parallel.make_mesh(n))
    state, hist = dp.fit(jnp.zeros(1), jax.random.PRNGKey(3), eval_every=2)
    curves[n] = hist
    out[f"dp{n}_sharding"] = str(state.params["Dense_0"]["kernel"].sharding.spec)
    if n == 2:  # the compiled data-parallel step must reduce gradients across devices
      hlo = dp._chunks[1].lower(state, jnp.zeros(1), dp.data).compile().as_text()
      out["dp2_all_reduce"] = "all-reduce" in hlo
  out["dp_seconds"] = time.time() - t0
  out["dp_train_loss"] = [curves[1]["train_loss"], curves[2]["train_loss"]]
  out["dp_eval_accuracy"] = [curves[1]["eval_accuracy"], curves[2]["eval_accuracy"]]
  out["dp_test"] = [curves[1]["final"]["test"], curves[2]["final"]["test"]]
  # Population sharding: 3 candidates (padded to 4) of an MLP, vmap vs sharded.
  mlp = models.get("mlp", num_classes=10, hidden=(32,))
  pt = Trainer(mlp, ds, lambda p, l, y: core.taylorglo(p, l, y),
               TrainConfig(steps=4, batch_size=32, learning_rate=0.5, steps_per_call=2,
                           loop="python"))
  thetas = jax.random.normal(jax.random.PRNGKey(0), (3, 8))
  keys = jax.random.split(jax.random.PRNGKey(1), 3)
  ref = evaluate_population(pt, thetas, keys, strategy="vmap", nan_retries=0)
  shd = evaluate_population(pt, thetas, keys, strategy="sharded", nan_retries=0)
  from glojax.train.population import _programs
  sharded_keys = parallel._global_array(
      np.asarray(np.concatenate([keys, keys[-1:]])),
      jax.sharding.NamedSharding(parallel.make_mesh(axis_name="pop"),
                                 jax.sharding.PartitionSpec("pop")))
  out["pop_state_sharding"] = str(_programs(pt, "vmap").init(sharded_keys).key.sharding.spec)
  out["pop_fitness"] = [ref.fitness.tolist(), shd.fitness.tolist()]
  out["pop_train_loss"] = [ref.metrics["train_loss"].tolist(),
                           shd.metrics["train_loss"].tolist()]
  out["total_seconds"] = time.time() - t0
  print(json.dumps(out))


if __name__ == "__main__":
  sys.exit(main())
