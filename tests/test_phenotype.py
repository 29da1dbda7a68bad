"""Binary phenotypes (GLO paper §V-A, NLFS §3.3) and their plot."""

import numpy as np
import pytest

from glojax import analysis, losses


def test_cross_entropy_phenotype_is_minus_log_p():
  p = np.array([0.01, 0.1, 0.5, 0.9, 0.999])
  np.testing.assert_allclose(analysis.binary_phenotype(losses.cross_entropy, p), -np.log(p),
                             rtol=1e-5)
  np.testing.assert_allclose(analysis.binary_phenotype("cross_entropy", 0.25),
                             -np.log(0.25), rtol=1e-6)


def test_baikal_phenotype_is_eq_3_by_hand():
  """GLO eq. (3): -(1/2)(log y0 - x0/y0 + log y1 - x1/y1) with x = [0, 1], y = [1-p, p]."""
  p = np.array([0.2, 0.5, 0.71, 0.95])
  want = -0.5 * (np.log(1 - p) - 0 + np.log(p) - 1 / p)
  np.testing.assert_allclose(analysis.binary_phenotype("baikal", p), want, rtol=1e-5)
  want_mse = ((1 - p) ** 2 + (1 - p) ** 2) / 2
  np.testing.assert_allclose(analysis.binary_phenotype("mse", p), want_mse, rtol=1e-5,
                             atol=1e-7)


@pytest.mark.parametrize("spec,low,high", [
    ("baikal", 0.70, 0.72),       # GLO paper §V-A: "near 0.71"
    ("baikal_cma", 0.76, 0.78),   # "near 0.77"
    ("cross_entropy", 0.999, 1.0),
])
def test_phenotype_minima_match_glo_paper(spec, low, high):
  p = np.linspace(0.001, 0.999, 999)
  argmin = p[np.argmin(analysis.binary_phenotype(spec, p))]
  assert low <= argmin <= high


@pytest.mark.parametrize("spec", ["neuroloss1", "neuroloss2", "neuroloss3"])
def test_neuroloss_minima_at_0_99998(spec):
  """NLFS §4.5: every NeuroLoss's binary phenotype has its minimum at ŷ = 0.99998."""
  p = 1.0 - np.logspace(-7, -3, 801)
  argmin = p[np.argmin(analysis.binary_phenotype(spec, p))]
  assert 0.99997 <= argmin <= 0.999990, argmin


def test_phenotype_shapes_and_errors():
  assert analysis.binary_phenotype("baikal", 0.5).shape == ()
  assert analysis.binary_phenotype("baikal", np.full((2, 3), 0.5)).shape == (2, 3)
  logits, labels = analysis.binary_logits(np.array([0.3]))
  np.testing.assert_allclose(np.exp(logits), [[0.7, 0.3]], rtol=1e-6)
  np.testing.assert_array_equal(labels, [[0.0, 1.0]])
  for bad in [-0.1, 1.5, np.nan]:
    with pytest.raises(ValueError, match="p must lie in"):
      analysis.binary_phenotype("baikal", bad)
  with pytest.raises(ValueError, match="spec string or a callable"):
    analysis.binary_phenotype(42, 0.5)


def test_plot_writes_png(tmp_path):
  path = analysis.plot_binary_phenotypes(
      {"CE": "cross_entropy", "Baikal": losses.get("baikal"), "NL3": losses.neuroloss3},
      tmp_path / "sub" / "phenotypes.png", normalize=True)
  with open(path, "rb") as f:
    data = f.read()
  assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
  path2 = analysis.plot_binary_phenotypes(["baikal_cma", losses.get("mse")],
                                          tmp_path / "b.png", p=np.linspace(0.05, 0.95, 50))
  assert (tmp_path / "b.png").stat().st_size > 1000 and path2.endswith("b.png")
  with pytest.raises(ValueError, match="no losses"):
    analysis.plot_binary_phenotypes({}, tmp_path / "c.png")
