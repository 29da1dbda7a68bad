"""Tests for glojax.analysis.plots: every plot is written, non-empty, with sensible axes."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from glojax import data, models
from glojax.analysis import plots, theory
from glojax.losses import cross_entropy, get

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path):
  raw = path.read_bytes()
  assert raw[:8] == PNG_MAGIC and len(raw) > 2000, path


@pytest.fixture(scope="module")
def mnist_mlp():
  """A tiny MLP trained briefly on mnist5k (4000 train / 500 test real digits)."""
  ds = data.load("mnist5k")
  model = models.MLP(num_classes=10, hidden=(32,))
  x_train = jnp.asarray(ds.train.images)
  y_train = jax.nn.one_hot(ds.train.labels, 10)
  params = model.init(jax.random.PRNGKey(0), x_train[:1])["params"]
  opt = optax.sgd(0.1, momentum=0.9)
  state = opt.init(params)

  def apply_fn(p, x):
    return model.apply({"params": p}, x, train=False)

  @jax.jit
  def step(p, s, x, y):
    g = jax.grad(lambda q: jnp.mean(cross_entropy(apply_fn(q, x), y)))(p)
    u, s = opt.update(g, s, p)
    return optax.apply_updates(p, u), s

  for i in range(150):
    sl = slice((i * 100) % 4000, (i * 100) % 4000 + 100)
    params, state = step(params, state, x_train[sl], y_train[sl])
  return apply_fn, params, ds


def test_attraction_curves(tmp_path):
  theta = theory.theta_from_c_coefficients(
      theory.CCoefficients(-373.917, -130.264, -11.2188, -1.206, 0.336, 1.1103))
  path = tmp_path / "sub" / "attraction.png"
  fig = plots.plot_attraction_curves(
      {"cross_entropy": cross_entropy, "baikal": get("baikal"), "taylorglo (AllCNN-C)": theta},
      [2, 10], path, eps_grid=np.linspace(0.01, 0.99, 50))
  assert_png(path)
  ax = fig.axes[0]
  assert ax.get_xlim() == (0.0, 1.0)
  lo, hi = ax.get_ylim()
  assert -1.1 <= lo < 0 < hi <= 1.1  # baikal is repelled near ε = 0, CE always attracted
  assert len(ax.get_lines()) == 3 * 2 + 1  # one line per (loss, n), plus the zero line


def test_true_class_histogram(tmp_path, mnist_mlp):
  apply_fn, params, ds = mnist_mlp
  logits = plots.predict_logits(apply_fn, params, ds.test.images, batch_size=128)
  assert logits.shape == (500, 10)
  p_true = plots.true_class_probabilities(logits, ds.test.labels)
  np.testing.assert_allclose(
      p_true, np.asarray(jax.nn.softmax(logits))[np.arange(500), ds.test.labels], rtol=1e-6)
  path = tmp_path / "hist.png"
  fig = plots.plot_true_class_histogram({"mlp": p_true, "uniform": np.full(10, 0.1)}, path)
  assert_png(path)
  assert fig.axes[0].get_xlim() == (0.0, 1.0)
  with pytest.raises(ValueError, match=r"\[0, 1\]"):
    plots.plot_true_class_histogram({"bad": [1.5]}, tmp_path / "bad.png")
  with pytest.raises(ValueError, match="labels"):
    plots.true_class_probabilities(logits, np.full(500, 10))


def test_weight_histograms_and_statistics(tmp_path, mnist_mlp):
  _, params, _ = mnist_mlp
  params_small = jax.tree_util.tree_map(lambda w: w * 0.5, params)
  stats = plots.weight_statistics(params)
  flat = np.concatenate([np.ravel(w) for w in jax.tree_util.tree_leaves(params)])
  assert stats["count"] == flat.size == 784 * 32 + 32 + 32 * 10 + 10
  assert stats["l2_norm"] == pytest.approx(float(np.sqrt(np.sum(flat.astype(np.float64)**2))))
  assert stats["mean"] == pytest.approx(float(flat.mean()), abs=1e-7)
  assert plots.weight_statistics(params_small)["l2_norm"] == pytest.approx(stats["l2_norm"] / 2)
  path = tmp_path / "weights.png"
  fig = plots.plot_weight_histograms({"trained": params, "halved": params_small}, path)
  assert_png(path)
  lo, hi = fig.axes[0].get_xlim()
  assert lo == pytest.approx(flat.min()) and hi == pytest.approx(flat.max())
  labels = fig.axes[0].get_legend_handles_labels()[1]
  assert f"L2 {stats['l2_norm']:.4f}" in labels[0]


def test_filter_normalized_direction(mnist_mlp):
  _, params, _ = mnist_mlp
  d = plots.filter_normalized_direction(params, jax.random.PRNGKey(1))
  kernel, dk = params["Dense_0"]["kernel"], d["Dense_0"]["kernel"]
  np.testing.assert_allclose(np.linalg.norm(dk, axis=0), np.linalg.norm(kernel, axis=0),
                             rtol=1e-4)
  np.testing.assert_array_equal(d["Dense_0"]["bias"], 0.0)
  d2 = plots.filter_normalized_direction(params, jax.random.PRNGKey(2))
  assert not np.allclose(d2["Dense_0"]["kernel"], dk)


def test_accuracy_basins(tmp_path, mnist_mlp):
  apply_fn, params, ds = mnist_mlp
  images, labels = ds.test.images, ds.test.labels
  logits = plots.predict_logits(apply_fn, params, images)
  base_acc = float(np.mean(logits.argmax(-1) == labels))
  assert base_acc > 0.6  # the tiny MLP did learn
  b1 = plots.accuracy_basin_1d(apply_fn, params, images, labels, key=jax.random.PRNGKey(3),
                               alphas=np.linspace(-1, 1, 9))
  assert b1["accuracy"][4] == pytest.approx(base_acc)  # α = 0 is the trained net
  assert np.all((b1["accuracy"] >= 0) & (b1["accuracy"] <= 1))
  assert b1["accuracy"][0] < base_acc and b1["accuracy"][-1] < base_acc  # a basin
  b2 = plots.accuracy_basin_2d(apply_fn, params, images, labels, key=jax.random.PRNGKey(4),
                               alphas=np.linspace(-1, 1, 5), betas=np.linspace(-1, 1, 5))
  assert b2["accuracy"].shape == (5, 5)
  assert b2["accuracy"][2, 2] == pytest.approx(base_acc)
  assert b2["accuracy"].max() == pytest.approx(b2["accuracy"][2, 2], abs=0.03)
  p1 = tmp_path / "basin1d.png"
  fig = plots.plot_basin_1d({"mlp": b1}, p1)
  assert_png(p1)
  assert fig.axes[0].get_ylim() == (0.0, 1.0)
  assert fig.axes[0].get_xlim()[0] <= -1 and fig.axes[0].get_xlim()[1] >= 1
  for surface in (False, True):
    p2 = tmp_path / f"basin2d_{surface}.png"
    fig = plots.plot_basin_2d(b2, p2, surface=surface)
    assert_png(p2)
    assert fig.axes[0].get_xlim()[0] <= -1 and fig.axes[0].get_xlim()[1] >= 1
  with pytest.raises(ValueError, match="key"):
    plots.accuracy_basin_1d(apply_fn, params, images, labels)


def write_log(workdir, rows):
  workdir.mkdir(parents=True, exist_ok=True)
  with open(workdir / "log.jsonl", "w") as f:
    for row in rows:
      f.write(json.dumps(row) + "\n")


def synthetic_rows():
  rng = np.random.default_rng(0)
  rows = []
  for g in range(6):
    fit = np.clip(rng.normal(0.5 + 0.07 * g, 0.1, 8), 0, 1).tolist()
    fit[0] = 0.0  # a failed candidate
    rows.append({"generation": g, "fitness": fit, "best": max(fit), "mean": float(np.mean(fit)),
                 "median": float(np.median(fit)), "sigma": 1.2})
  return rows


def test_fitness_curves(tmp_path):
  rows = synthetic_rows()
  rows.append(dict(rows[3], best=0.123))  # a resumed run re-logs generation 3: last row wins
  write_log(tmp_path / "run", rows)
  log = plots.read_fitness_log(tmp_path / "run")
  np.testing.assert_array_equal(log["generation"], np.arange(6))
  assert log["best"][3] == 0.123 and log["best"][5] == rows[5]["best"]
  path = tmp_path / "fitness.png"
  fig = plots.plot_fitness_curves(tmp_path / "run", path)
  assert_png(path)
  ax = fig.axes[0]
  assert ax.get_xlim() == (-0.5, 5.5)
  lo, hi = ax.get_ylim()
  assert lo == 0.0 and 1.0 <= hi <= 1.05
  with pytest.raises(FileNotFoundError):
    plots.read_fitness_log(tmp_path / "nothing")
  (tmp_path / "broken").mkdir()
  (tmp_path / "broken" / "log.jsonl").write_text('{"generation": 0}\n')
  with pytest.raises(ValueError, match="lacks keys"):
    plots.read_fitness_log(tmp_path / "broken")
