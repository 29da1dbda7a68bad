"""EPBT/PBT exploit-explore as pure functions: elitism, tournaments, variation rates,
bounds, failed members, PBT truncation (no training: a synthetic population)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from glojax.search.epbt_ops import (EPBTOperators, PBTOperators, Population, Space,
                                    next_generation, pbt_exploit_explore, tournament)
from glojax.train.trainer import TrainState

THETA_SPACE = Space(names=tuple(f"theta_{i}" for i in range(4)), low=(-10.0,) * 4,
                    high=(10.0,) * 4, log=(False,) * 4, init_low=(-10.0,) * 4,
                    init_high=(10.0,) * 4)
SGD_SPACE = Space(names=("learning_rate", "momentum"), low=(1e-3, 0.0), high=(1.0, 0.99),
                  log=(True, False), init_low=(1e-3, 0.0), init_high=(1.0, 0.99))


def population(p=8, space=THETA_SPACE, fitness=None, finite=None, seed=0):
  """A population whose every array differs per member (so copies are identifiable)."""
  key = jax.random.PRNGKey(seed)
  k1, k2, k3 = jax.random.split(key, 3)
  params = {"w": jax.random.normal(k1, (p, 3, 2)), "b": jax.random.normal(k2, (p, 2))}
  if "learning_rate" in space.names:
    tx = optax.inject_hyperparams(optax.sgd)(learning_rate=0.1, momentum=0.9)
  else:
    tx = optax.sgd(0.1, momentum=0.9)
  opt = jax.vmap(tx.init)(params)
  opt = jax.tree_util.tree_map(lambda a: a + jnp.arange(p).reshape((p,) + (1,) * (a.ndim - 1))
                               .astype(a.dtype), opt)  # distinct momentum traces
  train = TrainState(params=params, opt_state=opt,
                     key=jax.random.split(k3, p), step=jnp.arange(p, dtype=jnp.int32) * 10,
                     finite=jnp.ones(p, bool), last_loss=jnp.arange(p, dtype=jnp.float32),
                     batch_stats={}, data_key=jax.random.split(jax.random.fold_in(k3, 1), p))
  hp = jax.random.uniform(jax.random.fold_in(key, 9), (p, space.size), minval=0.2, maxval=0.8)
  hp = hp * (np.asarray(space.high) - np.asarray(space.low)) + np.asarray(space.low)
  fitness = jnp.linspace(0.1, 0.9, p) if fitness is None else jnp.asarray(fitness, jnp.float32)
  finite = jnp.ones(p, bool) if finite is None else jnp.asarray(finite)
  return Population(train=train, hparams=hp.astype(jnp.float32), fitness=fitness,
                    test_accuracy=fitness * 0.9, finite=finite,
                    member_id=jnp.arange(p, dtype=jnp.int32) + 100,
                    parent_id=jnp.full(p, -1, jnp.int32), age=jnp.ones(p, jnp.int32),
                    next_id=jnp.asarray(100 + p, jnp.int32))


def rows(tree, i):
  return [np.asarray(x)[i] for x in jax.tree_util.tree_leaves(tree)]


# One operator setting, compiled once per space, drawn with many keys: every test below
# reads the same draws (draw 0 is "one generation").
OPS = EPBTOperators(elites=4, mutation_rate=0.7, sigma=0.1, reset_rate=0.1,
                    crossover_rate=0.5)
FITNESS = [0.5, 0.9, 0.1, 0.7, 0.3, 0.8, 0.2, 0.6]
ELITES = {1, 5, 3, 7}  # the four fittest slots
KEYS = jax.random.split(jax.random.PRNGKey(3), 600)
_draws = jax.jit(jax.vmap(next_generation, in_axes=(None, 0, None, None)),
                 static_argnums=(2, 3))


@pytest.fixture(scope="module")
def theta_draws():
  pop = population(p=8, fitness=FITNESS)
  new, info = _draws(pop, KEYS, THETA_SPACE, OPS)
  return pop, new, info


def draw(tree, i):
  return jax.tree_util.tree_map(lambda a: a[i], tree)


def test_elites_survive_bit_for_bit_and_children_copy_their_parent(theta_draws):
  pop, news, infos = theta_draws
  new, info = draw(news, 0), draw(infos, 0)
  assert set(np.flatnonzero(~np.asarray(info["is_child"]))) == ELITES
  for j in range(8):
    src = int(info["source"][j])
    if j in ELITES:
      assert src == j
      for a, b in zip(rows(new.train, j), rows(pop.train, j)):
        np.testing.assert_array_equal(a, b)  # weights, optimizer state, keys
      np.testing.assert_array_equal(new.hparams[j], pop.hparams[j])
      assert new.member_id[j] == pop.member_id[j] == new.parent_id[j]
    else:
      # The child's network is its parent's, bit for bit (before any training) ...
      for name in ("params", "opt_state", "batch_stats", "step"):
        for a, b in zip(rows(getattr(new.train, name), j), rows(getattr(pop.train, name), src)):
          np.testing.assert_array_equal(a, b)
      # ... with fresh PRNG streams, a new id, and its parent's id recorded.
      assert not np.array_equal(new.train.key[j], pop.train.key[src])
      assert not np.array_equal(new.train.data_key[j], pop.train.data_key[src])
      assert new.parent_id[j] == pop.member_id[src] and new.age[j] == 0
  child_ids = np.asarray(new.member_id)[np.asarray(info["is_child"])]
  np.testing.assert_array_equal(child_ids, [108, 109, 110, 111])
  assert int(new.next_id) == 112
  # Pure: the same keys give the same generations, another key another one.
  again, _ = _draws(pop, KEYS, THETA_SPACE, OPS)
  for x, y in zip(jax.tree_util.tree_leaves(again), jax.tree_util.tree_leaves(news)):
    np.testing.assert_array_equal(x, y)
  assert not np.array_equal(news.hparams[0], news.hparams[1])


def test_child_hyperparameters_are_mutated_and_crossed_not_copied(theta_draws):
  pop, news, infos = theta_draws
  old = np.asarray(pop.hparams)
  checked = 0
  for d in range(20):
    h, info = np.asarray(news.hparams[d]), draw(infos, d)
    for j in np.flatnonzero(np.asarray(info["is_child"])):
      par, don = int(info["source"][j]), int(info["donor"][j])
      assert don != par
      crossed = np.asarray(info["crossed"][j])
      np.testing.assert_array_equal(h[j, crossed], old[don, crossed])  # from the donor
      mutated = ~crossed & np.asarray(info["mutated"][j]) & ~np.asarray(info["reset"][j])
      assert np.all(h[j, mutated] != old[par, mutated])  # not the parent's value ...
      assert np.all(np.abs(h[j, mutated] / old[par, mutated] - 1) < 6 * 0.1)  # ... near it
      kept = ~crossed & ~np.asarray(info["mutated"][j]) & ~np.asarray(info["reset"][j])
      np.testing.assert_array_equal(h[j, kept], old[par, kept])
      if mutated.any() and crossed.any():
        assert not np.array_equal(h[j], old[par]) and not np.array_equal(h[j], old[don])
        checked += 1
  assert checked > 20


def test_variation_rates_match_configuration(theta_draws):
  """Over many draws, from the values themselves: P(variable = donor's) = crossover_rate,
  P(= parent's) = (1 − crossover)(1 − reset)(1 − mutation), P(reset) from the values'
  spread (parents' θ lie in [−6, 6]·…; resets are uniform in [−10, 10])."""
  pop, news, infos = theta_draws
  child = np.asarray(infos["is_child"])
  h = np.asarray(news.hparams)[child]                   # [n, 4]
  src = np.asarray(infos["source"])[child]
  don = np.asarray(infos["donor"])[child]
  old = np.asarray(pop.hparams)
  assert h.size == 600 * 4 * 4
  from_donor = h == old[don]
  from_parent = h == old[src]
  assert abs(from_donor.mean() - 0.5) < 0.02
  assert abs(from_parent.mean() - 0.5 * 0.9 * 0.3) < 0.015
  # A reset lands outside the parents' range (±6 · 1.6 after mutation) with
  # probability 1 − 9.6/10 = 0.04; mutations stay inside it (6σ).
  outside = np.abs(h) > 6 * (1 + 6 * 0.1)
  assert abs(outside.mean() - 0.5 * 0.1 * 0.04) < 0.004
  # Bounds hold.
  assert (np.abs(np.asarray(news.hparams)) <= 10).all()


def test_tournament_win_probabilities_and_ties():
  p = 6
  score = jnp.asarray([0.1, 0.5, 0.3, 0.9, 0.2, 0.7])
  wins = np.asarray(tournament(jax.random.PRNGKey(0), score, 2, 60000))
  freq = np.bincount(wins, minlength=p) / wins.size
  rank = np.argsort(np.argsort(np.asarray(score)))  # 0 = worst
  expected = 2 * rank / (p * (p - 1))               # wins every pairing with a worse one
  np.testing.assert_allclose(freq, expected, atol=0.008)
  assert freq[int(np.argmin(score))] == 0.0         # the worst never wins with t = 2
  # Ties are broken by a fair coin: equal scores win equally often.
  tied = np.asarray(tournament(jax.random.PRNGKey(1), jnp.asarray([0.5, 0.5, 0.1, 0.1, 0.1,
                                                                   0.1]), 2, 60000))
  freq = np.bincount(tied, minlength=6) / tied.size
  # P(slot 0 wins) = P(0 drawn)·(P(other is 1)·½ + P(other is worse)) = ⅓·(⅕·½ + ⅘) = 0.3
  np.testing.assert_allclose(freq[:2], [0.3, 0.3], atol=0.008)


def test_failed_members_never_selected():
  p = 8
  # Slot 2 failed with a (stale) top fitness, slot 5 has a NaN fitness.
  fitness = [0.5, 0.6, 0.99, 0.4, 0.3, np.nan, 0.2, 0.1]
  finite = np.ones(p, bool)
  finite[2] = False
  pop = population(p=p, fitness=fitness, finite=finite)
  new, info = _draws(pop, KEYS, THETA_SPACE, OPS)
  src, child, donor = (np.asarray(info[k]) for k in ("source", "is_child", "donor"))
  assert child[:, 2].all() and child[:, 5].all()    # failed slots always get children
  assert not np.isin(src[child], [2, 5]).any()       # never a parent ...
  assert not np.isin(donor[child], [2, 5]).any()     # ... nor a crossover donor
  assert set(np.flatnonzero(~child[0])) == {0, 1, 3, 4}
  # PBT: a failed member is bottom, never top.
  new, info = pbt_exploit_explore(pop, jax.random.PRNGKey(5), THETA_SPACE, PBT_OPS)
  assert set(np.flatnonzero(np.asarray(info["is_child"]))) == {2, 5}
  assert set(np.asarray(info["source"])[[2, 5]]) <= {0, 1}


def test_bounds_hold_and_optimizer_gets_the_searched_values():
  pop = population(p=8, space=SGD_SPACE, fitness=FITNESS)
  pop = pop._replace(hparams=jnp.tile(jnp.asarray([[0.9, 0.98]]), (8, 1)))
  wild = EPBTOperators(elites=4, sigma=5.0, reset_rate=0.3)
  new, _ = _draws(pop, KEYS[:100], SGD_SPACE, wild)
  h = np.asarray(new.hparams)
  assert (h[..., 0] >= 1e-3).all() and (h[..., 0] <= 1.0).all()
  assert (h[..., 1] >= 0.0).all() and (h[..., 1] <= 0.99).all()
  assert (h[..., 0] == 1e-3).any() and (h[..., 1] == 0.99).any()  # clipping was needed
  # The searched learning rate and momentum are the ones the optimizer will use.
  hyper = new.train.opt_state.hyperparams
  np.testing.assert_array_equal(np.asarray(hyper["learning_rate"]), h[..., 0])
  np.testing.assert_array_equal(np.asarray(hyper["momentum"]), h[..., 1])


PBT_OPS = PBTOperators(truncation=0.25, perturb_factors=(0.8, 1.2), resample_rate=0.2)


def test_pbt_truncation_copies_top_quarter_and_perturbs():
  pop = population(p=8, fitness=FITNESS)
  new, info = pbt_exploit_explore(pop, jax.random.PRNGKey(7), THETA_SPACE, PBT_OPS)
  child = np.asarray(info["is_child"])
  assert set(np.flatnonzero(child)) == {2, 6}                 # the two worst
  src = np.asarray(info["source"])
  assert set(src[child]) <= {1, 5}                            # copies of the two best
  old, h = np.asarray(pop.hparams), np.asarray(new.hparams)
  reset = np.asarray(info["reset"])[child]
  ratio = h[child] / old[src[child]]
  assert np.all(np.isclose(ratio, 0.8) | np.isclose(ratio, 1.2) | reset)
  assert np.all(~(np.isclose(ratio, 0.8) | np.isclose(ratio, 1.2)) | ~reset)
  for j in np.flatnonzero(~child):                            # everyone else unchanged
    for a, b in zip(rows(new.train, j), rows(pop.train, j)):
      np.testing.assert_array_equal(a, b)
  for j in np.flatnonzero(child):
    np.testing.assert_array_equal(new.train.params["w"][j], pop.train.params["w"][src[j]])
