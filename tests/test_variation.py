"""GLO's genetic operators: valid trees, the paper's weights and rates (statistically)."""

import collections

import numpy as np
import pytest

from glojax.expr import program as P
from glojax.expr import tree as T
from glojax.expr import variation as V


def _valid(tree):
  # Round-trips through text and through a program: well-formed in both encodings.
  assert T.parse(T.to_string(tree)) == tree
  assert P.decode(P.encode(tree, max_len=T.size(tree))) == tree


def test_random_trees_respect_depth_and_root_weights():
  rng = np.random.default_rng(0)
  roots = collections.Counter()
  n = 6000
  for _ in range(n):
    t = V.random_tree(rng, 2)
    assert T.depth(t) <= 2
    roots[V._symbol(t)] += 1
  total = sum(V.DEFAULT_WEIGHTS.values())   # 18
  for name, w in V.DEFAULT_WEIGHTS.items():
    p = w / total
    sd = np.sqrt(p * (1 - p) / n)
    assert abs(roots[name] / n - p) < 4.5 * sd, (name, roots[name] / n, p)


def test_random_tree_leaves_at_max_depth_and_logits_switch():
  rng = np.random.default_rng(1)
  assert all(isinstance(V.random_tree(rng, 0), T.Leaf) for _ in range(50))
  with_logits = [V.random_tree(rng, 2, V.Primitives.glo(allow_logits=True))
                 for _ in range(300)]
  assert any("logits" in T.variables(t) for t in with_logits)
  assert not any("logits" in T.variables(V.random_tree(rng, 2)) for _ in range(300))
  with pytest.raises(ValueError, match="max_depth"):
    V.random_tree(rng, -1)


def test_crossover_swaps_subtrees_and_keeps_material():
  rng = np.random.default_rng(2)
  a, b = T.parse("log(y) - x / y"), T.parse("sqrt(x) * (y + 1)")
  crossed = 0
  n = 2000
  for _ in range(n):
    ca, cb, did = V.crossover(rng, a, b, 0.8)
    _valid(ca)
    _valid(cb)
    # A swap conserves the total number of nodes.
    assert T.size(ca) + T.size(cb) == T.size(a) + T.size(b)
    if did:
      crossed += 1
    else:
      assert (ca, cb) == (a, b)
  assert abs(crossed / n - 0.8) < 4.5 * np.sqrt(0.16 / n)
  ca, cb, did = V.crossover(rng, T.parse("x"), T.parse("y"), 1.0)
  assert did and (ca, cb) == (T.parse("y"), T.parse("x"))
  with pytest.raises(ValueError, match="probability"):
    V.crossover(rng, a, b, 1.5)


def test_mutation_rates_match_the_paper_statistically():
  rng = np.random.default_rng(3)
  totals = collections.Counter()
  trees = [V.random_tree(rng, 3) for _ in range(400)] + [T.parse("1 + x * (-1)")] * 400
  for _ in range(5):
    for t in trees:
      out, counts = V.mutate(rng, t)
      _valid(out)
      totals.update(counts)
      if sum(counts[m] for m in V.MUTATIONS) == 0:
        assert out == t
  for name, p in [("integer", 0.05), ("swap", 0.05), ("shrink", 0.025), ("grow", 0.025)]:
    n = totals[f"eligible_{name}"]
    assert n > 3000
    assert abs(totals[name] / n - p) < 4.5 * np.sqrt(p * (1 - p) / n), (name, totals[name] / n)


@pytest.mark.parametrize("name", V.MUTATIONS)
def test_each_mutation_does_what_it_says(name):
  rng = np.random.default_rng(4)
  rates = V.MutationRates(**{m: (1.0 if m == name else 0.0) for m in V.MUTATIONS})
  tree = T.parse("log(y) - 2 / x")
  out, counts = V.mutate(rng, tree, rates)
  _valid(out)
  assert out != tree
  if name == "integer":
    assert counts["integer"] == 1
    assert T.to_string(out) in ("log(y) - 1 / x", "log(y) - 3 / x")
  elif name == "shrink":   # bottom-up: the innermost operator (log) shrinks first
    assert isinstance(out, T.Leaf)
  elif name == "swap":     # every node changed, shape kept
    assert counts["swap"] == T.size(tree)
    assert [len(p) for p in V.paths(out)] == [len(p) for p in V.paths(tree)]
    assert out.op in ("+", "*", "/")
  else:                    # grow: every leaf became an operator over leaves
    assert counts["grow"] == 3 and T.depth(out) == 3


def test_rates_validation():
  with pytest.raises(ValueError, match="swap"):
    V.MutationRates(swap=1.5)
  with pytest.raises(ValueError, match="unknown primitive"):
    V.Primitives({"exp": 1.0, "x": 1.0})
