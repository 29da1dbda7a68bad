"""NLFS search on the driver: one compiled program per batch of graphs, no recompiles,
accounting, the final protocol's candidate, config errors, elimination.

Resume, damaged checkpoints, bad configs and NaN containment are the driver's
parametrized tests (tests/search/test_driver.py, case ``nlfs``).
"""

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "search"))
from search_cases import read_log, tiny_nlfs  # noqa: E402

from glojax import losses  # noqa: E402
from glojax.expr import graph as G  # noqa: E402
from glojax.expr import integrity as I  # noqa: E402
from glojax.search import driver, nlfs, nlfs_elimination  # noqa: E402
from glojax.train import population  # noqa: E402
from glojax.train.population import evaluate_population  # noqa: E402


def tiny_config(**search):
  c = tiny_nlfs()
  c.search.update(search)
  return c


def _search(config):
  return nlfs.NLFS(driver.parse_config(nlfs.NLFS, config)[0])


def test_a_batch_of_graphs_trains_as_one_program_equal_to_each_alone():
  trainer = _search(tiny_config()).trainers["surrogate"][0]
  # Two graphs keep the unrolled program's compile small; they share no op.
  graphs = [G.KNOWN_GRAPHS[n] for n in ("cross_entropy", "bessel")]
  keys = jax.random.split(jax.random.PRNGKey(0), 2)
  together = evaluate_population(trainer, G.encode_population(graphs), keys,
                                 strategy="unroll", nan_retries=0)
  for i, g in enumerate(graphs):
    alone = evaluate_population(trainer, G.encode_population([g]), keys[i:i + 1],
                                strategy="sequential", nan_retries=0)
    assert alone.fitness[0] == together.fitness[i]
  assert len(set(together.fitness.tolist())) > 1      # the graphs differ


def _compiled_programs() -> int:
  """Compiled executables held by the population trainer's program cache."""
  total = len(population._PROGRAMS)
  for progs in population._PROGRAMS.values():
    fns = [progs.init, progs.train_all, progs.eval_batch, progs.params_finite,
           *progs._chunks.values()]
    total += sum(f._cache_size() for f in fns)
  return total


def test_search_steps_never_recompile_and_every_failure_is_counted(tmp_path):
  """One run: nothing compiles after the first evolution step; every slot is accounted
  for; every member passes the integrity check with its stored phenotype."""
  config = tiny_config(steps=4, max_mutation_attempts=3)
  counts, states = [], []
  nlfs.run(config, str(tmp_path), log=lambda m: None,
           on_step=lambda state, r: (counts.append(_compiled_programs()),
                                     states.append(state)))
  records = read_log(str(tmp_path))
  first_evolution = [r["phase"] for r in records].index("evolve")
  assert counts[first_evolution] > 0        # the counter sees the search's programs
  assert counts[first_evolution:] == [counts[first_evolution]] * (len(counts) -
                                                                  first_evolution)
  state = states[-1]
  pop = state.population
  for g, pheno in zip(G.unstack(pop), pop["phenotypes"]):
    v = I.check(g)
    assert v.ok and v.sign == g.sign
    np.testing.assert_allclose(v.phenotype, pheno, atol=1e-6)
  c = state.counters
  evolve = [r for r in records if r["phase"] == "evolve"]
  failed = sum(r["failed_mutations"] for r in evolve)
  assert failed == c["mutation_failed"] and failed > 0     # 3 attempts are often too few
  kept = sum(len(r["children"]) for r in evolve)
  assert kept == c["children"]
  # Every slot either failed its mutation, exhausted its redos or produced a child.
  assert failed + c["redo_exhausted"] + kept == len(evolve) * 2
  # Each candidate trained once per round: trainings = children + failed trainings.
  assert c["trainings"] - config.initial.size == kept + c["failed_trainings"]
  # Attempts = rejections during mutation + candidates that passed.
  mutation_rejections = sum(sum(r["rejections"].values()) for r in evolve)
  assert c["mutation_attempts"] == mutation_rejections + kept + c["failed_trainings"]
  assert open(os.path.join(tmp_path, "best_loss.txt")).read().startswith("expr:")


def test_the_final_protocol_trains_the_best_graph_as_its_spec_loads(tmp_path):
  """final_losses' candidate computes what best_loss.txt's spec computes."""
  search = _search(tiny_config())
  state = search.init(jax.random.PRNGKey(0))
  row = G.stack([G.KNOWN_GRAPHS["neuroloss1"]])
  for name in ("ops", "args", "signs"):
    state.archive[name][0] = row[name][0]
  state = state._replace(archive_count=np.int32(1))
  spec = G.to_spec(G.KNOWN_GRAPHS["neuroloss1"])
  results = {"best": {"spec": spec}}
  candidate, baseline = search.final_losses(state, results, print)
  assert candidate.spec == spec and baseline.spec == "cross_entropy"
  logits = jnp.array([[2.0, -1.0, 0.5], [0.1, 0.2, -3.0]])
  labels = jnp.eye(3)[jnp.array([0, 2])]
  np.testing.assert_allclose(candidate.loss_fn(candidate.loss_params, logits, labels),
                             losses.get(spec)(logits, labels), rtol=1e-6)


def test_config_errors_are_one_line_value_errors():
  with pytest.raises(ValueError, match="tournament_size"):
    _search(tiny_config(tournament_size=10))
  with pytest.raises(ValueError, match="action"):
    c = tiny_config()
    c.early_stopping.checks = ((4, 0.1, "drop"),)
    _search(c)
  with pytest.raises(ValueError, match="sharded"):
    _search(tiny_config(strategy="sharded"))
  with pytest.raises(ValueError, match="fewer losses"):
    c = tiny_config()
    c.elimination.rounds = ((2, 8), (3, 8))
    _search(c)


def test_elimination_needs_a_finished_search_and_ranks_the_archive(tmp_path):
  c = tiny_config()
  c.elimination.rounds = ((3, 8), (2, 8))
  c.elimination.final_repeats = 2
  wd = str(tmp_path / "run")
  with pytest.raises(ValueError, match="no NLFS checkpoint"):
    nlfs_elimination.eliminate(c, wd, log=lambda m: None)
  nlfs.run(c, wd, log=lambda m: None)
  out = nlfs_elimination.eliminate(c, wd, log=lambda m: None)
  assert [r["losses"] for r in out["rounds"]] == [3, 2]
  # Round 2 retrains round 1's best two, in round 1's order of validation accuracy.
  first = [row["spec"] for row in out["rounds"][0]["ranking"]]
  assert {row["spec"] for row in out["rounds"][1]["ranking"]} == set(first[:2])
  final = out["final"]
  assert len(final["losses"]) == 2 and len(final["cross_entropy"]["runs"]) == 2
  assert "| rank | loss |" in out["table"]
  # A rerun reuses elimination.json: same result, nothing retrained.
  again = nlfs_elimination.eliminate(c, wd, log=lambda m: None)
  assert again["final"] == final
