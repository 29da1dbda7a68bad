"""A sound fitness cache: trees share a key only if they are the same real function on
the evaluation domain (x in [0, 1], y in (0, 1)), NaN pattern included."""

import collections

import jax
import numpy as np
import pytest
import sympy

from glojax.expr import canonical as C
from glojax.expr import tree as T
from glojax.expr import variation as V
from glojax.search import glo

BAD = "x*log(y) + sqrt(-1*y)*sqrt(-1*y)"    # NaN everywhere on real inputs
GOOD = "x*log(y) - y"                        # what sympy makes of it over C


def _fresh_probe(tree, rng, n=400):
  """The tree on random points of the domain (not the grid canonical.py checks on)."""
  x = np.concatenate([[0.0, 1.0], rng.random(n - 2)])
  y = np.concatenate([[1e-20, 1 - 1e-9], rng.random(n - 2)])
  y[2:12] = x[2:12]    # some points on x == y
  grid = {"x": x, "y": y,
          "logits": rng.normal(size=n) * 10}
  with np.errstate(all="ignore"):
    return C._tree_numpy(tree, grid)


def test_complex_simplification_does_not_merge_a_nan_tree():
  bad, good = T.parse(BAD), T.parse(GOOD)
  assert sympy.simplify(C.to_sympy(bad)) == C.to_sympy(good)   # sympy alone merges them
  assert C.canonical(bad) != C.canonical(good)
  assert C.canonical(bad).startswith(C.STRUCTURAL_PREFIX)


@pytest.mark.parametrize("a, b", [("x/x", "1 + 0*x"), ("sqrt(square(x - y))", "x - y"),
                                  ("x*log(x) + y", "y"), ("(x - y)/(x - y) * y", "y")])
def test_trees_that_differ_somewhere_on_the_domain_get_different_keys(a, b):
  assert C.canonical(T.parse(a)) != C.canonical(T.parse(b))


@pytest.mark.parametrize("a, b", [("log(y*y) * x", "2*x*log(y)"), ("x*y/y + y", "x + y"),
                                  ("sqrt(y)*sqrt(y) - x", "y - x"), ("x*y", "y*x")])
def test_real_identities_still_share_a_key(a, b):
  assert C.canonical(T.parse(a)) == C.canonical(T.parse(b))


def test_sympy_errors_fall_back_to_a_key(monkeypatch):
  def broken(*args, **kwargs):
    raise RecursionError("sympy blew up")
  C._canonical_text.cache_clear()
  monkeypatch.setattr(sympy, "simplify", broken)
  tree = T.parse("log(y) - x / y + 0.125")
  key = C.canonical(tree)                      # no exception: the unsimplified form
  assert not key.startswith(C.STRUCTURAL_PREFIX)
  monkeypatch.setattr(C, "to_sympy", broken)
  C._canonical_text.cache_clear()
  assert C.canonical(tree) == C.STRUCTURAL_PREFIX + T.to_string(tree)
  assert C.canonical_variables(tree) == {"x", "y"}
  C._canonical_text.cache_clear()


def test_property_every_shared_key_is_one_real_function():
  rng = np.random.default_rng(0)
  prims = V.Primitives.glo()
  trees = [V.random_tree(rng, 3, prims) for _ in range(300)]
  # Mutated copies make many equal-keyed pairs (x*y / y*x, ...), and known traps.
  trees += [V.mutate(rng, t, V.MutationRates(0.3, 0.3, 0.1, 0.1), prims)[0]
            for t in trees[:150]]
  trees += [T.parse(t) for t in (BAD, GOOD, "x/x", "1 + 0*x", "sqrt(y)*sqrt(y)", "y")]
  groups = collections.defaultdict(list)
  for t in trees:
    groups[C.canonical(t)].append(t)
  shared = [g for g in groups.values() if len({T.to_string(t) for t in g}) > 1]
  assert len(shared) >= 10
  probe_rng = np.random.default_rng(1)
  for group in shared:
    state = probe_rng.bit_generator.state
    reference = _fresh_probe(group[0], probe_rng)
    for other in group[1:]:
      probe_rng.bit_generator.state = state   # the same points for every member
      values = _fresh_probe(other, probe_rng)
      assert C.same_real_function(values, reference, rtol=1e-7), \
          f"{T.to_string(group[0])} and {T.to_string(other)} share a key"


def test_fitness_of_bad_and_good_do_not_share_a_value():
  # The run: fitness([bad, good]) was [0, 0] and [good, bad] gave [0.52, 0.52].
  c = glo.default_config()
  c.dataset.name = "mnist5k"
  c.model.options = {"hidden": (16,)}
  c.train.steps = 20
  c.train.batch_size = 32
  c.train.learning_rate = 1.0     # GOOD is cross-entropy / n (+ y terms)
  c.train.steps_per_call = 1       # a small program to compile
  c.search.population_size = 2
  c.search.elites = 1
  c.search.batch_candidates = 2
  c.search.max_len = 16     # BAD has 14 nodes
  c.search.strategy = "vmap"
  ev = glo.make_evaluator(glo.validate_config(c))
  bad, good = T.parse(BAD), T.parse(GOOD)
  key = jax.random.PRNGKey(0)
  first, statuses, new, _ = ev.fitness([bad, good], key, {})
  assert statuses == ["trained", "trained"] and len(new) == 2
  assert first[0] == 0.0 and first[1] > 0.2           # NaN training: fitness 0
  second, _, _, _ = ev.fitness([good, bad], key, {})
  assert second[1] == 0.0 and second[0] > 0.2
