r"""The evolution-strategy policy of every glojax search, in one place.

Every CMA-ES in glojax (TaylorGLO's θ search, GLO's coefficient phase, the learning-rate
tuning of the cross-entropy baseline, the co-evolved learning rate) is built and told
through :class:`CMAES`, so the choices below hold everywhere:

* **Recombination weights** (``recombination``). The papers (GLO §III-B, dissertation
  §5.2) use (μ/μ_w, λ)-CMA-ES: the best μ = ⌊λ/2⌋ candidates get positive weights
  :math:`w_i \propto \ln\frac{λ+1}{2} - \ln i` (Hansen 2016, eq. 49), the rest 0. evosax's
  ``CMA_ES`` defaults to *active* CMA (Hansen 2016, eq. 53: the worse half gets negative
  weights in the covariance update). ``"positive"`` (default) is the papers' choice;
  ``"active"`` is evosax's.
* **Sign** (``to_minimization``). glojax fitness is higher-is-better (validation
  accuracy); evosax minimizes. Non-finite fitness counts as 0 (a failed training).
* **Failed and tied candidates** (``ties``). Ranks decide the weights. evosax ranks ties
  by their *average* rank, truncated to an integer, so a block of tied candidates (say 15
  failed trainings at fitness 0) all get the one weight at that rank: the weights then
  no longer sum to 1 and no longer have the spread CMA-ES's step-size rule assumes
  (:math:`\sum w_i^2 = 1/μ_{eff}`), and σ (and the covariance) shrinks although the
  tie carries no information (the test ``tests/test_es.py`` reproduces it: 15 failures +
  5 random scores, σ 1.2 → 0.8 median after 40 generations, while 20 distinct random
  scores leave σ at 1.2). ``"random"`` (default) breaks ties uniformly at random, so
  every generation hands out exactly the λ recombination weights: failed candidates
  still rank below every successful one, a tie among them says nothing, and under
  uninformative fitness σ follows the same neutral random walk as with distinct
  scores. ``"average"`` is evosax's behaviour, kept to reproduce old runs.
* **Flat generations** (``flat_action``). When every candidate has the same fitness
  (typically all failed), ``"skip_tell"`` (default) keeps the ES state and the next
  generation resamples; ``"tell"`` updates with random ranks (a pure random-walk step).

References: N. Hansen, "The CMA Evolution Strategy: A Tutorial" (arXiv:1604.00772),
eqs. 49–53; GLO paper §III-B; dissertation §5.2 (TaylorGLO: mean 0, σ0 = 1.2, λ = 20).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

RECOMBINATIONS = ("positive", "active")
TIE_POLICIES = ("random", "average")
FLAT_ACTIONS = ("skip_tell", "tell")
_TIE_KEY = 0x7135  # folded into the tell key for the tie-breaking draw


@dataclasses.dataclass(frozen=True)
class Policy:
  """How a glojax CMA-ES recombines and treats failed, tied and flat generations.

  Attributes:
    recombination: ``"positive"`` (the papers' (μ/μ_w, λ) weights) or ``"active"``
      (evosax's default, negative weights for the worse half).
    ties: ``"random"`` (ties broken uniformly at random) or ``"average"`` (evosax's
      average rank; shrinks σ when many candidates tie).
    flat_action: ``"skip_tell"`` or ``"tell"`` for an all-equal generation.

  Raises:
    ValueError: for a value not in :data:`RECOMBINATIONS`, :data:`TIE_POLICIES` or
      :data:`FLAT_ACTIONS`.
  """
  recombination: str = "positive"
  ties: str = "random"
  flat_action: str = "skip_tell"

  def __post_init__(self):
    for name, allowed in (("recombination", RECOMBINATIONS), ("ties", TIE_POLICIES),
                          ("flat_action", FLAT_ACTIONS)):
      if getattr(self, name) not in allowed:
        raise ValueError(f"{name}={getattr(self, name)!r} is not one of {allowed}")


POLICY_KEYS = tuple(f.name for f in dataclasses.fields(Policy))


def policy_from_config(section: Mapping[str, Any], path: str) -> Policy:
  """The :class:`Policy` of a config section holding ``recombination``, ``ties`` and
  ``flat_action`` keys (missing keys take the defaults).

  Raises:
    ValueError: naming ``config.<path>.<key>`` and the bad value.
  """
  values = {k: section[k] for k in POLICY_KEYS if k in section}
  try:
    return Policy(**values)
  except ValueError as e:
    raise ValueError(f"config.{path}.{e}") from None


def recombination_weights(population_size: int, recombination: str = "positive",
                          num_dims: int = 1) -> np.ndarray:
  """The λ rank weights (best first) of a :class:`CMAES` of this population size.

  Returns:
    ``float32[λ]``: for ``"positive"``, :math:`w_i = w'_i / \\sum_{j≤μ} w'_j` for
    :math:`i ≤ μ = ⌊λ/2⌋` (:math:`w'_i = \\ln\\frac{λ+1}{2} - \\ln i`), 0 after; for
    ``"active"`` evosax's negative weights after μ (their size depends on
    ``num_dims``).
  """
  return np.asarray(_make_evosax(num_dims, population_size, 1.0, recombination)[1]
                    .weights)


@functools.lru_cache(maxsize=32)
def _evosax_instance(num_dims: int, population_size: int, recombination: str):
  # evosax jits ask/tell with the instance as a static argument: sharing one instance
  # per shape compiles them once per process instead of once per search.
  from evosax.algorithms import CMA_ES
  es = CMA_ES(population_size=population_size,
              solution=jnp.zeros(num_dims, jnp.float32))
  # evosax reads this flag when it builds the weights (Hansen 2016, eq. 53).
  es.use_negative_weights = recombination == "active"
  return es


def _make_evosax(num_dims: int, population_size: int, sigma: float, recombination: str):
  if recombination not in RECOMBINATIONS:
    raise ValueError(f"recombination={recombination!r} is not one of {RECOMBINATIONS}")
  es = _evosax_instance(int(num_dims), int(population_size), recombination)
  params = es.default_params.replace(std_init=jnp.asarray(sigma, jnp.float32))
  return es, params


def sanitize_fitness(fitness) -> np.ndarray:
  """``float32[K]`` fitness with NaN/±inf replaced by 0 (a failed candidate)."""
  fitness = np.asarray(fitness, np.float32)
  return np.where(np.isfinite(fitness), fitness, 0.0).astype(np.float32)


def to_minimization(fitness) -> jax.Array:
  """glojax fitness (maximize, ``float[K]``) → evosax fitness (minimize): ``-fitness``,
  non-finite entries first set to 0 (failed)."""
  return -jnp.asarray(sanitize_fitness(fitness))


def ranked_fitness(fitness: jax.Array, key: jax.Array, ties: str = "random") -> jax.Array:
  """The values handed to evosax for glojax ``fitness`` under a tie policy.

  Args:
    fitness: ``float[K]``, higher is better; non-finite entries count as 0.
    key: PRNG key of the tie-breaking draw (used by ``"random"``).
    ties: ``"random"`` or ``"average"`` (see the module docstring).

  Returns:
    ``float32[K]`` to minimize. ``"random"``: distinct ranks 0 … K-1 (0 = best), ties
    ordered by a uniform random permutation, so evosax assigns exactly the λ
    recombination weights. ``"average"``: ``-fitness`` (evosax averages tied ranks).
    jit/vmap-compatible.

  Raises:
    ValueError: for an unknown ``ties``.
  """
  if ties not in TIE_POLICIES:
    raise ValueError(f"ties={ties!r} is not one of {TIE_POLICIES}")
  f = jnp.asarray(fitness, jnp.float32)
  f = jnp.where(jnp.isfinite(f), f, 0.0)
  if ties == "average":
    return -f
  u = jax.random.uniform(jax.random.fold_in(key, _TIE_KEY), f.shape)
  order = jnp.lexsort((u, -f))  # best first; equal fitness in random order
  return jnp.zeros(f.shape, jnp.float32).at[order].set(
      jnp.arange(f.shape[0], dtype=jnp.float32))


class TellInfo(NamedTuple):
  """What one :meth:`CMAES.tell` did: ``flat`` (all fitness equal), ``told`` (the state
  was updated)."""
  flat: bool
  told: bool


class CMAES:
  """evosax ``CMA_ES`` under a glojax :class:`Policy`.

  Args:
    num_dims: search dimension.
    population_size: λ.
    sigma: initial step size σ0.
    policy: a :class:`Policy` (default: the papers' positive weights, random ties,
      skip flat generations).

  Attributes:
    es, params: the evosax algorithm and its parameters (weights per ``policy``).

  Raises:
    ValueError: for ``num_dims < 1``, ``population_size < 2`` or ``sigma`` not > 0.
  """

  def __init__(self, num_dims: int, population_size: int, sigma: float,
               policy: Policy = Policy()):
    if num_dims < 1:
      raise ValueError(f"num_dims={num_dims!r} must be ≥ 1")
    if population_size < 2:
      raise ValueError(f"population_size={population_size!r} must be ≥ 2")
    if not (np.isfinite(sigma) and sigma > 0):
      raise ValueError(f"sigma={sigma!r} must be a finite number > 0")
    self.num_dims, self.population_size, self.policy = num_dims, population_size, policy
    self.es, self.params = _make_evosax(num_dims, population_size, sigma,
                                        policy.recombination)

  def init(self, key: jax.Array, mean) -> Any:
    """The initial evosax state at ``mean`` (``float[num_dims]``, or a scalar)."""
    mean = jnp.broadcast_to(jnp.asarray(mean, jnp.float32), (self.num_dims,))
    return self.es.init(key, mean, self.params)

  def ask(self, key: jax.Array, state) -> tuple[jax.Array, Any]:
    """``(population float32[λ, num_dims], state)``."""
    return self.es.ask(key, state, self.params)

  def tell(self, key: jax.Array, population: jax.Array, fitness, state
           ) -> tuple[Any, TellInfo]:
    """Updates ``state`` with glojax ``fitness`` (``float[λ]``, higher is better).

    Non-finite fitness counts as 0; ties and flat generations follow the policy.

    Returns:
      ``(state, TellInfo)``.
    """
    f = sanitize_fitness(fitness)
    flat = bool(np.all(f == f[0]))
    if flat and self.policy.flat_action == "skip_tell":
      return state, TellInfo(flat=True, told=False)
    state, _ = self.es.tell(key, population, ranked_fitness(f, key, self.policy.ties),
                            state, self.params)
    return state, TellInfo(flat=flat, told=True)

  @staticmethod
  def sigma(state) -> float:
    """The state's step size σ."""
    return float(state.std)

  @staticmethod
  def mean(state) -> np.ndarray:
    """The state's distribution mean, ``float32[num_dims]``."""
    return np.asarray(state.mean)
