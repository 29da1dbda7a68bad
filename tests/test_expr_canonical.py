"""Canonical forms (fitness-cache keys) and GLO coefficients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from glojax.expr import canonical as C
from glojax.expr import coefficients as K
from glojax.expr import program as P
from glojax.expr import tree as T


@pytest.mark.parametrize("a, b", [
    ("x*y", "y*x"),
    ("log(y) - x/y", "-(x/y) + log(y)"),
    ("y*y", "square(y)"),
    ("x + y + x", "2*x + y"),
])
def test_equivalent_trees_share_a_key(a, b):
  assert C.canonical(T.parse(a)) == C.canonical(T.parse(b))


@pytest.mark.parametrize("a, b", [("x/y", "y/x"), ("log(y) - x/y", "log(y) + x/y"),
                                  ("x - y", "y - x")])
def test_different_trees_get_different_keys(a, b):
  assert C.canonical(T.parse(a)) != C.canonical(T.parse(b))


def test_canonical_variables_see_through_cancellation():
  assert C.canonical_variables(T.parse("x - x + y")) == {"y"}
  assert C.canonical_variables(T.parse("log(y) - x/y")) == {"x", "y"}


@pytest.mark.parametrize("text, expected", [
    ("3*(5*x + 2*y)", 2),       # the paper's example: 15x + 6y
    ("log(y) - x/y", 3),        # c1 log(c2 y) - c3 x/y
    ("x*y", 1),
    ("x + 1", 2),
    ("-(x)", 1),
])
def test_pruned_coefficient_counts(text, expected):
  tree = T.parse(text)
  assert len(K.coefficient_indices(tree)) == expected
  assert len(K.coefficient_indices(tree, prune=False)) == T.size(tree)


def test_pruned_family_contains_baikal_cma():
  # BaikalCMA (GLO paper eq. 2): c0 (c1 log(c2 y) - c3 (c4 x)/(c5 y)).
  c = [2.7279, 0.9863, 1.5352, -1.1135, 1.3716, -0.8411]
  cma = T.parse(f"{c[0]} * ({c[1]} * log({c[2]} * y) - {c[3]} * ({c[4]} * x) / ({c[5]} * y))")
  tree = T.parse("log(y) - x / y")
  idx = K.coefficient_indices(tree)
  scales = K.scales_dict(idx, [c[0] * c[1], c[2], c[0] * c[3] * c[4] / c[5]])
  logits = jax.random.normal(jax.random.PRNGKey(0), (6, 10))
  labels = jax.nn.one_hot(jnp.arange(6), 10)
  np.testing.assert_allclose(P.program_loss(P.encode(tree, scales=scales), logits, labels),
                             T.compile_jnp(cma)(logits, labels), rtol=1e-5)
  # The written-out tree (the exported spec) agrees with the scaled program.
  spelled = T.parse(T.to_string(K.with_coefficients(tree, scales)))
  np.testing.assert_allclose(T.compile_jnp(spelled)(logits, labels),
                             T.compile_jnp(cma)(logits, labels), rtol=1e-5)


def test_all_ones_reproduce_the_tree_and_errors():
  tree = T.parse("sqrt(x + 1) * y - 2")
  idx = K.coefficient_indices(tree)
  assert K.with_coefficients(tree, K.scales_dict(idx, np.ones(len(idx)))) == tree
  with pytest.raises(ValueError, match="coefficients for"):
    K.scales_dict(idx, [1.0])
