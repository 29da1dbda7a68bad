"""NLFS genome: graphs, their specs and programs, the integrity check, mutation rates."""

import collections

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from glojax import losses
from glojax.expr import graph as G
from glojax.expr import integrity as I
from glojax.expr import program as P
from glojax.expr import tree as T

_g = G._g   # (op, arg names...) per node h0..h3, root


def _batch():
  logits = jax.random.normal(jax.random.PRNGKey(0), (6, 10)) * 3.0
  labels = jax.nn.one_hot(jnp.arange(6), 10)
  return logits, labels


def test_published_losses_as_graphs_equal_the_zoo_in_specs_and_programs():
  logits, labels = _batch()
  names = ["neuroloss1", "neuroloss2", "neuroloss3", "bessel"]
  programs = G.encode_population([G.KNOWN_GRAPHS[n] for n in names])
  from_programs = jax.jit(jax.vmap(lambda pr: P.program_loss(
      pr, logits, labels, stack_depth=G.PROGRAM_STACK_DEPTH, op_set="all")))(programs)
  for name, via_program in zip(names, from_programs):
    expected = losses.get(name)(logits, labels)
    spec = G.to_spec(G.KNOWN_GRAPHS[name])
    np.testing.assert_allclose(losses.get(spec)(logits, labels), expected, rtol=1e-6,
                               err_msg=name)
    np.testing.assert_allclose(via_program, expected, rtol=1e-5, err_msg=name)


def test_cross_entropy_graph_is_table_5_ce():
  # -(1/n) Σ x ln(y + ε), by hand.
  logits, labels = _batch()
  got = losses.get(G.to_spec(G.KNOWN_GRAPHS["cross_entropy"]))(logits, labels)
  y = np.asarray(jax.nn.softmax(logits), np.float64)
  expected = -np.mean(np.asarray(labels) * np.log(y + 1e-7), axis=-1)
  np.testing.assert_allclose(got, expected, rtol=1e-4)


def test_spec_drops_inactive_nodes_and_applies_the_sign():
  g = G.KNOWN_GRAPHS["cross_entropy"]          # h1..h3 = sin(x) are inactive
  assert G.to_spec(g) == "expr:x * log_eps(y)"
  assert G.to_spec(g.with_sign(1)) == "expr:-(x * log_eps(y))"
  assert G.active_nodes(g) == {0, G.ROOT}
  assert "(inactive)" in g.describe()


def test_shared_nodes_expand_and_every_acyclic_graph_fits_a_program():
  # Worst case: each node reads the next one twice: 2^6 - 1 slots, 6 stack rows.
  g = _g([("*", "h1", "h1"), ("*", "h2", "h2"), ("*", "h3", "h3"), ("+", "x", "y"),
          ("*", "h0", "h0")], -1)
  tree = G.to_tree(g)
  assert T.size(tree) == 63
  assert P.required_stack(tree) == G.PROGRAM_STACK_DEPTH
  program = G.encode(g)
  assert program.opcodes.shape == (G.MAX_PROGRAM_LEN,)
  x, y = np.float32(1.0), np.float32(0.5)
  assert P.run_program(program, x, y, op_set="all") == pytest.approx(1.5 ** 16)


def test_graph_validation_errors():
  with pytest.raises(ValueError, match="unknown op"):
    _g([("cosh", "y")] + [("sin", "x")] * 3 + [("+", "h0", "x")], 1)
  with pytest.raises(ValueError, match="second slot must be -1"):
    G.Graph(("sin",) * 5, ((0, 1),) * 5)
  with pytest.raises(ValueError, match="sign"):
    G.Graph(("sin",) * 5, ((4, -1),) * 5, sign=0)


def test_stack_unstack_round_trip():
  graphs = list(G.KNOWN_GRAPHS.values())
  assert G.unstack(G.stack(graphs)) == graphs


