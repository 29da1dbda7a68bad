"""Exploit/explore of population-based training as pure, jitted functions.

A population is one pytree with a leading member axis ``p`` (:class:`Population`):
every member's network state (weights, batch statistics, optimizer state, PRNG keys),
its hyperparameters ``hparams: float32[p, D]`` (TaylorGLO θ and/or SGD learning rate
and momentum, one column each), its fitness and its identity. A generation's selection
and variation is one compiled function of that pytree and a PRNG key:

* :func:`next_generation` — EPBT (Liang, Gonzalez & Miikkulainen 2020, §3.2,
  Algorithm 1): elitism keeps the best ``k`` members; the other ``p − k`` slots get
  children of tournament winners (t = 2) with mutated and crossed-over hyperparameters.
* :func:`pbt_exploit_explore` — PBT (Jaderberg et al. 2017) with truncation selection:
  the bottom fraction copies a random member of the top fraction and perturbs
  (×0.8 / ×1.2) or resamples its hyperparameters (the paper's baselines 2 and 3).

Copies of members are gathers on the member axis inside the compiled function (no host
round trip). A member that failed (non-finite training, ``finite`` False, or a NaN
fitness) never wins a tournament, an elite slot or a PBT top slot, and never serves as
a crossover donor while a finite member exists.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from glojax.train.trainer import TrainState


class Population(NamedTuple):
  """The population state (a pytree; every field has a leading member axis ``p``).

  Attributes:
    train: stacked :class:`~glojax.train.trainer.TrainState` (weights, optimizer state
      including the member's learning rate and momentum when they are searched, batch
      statistics, PRNG keys, step count, ``finite``).
    hparams: ``float32[p, D]`` hyperparameters, columns named by :attr:`Space.names`.
    fitness: ``float32[p]`` validation accuracy after the member's last training (0
      before any training).
    test_accuracy: ``float32[p]`` test accuracy at the same time (logged, never used to
      select).
    finite: ``bool[p]`` the member's training and evaluation were finite.
    member_id: ``int32[p]`` unique id of the member (children get new ids).
    parent_id: ``int32[p]`` id of the member this one was copied from at the last
      selection (its own id when it survived unchanged; −1 in generation 0).
    age: ``int32[p]`` generations trained since the member (its id) was created.
    next_id: ``int32[]`` the next unused member id.
  """
  train: TrainState
  hparams: jax.Array
  fitness: jax.Array
  test_accuracy: jax.Array
  finite: jax.Array
  member_id: jax.Array
  parent_id: jax.Array
  age: jax.Array
  next_id: jax.Array


@dataclasses.dataclass(frozen=True)
class Space:
  """The searched hyperparameters: one column of ``hparams`` per entry.

  Attributes:
    names: column names (``theta_0`` … ``theta_7``, ``learning_rate``, ``momentum``).
    low, high: bounds; every operator clips into them.
    log: columns sampled log-uniformly (learning rate) when initialized or reset.
    init_low, init_high: range of the initial uniform (or log-uniform) sample.
  """
  names: tuple
  low: tuple
  high: tuple
  log: tuple
  init_low: tuple
  init_high: tuple

  @property
  def size(self) -> int:
    return len(self.names)

  def columns(self, prefix: str) -> list[int]:
    """Indices of the columns whose name is ``prefix`` or starts with ``prefix_``."""
    return [i for i, n in enumerate(self.names) if n == prefix or n.startswith(prefix + "_")]


@dataclasses.dataclass(frozen=True)
class EPBTOperators:
  """EPBT's genetic operators (paper §3.2).

  Attributes:
    elites: ``k``, members kept unchanged (paper: ``p/2``).
    tournament_size: ``t`` (paper: 2).
    mutation_rate: probability that a variable gets multiplicative Gaussian noise
      ``h ← h · (1 + sigma · N(0, 1))`` (paper: every variable, 1.0).
    sigma: the noise's standard deviation (paper: not given).
    reset_rate: probability that a variable is re-drawn uniformly within its bounds
      (paper: "can randomly and independently reinitialize every variable"; rate not
      given).
    crossover_rate: probability that a variable is taken from the donor (paper: 0.5).
  """
  elites: int
  tournament_size: int = 2
  mutation_rate: float = 1.0
  sigma: float = 0.2
  reset_rate: float = 0.05
  crossover_rate: float = 0.5


@dataclasses.dataclass(frozen=True)
class PBTOperators:
  """PBT's truncation exploit and perturb/resample explore (paper §4.1 baselines).

  Attributes:
    truncation: fraction copied (top) and replaced (bottom) (paper: 0.25).
    perturb_factors: multiplicative perturbations, one drawn uniformly (``(0.8, 1.2)``).
    resample_rate: probability that a variable is re-drawn within its bounds instead.
  """
  truncation: float = 0.25
  perturb_factors: tuple = (0.8, 1.2)
  resample_rate: float = 0.2


def sample_hparams(key: jax.Array, space: Space, p: int, *, init: bool = True
                   ) -> jax.Array:
  """``float32[p, D]`` uniform draws (log-uniform for ``log`` columns).

  Args:
    key: PRNG key.
    space: the hyperparameter space.
    p: number of rows.
    init: draw from the initial range (True) or from the bounds (resets).
  """
  lo = np.asarray(space.init_low if init else space.low, np.float32)
  hi = np.asarray(space.init_high if init else space.high, np.float32)
  log = np.asarray(space.log, bool)
  u = jax.random.uniform(key, (p, space.size), jnp.float32)
  safe_lo = np.where(log, np.maximum(lo, 1e-30), 1.0)
  safe_hi = np.where(log, np.maximum(hi, 1e-30), 1.0)
  logu = jnp.exp(jnp.log(safe_lo) + u * (np.log(safe_hi) - np.log(safe_lo)))
  return jnp.where(log, logu, lo + u * (hi - lo)).astype(jnp.float32)


def _clip(h: jax.Array, space: Space) -> jax.Array:
  return jnp.clip(h, np.asarray(space.low, np.float32), np.asarray(space.high, np.float32))


def selection_score(pop: Population) -> jax.Array:
  """``float32[p]``: fitness, or ``-inf`` for failed members (never selected)."""
  ok = pop.finite & jnp.isfinite(pop.fitness)
  return jnp.where(ok, pop.fitness, -jnp.inf)


def with_optimizer_hparams(train: TrainState, hparams: jax.Array, space: Space
                           ) -> TrainState:
  """Writes the ``learning_rate`` / ``momentum`` columns into the optimizer state.

  The member's optimizer must be ``optax.inject_hyperparams(...)`` (its state has a
  ``hyperparams`` dict); without those columns ``train`` is returned unchanged.
  """
  updates = {n: hparams[:, i] for i, n in enumerate(space.names)
             if n in ("learning_rate", "momentum")}
  if not updates:
    return train
  opt = train.opt_state
  new = dict(opt.hyperparams)
  for name, value in updates.items():
    new[name] = value.astype(jnp.asarray(new[name]).dtype)
  return train._replace(opt_state=opt._replace(hyperparams=new))


def _pick(key: jax.Array, allowed: jax.Array) -> jax.Array:
  """A uniformly random index where ``allowed`` (``bool[p]``) holds (any if none)."""
  allowed = jnp.where(jnp.any(allowed), allowed, True)
  return jax.random.categorical(key, jnp.where(allowed, 0.0, -jnp.inf))


def tournament(key: jax.Array, score: jax.Array, size: int, count: int) -> jax.Array:
  """``int32[count]`` winners of ``count`` tournaments of ``size`` distinct members.

  Contestants are drawn without replacement from the members with a finite score
  (from everyone if none has one); the highest score wins, ties broken uniformly at
  random (contestants come in random order and the first maximum wins).
  """
  p = score.shape[0]
  pool = jnp.isfinite(score)
  pool = jnp.where(jnp.any(pool), pool, True)
  probs = pool / jnp.sum(pool)

  def one(k):
    contestants = jax.random.choice(k, p, (size,), replace=False, p=probs)
    return contestants[jnp.argmax(score[contestants])]

  return jax.vmap(one)(jax.random.split(key, count)).astype(jnp.int32)


def _copy_members(pop: Population, source: jax.Array, is_child: jax.Array,
                  hparams: jax.Array, key: jax.Array, space: Space) -> Population:
  """Slot ``j`` becomes a copy of member ``source[j]``; children (``is_child``) get
  fresh PRNG streams, new ids and ``hparams`` (also written into their optimizer)."""
  p = source.shape[0]
  gather = lambda a: a[source]
  train = jax.tree_util.tree_map(gather, pop.train)
  k_run, k_data = jax.random.split(key)
  new_key = jax.random.split(k_run, p)
  new_data_key = jax.random.split(k_data, p)
  child2 = is_child[:, None]
  train = train._replace(
      key=jnp.where(child2, new_key, train.key),
      data_key=(train.data_key if train.data_key is None
                else jnp.where(child2, new_data_key, train.data_key)))
  hparams = jnp.where(child2, hparams, pop.hparams)
  train = with_optimizer_hparams(train, hparams, space)
  rank = jnp.cumsum(is_child.astype(jnp.int32)) - 1
  member_id = jnp.where(is_child, pop.next_id + rank, pop.member_id)
  parent_id = jnp.where(is_child, pop.member_id[source], pop.member_id)
  return Population(
      train=train, hparams=hparams, fitness=pop.fitness[source],
      test_accuracy=pop.test_accuracy[source], finite=pop.finite[source],
      member_id=member_id.astype(jnp.int32), parent_id=parent_id.astype(jnp.int32),
      age=jnp.where(is_child, 0, pop.age).astype(jnp.int32),
      next_id=(pop.next_id + jnp.sum(is_child)).astype(jnp.int32))


@functools.partial(jax.jit, static_argnames=("space", "ops"))
def next_generation(pop: Population, key: jax.Array, space: Space,
                    ops: EPBTOperators) -> tuple[Population, dict]:
  """EPBT's selection and variation (paper §3.2, Algorithm 1 lines 1–2 and 3b–3c).

  1. Elitism: the ``k`` members with the highest fitness keep their slot, weights,
     optimizer state, PRNG streams and hyperparameters bit for bit (ties: lower slot
     first; failed members are never elites, so a failed member's slot gets a child).
  2. Every other slot gets a child of a tournament winner (``t`` distinct finite
     members, the fitter wins, ties by coin): the child carries the parent's weights,
     batch statistics and optimizer state, fresh PRNG streams, and its own
     hyperparameters: the parent's, each variable mutated with probability
     ``mutation_rate`` (``h · (1 + σ·N(0,1))``), re-drawn within its bounds with
     probability ``reset_rate``, then taken from a donor (another random finite
     member's current value) with probability ``crossover_rate``; clipped to bounds.

  Args:
    pop: the evaluated population (:class:`Population`, ``p`` members).
    key: PRNG key of this selection.
    space: the hyperparameter space (static).
    ops: the operators (static).

  Returns:
    ``(new_pop, info)``; ``info`` holds ``int32[p]`` ``source`` (slot copied; own slot
    for elites), ``donor``, ``bool[p]`` ``is_child``, and ``bool[p, D]`` ``mutated``,
    ``reset``, ``crossed`` masks (meaningful for child rows).
  """
  p, d = pop.hparams.shape
  score = selection_score(pop)
  order = jnp.argsort(-score, stable=True)
  elite = jnp.zeros(p, bool).at[order[:ops.elites]].set(True) & jnp.isfinite(score)
  is_child = ~elite
  k_tour, k_donor, k_mut, k_noise, k_reset, k_rval, k_cross, k_copy = jax.random.split(
      key, 8)
  parents = tournament(k_tour, score, ops.tournament_size, p)
  finite = jnp.isfinite(score)
  donors = jax.vmap(lambda k, par: _pick(k, finite & (jnp.arange(p) != par)))(
      jax.random.split(k_donor, p), parents).astype(jnp.int32)
  h_par = pop.hparams[parents]
  mutated = jax.random.bernoulli(k_mut, ops.mutation_rate, (p, d))
  noise = jax.random.normal(k_noise, (p, d), jnp.float32)
  h = jnp.where(mutated, h_par * (1.0 + ops.sigma * noise), h_par)
  reset = jax.random.bernoulli(k_reset, ops.reset_rate, (p, d))
  h = jnp.where(reset, sample_hparams(k_rval, space, p, init=False), h)
  crossed = jax.random.bernoulli(k_cross, ops.crossover_rate, (p, d))
  h = _clip(jnp.where(crossed, pop.hparams[donors], h), space)
  source = jnp.where(is_child, parents, jnp.arange(p)).astype(jnp.int32)
  new = _copy_members(pop, source, is_child, h, k_copy, space)
  info = {"source": source, "donor": donors, "is_child": is_child, "mutated": mutated,
          "reset": reset, "crossed": crossed}
  return new, info


@functools.partial(jax.jit, static_argnames=("space", "ops"))
def pbt_exploit_explore(pop: Population, key: jax.Array, space: Space,
                        ops: PBTOperators) -> tuple[Population, dict]:
  """PBT's truncation exploit and perturb/resample explore (Jaderberg et al. 2017).

  The bottom ``n = max(1, ⌊truncation·p⌋)`` members by fitness (failed members rank
  last) are replaced by copies of uniformly chosen finite members of the top ``n``
  (weights, optimizer state); each copied hyperparameter is re-drawn within its bounds
  with probability ``resample_rate``, otherwise multiplied by one of
  ``perturb_factors`` (uniformly), then clipped. Everyone else continues unchanged.
  If no top member is finite, nothing is copied.

  Returns:
    ``(new_pop, info)`` with ``source``, ``is_child`` and the ``bool[p, D]``
    ``reset`` mask (as :func:`next_generation`).
  """
  p, d = pop.hparams.shape
  n = max(1, int(ops.truncation * p))
  score = selection_score(pop)
  order = jnp.argsort(-score, stable=True)
  top = jnp.zeros(p, bool).at[order[:n]].set(True) & jnp.isfinite(score)
  is_child = jnp.zeros(p, bool).at[order[p - n:]].set(True) & jnp.any(top) & ~top
  k_src, k_reset, k_rval, k_fac, k_copy = jax.random.split(key, 5)
  parents = jax.vmap(lambda k: _pick(k, top))(jax.random.split(k_src, p)).astype(jnp.int32)
  factors = jnp.asarray(ops.perturb_factors, jnp.float32)
  fac = factors[jax.random.randint(k_fac, (p, d), 0, factors.shape[0])]
  reset = jax.random.bernoulli(k_reset, ops.resample_rate, (p, d))
  h = jnp.where(reset, sample_hparams(k_rval, space, p, init=False),
                pop.hparams[parents] * fac)
  h = _clip(h, space)
  source = jnp.where(is_child, parents, jnp.arange(p)).astype(jnp.int32)
  new = _copy_members(pop, source, is_child, h, k_copy, space)
  return new, {"source": source, "is_child": is_child, "reset": reset}


def gather_members(tree: Any, index) -> Any:
  """Members ``index`` of a stacked pytree (``index``: int or ``int[...]``)."""
  return jax.tree_util.tree_map(lambda a: a[index], tree)
