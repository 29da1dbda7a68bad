"""Model zoo: parameter counts against published values, batch norm, aux heads, trainer."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from glojax import data, models
from glojax.losses import core
from glojax.models.cifar import local_response_norm
from glojax.train.trainer import Trainer, TrainConfig, TrainState

class TinyBN(nn.Module):
  """conv 3×3·4 → BatchNorm → ReLU → dense (cheap to compile; BN semantics only)."""
  num_classes: int = 10

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = nn.Conv(4, (3, 3), use_bias=False)(x)
    x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9)(x))
    return nn.Dense(self.num_classes)(x.reshape((x.shape[0], -1)))


class TinyAux(nn.Module):
  """A dense net that sows two auxiliary logits like AllCNN-C(aux_heads=True)."""
  num_classes: int = 10
  aux_heads: bool = True

  @nn.compact
  def __call__(self, x, train: bool = False):
    h = nn.relu(nn.Dense(8)(x.reshape((x.shape[0], -1))))
    for _ in range(2):
      self.sow("intermediates", "aux_logits", nn.Dense(self.num_classes)(h))
    return nn.Dense(self.num_classes)(h)


# (name, options, num_classes, image side, exact count, published millions, source).
# Exact counts are ours; each equals the published figure rounded as published.
PARAM_COUNTS = [
    ("resnet20", {}, 10, 32, 269_722, 0.27, "He et al. 2016, Table 6"),
    ("resnet32", {}, 10, 32, 464_154, 0.46, "He et al. 2016, Table 6"),
    ("resnet56", {}, 10, 32, 853_018, 0.85, "He et al. 2016, Table 6"),
    ("preact_resnet20", {}, 10, 32, 269_722, 0.27, "same layers as ResNet-20"),
    ("wrn16_8", {}, 10, 32, 10_961_370, 11.0, "Zagoruyko & Komodakis 2016, Table 1"),
    ("wrn28_10", {}, 10, 32, 36_479_194, 36.5, "Zagoruyko & Komodakis 2016, Table 1"),
    ("allcnn_c", {}, 10, 32, 1_369_738, 1.37, "dissertation §7.1.2 (Springenberg: 1.4 M)"),
    ("allcnn_c", {"aux_heads": True}, 10, 32, 1_399_518, 1.40, "dissertation §7.1.2"),
    ("pyramidnet110_a48", {}, 100, 32, 1_778_556, 1.7, "Han et al. 2017, Table 4 (1.7 M)"),
    ("alexnet", {}, 10, 32, 2_472_266, 2.47, "bearpaw/pytorch-classification README"),
    ("glo_cifar_cnn", {}, 10, 24, 1_068_298, 1.07, "TensorFlow CIFAR-10 tutorial"),
]


def _shapes(model, side, channels=3):
  return jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0),
                                           jnp.zeros((1, side, side, channels)), train=False))


@pytest.mark.parametrize("name,options,num_classes,side,exact,published,source",
                         PARAM_COUNTS, ids=[f"{p[0]}{'+aux' if p[1] else ''}"
                                            for p in PARAM_COUNTS])
def test_parameter_counts_match_published(name, options, num_classes, side, exact,
                                          published, source):
  model = models.get(name, num_classes=num_classes, **options)
  count = models.count_params(_shapes(model, side))
  assert count == exact
  # PyramidNet's "1.7 M" is 1.78 M truncated; the others are rounded.
  digits = len(str(published).split(".")[1])
  rounded = np.floor(count / 1e6 * 10) / 10 if name.startswith("pyramid") else round(
      count / 1e6, digits)
  assert rounded == pytest.approx(published), source


def test_wrn_28_5_count():
  assert models.count_params(_shapes(models.get("wrn28_5", num_classes=10), 32)) == 9_132_634


def test_zoo_is_registered_as_conv():
  for name in ("glo_cifar_cnn", "alexnet", "allcnn_c", "resnet20", "resnet32", "resnet56",
               "preact_resnet20", "wrn16_8", "wrn28_5", "wrn28_10", "pyramidnet110_a48"):
    assert name in models.names()
    assert models.MODEL_KINDS[name] == "conv"


def test_bad_depth_and_options_raise():
  x = jnp.zeros((1, 8, 8, 3))
  with pytest.raises(ValueError, match="6n \\+ 2"):
    models.get("resnet", num_classes=10, depth=21).init(jax.random.PRNGKey(0), x)
  with pytest.raises(ValueError, match="6n \\+ 4"):
    models.get("wrn", num_classes=10, depth=17).init(jax.random.PRNGKey(0), x)
  with pytest.raises(ValueError, match="no option"):
    models.get("resnet20", num_classes=10, widen=3)


def test_local_response_norm_matches_definition():
  x = np.random.default_rng(0).normal(size=(2, 3, 3, 7)).astype(np.float32)
  r, k, a, b = 2, 1.0, 0.5, 0.75
  ref = np.empty_like(x)
  for c in range(7):
    s = np.sum(x[..., max(0, c - r):c + r + 1] ** 2, axis=-1)
    ref[..., c] = x[..., c] / (k + a * s) ** b
  np.testing.assert_allclose(local_response_norm(jnp.asarray(x), r, k, a, b), ref, rtol=1e-5)


def test_allcnn_aux_heads_sow_two_logits():
  model = models.get("allcnn_c", num_classes=10, aux_heads=True)
  x = jnp.ones((2, 32, 32, 3))
  v = _shapes(model, 32)
  logits, inter = jax.eval_shape(
      lambda: model.apply(model.init(jax.random.PRNGKey(0), x), x, mutable=["intermediates"]))
  aux = inter["intermediates"]["aux_logits"]
  assert logits.shape == (2, 10) and len(aux) == 2
  assert all(a.shape == (2, 10) for a in aux)
  assert set(v["params"]) - set(_shapes(models.get("allcnn_c", num_classes=10), 32)["params"])


def test_batch_norm_train_vs_eval_mode():
  model = TinyBN()
  x = jax.random.normal(jax.random.PRNGKey(1), (4, 8, 8, 3)) * 3 + 1
  v = jax.jit(lambda k: model.init(k, x, train=False))(jax.random.PRNGKey(0))
  assert set(v) == {"params", "batch_stats"}
  evaluate = jax.jit(lambda v, x: model.apply(v, x, train=False))
  train = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]))
  # Eval: running averages, so an image's logits do not depend on the rest of the batch.
  np.testing.assert_allclose(evaluate(v, x[:1]), evaluate(v, x)[:1], rtol=1e-5, atol=1e-6)
  # Train: batch statistics (batch-dependent) and running mean ← 0.9·0 + 0.1·batch mean.
  out, upd = train(v, x)
  out1, _ = train(v, x[:2])
  assert not np.allclose(out[:2], out1, atol=1e-4)
  conv = nn.Conv(4, (3, 3), use_bias=False).apply({"params": v["params"]["Conv_0"]}, x)
  np.testing.assert_allclose(upd["batch_stats"]["BatchNorm_0"]["mean"],
                             0.1 * np.asarray(conv).mean(axis=(0, 1, 2)), rtol=1e-4,
                             atol=1e-6)


def _ce(p, logits, labels):
  return core.cross_entropy(logits, labels)


@pytest.fixture(scope="module")
def tiny_cifar_like(tiny_mnist):
  """tiny_mnist at 12×12×3 (the smallest AllCNN-C input) so CIFAR models run fast."""
  def conv(s):
    return data.Split(np.repeat(s.images[:, 2:26:2, 2:26:2], 3, axis=-1), s.labels)
  return data.Dataset("tiny12", conv(tiny_mnist.train), conv(tiny_mnist.validation),
                      conv(tiny_mnist.test), 10)


def test_trainer_keeps_batch_stats_in_state(tiny_cifar_like):
  cfg = TrainConfig(steps=2, batch_size=8, learning_rate=0.05, momentum=0.9,
                    steps_per_call=1, eval_batch_size=50)
  t = Trainer(TinyBN(), tiny_cifar_like, _ce, cfg)
  assert t.has_batch_stats
  state = t.init(jax.random.PRNGKey(0))
  new = jax.jit(t.train_step)(state, jnp.zeros(0), t.data)
  changed = jax.tree_util.tree_map(lambda a, b: not np.allclose(a, b), state.batch_stats,
                                   new.batch_stats)
  assert all(jax.tree_util.tree_leaves(changed))
  images, labels, mask = t.eval_batches("validation")[0]
  out = t.eval_batch(new, images, labels, mask)
  assert 0 <= int(out["correct"]) <= int(mask.sum())
  with pytest.raises(ValueError, match="batch norm"):
    t.eval_batch(new.params, images, labels, mask)


def test_aux_heads_add_weighted_aux_losses(tiny_cifar_like):
  t = Trainer(TinyAux(), tiny_cifar_like, _ce, TrainConfig(steps=1, batch_size=4))
  assert t.has_aux_heads and not t.has_batch_stats
  state = jax.jit(t.init)(jax.random.PRNGKey(0))
  images = jnp.asarray(tiny_cifar_like.train.images[:4])
  labels = jax.nn.one_hot(tiny_cifar_like.train.labels[:4], 10)
  apply = jax.jit(lambda p, s, x, k: t._apply(p, s, x, train=True, dropout_key=k))
  logits, aux, _ = apply(state.params, state.batch_stats, images, jax.random.PRNGKey(1))
  assert logits.shape == (4, 10) and len(aux) == 2
  assert all(a.shape == (4, 10) for a in aux)
  main = float(jnp.mean(core.cross_entropy(logits, labels)))
  aux_ce = [float(jnp.mean(core.cross_entropy(a, labels))) for a in aux]
  total = float(t._objective(jnp.zeros(0), logits, aux, labels))
  assert total == pytest.approx(main + 0.3 * sum(aux_ce), rel=1e-5)
  # Separate losses per head: (main, aux1, aux2) parameter sets; here a scale per head.
  scaled = lambda p, lg, lb: p * core.cross_entropy(lg, lb)
  t2 = Trainer(t.model, tiny_cifar_like, scaled,
               TrainConfig(steps=1, batch_size=4, separate_aux_losses=True))
  total2 = float(t2._objective((1.0, 2.0, 3.0), logits, aux, labels))
  assert total2 == pytest.approx(main + 0.3 * (2 * aux_ce[0] + 3 * aux_ce[1]), rel=1e-5)
  with pytest.raises(ValueError, match="tuple of 3"):
    t2._objective(jnp.zeros(0), logits, aux, labels)


def test_schedules():
  lr = lambda **kw: Trainer._make_schedule(TrainConfig(learning_rate=0.1, steps=100, **kw))
  s = lr(schedule="step", boundaries=(10, 20), decay_factor=0.2)
  assert [float(s(i)) for i in (0, 9, 10, 19, 20)] == pytest.approx(
      [0.1, 0.1, 0.02, 0.02, 0.004])
  c = lr(schedule="cosine")
  assert float(c(0)) == pytest.approx(0.1) and float(c(50)) == pytest.approx(0.05)
  assert float(c(100)) == pytest.approx(0.0, abs=1e-7)
  w = lr(schedule="constant", warmup_steps=10)
  assert [float(w(i)) for i in (0, 5, 10, 50)] == pytest.approx([0.0, 0.05, 0.1, 0.1])
  assert lr() == 0.1


@pytest.mark.parametrize("kwargs,match", [
    ({"optimizer": "rmsprop"}, "optimizer"),
    ({"schedule": "linear"}, "schedule"),
    ({"schedule": "step"}, "boundaries"),
    ({"schedule": "step", "boundaries": (20, 10)}, "increasing"),
    ({"augment": "crop=abc"}, "bad augmentation"),
    ({"warmup_steps": -1}, "warmup"),
])
def test_bad_train_config_raises(kwargs, match):
  with pytest.raises(ValueError, match=match):
    TrainConfig(**kwargs)


def test_sgd_with_weight_decay_is_pytorch_l2():
  # One step from w: w' = w - lr (g + wd w) (coupled L2, PyTorch's SGD weight_decay).
  tx = Trainer._make_optimizer(TrainConfig(learning_rate=0.1, weight_decay=0.01))
  w = {"w": jnp.array([1.0, -2.0])}
  g = {"w": jnp.array([0.5, 0.5])}
  upd, _ = tx.update(g, tx.init(w), w)
  np.testing.assert_allclose(optax.apply_updates(w, upd)["w"],
                             [1 - 0.1 * (0.5 + 0.01), -2 - 0.1 * (0.5 - 0.02)], rtol=1e-6)
  for opt in ("adam", "adamw"):
    tx = Trainer._make_optimizer(TrainConfig(optimizer=opt, weight_decay=0.01))
    upd, _ = tx.update(g, tx.init(w), w)
    assert np.all(np.asarray(upd["w"]) < 0)


def test_existing_mlp_result_unchanged(mnist5k):
  # Pinned with the trainer of commit 3a7ebe8 (before batch norm / augmentation support).
  t = Trainer(models.get("mlp", num_classes=10), mnist5k, _ce,
              TrainConfig(steps=50, batch_size=50, learning_rate=0.1))
  m = t.train(jnp.zeros(1), jax.random.PRNGKey(0))
  assert float(m["accuracy"]) == pytest.approx(0.846)
  assert float(m["loss"]) == pytest.approx(0.77396965, rel=1e-5)


def test_scan_and_python_loops_agree_with_batch_norm_and_augmentation(tiny_cifar_like):
  # loop="scan" (the accelerator default) and loop="python" (CPU) run the same steps.
  from glojax.train.population import evaluate_population
  results = []
  for loop in ("python", "scan"):
    cfg = TrainConfig(steps=3, batch_size=8, learning_rate=0.05, momentum=0.9,
                      steps_per_call=1, loop=loop, eval_batch_size=100,
                      augment="pad_crop=2,flip,cutout=4,normalize=per_channel")
    t = Trainer(TinyBN(), tiny_cifar_like, _ce, cfg)
    results.append(evaluate_population(t, jnp.zeros((2, 1)), jax.random.split(
        jax.random.PRNGKey(0), 2), strategy="sequential", nan_retries=0))
  np.testing.assert_array_equal(results[0].fitness, results[1].fitness)
  np.testing.assert_allclose(results[0].metrics["loss"], results[1].metrics["loss"],
                             rtol=1e-5)
  assert results[0].metrics["finite"].all()
  assert results[0].metrics["loss"][0] != results[0].metrics["loss"][1]  # keys differ


def test_epoch_sampling_visits_every_example_once_per_epoch(tiny_mnist):
  t = Trainer(models.get("mlp", num_classes=10), tiny_mnist, _ce,
              TrainConfig(batch_size=64, sampling="epoch"))
  state = t.init(jax.random.PRNGKey(0))
  n = len(tiny_mnist.train)  # 600 → 9 batches per epoch, 24 examples dropped
  def epoch(e):
    idx = [np.asarray(t.batch_indices(state._replace(step=jnp.int32(e * 9 + i)), None, n))
           for i in range(9)]
    return np.concatenate(idx)
  first, second = epoch(0), epoch(1)
  assert len(set(first.tolist())) == 9 * 64 and first.max() < n
  assert len(set(second.tolist())) == 9 * 64
  assert not np.array_equal(first, second)  # reshuffled
  np.testing.assert_array_equal(epoch(0), first)  # deterministic
  with pytest.raises(ValueError, match="sampling"):
    TrainConfig(sampling="bootstrap")
