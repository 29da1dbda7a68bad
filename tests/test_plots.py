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
  assert plots.style_problems(fig) == []
  assert "n = 2, 10" in ax.get_title()


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
  assert plots.style_problems(fig) == []
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
  assert plots.style_problems(fig) == []


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
  assert plots.style_problems(fig) == []
  for surface in (False, True):
    p2 = tmp_path / f"basin2d_{surface}.png"
    fig = plots.plot_basin_2d(b2, p2, surface=surface)
    assert_png(p2)
    assert plots.style_problems(fig) == []
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
  np.testing.assert_array_equal(log["step"], np.arange(1, 7))  # counted from 1
  assert log["best"][3] == 0.123 and log["best"][5] == rows[5]["best"]
  path = tmp_path / "fitness.png"
  fig = plots.plot_fitness_curves(tmp_path / "run", path)
  assert_png(path)
  assert plots.style_problems(fig) == []
  ax = fig.axes[0]
  assert ax.get_xlim() == (0.5, 6.5)
  lo, hi = ax.get_ylim()
  assert lo == 0.0 and 1.0 <= hi <= 1.05
  with pytest.raises(FileNotFoundError):
    plots.read_fitness_log(tmp_path / "nothing")
  (tmp_path / "broken").mkdir()
  (tmp_path / "broken" / "log.jsonl").write_text('{"generation": 0}\n')
  with pytest.raises(ValueError, match="lacks keys"):
    plots.read_fitness_log(tmp_path / "broken")


def glo_rows():
  """A GLO log: GA generations 0-2, then CMA-ES generations 0-1 on one tree (both count
  from 0 in log.jsonl)."""
  rows = []
  for g, best in enumerate([0.3, 0.5, 0.6]):
    rows.append({"phase": "ga", "generation": g, "fitness": [best, 0.0, best / 2],
                 "best": best, "mean": best / 2, "median": best / 2, "best_ever": best,
                 "best_tree": "log(y) - x / y"})
  for g, best in enumerate([0.65, 0.7]):
    rows.append({"phase": "cma", "tree": "log(y) - x / y", "generation": g,
                 "fitness": [best, 0.4], "best": best, "mean": 0.5, "median": 0.5,
                 "best_ever": best})
  return rows


def test_glo_phases_do_not_overwrite_each_other(tmp_path):
  """CMA-ES generations 0-1 used to replace GA generations 0-1 (keyed by generation)."""
  write_log(tmp_path / "glo", glo_rows())
  (tmp_path / "glo" / "config.json").write_text(json.dumps(
      {"dataset": {"name": "mnist5k"}, "model": {"name": "mlp"}, "train": {"steps": 300}}))
  log = plots.read_fitness_log(tmp_path / "glo")
  assert log["phase"] == ["ga"] * 3 + ["cma"] * 2
  np.testing.assert_array_equal(log["generation"], [0, 1, 2, 0, 1])
  np.testing.assert_array_equal(log["step"], [1, 2, 3, 4, 5])
  np.testing.assert_allclose(log["best"], [0.3, 0.5, 0.6, 0.65, 0.7])
  fig = plots.plot_fitness_curves(tmp_path / "glo", tmp_path / "glo.png", search="GLO search")
  assert plots.style_problems(fig) == []
  ax = fig.axes[0]
  assert ax.get_ylabel().startswith("validation accuracy after 300 training steps")
  assert ax.get_title() == f"GLO search: {tmp_path / 'glo'} (mnist5k, mlp)"
  # Ticks count each phase from 1, as the console's "gen 1/3" and "cma 1/2" lines do.
  ticks = {int(t): ax.xaxis.get_major_formatter()(t) for t in ax.get_xticks()
           if float(t).is_integer() and 1 <= t <= 5}
  assert ticks == {1: "1", 2: "2", 3: "3", 4: "1", 5: "2"}
  names = [t.get_text() for t in ax.texts]
  assert names == ["GA", "CMA-ES (log(y) - x / y)"]
  # The report keys by (phase, generation) too: the best is CMA-ES generation 2 of 2.
  from glojax.analysis import report
  rep = report.analyze([], str(tmp_path / "glo"), output_dir=str(tmp_path / "out"))
  assert rep["workdir"]["generations"] == 5
  assert (rep["workdir"]["best_generation"], rep["workdir"]["best_phase"]) == (2, "cma")
  assert "at generation 2 of phase cma (counted from 1)" in (
      tmp_path / "out" / "report.md").read_text()


def test_two_coefficient_phases_stay_apart(tmp_path):
  rows = glo_rows()
  rows += [dict(r, tree="x / y", best=0.1 * (i + 1)) for i, r in enumerate(rows[3:])]
  write_log(tmp_path / "two", rows)
  log = plots.read_fitness_log(tmp_path / "two")
  assert len(log["step"]) == 7
  assert log["segment"][3:] == ["cma: log(y) - x / y"] * 2 + ["cma: x / y"] * 2


def test_phenotype_panels_have_labels_and_exact_minima():
  from glojax import analysis
  fig = analysis.phenotype_figure({"NeuroLoss3": "neuroloss3", "Baikal": "baikal"},
                                  p=np.linspace(0.5, 1.0, 50001)[:-1])
  assert plots.style_problems(fig) == []
  assert all(ax.get_ylabel() for ax in fig.axes)
  notes = [t.get_text() for ax in fig.axes for t in ax.texts]
  assert notes == ["min at p = 0.99998", "min at p = 0.707"]  # not "1"
  normalized = analysis.phenotype_figure(["mse"], normalize=True)
  assert normalized.axes[0].get_ylabel() == "loss, rescaled to [0, 1]"


def test_train_curves_put_each_loss_on_its_own_axes():
  """A TaylorGLO loss (≈ -0.01) and cross-entropy (≈ 2) on one axis: one is a flat line."""
  from glojax.train.experiment import curves_figure
  def run(loss_values):
    return {"curve": {"step": [1, 2, 3], "train_loss": loss_values, "eval_step": [3],
                      "eval_accuracy": [0.5], "eval_loss": [1.0]}}
  runs = {"taylorglo(theta=[0, 0, 0, 0, 0, 1, 0, 0])": [run([-0.010, -0.012, -0.013])] * 2,
          "cross_entropy": [run([2.3, 2.0, 1.8])] * 2}
  fig = curves_figure(runs, title="experiments/train.py: runs/x (mnist5k, mlp, 2 runs)")
  assert plots.style_problems(fig) == []
  loss_axes, acc_axes = fig.axes[:2], fig.axes[2]
  for ax, values in zip(loss_axes, ([-0.013, -0.010], [1.8, 2.3])):
    lo, hi = ax.get_ylim()
    assert lo <= values[0] and values[1] <= hi and hi - lo < 1.0  # its own scale
  assert acc_axes.get_ylabel() == "validation accuracy (fraction correct)"
