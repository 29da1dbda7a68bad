"""Adversarial tests: malformed specs, configs and workdirs fail clearly, losing nothing."""

import numpy as np
import pytest

from glojax import expr, losses


# ---- loss specs ------------------------------------------------------------------------

@pytest.mark.parametrize("spec, message", [
    # An integer literal too large for a float (Python raises OverflowError).
    ("label_smoothing(alpha=" + "9" * 400 + ")", "alpha"),
    ("expr:log(y) - " + "9" * 400 + " * x", "9999"),
    # Non-finite constants would print as 'inf', which does not parse back.
    ("expr:1e400 * y", "1e400"),
    # Values finite in float64 but not in float32 (the dtype the loss computes in).
    ("polyloss(epsilon=1e300)", "epsilon"),
    ("taylorglo(theta=[1e39, 0, 0, 0, 0, 0, 0, 0])", "theta"),
    # Deep nesting: RecursionError inside ast or the tree builder.
    ("expr:" + "-" * 2000 + "y", "deep"),
    ("expr:" + "+".join(["y"] * 3000), "deep"),
    ("label_smoothing(alpha=" + "-" * 3000 + "1)", "alpha"),
])
def test_pathological_specs_raise_value_error(spec, message):
  with pytest.raises(ValueError, match=message):
    losses.get(spec)


def test_expr_parse_rejects_non_finite_and_deep_trees():
  with pytest.raises(ValueError, match="not finite"):
    expr.parse("1e400 * y")
  with pytest.raises(ValueError, match="deep"):
    expr.parse("log(" * 150 + "y" + ")" * 150)
  # Moderate depth still parses and round-trips.
  text = "log(" * 20 + "y" + ")" * 20
  assert expr.to_string(expr.parse(text)) == text


@pytest.mark.parametrize("spec", [
    "__import__('os').system('true')", "os.system('true')", "lambda: 0",
    "baikal.__class__", "expr:(lambda: y)()", "expr:__import__('os')", "expr:y.sum()",
    "expr:y; import os", "taylorglo(theta=[0] * 8)", "polyloss(epsilon=float('inf'))",
    "expr:y[0]", "label_smoothing(alpha=True)",
])
def test_code_is_never_run(spec):
  with pytest.raises(ValueError):
    losses.get(spec)
