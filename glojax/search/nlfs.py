"""NLFS: regularized evolution over loss computational graphs, on the search driver.

Morgan & Hougen 2024 (NLFS), §3 and appendices A–B (``docs/nlfs.md``). The pieces:

* **Genome** — :mod:`glojax.expr.graph` (4 hidden nodes + an output node over NLFS's 34
  ops); **integrity check** — :mod:`glojax.expr.integrity`.
* **Initial population** (§3.8, decoupled): ``initial.size`` graphs (1,000), each drawn
  per §3.2 until it passes the integrity check (against the graphs drawn before it),
  are scored ``initial.batch`` per step on the cheap model (``initial.model``/``train``,
  the ConvNet) with ``initial.early_stopping``; the best ``search.population_size``
  (100) form the first population, their fitness that score (Algorithm 2).
* **Regularized evolution** (§3.4, Algorithm 2; Real et al. 2019): each of
  ``children_per_step`` = B slots picks a parent by tournament (``tournament_size`` 20
  members drawn without replacement, the fittest wins), mutates it (appendix B) until the
  child passes the integrity check (at most ``max_mutation_attempts`` = 2,500, else the
  slot produces no child: a *failed mutation*), and trains the child. A child whose
  training fails — NaN/inf, rejected by the prescreen (§3.7: training accuracy < 37 %
  after 800 ConvNet steps) or by a ``"reject"`` early-stopping check — is replaced by a
  new mutation of the same parent, at most ``max_redo`` = 7 trainings per slot. Each
  successful child replaces the oldest member.
* **B = 1 is the paper's sequential algorithm.** With B > 1 the B tournaments of a step
  see the same population and the B children train as one compiled program — the
  asynchronous (batched) variant of regularized evolution that Real et al. ran with
  many workers: a child is born from a population up to B - 1 children stale. Children of
  one step are integrity-checked against each other too.
* **Early stopping** (§3.7) is the population trainer's
  (:mod:`glojax.train.early_stopping`): ``early_stopping.checks`` are ``[step,
  min_train_accuracy, action]``; ``"stop"`` keeps the validation accuracy at the stop as
  the fitness (the paper's 25 % after 3,000 steps), ``"reject"`` counts as a failed
  training (redo).

:class:`NLFS` is a :class:`glojax.search.driver.Search`: ``init(key) -> state``,
``step(state, key) -> (state, record)`` over one dict of NumPy arrays (populations,
phenotypes, ages, the archive of the best graphs, counters), checkpointed whole by the
driver; the final protocol compares the best graph with the ``final.baselines``; the
elimination protocol (§3.9) is its own command (:mod:`glojax.search.nlfs_elimination`).
"""

from __future__ import annotations

import collections
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np

from glojax import losses
from glojax import workdir as workdir_lib
from glojax.expr import graph as graph_lib
from glojax.expr import integrity as integrity_lib
from glojax.expr import program as program_lib
from glojax.search import driver, nlfs_report
from glojax.search.nlfs_config import Config, sub_config
from glojax.search.nlfs_steps import (COUNTERS, State, Steps, first_valid, graph_rows,
                                      numpy_rng, take_rows)
from glojax.train import protocol
from glojax.train.population import UNROLL_GROUP, resolve_strategy


def graph_loss_fn():
  """The trainer's ``loss_fn(program, logits, labels)`` for graph programs (the one
  compilation of trees, with NLFS's ops: ``op_set="all"``)."""
  return functools.partial(program_lib.program_loss,
                           stack_depth=graph_lib.PROGRAM_STACK_DEPTH, use_logits=False,
                           op_set="all")


def children_per_step(config: Config) -> int:
  """B: ``search.children_per_step``, or (0) what fills one compiled population call:
  ``UNROLL_GROUP`` children for ``"unroll"``, 1 for ``"sequential"``, 16 for ``"vmap"``."""
  if config.search.children_per_step:
    return config.search.children_per_step
  strategy = resolve_strategy(config.search.strategy, config.model.name)
  return {"unroll": UNROLL_GROUP, "sequential": 1}.get(strategy, 16)