def test_random_graphs_follow_section_3_2():
  rng = np.random.default_rng(0)
  graphs = [G.random_graph(rng) for _ in range(3000)]
  assert all(G.root_reads_hidden(g) for g in graphs)
  ops = collections.Counter(o for g in graphs for o in g.ops)
  assert set(ops) == set(G.OP_NAMES)
  # Op choice is uniform over the 34 ops (15,000 draws: ~441 each).
  counts = np.array([ops[o] for o in G.OP_NAMES])
  assert np.all(np.abs(counts - 15000 / 34) < 5 * np.sqrt(15000 / 34))
  hidden_args = collections.Counter(a for g in graphs for i in range(4)
                                    for a in g.inputs_of(i))
  assert set(hidden_args) == set(range(8))  # inputs, other hidden nodes and itself


# ---- integrity check ---------------------------------------------------------------


def test_cross_entropy_neurolosses_and_bessel_pass():
  for name, g in G.KNOWN_GRAPHS.items():
    v = I.check(g.with_sign(1))
    assert v.ok, (name, v.reason)
    assert v.sign == g.sign, name          # CE and NeuroLosses increase: flipped
    assert v.phenotype.min() == 0.0 and v.phenotype.max() == 1.0
  # Monotone decreasing after the flip: the optimum is at the largest p.
  assert I.check(G.KNOWN_GRAPHS["neuroloss1"]).optimum == pytest.approx(0.9975)


HAND_BUILT = {
    # h0 and h1 read each other.
    "cycle": _g([("sin", "h1"), ("+", "h0", "y"), ("sin", "x"), ("sin", "x"),
                 ("*", "x", "h1")], 1),
    "missing_target": _g([("log_eps", "y"), ("sin", "x"), ("sin", "x"), ("sin", "x"),
                          ("*", "y", "h0")], 1),
    "missing_prediction": _g([("log_eps", "x"), ("sin", "y"), ("sin", "y"), ("sin", "y"),
                              ("*", "x", "h0")], 1),
    "root_input": _g([("log_eps", "y"), ("sin", "x"), ("sin", "x"), ("sin", "x"),
                      ("*", "x", "y")], 1),
    # arctanh(y + 1): NaN on (0, 1).
    "non_finite": _g([("+", "y", "1"), ("arctanh", "h0"), ("sin", "x"), ("sin", "x"),
                      ("*", "x", "h1")], 1),
    # y - y = 0: the loss does not depend on the prediction.
    "constant": _g([("-", "y", "y"), ("sin", "x"), ("sin", "x"), ("sin", "x"),
                    ("+", "x", "h0")], 1),
    # sin(e^e · y) (e^e ≈ 15.2): two and a half periods on (0, 1).
    "multiple_optima": _g([("exp", "1"), ("exp", "h0"), ("*", "h1", "y"), ("sin", "h2"),
                           ("*", "x", "h3")], 1),
    # y² - 1 averaged over both classes: ((1-p)² + p²)/2 - 1, minimum at p = 0.5.
    "optimum_near_half": _g([("square", "y"), ("min", "x", "-1"), ("sin", "x"),
                             ("sin", "x"), ("+", "h0", "h1")], 1),
}


@pytest.mark.parametrize("reason", sorted(HAND_BUILT))
def test_hand_built_graphs_are_rejected_for_their_reason(reason):
  assert I.check(HAND_BUILT[reason]).reason == reason


def test_similar_to_a_population_member_is_rejected_also_when_scaled():
  nl1 = G.KNOWN_GRAPHS["neuroloss1"]
  population = np.stack([I.check(nl1).phenotype])
  assert I.check(nl1, population).reason == "similar"
  # 2·(root) normalizes to the same phenotype (the paper's "simply scaling").
  twice = _g([("div_eps", "y", "x"), ("div_hypot", "y", "h0"), ("log_eps", "h1"),
              ("+", "h2", "h1"), ("+", "h3", "h3")], -1)
  assert I.check(twice, population).reason == "similar"
  assert I.check(G.KNOWN_GRAPHS["neuroloss2"], population).ok


