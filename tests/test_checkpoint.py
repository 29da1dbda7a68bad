"""glojax.train.checkpoint: round trip of structured pytrees, async saves, step
handling, incomplete and mismatched checkpoints."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from glojax.train.checkpoint import Checkpointer, restore_pytree, save_pytree
from glojax.train.trainer import TrainState


def state(seed=0, p=3):
  params = {"dense": {"kernel": jax.random.normal(jax.random.PRNGKey(seed), (p, 4, 2)),
                      "bias": jnp.arange(p * 2, dtype=jnp.float32).reshape(p, 2)}}
  tx = optax.inject_hyperparams(optax.sgd)(learning_rate=0.1, momentum=0.9)
  return TrainState(params=params, opt_state=jax.vmap(tx.init)(params),
                    key=jax.random.split(jax.random.PRNGKey(seed), p),
                    step=jnp.full(p, 7, jnp.int32), finite=jnp.asarray([True, False, True]),
                    last_loss=jnp.ones(p), batch_stats={}, data_key=None)


def assert_same(a, b):
  assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
  for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
    assert np.asarray(x).dtype == np.asarray(y).dtype
    np.testing.assert_array_equal(x, y)


def test_round_trip_async_and_steps(tmp_path):
  tree = (state(0), jnp.zeros((3, 0)))  # a zero-size leaf too (orbax refuses those)
  with Checkpointer(str(tmp_path / "ck"), max_to_keep=2) as ck:
    assert ck.latest_step() is None
    ck.save(1, tree, {"records": [{"a": 1}]})
    ck.save(2, (state(1), jnp.zeros((3, 0))), {"records": [{"a": 1}, {"a": 2}]})
    ck.save(3, (state(2), jnp.zeros((3, 0))), {"records": []})
    ck.wait()
    assert ck.steps() == [2, 3]                  # max_to_keep
    with pytest.raises(ValueError, match="not newer"):
      ck.save(3, tree)
  restored, meta = restore_pytree(str(tmp_path / "ck"), tree, step=2)
  assert_same(restored, (state(1), jnp.zeros((3, 0))))
  assert meta == {"records": [{"a": 1}, {"a": 2}]}
  assert isinstance(restored[0], TrainState)
  assert restored[0].opt_state.hyperparams["momentum"].shape == (3,)
  latest, _ = restore_pytree(str(tmp_path / "ck"), tree)
  assert_same(latest, (state(2), jnp.zeros((3, 0))))


def test_incomplete_and_mismatched_checkpoints(tmp_path):
  folder = str(tmp_path / "ck")
  save_pytree(folder, state(0), {"g": 1}, step=1)
  # A save killed before its commit leaves a temporary folder that is never restored.
  os.makedirs(os.path.join(folder, "2.orbax-checkpoint-tmp-123"))
  with Checkpointer(folder) as ck:
    assert ck.latest_step() == 1
  with pytest.raises(ValueError, match="does not match this run"):
    restore_pytree(folder, state(0, p=4))       # another population size
  with pytest.raises(ValueError, match="does not match this run"):
    restore_pytree(folder, {"other": jnp.zeros(3)})
  with pytest.raises(ValueError, match="no checkpoint step 5"):
    restore_pytree(folder, state(0), step=5)
  with pytest.raises(ValueError, match="max_to_keep"):
    Checkpointer(folder, max_to_keep=0)
