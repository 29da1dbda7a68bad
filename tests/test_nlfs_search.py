"""NLFS search: one compiled program per batch of graphs, resume, accounting."""

import json
import os

import jax
import numpy as np
import pytest

from glojax.expr import graph as G
from glojax.expr import integrity as I
from glojax.search import _legacy_common as common
from glojax.search import nlfs
from glojax.train.population import evaluate_population


def tiny_config(**search):
  c = nlfs.default_config()
  c.model.name = "mlp"
  c.model.options = {"hidden": (8,)}
  c.train.steps = 8
  c.train.batch_size = 32
  c.train.learning_rate = 0.01
  c.train.steps_per_call = 1        # one training step per compiled chunk: cheap compiles
  c.initial.size = 6
  c.initial.batch = 2
  c.initial.early_stopping = [[4, 0.05]]
  c.early_stopping.checks = [[4, 0.12, "reject"]]
  c.early_stopping.train_examples = 500
  c.search.population_size = 4
  c.search.tournament_size = 2
  c.search.children_per_step = 2
  c.search.steps = 2
  c.search.archive_size = 8
  c.search.strategy = "sequential"
  c.search.update(search)
  return c


def test_a_batch_of_graphs_trains_as_one_program_equal_to_each_alone():
  search = nlfs.NLFSSearch(tiny_config())
  trainer = nlfs.make_trainer(search.surrogate_cfg)
  graphs = [G.KNOWN_GRAPHS[n] for n in ("cross_entropy", "neuroloss1", "neuroloss3",
                                        "bessel")]
  keys = jax.random.split(jax.random.PRNGKey(0), 4)
  together = evaluate_population(trainer, G.encode_population(graphs), keys,
                                 strategy="unroll", nan_retries=0)
  for i, g in enumerate(graphs):
    alone = evaluate_population(trainer, G.encode_population([g]), keys[i:i + 1],
                                strategy="sequential", nan_retries=0)
    assert alone.fitness[0] == together.fitness[i]
  assert len(set(together.fitness.tolist())) > 1      # the graphs differ


@pytest.fixture(scope="module", autouse=True)
def traces():
  """Every NLFS trainer of this module counts the traces of its loss."""
  calls = []
  original, trainers = nlfs.graph_loss_fn, nlfs._TRAINERS

  def counting_loss_fn():
    inner = original()

    def loss_fn(program, logits, labels):
      calls.append(1)          # runs once per trace of a training step
      return inner(program, logits, labels)
    return loss_fn

  nlfs.graph_loss_fn, nlfs._TRAINERS = counting_loss_fn, {}
  yield calls
  nlfs.graph_loss_fn, nlfs._TRAINERS = original, trainers


def test_search_steps_never_recompile(tmp_path, traces):
  counts = []
  nlfs.run(tiny_config(steps=4), str(tmp_path), log=lambda m: None,
           on_step=lambda i, r: counts.append(len(traces)))
  records = common.read_log(str(tmp_path))
  first_evolution = [r["phase"] for r in records].index("evolve")
  # Every trace happens by the end of the first evolution step (the initial population
  # and the first children compile the program); later steps only run it.
  assert counts[first_evolution:] == [counts[first_evolution]] * (len(counts) -
                                                                  first_evolution)
  assert sum(r["counters"]["trainings"] for r in records[first_evolution + 1:]) > 0


def _final_state(workdir):
  arrays, meta = common.load_checkpoint(workdir)
  return arrays, meta["history"]


def _strip(record):
  record = dict(record)
  record.pop("wall_time_s")
  record["counters"] = {k: v for k, v in record["counters"].items()
                        if k not in ("train_seconds", "saved_seconds")}
  return record


def test_kill_and_resume_reproduces_the_uninterrupted_run(tmp_path):
  config = tiny_config(steps=3)
  whole, parts = str(tmp_path / "whole"), str(tmp_path / "parts")
  nlfs.run(config, whole, log=lambda m: None)

  def interrupt(i, record):
    if i == 3:
      raise KeyboardInterrupt
  with pytest.raises(KeyboardInterrupt):
    nlfs.run(config, parts, log=lambda m: None, on_step=interrupt)
  assert len(common.read_log(parts)) == 4
  resumed = nlfs.run(config, parts, log=lambda m: None)
  like = nlfs.NLFSSearch(config).template()
  (a, history_a), (b, history_b) = _final_state(whole), _final_state(parts)
  a, b = nlfs._restore(a, like), nlfs._restore(b, like)
  for state in (a, b):      # wall-clock timings differ between runs
    for name in ("train_seconds", "saved_seconds"):
      state["counters"].pop(name)
  jax.tree_util.tree_map(np.testing.assert_array_equal, a, b)
  assert [_strip(r) for r in history_a] == [_strip(r) for r in history_b]
  with open(os.path.join(parts, "results.json")) as f:
    assert json.load(f)["best"]["spec"] == resumed["best"]["spec"]
  assert open(os.path.join(parts, "best_loss.txt")).read().startswith("expr:")


def test_every_member_passes_the_check_and_failures_are_counted(tmp_path):
  config = tiny_config(steps=3, max_mutation_attempts=3)
  search = nlfs.NLFSSearch(config, log=lambda m: None)
  state = search.init(jax.random.PRNGKey(0))
  records = []
  while not search.done(state):
    state, record = search.step(state, jax.random.PRNGKey(len(records) + 1))
    records.append(record)
  pop = state["population"]
  for g, pheno in zip(G.unstack(pop), pop["phenotypes"]):
    v = I.check(g)
    assert v.ok and v.sign == g.sign
    np.testing.assert_allclose(v.phenotype, pheno, atol=1e-6)
  c = state["counters"]
  evolve = [r for r in records if r["phase"] == "evolve"]
  failed = sum(r["failed_mutations"] for r in evolve)
  assert failed == c["mutation_failed"] and failed > 0     # 3 attempts are often too few
  kept = sum(len(r["children"]) for r in evolve)
  assert kept == c["children"]
  # Every slot either failed its mutation, exhausted its redos or produced a child.
  slots = len(evolve) * search.batch
  assert failed + c["redo_exhausted"] + kept == slots
  # Each candidate trained once per round: trainings = children + failed trainings.
  surrogate_trainings = c["trainings"] - config.initial.size
  assert surrogate_trainings == kept + c["failed_trainings"]
  # Attempts = rejections during mutation + candidates that passed.
  mutation_rejections = sum(sum(r["rejections"].values()) for r in evolve)
  assert c["mutation_attempts"] == mutation_rejections + kept + c["failed_trainings"]


def test_config_errors_are_one_line_value_errors():
  with pytest.raises(ValueError, match="tournament_size"):
    nlfs.NLFSSearch(tiny_config(tournament_size=10))
  with pytest.raises(ValueError, match="action"):
    c = tiny_config()
    c.early_stopping.checks = [[4, 0.1, "drop"]]
    nlfs.NLFSSearch(c)
  with pytest.raises(ValueError, match="unknown config key"):
    c = tiny_config()
    c.search.tournament = 3
    nlfs.NLFSSearch(c)
