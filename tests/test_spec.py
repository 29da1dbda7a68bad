"""Loss spec strings: parsing, canonical form, round trips, and clear errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from glojax import expr, losses


def _batch(seed=0, n=10, b=5):
  rng = np.random.default_rng(seed)
  logits = rng.normal(0, 1.5, (b, n)).astype(np.float32)
  labels = rng.dirichlet(np.ones(n), size=b).astype(np.float32)
  return logits, labels


def test_names_and_list_alias():
  assert losses.list is losses.names
  assert losses.names() == sorted(losses.names())
  for name in ["cross_entropy", "label_smoothing", "mse", "baikal", "baikal_cma",
               "fast_logit", "taylorglo", "neuroloss1", "neuroloss2", "neuroloss3",
               "bessel", "polyloss"]:
    assert name in losses.names()


@pytest.mark.parametrize("seed", range(5))
def test_taylorglo_spec_round_trip(seed):
  rng = np.random.default_rng(seed)
  theta = rng.normal(0, 3, 8)
  spec = losses.taylorglo_spec(theta)
  loss = losses.get(spec)
  assert loss.name == "taylorglo"
  assert losses.to_spec(loss) == spec          # exactly the format taylorglo_spec writes
  assert losses.get(losses.to_spec(loss)) == loss
  np.testing.assert_array_equal(loss.params, np.asarray(theta, np.float32))
  logits, labels = _batch(seed)
  np.testing.assert_array_equal(loss(logits, labels),
                                losses.taylorglo(jnp.asarray(theta, jnp.float32), logits,
                                                 labels))


def test_taylorglo_spec_is_lossless_for_float32_theta():
  theta = np.random.default_rng(1).normal(0, 1, 8).astype(np.float32)
  loss = losses.get(losses.taylorglo_spec(theta))
  np.testing.assert_array_equal(np.asarray(loss.params), theta)


@pytest.mark.parametrize("spec,canonical", [
    ("baikal", "baikal"),
    ("  baikal()  ", "baikal"),
    ("label_smoothing", "label_smoothing(alpha=0.1)"),
    ("label_smoothing(alpha=0.25)", "label_smoothing(alpha=0.25)"),
    ("label_smoothing(alpha=1)", "label_smoothing(alpha=1.0)"),
    ("polyloss", "polyloss(epsilon=2.0)"),
    ("polyloss(epsilon=-1)", "polyloss(epsilon=-1.0)"),
    ("taylorglo(theta=[0, 1, -2, 3e-3, 4, 5, 6, 7])",
     "taylorglo(theta=[0.0, 1.0, -2.0, 0.003, 4.0, 5.0, 6.0, 7.0])"),
    ("taylorglo(theta=(1,2,3,4,5,6,7,8), class_reduction='sum')",
     "taylorglo(theta=[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0], class_reduction='sum')"),
    ("neuroloss3(class_reduction='mean')", "neuroloss3"),
    ("mse(class_reduction=\"sum\")", "mse(class_reduction='sum')"),
    ("expr:log(y)-x/y", "expr:log(y) - x / y"),
])
def test_canonical_specs(spec, canonical):
  loss = losses.get(spec)
  assert loss.spec == canonical
  assert losses.get(canonical).spec == canonical
  assert losses.get(canonical) == loss


@pytest.mark.parametrize("text", [
    "log(y) - x / y",
    "x * log(y)",
    "sqrt(square(x - y)) + (-1) * y",
    "x / (y * (1 - y))",
    "logits * x - log(y)",
    "-(x * log(y))",
])
def test_expression_round_trip(text):
  loss = losses.get("expr:" + text)
  assert loss.name == "expr"
  again = losses.get(losses.to_spec(loss))
  assert again.tree == loss.tree == expr.parse(text)
  logits, labels = _batch(3)
  np.testing.assert_allclose(again(logits, labels), loss(logits, labels), rtol=1e-6)
  np.testing.assert_allclose(loss(logits, labels),
                             expr.compile_jnp(expr.parse(text))(logits, labels), rtol=1e-6)


def test_expression_is_the_glo_form():
  logits, labels = _batch(4)
  np.testing.assert_allclose(losses.get("expr:log(y) - x / y")(logits, labels),
                             losses.baikal(logits, labels), rtol=1e-5)
  # x * log(y) summed over classes is -CE; GLO form divides by n.
  np.testing.assert_allclose(losses.get("expr:x * log(y)")(logits, labels),
                             losses.cross_entropy(logits, labels) / 10, rtol=1e-5)


def test_to_spec_of_plain_functions_and_errors():
  assert losses.to_spec(losses.baikal) == "baikal"
  assert losses.to_spec(losses.cross_entropy) == "cross_entropy"
  assert losses.to_spec(losses.neuroloss2) == "neuroloss2"
  with pytest.raises(ValueError, match="carries no spec"):
    losses.to_spec(lambda logits, labels: logits)
  with pytest.raises(ValueError, match="carries no spec"):
    losses.to_spec(losses.taylorglo)   # parameterized: needs its theta


def test_get_accepts_a_loss_and_loss_is_jittable():
  loss = losses.get("baikal_cma")
  assert losses.get(loss) is loss
  logits, labels = _batch(5)
  np.testing.assert_allclose(jax.jit(loss)(logits, labels), loss(logits, labels),
                             rtol=1e-6)
  assert "baikal_cma" in repr(loss)
  assert len({losses.get("baikal"), losses.get("baikal()")}) == 1


# Each malformed spec and a fragment its error message must contain.
MALFORMED = [
    ("", "empty"),
    ("   ", "empty"),
    ("bakial", "unknown loss 'bakial'"),
    ("baikal(", "cannot parse"),
    ("baikal)", "cannot parse"),
    ("taylorglo", "requires theta"),
    ("taylorglo(theta=[1, 2, 3])", "list of 8 numbers"),
    ("taylorglo(theta=1.0)", "list of 8"),
    ("taylorglo(theta=[1, 2, 3, 4, 5, 6, 7, 'a'])", "list of numbers"),
    ("taylorglo(theta=[1, 2, 3, 4, 5, 6, 7, x])", "'x'"),
    ("taylorglo(theta=[1, 2, 3, 4, 5, 6, 7, 1e999])", "finite"),
    ("taylorglo(theta=[[1, 2, 3, 4, 5, 6, 7, 8]])", "list of numbers"),
    ("taylorglo([1, 2, 3, 4, 5, 6, 7, 8])", "positional argument"),
    ("taylorglo(thetas=[1, 2, 3, 4, 5, 6, 7, 8])", "no parameter 'thetas'"),
    ("label_smoothing(alpha=1.5)", "outside [0.0, 1.0]"),
    ("label_smoothing(alpha=-0.1)", "outside"),
    ("label_smoothing(alpha=[0.1])", "must be a number"),
    ("label_smoothing(alpha=True)", "'True'"),
    ("label_smoothing(alpha='0.1')", "must be numeric"),
    ("label_smoothing(alpha=0.1, alpha=0.2)", "keyword 'alpha' repeated"),
    ("label_smoothing(beta=0.1)", "no parameter 'beta'"),
    ("polyloss(epsilon=2+1)", "'2+1'"),
    ("polyloss(epsilon=__import__('os'))", "__import__('os')"),
    ("polyloss(**{'epsilon': 1})", "'**'"),
    ("baikal(class_reduction='max')", "class_reduction='max'"),
    ("cross_entropy(class_reduction='sum')", "does not take class_reduction"),
    ("glojax.losses.baikal", "Attribute 'glojax.losses.baikal'"),
    ("os.system('ls')", "'os.system'"),
    ("baikal + mse", "BinOp"),
    ("[baikal]", "List"),
    ("expr:", "empty expression"),
    ("expr:log(y) - z", "unknown variable 'z'"),
    ("expr:cosh(y)", "unknown function"),
    ("expr:log(x)", "does not depend on y or logits"),
    ("expr:y ** 3", "only '**2'"),
    ("expr:(y", "cannot parse"),
    ("expr:__import__('os').system('ls')", "unknown function"),
]


def test_at_least_20_malformed_specs():
  assert len(MALFORMED) >= 20


@pytest.mark.parametrize("spec,fragment", MALFORMED)
def test_malformed_spec_raises_clear_value_error(spec, fragment):
  with pytest.raises(ValueError) as info:
    losses.get(spec)
  assert fragment in str(info.value), str(info.value)
  with pytest.raises(ValueError):
    losses.get_parameterized(spec)


@pytest.mark.parametrize("bad", [None, 3, ["baikal"], b"baikal"])
def test_non_string_spec_raises(bad):
  with pytest.raises(ValueError, match="must be a string"):
    losses.get(bad)


def test_unknown_name_suggests_close_matches():
  with pytest.raises(ValueError, match="did you mean.*neuroloss1"):
    losses.get("neuroloss")


def test_parse_spec():
  assert losses.parse_spec("baikal") == ("baikal", {})
  assert losses.parse_spec("f(a=1, b=[2, -3.5], c='sum')") == (
      "f", {"a": 1.0, "b": [2.0, -3.5], "c": "sum"})


def test_register_custom_loss(monkeypatch):
  from glojax.losses import registry
  monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))  # keep global clean
  name = "test_scaled_ce"
  losses.register(name, lambda params, logits, labels:
                  params[0] * losses.cross_entropy(logits, labels),
                  (losses.Param("scale", default=1.0, low=0.0),), summary="scaled CE")
  logits, labels = _batch(6)
  loss = losses.get(f"{name}(scale=3)")
  assert loss.spec == f"{name}(scale=3.0)"
  np.testing.assert_allclose(loss(logits, labels),
                             3 * losses.cross_entropy(logits, labels), rtol=1e-6)
  with pytest.raises(ValueError, match="already registered"):
    losses.register(name, lambda p, z, x: z)
  with pytest.raises(ValueError, match="invalid loss name"):
    losses.register("expr", lambda p, z, x: z)


def test_class_reduction_keyword():
  logits, labels = _batch(7)
  summed = losses.get("baikal", class_reduction="sum")
  assert summed.spec == "baikal(class_reduction='sum')"
  np.testing.assert_allclose(summed(logits, labels), 10 * losses.baikal(logits, labels),
                             rtol=1e-5)
  assert losses.get(losses.get("mse"), class_reduction="sum").spec == \
      "mse(class_reduction='sum')"
  fn, params = losses.get_parameterized(losses.taylorglo_spec(np.ones(8)),
                                        class_reduction="sum")
  np.testing.assert_allclose(
      fn(params, logits, labels),
      losses.taylorglo(params, logits, labels, class_reduction="sum"), rtol=1e-6)
  assert losses.get("baikal(class_reduction='sum')", class_reduction="sum") == summed
  with pytest.raises(ValueError, match="was passed"):
    losses.get("baikal(class_reduction='sum')", class_reduction="mean")
  with pytest.raises(ValueError, match="does not take class_reduction"):
    losses.get("polyloss", class_reduction="sum")
  with pytest.raises(ValueError, match="expression losses"):
    losses.get("expr:log(y)", class_reduction="sum")
  with pytest.raises(ValueError, match="class_reduction='avg'"):
    losses.get("mse", class_reduction="avg")
