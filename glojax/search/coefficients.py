"""GLO's second phase: CMA-ES on the coefficients of the best trees.

GLO paper §III-B: each of the best ``coefficients.num_trees`` trees gets one
coefficient per node, absorbable ones pruned (:mod:`glojax.expr.coefficients`), tuned
by (μ/μ_w, λ)-CMA-ES (evosax ``CMA_ES`` under the project's ES policy,
:mod:`glojax.search.es`; σ = 1.5, λ = 32, 35 generations, mean at all ones). A tree's CMA-ES candidates differ only in traced program constants, so every
generation trains as one compiled call.

:class:`CoefState` is this phase's part of GLO's search state; :func:`step` is one
CMA-ES generation of the current tree, a function of (state, key).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from glojax import config as config_lib
from glojax.expr import coefficients as coef_lib
from glojax.expr import program as program_lib
from glojax.expr import tree as tree_lib
from glojax.search import es as es_lib
from glojax.search import ga

FLAT_ACTIONS = es_lib.FLAT_ACTIONS
# The key index of tree j's CMA-ES generation g is KEY_OFFSET * (j + 1) + g: after
# every GA generation.
KEY_OFFSET = 1_000_000
_PURPOSE_ASK, _PURPOSE_TRAIN, _PURPOSE_TELL, _PURPOSE_INIT = 2, 1, 3, 4


@dataclasses.dataclass(frozen=True)
class CoefficientsConfig(config_lib.Section):
  """``config.coefficients`` of GLO (paper §III-B).

  Attributes:
    enabled: run the coefficient phase.
    num_trees: how many of the best distinct trees are tuned, one after another.
    population_size: CMA-ES λ.
    generations: CMA-ES generations per tree.
    sigma: initial CMA-ES step size (mean: all ones).
    prune: drop coefficients another coefficient absorbs.
    recombination: ``"positive"`` (the paper's (μ/μ_w, λ) weights) or ``"active"``
      (evosax's negative weights); :mod:`glojax.search.es`.
    ties: ``"random"`` (failed and tied candidates ranked in random order: they do
      not shrink σ) or ``"average"`` (evosax's averaged ranks).
    flat_action: ``"skip_tell"`` keeps the CMA-ES state when every candidate scores
      the same, ``"tell"`` updates it anyway.
  """
  enabled: bool = True
  num_trees: int = 1
  population_size: int = 32
  generations: int = 35
  sigma: float = 1.5
  prune: bool = True
  recombination: str = "positive"
  ties: str = "random"
  flat_action: str = "skip_tell"

  def __post_init__(self):
    config_lib.check_bool(self, "enabled")
    config_lib.check_int(self, "num_trees", 1)
    config_lib.check_int(self, "population_size", 2)
    config_lib.check_int(self, "generations", 0)
    config_lib.check_number(self, "sigma", low=0.0, low_open=True)
    config_lib.check_bool(self, "prune")
    config_lib.check_choice(self, "recombination", es_lib.RECOMBINATIONS)
    config_lib.check_choice(self, "ties", es_lib.TIE_POLICIES)
    config_lib.check_choice(self, "flat_action", FLAT_ACTIONS)

  @property
  def policy(self) -> es_lib.Policy:
    return es_lib.Policy(self.recombination, self.ties, self.flat_action)

  def cma(self, num_dims: int) -> es_lib.CMAES:
    """The CMA-ES of a tree with ``num_dims`` coefficients."""
    return es_lib.CMAES(num_dims, self.population_size, self.sigma, self.policy)


class CoefState(NamedTuple):
  """The coefficient phase of a GLO search (empty until the GA has finished).

  Attributes:
    tree_index: the tree being tuned (index into ``trees``).
    generation: finished CMA-ES generations of that tree.
    trees: ``str[T]`` the trees to tune.
    tree_fitness: ``float64[T]`` their GA fitness.
    best_fitness: ``float64[T]`` best fitness per tree (its GA fitness at first).
    best_coefficients: ``float32[T, max_len]`` the best coefficients per tree, NaN
      padded (all NaN: none better than the tree itself).
    done: ``bool[T]`` trees finished.
    es: the CMA-ES state of the current tree (a 1-D placeholder before the first).
  """
  tree_index: int
  generation: int
  trees: np.ndarray
  tree_fitness: np.ndarray
  best_fitness: np.ndarray
  best_coefficients: np.ndarray
  done: np.ndarray
  es: Any

  @classmethod
  def empty(cls, max_len: int, config: CoefficientsConfig) -> "CoefState":
    placeholder = config.cma(1).init(jax.random.PRNGKey(0), 1.0)
    return cls.start([], [], max_len, placeholder)

  @classmethod
  def start(cls, trees: list[str], fitness: list[float], max_len: int, es,
            done: bool = False) -> "CoefState":
    """The phase about to tune ``trees`` (GA fitness ``fitness``)."""
    t = len(trees)
    return cls(0, 0, np.asarray(trees, np.str_).reshape(t),
               np.asarray(fitness, np.float64).reshape(t),
               np.asarray(fitness, np.float64).reshape(t),
               np.full((t, max_len), np.nan, np.float32), np.full(t, done), es)

  def scales(self, j: int, prune: bool) -> dict:
    """Tree ``j``'s best coefficients as ``{node index: scale}`` (``{}``: none)."""
    row = self.best_coefficients[j]
    if np.all(np.isnan(row)):
      return {}
    indices = coef_lib.coefficient_indices(tree_lib.parse(str(self.trees[j])), prune=prune)
    return coef_lib.scales_dict(indices, row[:len(indices)])


def coefficient_programs(tree: tree_lib.Tree, indices: list[int], coefficients,
                         max_len: int, stack_depth: int) -> program_lib.Program:
  """``K`` programs of one tree, row ``k`` scaled by ``coefficients[k]`` (``[K, d]``)."""
  coefficients = np.asarray(coefficients, np.float64)
  scales = [coef_lib.scales_dict(indices, row) for row in coefficients]
  return program_lib.encode_population([tree] * len(scales), max_len, scales,
                                       stack_depth=stack_depth)


def step(state: CoefState, key: jax.Array, *, config: CoefficientsConfig, evaluator
         ) -> tuple[CoefState, dict, dict]:
  """One CMA-ES generation on tree ``state.tree_index`` (GLO paper §III-B).

  Args:
    state: the phase's state.
    key: this generation's key (its index is :func:`key_index`).
    config: the ``coefficients`` section.
    evaluator: GLO's :class:`glojax.search.glo.Evaluator`.

  Returns:
    ``(state, record, counts)``: ``counts`` are the evaluation counts to add.
  """
  t0 = time.time()
  j, g = state.tree_index, state.generation
  tree = tree_lib.parse(str(state.trees[j]))
  indices = coef_lib.coefficient_indices(tree, prune=config.prune)
  cma = config.cma(len(indices))
  es_state = state.es
  if g == 0:
    es_state = cma.init(jax.random.fold_in(key, _PURPOSE_INIT), 1.0)
  coefs, es_state = cma.ask(jax.random.fold_in(key, _PURPOSE_ASK), es_state)
  programs = coefficient_programs(tree, indices, coefs, evaluator.max_len,
                                  evaluator.stack_depth)
  fitness, failed, seconds = evaluator.train_programs(
      programs, jax.random.fold_in(key, _PURPOSE_TRAIN))
  # Failed and tied candidates and flat generations follow the ES policy (es.py).
  es_state, info = cma.tell(jax.random.fold_in(key, _PURPOSE_TELL), coefs, fitness,
                            es_state)
  flat, told = info.flat, info.told
  i = int(np.argmax(fitness))
  best_fitness, best_coefficients = state.best_fitness, state.best_coefficients
  if fitness[i] > best_fitness[j]:
    best_fitness = best_fitness.copy()
    best_fitness[j] = float(fitness[i])
    best_coefficients = best_coefficients.copy()
    best_coefficients[j] = np.nan
    best_coefficients[j, :len(indices)] = np.asarray(coefs[i], np.float32)
  finished = g + 1 == config.generations
  done = state.done.copy()
  done[j] = done[j] or finished
  state = state._replace(
      # The next tree (if any) starts at generation 0.
      tree_index=j + 1 if finished else j, generation=0 if finished else g + 1,
      best_fitness=best_fitness, best_coefficients=best_coefficients, done=done,
      es=es_state)
  record = {"phase": "cma", "tree": str(state.trees[j]), "generation": g,
            "fitness": fitness.tolist(), **ga.summary(fitness),
            "best_coefficients": np.asarray(coefs[i]).tolist(),
            "best_ever": float(best_fitness[j]), "sigma": cma.sigma(es_state),
            "flat": flat, "told": told, "trained": len(fitness),
            "wall_time_s": time.time() - t0}
  return state, record, {"trained": len(fitness), "failed": failed,
                         "train_seconds": seconds}


def key_index(state: CoefState) -> int:
  """The key index of the phase's next generation."""
  return KEY_OFFSET * (state.tree_index + 1) + state.generation


def finished(state: CoefState) -> bool:
  return bool(np.all(state.done))


def describe_tree(text: str, config: CoefficientsConfig) -> str:
  """The line printed when the tuning of tree ``text`` starts."""
  tree = tree_lib.parse(text)
  n = len(coef_lib.coefficient_indices(tree, prune=config.prune))
  return (f"coefficient phase for expr:{tree_lib.to_string(tree)}: {n} coefficients "
          f"(of {tree_lib.size(tree)} nodes), CMA-ES population {config.population_size}"
          f", σ {config.sigma}, {config.generations} generations")