def test_sign_flip_for_increasing_and_inverted_losses():
  ce = G.KNOWN_GRAPHS["cross_entropy"]
  assert I.check(ce.with_sign(1)).sign == -1       # increasing: negated
  assert I.check(ce.with_sign(-1)).sign == -1      # the input sign does not matter
  # -(x ln(y+ε)) decreases in p: kept.
  neg_ce = _g([("log_eps", "y"), ("neg", "h2"), ("*", "x", "h0"), ("sin", "x"),
               ("neg", "h2")], 1)
  assert I.check(neg_ce).sign == 1
  # An upside-down parabola (Bessel negated) is flipped to have a minimum.
  bessel = G.KNOWN_GRAPHS["bessel"]
  inverted = _g([("i0e", "y"), ("min", "h0", "x"), ("+", "h1", "h0"), ("sin", "x"),
                 ("neg", "h2")], 1)
  v = I.check(inverted)
  assert v.ok and v.sign == -1
  np.testing.assert_allclose(v.phenotype, I.check(bessel).phenotype, atol=1e-6)


def test_check_is_pure_and_batched_equals_single():
  graphs = list(HAND_BUILT.values()) + list(G.KNOWN_GRAPHS.values())
  batch = I.check_many(graphs)
  for g, v in zip(graphs, batch):
    w = I.check(g)
    assert (w.reason, w.sign, w.optimum) == (v.reason, v.sign, v.optimum)
  assert I.check_many(graphs)[0] == batch[0]


def test_integrity_config_validation():
  with pytest.raises(ValueError, match="grid_points"):
    I.IntegrityConfig(grid_points=2)
  with pytest.raises(ValueError, match="similarity_threshold"):
    I.IntegrityConfig(similarity_threshold=-1.0)


# ---- mutation (appendix B) -----------------------------------------------------------


def test_mutation_rates_match_appendix_b():
  parent = G.KNOWN_GRAPHS["neuroloss3"]   # unary and binary nodes
  rng = np.random.default_rng(1)
  n = 20000
  kinds, nodes = collections.Counter(), collections.Counter()
  binary_connection = swaps = 0
  kept_side = collections.Counter()
  for _ in range(n):
    child, info = G.mutate(rng, parent)
    kinds[info["kind"]] += 1
    nodes[info["node"]] += 1
    # Only the chosen node changes.
    for i in range(G.NUM_NODES):
      if i != info["node"]:
        assert (child.ops[i], child.args[i]) == (parent.ops[i], parent.args[i])
    assert G.root_reads_hidden(child)
    if not G.is_unary(parent.ops[info["node"]]) and info["kind"] in ("swap", "connection"):
      binary_connection += 1
      swaps += info["kind"] == "swap"
    if info["kind"] == "arity" and not G.is_unary(parent.ops[info["node"]]) \
        and info["node"] != G.ROOT:
      kept = child.args[info["node"]][0]
      kept_side["left" if kept == parent.args[info["node"]][0] else "right"] += 1
    if info["kind"] == "op":
      assert G.is_unary(child.ops[info["node"]]) == G.is_unary(parent.ops[info["node"]])
      assert child.ops[info["node"]] != parent.ops[info["node"]]
    if info["kind"] == "arity":
      assert G.is_unary(child.ops[info["node"]]) != G.is_unary(parent.ops[info["node"]])

  def close(count, total, p):
    return abs(count - total * p) < 5 * np.sqrt(total * p * (1 - p))

  assert close(kinds["op"], n, 0.70)
  assert close(kinds["arity"], n, 0.15)
  assert close(kinds["connection"] + kinds["swap"], n, 0.15)
  assert close(swaps, binary_connection, 0.20)
  assert all(close(nodes[i], n, 0.2) for i in range(G.NUM_NODES))
  total = sum(kept_side.values())
  assert total > 500 and close(kept_side["left"], total, 0.5)


def test_unary_connection_change_never_keeps_the_old_connection():
  parent = G.KNOWN_GRAPHS["bessel"]
  rng = np.random.default_rng(2)
  for _ in range(2000):
    child, info = G.mutate(rng, parent)
    if info["kind"] == "connection" and G.is_unary(parent.ops[info["node"]]):
      assert child.args[info["node"]] != parent.args[info["node"]]


def test_mutation_rates_validation():
  with pytest.raises(ValueError, match="sum to 1"):
    G.MutationRates(op=0.5)
  with pytest.raises(ValueError, match="swap"):
    G.MutationRates(swap=1.5)