class NLFS(Steps, driver.Search):
  """NLFS on the driver (module docstring)."""
  name = "nlfs"
  config_class = Config
  resumable_keys = ("search.steps", "elimination", "final")

  def __init__(self, config: Config):
    super().__init__(config)
    self.batch = children_per_step(config)
    self.rates = config.search.rates
    self.integrity = config.search.integrity_config
    self.early = config.early_stopping.stopping()
    self.initial_early = config.initial.stopping(config.early_stopping.train_examples)
    roles = {"surrogate": config, "initial": sub_config(config, config.initial)}
    if config.prescreen.enabled:
      roles["prescreen"] = sub_config(config, config.prescreen)
    # Data and model errors here, before the workdir is touched.
    self.trainers = {}
    for role, cfg in roles.items():
      problem = self.problem if role == "surrogate" else driver.Problem.build(cfg)
      self.trainers[role] = (problem.trainer(graph_loss_fn(), cfg, loss_key="nlfs-graph"),
                             problem.model_name)

  # -- state ---------------------------------------------------------------------------

  def template(self) -> State:
    """A state of the right structure and shapes (zeros)."""
    s, n0 = self.config.search, self.config.initial.size
    g = self.integrity.grid_points
    filler = [graph_lib.KNOWN_GRAPHS["cross_entropy"]]
    rows = lambda n: graph_rows(filler * n, np.zeros((n, g)), np.zeros(n), np.zeros(n))
    return State(phase=np.int32(0), step=np.int32(0), scored=np.int32(0),
                 next_birth=np.int32(0), initial=rows(n0),
                 population=rows(s.population_size), archive=rows(s.archive_size),
                 archive_count=np.int32(0),
                 counters={k: np.float64(0) for k in COUNTERS},
                 rejections={r: np.int64(0) for r in integrity_lib.REASONS})

  def abstract_state(self):
    return workdir_lib.spec_of(self.template())

  def init(self, key) -> State:
    """Draws the initial population (§3.2, §3.8): ``initial.size`` valid graphs."""
    state = self.template()._asdict()
    rng = numpy_rng(key)
    n0 = self.config.initial.size
    graphs, phenos = [], []
    rejected = collections.Counter()
    attempts = 0
    while len(graphs) < n0:
      g, v, a = first_valid(rng, graph_lib.random_graph,
                            np.asarray(phenos).reshape(-1, self.integrity.grid_points),
                            self.integrity, 1_000_000, rejected)
      attempts += a
      if g is None:
        raise RuntimeError("no random graph passed the integrity check in 1,000,000 "
                           "draws; check config.search.integrity")
      graphs.append(g)
      phenos.append(v.phenotype)
    state["initial"] = graph_rows(graphs, phenos, np.zeros(n0), np.arange(n0))
    state["counters"]["init_attempts"] = np.float64(attempts)
    for r, n in rejected.items():
      state["rejections"][r] += n
    return State(**state)

  def init_message(self, state) -> str:
    rej = {k: int(v) for k, v in state.rejections.items() if v}
    return (f"initial population: {self.config.initial.size} graphs passed the integrity "
            f"check out of {int(state.counters['init_attempts'])} drawn; rejected: "
            f"{rej}")

  def done(self, state: State) -> bool:
    return int(state.phase) == 1 and int(state.step) >= self.config.search.steps

  def key_index(self, state) -> int:
    """Steps taken + 1 (key 0 is ``init``'s)."""
    scored_steps = -(-int(state.scored) // self.config.initial.batch)
    return 1 + scored_steps + int(state.step)

  def resume_message(self, state) -> str:
    return f"resuming after {self.key_index(state) - 1} steps"

  # -- steps ---------------------------------------------------------------------------

  def step(self, state: State, key) -> tuple[State, dict]:
    """Scores the next chunk of the initial population, or evolves B children."""
    # The step functions update a copy of the state's fields in place.
    state = {k: ({kk: np.copy(vv) for kk, vv in v.items()} if isinstance(v, dict)
                 else np.copy(v)) for k, v in state._asdict().items()}
    t0 = time.time()
    before = {k: float(v) for k, v in state["counters"].items()}
    rejections_before = {k: int(v) for k, v in state["rejections"].items()}
    if int(state["phase"]) == 0:
      record = self._initial_step(state, key)
    else:
      record = self._evolution_step(state, key)
    record["counters"] = {k: float(state["counters"][k] - before[k]) for k in COUNTERS}
    record["rejections"] = {r: int(state["rejections"][r] - rejections_before[r])
                            for r in integrity_lib.REASONS}
    if record["phase"] == "evolve":
      record["fitness"] = [c["fitness"] for c in record["children"]]
      record["failed"] = int(record["counters"]["failed_trainings"])
    else:
      record["failed"] = record["nan"]
    pop = state["population"]["fitness"]
    if int(state["phase"]) == 1:
      record.update(best=float(np.max(pop)), mean=float(np.mean(pop)),
                    median=float(np.median(pop)))
    if int(state["archive_count"]):
      record["best_ever"] = float(state["archive"]["fitness"][0])
    record["wall_time_s"] = time.time() - t0
    return State(**state), record

  def describe(self, workdir: str) -> str:
    c = self.config
    return (f"NLFS search: {c.dataset.name}; surrogate {c.model.name} ({c.train.steps} "
            f"steps); initial population {c.initial.size} → {c.search.population_size}; "
            f"{c.search.steps} steps of {self.batch} children; workdir {workdir}")

  def progress(self, state, record: dict) -> str:
    return nlfs_report.progress_line(record, self.config.search.steps)

  # -- results -------------------------------------------------------------------------

  def finalize(self, state: State, workdir: str, log) -> dict:
    """The best graph (fittest ever evaluated), the archive, counters and rejection
    counts; writes ``best_loss.txt``, ``results.json`` and the plots."""
    n = int(state.archive_count)
    archive = graph_lib.unstack(take_rows(state.archive, np.arange(n)))
    fitness = state.archive["fitness"][:n]
    counters = {k: float(v) for k, v in state.counters.items()}
    results = {"steps": int(state.step), "children_per_step": self.batch,
               "counters": counters, "trainings": int(counters["trainings"]),
               "rejections": {k: int(v) for k, v in state.rejections.items()},
               "archive": [{"spec": graph_lib.to_spec(g), "fitness": float(f)}
                           for g, f in zip(archive, fitness)],
               "best": None}
    if n:
      results["best"] = {"spec": graph_lib.to_spec(archive[0]),
                         "fitness": float(fitness[0]), "graph": archive[0].describe()}
    history = workdir_lib.read_jsonl(f"{workdir}/{workdir_lib.LOG_FILE}")
    nlfs_report.write_outputs(workdir, results, history, log)
    return results

  def final_losses(self, state, results: dict, log):
    if results["best"] is None:
      log("final protocol skipped: no graph was trained")
      return None
    best = graph_lib.unstack(take_rows(state.archive, [0]))[0]
    program = jax.tree_util.tree_map(jnp.asarray, graph_lib.encode(best))
    candidate = protocol.LossUnderTest("nlfs", graph_loss_fn(), program,
                                       results["best"]["spec"])
    baseline = protocol.LossUnderTest(
        "cross_entropy", lambda _, logits, labels: losses.cross_entropy(logits, labels),
        jnp.zeros(0), "cross_entropy")
    return candidate, baseline



def default_config():
  """Every key an NLFS config may set, with the paper's defaults (locked)."""
  return NLFS.default_config()


def run(config, workdir: str, *, log=print, on_step=None) -> dict:
  """Runs (or resumes) an NLFS search and its final protocol in ``workdir``.

  Args:
    config: a ConfigDict/mapping with the keys of :func:`default_config`.
    workdir: the run's folder; rerunning on it resumes after the last finished step.
    log: progress printer.
    on_step: optional callback ``(state, record)`` after each step's checkpoint.

  Returns:
    :meth:`NLFS.finalize`'s results, with ``"final"`` (the final protocol's result).

  Raises:
    ValueError: for a bad config, or a workdir holding a different run.
    FileNotFoundError: if the dataset is not available.

  Files: those of :mod:`glojax.workdir`; ``best_loss.txt`` (the best graph's ``expr:``
  spec), ``results.json``, ``phenotype.png`` (binary phenotypes of the best graphs and
  cross-entropy), ``fitness.png``, ``final.json``.
  """
  return driver.run(NLFS, config, workdir, log=log, on_step=on_step)
