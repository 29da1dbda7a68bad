r"""NLFS's loss genome: a computational graph of 4 hidden nodes and 1 output node.

Morgan & Hougen 2024 (NLFS), §3.1–3.2 and appendix B; SPEC §7. A :class:`Graph` has
five nodes: hidden nodes ``h0 … h3`` and the output ("root") node. Each node applies one
of the 34 operations of :mod:`glojax.expr.ops` (27 unary, 7 binary) to one or two
*connections*, each an input — target ``x`` (the paper's ``y``), prediction ``y`` (the
paper's ``ŷ``), the constants ``1`` and ``-1`` — or a hidden node. The root takes at least
one hidden node. A hidden node may name any hidden node, itself included, so a graph can
hold a cycle; the integrity check (:mod:`glojax.expr.integrity`) rejects those.

The loss of a graph with output ``r`` and sign ``s ∈ {+1, -1}`` is

.. math:: L = s \cdot \frac{1}{n} \sum_{i=1}^n r(x_i, y_i),\quad y = \mathrm{softmax}(\tilde y)

i.e. the GLO form ``L = -(1/n) Σ f`` with ``f = -s·r``. The integrity check sets ``s``
(it flips increasing losses, §3.3). The notation follows the loss zoo (``x`` = labels,
``y`` = softmax outputs), so NeuroLoss1 reads ``ŷ/(y+ε)`` as ``div_eps(y, x)``.

A graph compiles, through :func:`to_tree`, to the same fixed-size postfix programs as GLO
trees (:mod:`glojax.expr.program`): shared hidden nodes are expanded, so a program needs
at most :data:`MAX_PROGRAM_LEN` slots and :data:`PROGRAM_STACK_DEPTH` stack rows, and a
population of different graphs trains as one compiled program.

Arrays: a population is ``ops int32[K, 5]`` (indices into :data:`OP_NAMES`),
``args int32[K, 5, 2]`` (connection ids, ``-1`` for a unary op's unused second slot) and
``signs int32[K]`` — see :func:`stack` / :func:`unstack`.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import numpy as np

from glojax.expr import ops as ops_lib
from glojax.expr import program as program_lib
from glojax.expr.tree import Leaf, Node, Tree, to_string

NUM_HIDDEN = 4
NUM_NODES = NUM_HIDDEN + 1
ROOT = NUM_HIDDEN                                   # node index of the output node
INPUTS = ("x", "y", "1", "-1")                      # connection ids 0..3
NUM_CONNECTIONS = len(INPUTS) + NUM_HIDDEN          # ids 4..7 are h0..h3
OP_NAMES = tuple(ops_lib.NLFS_UNARY) + tuple(ops_lib.NLFS_BINARY)
NUM_UNARY = len(ops_lib.NLFS_UNARY)
_OP_INDEX = {name: i for i, name in enumerate(OP_NAMES)}
# A full binary tree of depth NUM_NODES, plus the sign's negation: every acyclic graph fits.
MAX_PROGRAM_LEN = 2 ** (NUM_NODES + 1)              # 63 slots + 1 for the sign
PROGRAM_STACK_DEPTH = NUM_NODES + 1
EXPR_PREFIX = "expr:"


def is_unary(op: str | int) -> bool:
  """Whether ``op`` (a name or an index into :data:`OP_NAMES`) is one of the 27 unary ops."""
  index = _OP_INDEX[op] if isinstance(op, str) else int(op)
  return index < NUM_UNARY


def connection_name(c: int) -> str:
  """``"x"``, ``"y"``, ``"1"``, ``"-1"`` or ``"h0"`` … ``"h3"`` for a connection id."""
  return INPUTS[c] if c < len(INPUTS) else f"h{c - len(INPUTS)}"


def is_hidden(c: int) -> bool:
  return c >= len(INPUTS)


@dataclasses.dataclass(frozen=True)
class Graph:
  """One NLFS loss graph (immutable).

  Attributes:
    ops: 5 op names (``h0 … h3``, then the root), each in :data:`OP_NAMES`.
    args: 5 pairs of connection ids (0..7: ``x, y, 1, -1, h0 … h3``); the second entry
      of a unary node is ``-1``.
    sign: the loss sign ``s`` (module docstring): ``+1`` or ``-1``.
  """
  ops: tuple
  args: tuple
  sign: int = 1

  def __post_init__(self):
    ops = tuple(str(o) for o in self.ops)
    args = tuple(tuple(int(a) for a in pair) for pair in self.args)
    object.__setattr__(self, "ops", ops)
    object.__setattr__(self, "args", args)
    if len(ops) != NUM_NODES or len(args) != NUM_NODES:
      raise ValueError(f"a graph has {NUM_NODES} nodes; got {len(ops)} ops and "
                       f"{len(args)} argument pairs")
    for i, (op, pair) in enumerate(zip(ops, args)):
      if op not in _OP_INDEX:
        raise ValueError(f"node {i}: unknown op {op!r}; known: {OP_NAMES}")
      if len(pair) != 2:
        raise ValueError(f"node {i}: args must be a pair, got {pair}")
      needed = pair[:1] if is_unary(op) else pair
      if any(not 0 <= a < NUM_CONNECTIONS for a in needed):
        raise ValueError(f"node {i} ({op}): connection ids must be in 0..."
                         f"{NUM_CONNECTIONS - 1}, got {pair}")
      if is_unary(op) and pair[1] != -1:
        raise ValueError(f"node {i}: unary op {op!r} takes one connection; its second "
                         f"slot must be -1, got {pair}")
    if self.sign not in (1, -1):
      raise ValueError(f"graph sign must be +1 or -1, got {self.sign!r}")

  def inputs_of(self, node: int) -> tuple[int, ...]:
    """The connection ids node ``node`` reads (one or two)."""
    return self.args[node][:1] if is_unary(self.ops[node]) else self.args[node]

  def with_sign(self, sign: int) -> "Graph":
    return dataclasses.replace(self, sign=int(sign))

  def describe(self) -> str:
    """One line per node, e.g. ``h0 = div_eps(y, x)``; inactive nodes marked."""
    active = active_nodes(self)
    lines = []
    for i in range(NUM_NODES):
      name = "out" if i == ROOT else f"h{i}"
      args = ", ".join(connection_name(c) for c in self.inputs_of(i))
      mark = "" if i in active else "   (inactive)"
      lines.append(f"{name} = {self.ops[i]}({args}){mark}")
    lines.append(f"loss = {'+' if self.sign > 0 else '-'}(1/n) sum_i out")
    return "\n".join(lines)


# ---- structure ----------------------------------------------------------------------


def active_nodes(graph: Graph) -> set[int]:
  """Node indices reachable from the root (the root included); cycles are tolerated."""
  seen, todo = {ROOT}, [ROOT]
  while todo:
    node = todo.pop()
    for c in graph.inputs_of(node):
      if is_hidden(c) and (c - len(INPUTS)) not in seen:
        seen.add(c - len(INPUTS))
        todo.append(c - len(INPUTS))
  return seen


def has_cycle(graph: Graph) -> bool:
  """Whether the active part of the graph (what the root reads) contains a cycle.

  Inactive nodes do not enter the loss, so a cycle among them is not one of the
  graph's; a mutation that connects it is caught when it becomes active.
  """
  state: dict[int, int] = {}   # 1 = on the DFS stack, 2 = done

  def visit(node: int) -> bool:
    state[node] = 1
    for c in graph.inputs_of(node):
      if not is_hidden(c):
        continue
      h = c - len(INPUTS)
      if state.get(h) == 1 or (h not in state and visit(h)):
        return True
    state[node] = 2
    return False

  return visit(ROOT)


def variables(graph: Graph) -> set[str]:
  """Inputs among ``{"x", "y"}`` read by active nodes."""
  out = set()
  for node in active_nodes(graph):
    out.update(INPUTS[c] for c in graph.inputs_of(node) if c in (0, 1))
  return out


def root_reads_hidden(graph: Graph) -> bool:
  """§3.2: the output node takes at least one hidden node."""
  return any(is_hidden(c) for c in graph.inputs_of(ROOT))


# ---- compilation -----------------------------------------------------------------------


def _connection_tree(graph: Graph, c: int, memo: dict) -> Tree:
  if c == 0:
    return Leaf("x")
  if c == 1:
    return Leaf("y")
  if c == 2:
    return Leaf(1.0)
  if c == 3:
    return Leaf(-1.0)
  return _node_tree(graph, c - len(INPUTS), memo)


def _node_tree(graph: Graph, node: int, memo: dict) -> Tree:
  if node not in memo:
    children = tuple(_connection_tree(graph, c, memo) for c in graph.inputs_of(node))
    memo[node] = Node(graph.ops[node], children)
  return memo[node]


def output_tree(graph: Graph) -> Tree:
  """The root's expression ``r(x, y)`` with shared hidden nodes expanded.

  Raises:
    ValueError: if the active graph has a cycle.
  """
  if has_cycle(graph):
    raise ValueError("the graph has a cycle; it has no expression")
  return _node_tree(graph, ROOT, {})


def to_tree(graph: Graph) -> Tree:
  """The GLO-form tree ``f = -s·r`` (so ``L = -(1/n) Σ f`` is the graph's loss).

  Raises:
    ValueError: if the active graph has a cycle.
  """
  root = output_tree(graph)
  return root if graph.sign < 0 else Node("neg", (root,))


def to_spec(graph: Graph) -> str:
  """The ``"expr:..."`` spec of the graph's loss (inactive nodes dropped), loadable by
  ``glojax.losses.get``."""
  return EXPR_PREFIX + to_string(to_tree(graph))


def encode(graph: Graph) -> program_lib.Program:
  """The graph's loss as a fixed-size program (:data:`MAX_PROGRAM_LEN` slots)."""
  return program_lib.encode(to_tree(graph), MAX_PROGRAM_LEN,
                            stack_depth=PROGRAM_STACK_DEPTH)


def encode_population(graphs: Sequence[Graph]) -> program_lib.Program:
  """``K`` graphs as one :class:`~glojax.expr.program.Program` of ``[K, L]`` arrays."""
  return program_lib.encode_population([to_tree(g) for g in graphs], MAX_PROGRAM_LEN,
                                       stack_depth=PROGRAM_STACK_DEPTH)


# ---- arrays ----------------------------------------------------------------------------


def stack(graphs: Sequence[Graph]) -> dict:
  """Graphs as arrays: ``{"ops": int32[K, 5], "args": int32[K, 5, 2], "signs": int32[K]}``."""
  graphs = list(graphs)
  return {"ops": np.asarray([[_OP_INDEX[o] for o in g.ops] for g in graphs],
                            np.int32).reshape(len(graphs), NUM_NODES),
          "args": np.asarray([g.args for g in graphs], np.int32).reshape(
              len(graphs), NUM_NODES, 2),
          "signs": np.asarray([g.sign for g in graphs], np.int32)}


def unstack(arrays: dict) -> list[Graph]:
  """Inverse of :func:`stack`."""
  ops = np.asarray(arrays["ops"])
  args = np.asarray(arrays["args"])
  signs = np.asarray(arrays["signs"])
  return [Graph(tuple(OP_NAMES[int(o)] for o in ops[k]),
                tuple(tuple(int(a) for a in pair) for pair in args[k]), int(signs[k]))
          for k in range(ops.shape[0])]


# ---- initialization (§3.2) -----------------------------------------------------------


def _random_node(rng: np.random.Generator, root: bool) -> tuple[str, tuple[int, int]]:
  op = OP_NAMES[rng.integers(len(OP_NAMES))]
  if not root:
    a = tuple(int(c) for c in rng.integers(NUM_CONNECTIONS, size=2))
  elif is_unary(op):
    a = (int(len(INPUTS) + rng.integers(NUM_HIDDEN)), -1)
  else:
    # Uniform over the 48 ordered pairs with at least one hidden node.
    pairs = [(i, j) for i in range(NUM_CONNECTIONS) for j in range(NUM_CONNECTIONS)
             if is_hidden(i) or is_hidden(j)]
    a = pairs[rng.integers(len(pairs))]
  return op, (a[0], -1) if is_unary(op) else a


def random_graph(rng: np.random.Generator) -> Graph:
  """A graph initialized per NLFS §3.2 (before any integrity check).

  Each node's op is uniform over all 34 ops; each hidden node's connections are
  uniform over the 8 inputs and hidden nodes (itself included); the root's connections
  are uniform over those with at least one hidden node. Sign ``+1``.
  """
  nodes = [_random_node(rng, i == ROOT) for i in range(NUM_NODES)]
  return Graph(tuple(op for op, _ in nodes), tuple(a for _, a in nodes), 1)


# ---- mutation (appendix B) ----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class MutationRates:
  """Appendix B's mutation probabilities.

  Attributes:
    op: the chosen node's op changes to another of the same arity (70 %).
    arity: its op changes arity, unary ↔ binary (15 %).
    connection: one of its connections changes (15 %).
    swap: for a binary node's connection change, the probability that its two
      arguments are swapped instead (20 %).
  """
  op: float = 0.70
  arity: float = 0.15
  connection: float = 0.15
  swap: float = 0.20

  def __post_init__(self):
    for name in ("op", "arity", "connection", "swap"):
      value = getattr(self, name)
      if not 0.0 <= value <= 1.0:
        raise ValueError(f"MutationRates.{name} must be in [0, 1], got {value!r}")
    if not np.isclose(self.op + self.arity + self.connection, 1.0):
      raise ValueError(f"MutationRates op + arity + connection must sum to 1, got "
                       f"{self.op} + {self.arity} + {self.connection}")


MUTATION_KINDS = ("op", "arity", "connection", "swap")


def _other(rng: np.random.Generator, choices: Sequence[int], current: int) -> int:
  options = [c for c in choices if c != current]
  return int(options[rng.integers(len(options))]) if options else int(current)


def _allowed(node: int, other: Optional[int]) -> list[int]:
  """Connections node ``node`` may take when its other argument is ``other``: all 8,
  except that the root must keep at least one hidden input."""
  if node == ROOT and (other is None or not is_hidden(other)):
    return [c for c in range(NUM_CONNECTIONS) if is_hidden(c)]
  return list(range(NUM_CONNECTIONS))


def mutate(rng: np.random.Generator, graph: Graph,
           rates: MutationRates = MutationRates()) -> tuple[Graph, dict]:
  """One mutation per NLFS appendix B (the child is not integrity-checked here).

  A node (root or hidden) is drawn uniformly, then with probability ``rates.op`` its op
  becomes a different op of the same arity; with ``rates.arity`` it swaps arity — a
  unary node becomes a random binary op whose new second argument is a random input
  or hidden node, a binary node a random unary op keeping its left or right argument
  (1/2 each); otherwise (``rates.connection``) a connection changes — a unary node's to
  a different one (uniform), a binary node's arguments are swapped with probability
  ``rates.swap``, else its left or right argument (1/2 each) becomes a different one.

  Where appendix B is silent we chose: the root's draws keep at least one hidden input
  (§3.2's rule; a binary root becoming unary keeps its hidden argument, and a root
  connection is drawn among the connections that keep the rule); the child keeps the
  parent's sign (the integrity check sets it).

  Args:
    rng: NumPy generator.
    graph: the parent.
    rates: :class:`MutationRates`.

  Returns:
    ``(child, info)`` with ``info = {"node": int, "kind": one of MUTATION_KINDS}``.
  """
  node = int(rng.integers(NUM_NODES))
  ops, args = list(graph.ops), [list(a) for a in graph.args]
  op = ops[node]
  u = rng.random()
  if u < rates.op:
    kind = "op"
    pool = range(NUM_UNARY) if is_unary(op) else range(NUM_UNARY, len(OP_NAMES))
    ops[node] = OP_NAMES[_other(rng, list(pool), _OP_INDEX[op])]
  elif u < rates.op + rates.arity:
    kind = "arity"
    if is_unary(op):
      ops[node] = OP_NAMES[NUM_UNARY + rng.integers(len(OP_NAMES) - NUM_UNARY)]
      choices = _allowed(node, args[node][0])
      args[node][1] = int(choices[rng.integers(len(choices))])
    else:
      ops[node] = OP_NAMES[rng.integers(NUM_UNARY)]
      keep = int(rng.integers(2))
      if node == ROOT and not is_hidden(args[node][keep]):
        keep = 1 - keep
      args[node] = [args[node][keep], -1]
  else:
    if not is_unary(op) and rng.random() < rates.swap:
      kind = "swap"
      args[node] = args[node][::-1]
    else:
      kind = "connection"
      if is_unary(op):
        args[node][0] = _other(rng, _allowed(node, None), args[node][0])
      else:
        side = int(rng.integers(2))
        args[node][side] = _other(rng, _allowed(node, args[node][1 - side]),
                                  args[node][side])
  child = Graph(tuple(ops), tuple(tuple(a) for a in args), graph.sign)
  return child, {"node": node, "kind": kind}


# ---- published losses as graphs ----------------------------------------------------------


def _g(nodes: Sequence[tuple], sign: int) -> Graph:
  """Builds a graph from ``(op, arg names...)`` per node (h0..h3, root)."""
  ids = {name: i for i, name in enumerate(INPUTS)}
  ids.update({f"h{i}": len(INPUTS) + i for i in range(NUM_HIDDEN)})
  ops, args = [], []
  for op, *names in nodes:
    ops.append(op)
    a = [ids[n] for n in names]
    args.append((a[0], a[1] if len(a) > 1 else -1))
  return Graph(tuple(ops), tuple(args), sign)


# Table 5 and §3.6 in the genome (x = target, y = prediction; unused nodes are filler).
KNOWN_GRAPHS = {
    # -(1/n) Σ x ln(y + ε)
    "cross_entropy": _g([("log_eps", "y"), ("sin", "x"), ("sin", "x"), ("sin", "x"),
                         ("*", "x", "h0")], -1),
    # -(1/n) Σ ln(|a| + ε) + a,  a = y / sqrt(1 + (y / (x + ε))²)
    "neuroloss1": _g([("div_eps", "y", "x"), ("div_hypot", "y", "h0"),
                      ("log_eps", "h1"), ("sin", "x"), ("+", "h2", "h1")], -1),
    # -(1/n) Σ log10(|a| + ε) + sin(a)
    "neuroloss2": _g([("div_eps", "y", "x"), ("div_hypot", "y", "h0"),
                      ("log10_eps", "h1"), ("sin", "h1"), ("+", "h2", "h3")], -1),
    # -(1/n) Σ ln(|a| + ε) + min(x, y / (x + ε))
    "neuroloss3": _g([("div_eps", "y", "x"), ("div_hypot", "y", "h0"),
                      ("log_eps", "h1"), ("min", "x", "h0"), ("+", "h2", "h3")], -1),
    # (1/n) Σ min(i0e(y), x) + i0e(y)
    "bessel": _g([("i0e", "y"), ("min", "h0", "x"), ("sin", "x"), ("sin", "x"),
                  ("+", "h1", "h0")], 1),
}
