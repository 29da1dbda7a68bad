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
  with pytest.raises(ValueError, match="at least 2"):
    stats.welch_ttest([1.0], B)
  with pytest.raises(ValueError, match="non-finite"):
    stats.welch_ttest([1.0, float("nan")], B)


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
