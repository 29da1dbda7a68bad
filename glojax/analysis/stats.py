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


NAN_POLICIES = ("raise", "omit", "propagate")


class WelchResult(NamedTuple):
  """Result of :func:`welch_ttest`: statistic, Welch–Satterthwaite dof and p-value."""
  t: float
  dof: float
  p: float


_UNDEFINED = WelchResult(math.nan, math.nan, math.nan)


def _as_sample(values, name, nan_policy):
  arr = np.asarray(values, dtype=np.float64).reshape(-1)
  if arr.size == 0:
    raise ValueError(f"welch_ttest: sample {name} is empty.")
  if np.any(np.isinf(arr)):
    raise ValueError(f"welch_ttest: sample {name} contains infinite values: "
                     f"{arr.tolist()}.")
  nan = np.isnan(arr)
  if nan.any():
    if nan_policy == "raise":
      raise ValueError(f"welch_ttest: sample {name} contains non-finite values: "
                       f"{arr.tolist()} (nan_policy='omit' drops them, 'propagate' "
                       "returns NaN).")
    if nan_policy == "propagate":
      return None
    arr = arr[~nan]
  return arr


def welch_ttest(a: Sequence[float], b: Sequence[float], *,
                alternative: str = "two-sided", nan_policy: str = "raise") -> WelchResult:
  r"""Welch's unequal-variance t-test of mean(a) vs mean(b).

  .. math:: t = \frac{\bar a - \bar b}{\sqrt{s_a^2/n_a + s_b^2/n_b}},\qquad
            \nu = \frac{(s_a^2/n_a + s_b^2/n_b)^2}{\frac{(s_a^2/n_a)^2}{n_a-1}
                  + \frac{(s_b^2/n_b)^2}{n_b-1}}

  Computed by ``scipy.stats.ttest_ind(a, b, equal_var=False, alternative=...)`` when
  the samples vary. Degenerate samples get defined answers:

  * **Both samples constant** (every value of a sample identical, so both variances
    are exactly 0; e.g. ``[0.1]*10`` vs ``[0.1]*20``): equal constants are **no
    difference**: ``t = 0``, ``p = 1`` for every alternative (no evidence either way;
    the rounding noise of ``mean`` is not a signal). Different constants are a
    certain difference, the limit of the test as the variances vanish: ``t = ±inf``,
    ``p = 0`` for the alternatives that hold, ``p = 1`` for the others. ``dof`` is NaN.
  * **One sample constant**: its variance is exactly 0 and the test is the usual one
    (``dof = n - 1`` of the other sample).
  * **Fewer than 2 values** in a sample (also after dropping NaNs): no variance
    estimate, the test is undefined: ``WelchResult(nan, nan, nan)``.
  * **Unequal sizes** are what Welch's test is for (no special case).
  * **NaN entries** (e.g. failed runs): ``nan_policy="raise"`` (default) raises,
    ``"omit"`` drops them, ``"propagate"`` returns ``WelchResult(nan, nan, nan)``.

  Args:
    a: ``float[n_a]`` sample (e.g. test accuracies of the evolved loss).
    b: ``float[n_b]`` sample (e.g. the cross-entropy baseline).
    alternative: ``"two-sided"``, ``"greater"`` (H1: mean(a) > mean(b), the papers'
      one-tailed test) or ``"less"``.
    nan_policy: ``"raise"``, ``"omit"`` or ``"propagate"`` (scipy's names).

  Returns:
    :class:`WelchResult` ``(t, dof, p)`` as Python floats.

  Raises:
    ValueError: on an unknown ``alternative`` or ``nan_policy``, an empty sample,
      infinite values, or NaN values with ``nan_policy="raise"``.

  References:
    Welch (1947); dissertation eqs. 3.3–3.5.
  """
  from scipy import stats
  if alternative not in ALTERNATIVES:
    raise ValueError(f"welch_ttest: alternative={alternative!r} is not one of {ALTERNATIVES}.")
  if nan_policy not in NAN_POLICIES:
    raise ValueError(f"welch_ttest: nan_policy={nan_policy!r} is not one of "
                     f"{NAN_POLICIES}.")
  a = _as_sample(a, "a", nan_policy)
  b = _as_sample(b, "b", nan_policy)
  if a is None or b is None or a.size < 2 or b.size < 2:
    return _UNDEFINED
  constant_a, constant_b = np.ptp(a) == 0, np.ptp(b) == 0
  if constant_a and constant_b:
    diff = a[0] - b[0]
    if diff == 0:
      return WelchResult(0.0, math.nan, 1.0)
    holds = {"two-sided": True, "greater": diff > 0, "less": diff < 0}[alternative]
    return WelchResult(math.copysign(math.inf, diff), math.nan, 0.0 if holds else 1.0)
  # A constant sample's variance is exactly 0 (np.var would give rounding noise).
  if constant_a or constant_b:
    return _welch_by_hand(a, b, constant_a, constant_b, alternative)
  res = stats.ttest_ind(a, b, equal_var=False, alternative=alternative)
  return WelchResult(float(res.statistic), float(res.df), float(res.pvalue))


def _welch_by_hand(a, b, constant_a, constant_b, alternative) -> WelchResult:
  from scipy import stats
  ma = a[0] if constant_a else np.mean(a)
  mb = b[0] if constant_b else np.mean(b)
  va = 0.0 if constant_a else np.var(a, ddof=1) / a.size
  vb = 0.0 if constant_b else np.var(b, ddof=1) / b.size
  t = (ma - mb) / math.sqrt(va + vb)
  dof = (va + vb) ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1))
  if alternative == "greater":
    p = stats.t.sf(t, dof)
  elif alternative == "less":
    p = stats.t.cdf(t, dof)
  else:
    p = 2 * stats.t.sf(abs(t), dof)
  return WelchResult(float(t), float(dof), float(min(p, 1.0)))


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
