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


# ---- search configs ----------------------------------------------------------------------

import json  # noqa: E402
import os  # noqa: E402

from glojax.search import common, taylorglo  # noqa: E402


def tiny_config():
  c = taylorglo.default_config()
  c.model.options = {"hidden": (8,)}
  c.train.steps = 20
  c.train.batch_size = 32
  c.train.learning_rate = 0.1
  c.search.population_size = 4
  c.search.generations = 2
  c.final.repeats = 2
  c.final.steps = 20
  return c


def _set(config, dotted, value):
  """``config`` as a plain dict (a config file can hold any type) with one value set."""
  config = common.config_to_dict(config)
  section, _, key = dotted.rpartition(".")
  target = config
  for part in filter(None, section.split(".")):
    target = target[part]
  target[key] = value
  return config


@pytest.mark.parametrize("key, value", [
    # Values that used to pass validation and fail only after the whole search.
    ("final.steps", 0),
    ("final.alternative", "bigger"),
    ("final.seed", "one"),
    ("final.repeats", 2.5),
    # Wrong types (a config file can hold anything) used to raise TypeError.
    ("search.sigma", "abc"),
    ("search.sigma", float("inf")),
    ("search.mean", float("nan")),
    ("search.mean", "zero"),
    ("search.nan_retries", -1),
    ("search.population_size", 4.0),
    ("search.population_size", True),
    ("seed", "0"),
    ("seed", -1),
    ("dataset.seed", 1.5),
    ("train.learning_rate", "fast"),
    ("train.momentum", -0.5),
    ("train.momentum", 1.0),
    ("train.weight_decay", -1e-4),
    ("model.options", "hidden=8"),
])
def test_bad_config_values_fail_before_any_work(tmp_path, key, value):
  config = _set(tiny_config(), key, value)
  wd = str(tmp_path / "run")
  with pytest.raises(ValueError, match=r"config\." + key.replace(".", r"\.")):
    taylorglo.run(config, wd, log=lambda m: None)
  assert not os.path.exists(wd)


@pytest.mark.parametrize("key, value, message", [
    ("model.options", {"hiddn": (8,)}, "hiddn"),
    ("model.options", {"hidden": "wide"}, "hidden"),
])
def test_bad_model_options_leave_no_workdir(tmp_path, key, value, message):
  """A config that cannot build its model must not claim the workdir (config.json)."""
  config = _set(tiny_config(), key, value)
  wd = str(tmp_path / "run")
  with pytest.raises(ValueError, match=message):
    taylorglo.run(config, wd, log=lambda m: None)
  assert not os.path.exists(os.path.join(wd, common.CONFIG_FILE))
