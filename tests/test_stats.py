"""Tests for glojax.analysis.stats."""

import math

import numpy as np
import pytest

from glojax.analysis import stats

A = [0.9951, 0.9948, 0.9955, 0.9950, 0.9953]
B = [0.9899, 0.9902, 0.9895, 0.9901, 0.9897, 0.9900]


def hand_welch(a, b):
  a, b = np.asarray(a), np.asarray(b)
  va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
  t = (a.mean() - b.mean()) / math.sqrt(va + vb)
  dof = (va + vb)**2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
  return t, dof


def test_welch_statistic_and_dof_by_hand():
  res = stats.welch_ttest(A, B, alternative="greater")
  t, dof = hand_welch(A, B)
  assert res.t == pytest.approx(t, rel=1e-12)
  assert res.dof == pytest.approx(dof, rel=1e-12)
  from scipy import stats as sps
  assert res.p == pytest.approx(sps.t.sf(t, dof), rel=1e-9)
  assert res.p < 1e-6


def test_welch_alternatives_are_consistent():
  a = [1.0, 2.0, 3.5, 2.2]
  b = [1.5, 2.9, 3.1, 4.0, 3.3]
  two = stats.welch_ttest(a, b).p
  greater = stats.welch_ttest(a, b, alternative="greater").p
  less = stats.welch_ttest(a, b, alternative="less").p
  assert greater + less == pytest.approx(1.0)
  assert two == pytest.approx(2 * min(greater, less))
  # Swapping the samples flips the sign of t and swaps the one-sided p-values.
  swapped = stats.welch_ttest(b, a, alternative="less")
  assert swapped.p == pytest.approx(greater)
  assert swapped.t == pytest.approx(-stats.welch_ttest(a, b).t)


def test_welch_errors():
  with pytest.raises(ValueError, match="alternative"):
    stats.welch_ttest(A, B, alternative="bigger")
  with pytest.raises(ValueError, match="nan_policy"):
    stats.welch_ttest(A, B, nan_policy="ignore")
  with pytest.raises(ValueError, match="empty"):
    stats.welch_ttest([], B)
  with pytest.raises(ValueError, match="non-finite.*omit"):
    stats.welch_ttest([1.0, float("nan")], B)
  with pytest.raises(ValueError, match="infinite"):
    stats.welch_ttest([1.0, float("inf")], B, nan_policy="omit")


@pytest.mark.parametrize("alternative", stats.ALTERNATIVES)
def test_equal_constant_samples_are_no_difference(alternative):
  # The example: [0.1]*10 vs [0.1]*20 gave t = -4.36, p = 3.4e-4 from the
  # rounding of mean(); identical constants are no evidence of anything.
  res = stats.welch_ttest([0.1] * 10, [0.1] * 20, alternative=alternative)
  assert res.t == 0.0 and res.p == 1.0 and math.isnan(res.dof)
  assert stats.significance_stars(res.p) == ""


@pytest.mark.parametrize("alternative, p", [("two-sided", 0.0), ("greater", 0.0),
                                            ("less", 1.0)])
def test_different_constant_samples_are_a_certain_difference(alternative, p):
  res = stats.welch_ttest([0.2] * 3, [0.1] * 7, alternative=alternative)
  assert res.t == math.inf and res.p == p
  assert stats.welch_ttest([0.1] * 3, [0.2] * 7, alternative=alternative).t == -math.inf


def test_one_constant_sample_has_exactly_zero_variance():
  a, b = [0.1] * 10, [0.09, 0.11, 0.1, 0.12, 0.08]
  res = stats.welch_ttest(a, b, alternative="greater")
  mb, vb = np.mean(b), np.var(b, ddof=1) / 5
  assert res.t == pytest.approx((0.1 - mb) / math.sqrt(vb), rel=1e-12)
  assert res.dof == pytest.approx(4.0, rel=1e-12)       # all from b: n_b - 1
  from scipy import stats as sps
  assert res.p == pytest.approx(sps.t.sf(res.t, 4.0), rel=1e-9)
  swapped = stats.welch_ttest(b, a, alternative="less")
  assert swapped.p == pytest.approx(res.p, rel=1e-12) and swapped.t == pytest.approx(-res.t)


def test_single_values_make_the_test_undefined():
  for a, b in (([0.5], B), (A, [0.5]), ([0.5], [0.5])):
    res = stats.welch_ttest(a, b)
    assert all(math.isnan(v) for v in res)
  assert stats.format_table_row("x", [0.5, 0.5], [0.4]).endswith("| nan")


def test_nan_entries_follow_nan_policy():
  with_nan = A + [float("nan")]
  omitted = stats.welch_ttest(with_nan, B, nan_policy="omit")
  assert omitted == stats.welch_ttest(A, B)
  assert all(math.isnan(v) for v in stats.welch_ttest(with_nan, B, nan_policy="propagate"))
  # Dropping NaNs can leave fewer than 2 values: undefined, not an error.
  assert math.isnan(stats.welch_ttest([0.3, float("nan")], B, nan_policy="omit").p)


def test_unequal_sizes_match_the_hand_formula():
  a = [0.71, 0.74, 0.69]
  b = [0.70, 0.66, 0.68, 0.65, 0.67, 0.69, 0.64]
  res = stats.welch_ttest(a, b, alternative="greater")
  t, dof = hand_welch(a, b)
  assert res.t == pytest.approx(t, rel=1e-12) and res.dof == pytest.approx(dof, rel=1e-12)
  assert 2 < dof < 8   # between min(n) - 1 and n_a + n_b - 2


@pytest.mark.parametrize("p, stars", [(0.0004, "***"), (0.001, "**"), (0.0092, "**"),
                                      (0.0124, "*"), (0.05, ""), (0.2827, ""),
                                      (float("nan"), "")])
def test_significance_stars(p, stars):
  assert stats.significance_stars(p) == stars


def test_mean_std_and_table_row():
  assert stats.mean_std([0.9, 1.0, 1.1]) == "1.0000 (0.1000)"
  assert stats.mean_std([0.5]) == "0.5000 (0.0000)"
  row = stats.format_table_row("MNIST CNN", A, B)
  t, dof = hand_welch(A, B)
  assert row.startswith("MNIST CNN | 0.9899 (0.0003) | 0.9951 (0.0003) | ")
  assert row.endswith("***")
  assert stats.format_table_row("x", A) == "x | 0.9951 (0.0003)"
  # A worse method gets a large one-tailed p and no stars.
  worse = stats.format_table_row("worse", B, A)
  assert worse.endswith("1.0000")
  with pytest.raises(ValueError, match="empty"):
    stats.mean_std([])
