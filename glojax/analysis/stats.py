"""Statistics for comparing trained models: Welch's t-test and the papers' table rows.

The dissertation compares ten runs of an evolved loss against ten cross-entropy runs with a
one-tailed Welch's t-test (eqs. 3.3–3.5) and reports ``mean (std)`` with the p-value
(Tables 5.1, 7.1, 7.2).
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np

ALTERNATIVES = ("two-sided", "greater", "less")


class WelchResult(NamedTuple):
  """Result of :func:`welch_ttest`: statistic, Welch–Satterthwaite dof and p-value."""
  t: float
  dof: float
  p: float


def _as_sample(values, name):
  arr = np.asarray(values, dtype=np.float64).reshape(-1)
  if arr.size < 2:
    raise ValueError(f"welch_ttest: sample {name} needs at least 2 values, got {arr.size}.")
  if not np.all(np.isfinite(arr)):
    raise ValueError(f"welch_ttest: sample {name} contains non-finite values: {arr.tolist()}.")
  return arr


def welch_ttest(a: Sequence[float], b: Sequence[float], *,
                alternative: str = "two-sided") -> WelchResult:
  r"""Welch's unequal-variance t-test of mean(a) vs mean(b).

  .. math:: t = \frac{\bar a - \bar b}{\sqrt{s_a^2/n_a + s_b^2/n_b}},\qquad
            \nu = \frac{(s_a^2/n_a + s_b^2/n_b)^2}{\frac{(s_a^2/n_a)^2}{n_a-1}
                  + \frac{(s_b^2/n_b)^2}{n_b-1}}

  Computed by ``scipy.stats.ttest_ind(a, b, equal_var=False, alternative=...)``.

  Args:
    a: ``float[n_a]`` sample (e.g. test accuracies of the evolved loss), ``n_a >= 2``.
    b: ``float[n_b]`` sample (e.g. the cross-entropy baseline), ``n_b >= 2``.
    alternative: ``"two-sided"``, ``"greater"`` (H1: mean(a) > mean(b), the papers'
      one-tailed test) or ``"less"``.

  Returns:
    :class:`WelchResult` ``(t, dof, p)`` as Python floats. If both samples are constant the
    statistic is undefined and scipy's ``nan`` is returned.

  Raises:
    ValueError: on an unknown ``alternative``, samples with fewer than 2 values, or non-finite
      values.

  References:
    Welch (1947); dissertation eqs. 3.3–3.5.
  """
  from scipy import stats
  if alternative not in ALTERNATIVES:
    raise ValueError(f"welch_ttest: alternative={alternative!r} is not one of {ALTERNATIVES}.")
  a = _as_sample(a, "a")
  b = _as_sample(b, "b")
  res = stats.ttest_ind(a, b, equal_var=False, alternative=alternative)
  return WelchResult(float(res.statistic), float(res.df), float(res.pvalue))


def significance_stars(p: float) -> str:
  """``"***"`` for p < 0.001, ``"**"`` for p < 0.01, ``"*"`` for p < 0.05, else ``""``."""
  if p is None or not math.isfinite(p):
    return ""
  if p < 0.001:
    return "***"
  if p < 0.01:
    return "**"
  if p < 0.05:
    return "*"
  return ""


def mean_std(values: Sequence[float], digits: int = 4) -> str:
  """Formats ``"mean (std)"`` with the sample std (ddof = 1), e.g. ``0.9951 (0.0004)``.

  Args:
    values: ``float[N]``, N >= 1 (a single value gets std 0).
    digits: decimal places.

  Returns:
    The formatted string.

  Raises:
    ValueError: on an empty sample.
  """
  arr = np.asarray(values, dtype=np.float64).reshape(-1)
  if arr.size == 0:
    raise ValueError("mean_std: empty sample.")
  std = float(np.std(arr, ddof=1)) if arr.size > 1 else 0.0
  return f"{np.mean(arr):.{digits}f} ({std:.{digits}f})"


def format_table_row(name: str,
                     samples: Sequence[float],
                     baseline: Sequence[float] | None = None,
                     *,
                     alternative: str = "greater",
                     digits: int = 4,
                     sep: str = " | ") -> str:
  """One row of the papers' results tables: ``name | baseline | ours | p-value``.

  Example: ``"MNIST CNN | 0.9899 (0.0003) | 0.9951 (0.0004) | 2.1e-05 ***"``. The p-value is a
  one-tailed Welch test that ``samples`` beat ``baseline`` (``alternative="greater"``, as in
  Tables 5.1, 7.1, 7.2); stars from :func:`significance_stars`.

  Args:
    name: row label (task and model).
    samples: ``float[N]`` results of the method under test.
    baseline: ``float[M]`` baseline results, or None to print only ``name | samples``.
    alternative: passed to :func:`welch_ttest`.
    digits: decimals for mean and std.
    sep: column separator (``" | "`` gives a Markdown table row body).

  Returns:
    The row string.

  Raises:
    ValueError: as :func:`welch_ttest` and :func:`mean_std`.
  """
  if baseline is None:
    return sep.join([name, mean_std(samples, digits)])
  res = welch_ttest(samples, baseline, alternative=alternative)
  p = res.p
  p_text = "nan" if not math.isfinite(p) else (f"{p:.4f}" if p >= 1e-4 else f"{p:.1e}")
  stars = significance_stars(p)
  return sep.join([name, mean_std(baseline, digits), mean_std(samples, digits),
                   (p_text + " " + stars).strip()])
