"""GLO: genetic programming over loss trees, then CMA-ES on their coefficients.

GLO paper §III (Gonzalez & Miikkulainen, CEC 2020; dissertation ch. 4):

1. **Discovery.** A genetic algorithm evolves loss trees (``glojax.expr``): random
   depth-≤2 initial trees, population 80, 6 elites, roulette selection, subtree
   crossover (p = 0.8, both children kept), four bottom-up mutations
   (:mod:`glojax.search.ga`). Fitness is validation accuracy after a partial
   training; trees that do not depend on ``x`` and on ``y`` (or ``logits``) get 0
   without training (:func:`glojax.expr.canonical.trainability_error`), NaN training
   gets 0, and fitness is cached under the tree's sympy canonical form
   (:mod:`glojax.expr.canonical`), so equivalent trees train once.
2. **Coefficients.** The best tree(s) get one coefficient per node, absorbable ones
   pruned, tuned by (μ/μ_w, λ)-CMA-ES (:mod:`glojax.search.coefficients`).

glojax's contribution is the cost: every tree is a fixed-size postfix program
(:mod:`glojax.expr.program`), so the trees of a generation — and all CMA-ES candidates
of a generation, their coefficients being traced program constants — train as one
compiled program (``evaluate_population``), which compiles once per run.

Both phases are steps of one :class:`State` (phase ``"ga"``, then ``"cma"``, then
``"done"``), run by the shared driver (:mod:`glojax.search.driver`). Entry point:
:func:`run` (``config``, ``workdir``); resumable.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from typing import Callable, Mapping, NamedTuple, Optional

import jax
import numpy as np

from glojax import config as config_lib
from glojax import workdir as workdir_lib
from glojax.expr import canonical as canonical_lib
from glojax.expr import coefficients as coef_lib
from glojax.expr import program as program_lib
from glojax.expr import tree as tree_lib
from glojax.expr import variation
from glojax.search import coefficients as coef_phase
from glojax.search import baselines as baselines_lib
from glojax.search import common, driver, ga
from glojax.train import protocol
from glojax.train.population import evaluate_population
from glojax.train.trainer import TrainConfig, Trainer

EXPR_PREFIX = "expr:"
_PURPOSE_BASELINE = 5


@dataclasses.dataclass(frozen=True)
class SearchConfig(config_lib.Section):
  """``config.search`` of GLO: the genetic algorithm (GLO paper §III-A).

  Attributes:
    population_size, generations, elites: the GA (paper: 80, 100... , 6).
    crossover_probability: subtree crossover probability (0.8).
    mutation: per-node rates of the four mutations (:class:`variation.MutationRates`).
    init_max_depth: depth of the random initial trees (2).
    allow_logits: trees may use the logits as a leaf.
    max_len, stack_depth: program size; trees larger than ``max_len`` nodes (or
      needing more stack rows) get fitness 0 without training (GP's size limit).
    batch_candidates: candidates per compiled training call (0: population_size);
      the trainer compiles once for this K, a call's unused rows are padded.
    strategy, nan_retries: of ``evaluate_population``.
    simplify_max_size: see :func:`glojax.expr.canonical.canonical`.
    baseline_repeats: cross-entropy trained with the same fitness protocol, for
      reference (0: none).
    plateau_generations: stop the GA once its best fitness has not improved for this
      many generations (the paper ran "up to 100 generations" and stopped when the
      top candidate's performance plateaued, judged by eye; dissertation §4.1). 0
      (default): always run ``generations``, a fixed and reproducible budget.
  """
  population_size: int = 80
  generations: int = 100
  elites: int = 6
  crossover_probability: float = 0.8
  mutation: Mapping = dataclasses.field(default_factory=lambda: dataclasses.asdict(
      variation.MutationRates()))
  init_max_depth: int = 2
  allow_logits: bool = False
  max_len: int = 32
  stack_depth: int = 8
  batch_candidates: int = 0
  strategy: str = "auto"
  nan_retries: int = 0
  simplify_max_size: int = 25
  baseline_repeats: int = 4
  plateau_generations: int = 0

  def __post_init__(self):
    check = functools.partial(config_lib.check_int, self)
    check("population_size", 2)
    check("generations", 0)
    check("elites", 0, self.population_size - 1 if isinstance(
        self.population_size, int) else None, why=" (smaller than population_size)")
    for name, low in (("init_max_depth", 0), ("max_len", 1), ("stack_depth", 2),
                      ("batch_candidates", 0), ("nan_retries", 0),
                      ("simplify_max_size", 0), ("baseline_repeats", 0),
                      ("plateau_generations", 0)):
      check(name, low)
    config_lib.check_number(self, "crossover_probability", low=0.0, high=1.0)
    config_lib.check_bool(self, "allow_logits")
    config_lib.check_mapping(self, "mutation", "{'swap': 0.05}")
    try:
      variation.MutationRates(**self.mutation)
    except (TypeError, ValueError) as e:
      raise config_lib.FieldError(type(self).__name__, "mutation", dict(self.mutation),
                                  f"is not valid: {e}") from None
    driver.check_strategy(self)

  @property
  def rates(self) -> variation.MutationRates:
    return variation.MutationRates(**self.mutation)


@dataclasses.dataclass(frozen=True)
class Config(driver.RunConfig):
  """A GLO config; defaults are the GLO paper's (MNIST)."""
  train: TrainConfig = dataclasses.field(default_factory=lambda: TrainConfig(
      steps=2000, batch_size=100, learning_rate=0.01))
  search: SearchConfig = dataclasses.field(default_factory=SearchConfig)
  coefficients: coef_phase.CoefficientsConfig = dataclasses.field(
      default_factory=coef_phase.CoefficientsConfig)
  final: driver.final_lib.FinalConfig = dataclasses.field(
      default_factory=lambda: driver.final_lib.FinalConfig(enabled=False))


class State(NamedTuple):
  """The GLO search state: ``phase`` ``"ga"`` → ``"cma"`` → ``"done"``."""
  phase: str
  ga: ga.GAState
  coef: coef_phase.CoefState


def tree_spec(tree: tree_lib.Tree) -> str:
  """The ``"expr:..."`` loss spec of a tree (loadable by ``glojax.losses.get``)."""
  return EXPR_PREFIX + tree_lib.to_string(tree)


def cross_entropy_tree(num_classes: int) -> tree_lib.Tree:
  """Cross-entropy as a GLO tree: ``n * (x * log(y))`` with ``L = -(1/n) Σ f``."""
  return tree_lib.parse(f"{num_classes} * (x * log(y))")


# ---- fitness evaluation with the canonical-form cache ------------------------------


@dataclasses.dataclass(frozen=True)
class Evaluator:
  """Trains trees (or coefficient vectors) as populations; stateless: the fitness
  cache and the counters are part of the search state (:class:`ga.GAState`).

  Attributes:
    trainer: a :class:`Trainer` whose ``loss_fn`` is the program interpreter.
    batch: candidates per compiled call (the trainer compiles once for this K).
    max_len, stack_depth: program shape.
    strategy, nan_retries, model_name: passed to ``evaluate_population``.
    simplify_max_size: see :func:`glojax.expr.canonical.canonical`.
  """
  trainer: Trainer
  batch: int
  max_len: int
  stack_depth: int
  strategy: str
  nan_retries: int
  model_name: str
  simplify_max_size: int

  def train_programs(self, programs: program_lib.Program, key: jax.Array
                     ) -> tuple[np.ndarray, int, float]:
    """Fitness of ``K`` programs (``[K, L]`` arrays), trained ``batch`` at a time.

    Candidate ``i`` trains with key ``fold_in(key, i)``, whatever chunk it lands in,
    so its result does not depend on its neighbours. Padding rows repeat row 0.

    Returns:
      ``(fitness float32[K], failed trainings, wall seconds)``.
    """
    k = int(np.shape(programs.opcodes)[0])
    fitness = np.zeros(k, np.float32)
    failed = 0
    t0 = time.time()
    for start in range(0, k, self.batch):
      rows = np.arange(start, min(start + self.batch, k))
      take = np.concatenate([rows, np.full(self.batch - len(rows), rows[0])])
      chunk = jax.tree_util.tree_map(lambda a: np.asarray(a)[take], programs)
      keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jax.numpy.asarray(take))
      result = evaluate_population(self.trainer, chunk, keys, strategy=self.strategy,
                                   nan_retries=self.nan_retries,
                                   model_name=self.model_name)
      fitness[rows] = common.sanitize_fitness(result.fitness)[:len(rows)]
      failed += int(np.sum(~result.metrics["finite"][:len(rows)]))
    return fitness, failed, time.time() - t0

  def status(self, tree: tree_lib.Tree) -> tuple[str, Optional[str]]:
    """``("too_large"|"invalid"|"ok", canonical key or None)`` for one tree."""
    if tree_lib.size(tree) > self.max_len or \
        program_lib.required_stack(tree) > self.stack_depth:
      return "too_large", None
    # One validity rule for GLO and glojax.losses.get (read semantically: x - x + y
    # does not depend on x).
    if canonical_lib.trainability_error(tree, self.simplify_max_size) is not None:
      return "invalid", None
    return "ok", canonical_lib.canonical(tree, self.simplify_max_size)

  def fitness(self, trees: list, key: jax.Array, cache: Mapping[str, float]
              ) -> tuple[np.ndarray, list[str], dict[str, float], dict]:
    """GLO fitness of ``trees`` (GLO paper §III-A), training only cache misses.

    Args:
      trees: the trees.
      key: training key (tree ``i`` of the misses trains with ``fold_in(key, i)``).
      cache: canonical key → fitness of trees trained before (not modified).

    Returns:
      ``(fitness float32[len(trees)], statuses, new cache entries, counts)``: status
      per tree is ``"trained"``, ``"hit"``, ``"invalid"`` or ``"too_large"``; counts
      are the :class:`ga.Counters` increments.
    """
    fitness = np.zeros(len(trees), np.float32)
    statuses = [""] * len(trees)
    counts = {"evaluations": len(trees), "hits": 0, "invalid": 0, "too_large": 0}
    pending: dict[str, list[int]] = {}
    for i, tree in enumerate(trees):
      status, ckey = self.status(tree)
      if status != "ok":
        counts[status] += 1
        statuses[i] = status
      elif ckey in cache:
        counts["hits"] += 1
        fitness[i] = cache[ckey]
        statuses[i] = "hit"
      elif ckey in pending:  # an equivalent tree of this generation trains once
        counts["hits"] += 1
        pending[ckey].append(i)
        statuses[i] = "hit"
      else:
        pending[ckey] = [i]
        statuses[i] = "trained"
    new = {}
    if pending:
      firsts = [rows[0] for rows in pending.values()]
      programs = program_lib.encode_population(
          [trees[i] for i in firsts], self.max_len, stack_depth=self.stack_depth)
      trained, failed, seconds = self.train_programs(programs, key)
      counts.update(trained_trees=len(firsts), trained=len(firsts), failed=failed,
                    train_seconds=seconds)
      for (ckey, rows), f in zip(pending.items(), trained):
        new[ckey] = float(f)
        fitness[rows] = f
    return fitness, statuses, new, counts


def program_loss_fn(config: SearchConfig) -> Callable:
  """The trainer's ``loss_fn(program, logits, labels)`` for this search section."""
  return functools.partial(program_lib.program_loss, stack_depth=config.stack_depth,
                           use_logits=config.allow_logits, op_set="glo")


def make_trainer(config: Config, problem: driver.Problem) -> Trainer:
  """The (shared) :class:`Trainer` whose loss is the program interpreter."""
  s = config.search
  return problem.trainer(program_loss_fn(s), config,
                         loss_key=f"glo-program:{s.stack_depth}:{s.allow_logits}")


def make_evaluator(config: Config, problem: Optional[driver.Problem] = None) -> Evaluator:
  """The :class:`Evaluator` of a config (building its problem if not given)."""
  s = config.search
  trainer = make_trainer(config, problem or driver.Problem.build(config))
  return Evaluator(trainer=trainer, batch=s.batch_candidates or s.population_size,
                   max_len=s.max_len, stack_depth=s.stack_depth, strategy=s.strategy,
                   nan_retries=s.nan_retries, model_name=config.model.name,
                   simplify_max_size=s.simplify_max_size)


def validate_config(config) -> Config:
  """The typed :class:`Config` of ``config`` (every value checked; nothing built).

  Raises:
    ValueError: for unknown keys (typos) or bad values, naming them.
  """
  return driver.parse_config(GLO, config)[0]


# ---- the search ---------------------------------------------------------------------


class GLO(driver.Search):
  """The GLO search (module docstring) on the shared driver."""
  name = "GLO"
  config_class = Config
  # Unlike TaylorGLO, the GA's generation count is fixed: the coefficient phase
  # starts from the GA's final population.
  resumable_keys = ("final",)

  def __init__(self, config: Config):
    super().__init__(config)
    self.evaluator = make_evaluator(config, self.problem)
    self.primitives = variation.Primitives.glo(allow_logits=config.search.allow_logits)

  def describe(self, workdir: str) -> str:
    s = self.config.search
    return (f"GLO search: {self.problem.dataset.describe()}; model "
            f"{self.config.model.name}; population {s.population_size}, {s.generations} "
            f"generations, {self.config.train.steps} training steps per candidate, "
            f"{self.evaluator.batch} candidates per compiled call; workdir {workdir}")

  def _empty(self) -> State:
    s = self.config.search
    phase = "ga" if s.generations > 0 else "done"
    return State(phase, ga.GAState.empty(s.population_size),
                 coef_phase.CoefState.empty(s.max_len, self.config.coefficients))

  def abstract_state(self):
    empty = self._empty()
    fixed = workdir_lib.spec_of(empty.ga._replace(cache_keys=None, cache_fitness=None,
                                                  baseline_fitness=None))
    return State(workdir_lib.LeafSpec(np.str_, (), "python"), fixed._replace(
        cache_keys=workdir_lib.LeafSpec(np.str_, (None,)),
        cache_fitness=workdir_lib.LeafSpec(np.float32, (None,)),
        baseline_fitness=workdir_lib.LeafSpec(np.float32, (None,))),
        workdir_lib.spec_of(empty.coef, variable=True)._replace(
            tree_index=workdir_lib.LeafSpec(np.int64, (), "python"),
            generation=workdir_lib.LeafSpec(np.int64, (), "python")))

  def init(self, key: jax.Array) -> State:
    """The empty state, with cross-entropy's fitness under the same protocol."""
    state = self._empty()
    n = self.config.search.baseline_repeats
    if n == 0:
      return state
    # Cross-entropy as a program (n * x * log y): the same compiled trainer.
    s = self.config.search
    ce = program_lib.encode_population(
        [cross_entropy_tree(self.problem.dataset.num_classes)] * n, s.max_len,
        stack_depth=s.stack_depth)
    f, _, seconds = self.evaluator.train_programs(
        ce, jax.random.fold_in(key, _PURPOSE_BASELINE))
    return state._replace(ga=state.ga._replace(baseline_fitness=f,
                                               baseline_seconds=seconds))

  def init_message(self, state: State) -> Optional[str]:
    f = state.ga.baseline_fitness
    if not f.size:
      return None
    return (f"cross-entropy baseline (same fitness protocol, {f.size} runs): validation "
            f"accuracy {f.mean():.4f} ± {f.std():.4f} ({state.ga.baseline_seconds:.1f}s "
            "incl. compile)")

  def done(self, state: State) -> bool:
    return state.phase == "done"

  def key_index(self, state: State) -> int:
    if state.phase == "cma":
      return coef_phase.key_index(state.coef)
    return state.ga.generation

  def resume_message(self, state: State) -> str:
    generation = state.coef.generation if state.phase != "ga" else state.ga.generation
    return (f"resuming: phase {state.phase}, generation {generation}, "
            f"{len(state.ga.cache_keys)} cached trees")

  def step(self, state: State, key: jax.Array) -> tuple[State, dict]:
    if state.phase == "ga":
      return self._ga_step(state, key)
    coef, record, counts = coef_phase.step(state.coef, key, config=self.config.coefficients,
                                           evaluator=self.evaluator)
    phase = "done" if coef_phase.finished(coef) else "cma"
    return State(phase, state.ga._replace(counters=state.ga.counters.add(counts)),
                 coef), record

  def _ga_step(self, state: State, key: jax.Array) -> tuple[State, dict]:
    """One GA generation; the last one starts the coefficient phase."""
    s = self.config.search
    st, record = ga.step(state.ga, key, seed=self.config.seed, config=s,
                         evaluator=self.evaluator, primitives=self.primitives)
    state = state._replace(ga=st)
    if st.generation < s.generations and plateaued(st, s.plateau_generations):
      record["stopped_on_plateau"] = True
    if st.generation == s.generations or record.get("stopped_on_plateau"):
      state = self._start_coefficients(state)
    return state, record

  def _start_coefficients(self, state: State) -> State:
    """The state after the GA: the coefficient phase on the best distinct trees."""
    kc, s = self.config.coefficients, self.config.search
    top = ga.top_trees(state.ga, kc.num_trees, s.simplify_max_size)
    if top:
      coef = coef_phase.CoefState.start([t for t, _ in top], [f for _, f in top],
                                        s.max_len, state.coef.es)
    else:  # nothing to tune: the best tree is the result
      coef = coef_phase.CoefState.start([state.ga.best_tree], [state.ga.best_fitness],
                                        s.max_len, state.coef.es, done=True)
    tune = kc.enabled and kc.generations > 0 and not coef_phase.finished(coef)
    return state._replace(phase="cma" if tune else "done", coef=coef)

  def progress(self, state: State, record: dict) -> str:
    if record["phase"] == "cma":
      kc = self.config.coefficients
      line = (f"cma {record['generation'] + 1:3d}/{kc.generations}  best "
              f"{record['best']:.4f}  mean {record['mean']:.4f}  best-ever "
              f"{record['best_ever']:.4f}  σ {record['sigma']:.3g}"
              f"{'  (flat: no update)' if not record['told'] else ''}  "
              f"{record['wall_time_s']:.1f}s")
      if record["generation"] == 0:
        line = coef_phase.describe_tree(record["tree"], kc) + "\n" + line
      return line
    r = record
    line = (f"gen {r['generation'] + 1:3d}/{self.config.search.generations}  best "
            f"{r['best']:.4f}  mean {r['mean']:.4f}  median {r['median']:.4f}  best-ever "
            f"{r['best_ever']:.4f}  trained {r['trained']}  hits {r['hits']}  invalid "
            f"{r['invalid'] + r['too_large']}  failed {r['failed']}  "
            f"{r['wall_time_s']:.1f}s  best: {r['best_tree']}")
    if r.get("stopped_on_plateau"):
      line += (f"\nGA stopped after {r['generation'] + 1} generations: the best fitness "
               f"has not improved since generation {state.ga.best_generation + 1} "
               f"(search.plateau_generations={self.config.search.plateau_generations})")
    if state.phase != "ga" and not state.coef.tree_fitness[0] > 0:
      line += ("\nno tree reached a fitness above 0: nothing to tune; best_loss.txt = "
               "best tree")
    return line

  def finalize(self, state: State, workdir: str, log) -> dict:
    """Writes ``best_tree.txt``, ``best_loss.txt`` (``expr:`` specs),
    ``results.json`` and ``fitness.png``; retrains the winners with the baseline's
    keys (``confirm``)."""
    st, s = state.ga, self.config.search
    baseline = st.baseline_fitness
    out = {"best_tree": None, "best_tree_fitness": st.best_fitness, "best_loss": None,
           "best_loss_fitness": None,
           "baseline_fitness": float(baseline.mean()) if baseline.size else None,
           "generations": st.generation, "confirm": None, "final": None}
    counters = st.counters._asdict()
    if st.best_generation < 0:
      log("no generation was run (search.generations = 0); nothing to report")
      out.update(counters=counters, hit_rate=0.0)
      return out
    best_tree = tree_lib.parse(st.best_tree)
    out["best_tree"] = tree_spec(best_tree)
    workdir_lib.write_text(os.path.join(workdir, "best_tree.txt"), out["best_tree"] + "\n")
    tuned_tree, tuned_scales, tuned_fitness = self.best_loss(state)
    out["best_loss"] = tree_spec(coef_lib.with_coefficients(tuned_tree, tuned_scales))
    out["best_loss_fitness"] = tuned_fitness
    workdir_lib.write_text(os.path.join(workdir, "best_loss.txt"), out["best_loss"] + "\n")
    looked_up = counters["hits"] + counters["trained_trees"]
    out.update(counters=counters,
               hit_rate=counters["hits"] / looked_up if looked_up else 0.0,
               candidates_per_s=counters["trained"] / counters["train_seconds"]
               if counters["train_seconds"] else None)
    log(f"best tree (validation {out['best_tree_fitness']:.4f}): {out['best_tree']}")
    log(f"best loss after coefficients (validation {out['best_loss_fitness']:.4f}): "
        f"{out['best_loss']}")
    if not out["best_loss_fitness"] > 0:
      log("no loss trained successfully: skipping the retraining comparisons")
    elif baseline.size:
      # The search's best fitness is the maximum of many noisy evaluations; retrain
      # the winners with the baseline's keys for an unbiased, paired comparison.
      out["confirm"] = self._confirm(best_tree, tuned_tree, tuned_scales, baseline)
      log(_confirm_line(out["confirm"]))
    workdir_lib.write_json(os.path.join(workdir, "results.json"), out)
    log(f"{counters['evaluations']} tree evaluations, {counters['trained']} trainings "
        f"(incl. coefficient phase), cache hit rate {out['hit_rate']:.1%}, "
        f"{counters['invalid']} without x and y, {counters['too_large']} too large, "
        f"{counters['failed']} NaN trainings")
    common.plot_phases(workdir, "GLO search", log)
    return out

  def best_loss(self, state: State) -> tuple[tree_lib.Tree, dict, float]:
    """``(tree, scales, fitness)`` of the best loss after the coefficient phase."""
    coef = state.coef
    j = int(np.argmax(coef.best_fitness))  # the first of equals, as max() picks
    return (tree_lib.parse(str(coef.trees[j])),
            coef.scales(j, self.config.coefficients.prune), float(coef.best_fitness[j]))

  def _confirm(self, best_tree, tuned_tree, tuned_scales, baseline) -> dict:
    """Validation accuracy of the best tree and best tuned loss, retrained with the
    cross-entropy baseline's keys (``search.baseline_repeats`` runs each)."""
    s, n = self.config.search, len(baseline)
    key = jax.random.fold_in(driver.step_key(self.config.seed, 0), _PURPOSE_BASELINE)
    stats = lambda f: {"runs": np.asarray(f).tolist(), "mean": float(np.mean(f)),
                       "std": float(np.std(f))}
    runs = {}
    for name, tree, scales in (("best_tree", best_tree, None),
                               ("best_loss", tuned_tree, tuned_scales)):
      programs = program_lib.encode_population(
          [tree] * n, s.max_len, [scales] * n if scales else None,
          stack_depth=s.stack_depth)
      runs[name] = stats(self.evaluator.train_programs(programs, key)[0])
    return {"repeats": n, **runs, "cross_entropy": stats(baseline.tolist())}

  def final_tuning(self, state: State, results: dict) -> baselines_lib.TuningContext:
    """Tuned baselines get the search's partial trainings (GA cache misses and the
    coefficient phase) and the coefficient phase's population and ES policy."""
    s, kc = self.config.search, self.config.coefficients
    return baselines_lib.TuningContext(
        budget=int(state.ga.counters.trained) or None,
        population_size=kc.population_size, nan_retries=s.nan_retries,
        policy=kc.policy, seed=self.config.seed)

  def final_losses(self, state: State, results: dict, log):
    if not (results["best_loss_fitness"] or 0) > 0:
      return None
    tree, scales, _ = self.best_loss(state)
    s = self.config.search
    encode = lambda t, sc=None: program_lib.encode(t, s.max_len, sc,
                                                   stack_depth=s.stack_depth)
    loss_fn = program_loss_fn(s)
    candidate = protocol.LossUnderTest(
        "glo", loss_fn, encode(tree, scales),
        tree_spec(coef_lib.with_coefficients(tree, scales)))
    baseline = protocol.LossUnderTest(
        "cross_entropy", loss_fn,
        encode(cross_entropy_tree(self.problem.dataset.num_classes)), "cross_entropy")
    return candidate, baseline


def _confirm_line(c: dict) -> str:
  return (f"retrained {c['repeats']}× with the baseline's keys (validation accuracy, "
          f"mean ± std): best tree {c['best_tree']['mean']:.4f} ± "
          f"{c['best_tree']['std']:.4f}, best loss {c['best_loss']['mean']:.4f} ± "
          f"{c['best_loss']['std']:.4f}, cross-entropy {c['cross_entropy']['mean']:.4f}"
          f" ± {c['cross_entropy']['std']:.4f}")


def plateaued(st: ga.GAState, patience: int) -> bool:
  """True once the GA's best fitness has not improved for ``patience`` generations
  (never when ``patience`` is 0)."""
  return (patience > 0 and st.best_generation >= 0
          and st.generation - 1 - st.best_generation >= patience)


def default_config():
  """Every key a GLO config may set, with the GLO paper's defaults (locked)."""
  return GLO.default_config()


def run(config, workdir: str, *, log: Callable[[str], None] = print,
        on_step: Optional[Callable[[State, dict], None]] = None) -> dict:
  """Runs (or resumes) a GLO search in ``workdir``: GA, coefficient phase, final.

  Args:
    config: a ConfigDict/mapping with the keys of :func:`default_config`.
    workdir: the run's folder; rerunning on the same folder resumes.
    log: progress printer (one line per generation).
    on_step: optional callback ``(state, record)`` after each generation's checkpoint
      (``record["phase"]`` is ``"ga"`` or ``"cma"``; tests interrupt a run with it).

  Returns:
    ``{"best_tree": spec, "best_tree_fitness", "best_loss": spec, "best_loss_fitness",
    "baseline_fitness", "confirm", "counters", "hit_rate", "candidates_per_s",
    "generations", "final"}``; ``confirm`` holds the best tree's, best loss's and
    cross-entropy's validation accuracy over ``search.baseline_repeats`` runs with the
    same keys (an unbiased comparison; the search's best fitness is a maximum over
    many noisy evaluations).

  Raises:
    ValueError: for a bad config, or a workdir holding a different run.

  Files written (besides ``config.json``, ``log.jsonl``, ``checkpoint.npz``):
  ``best_tree.txt`` (best GA tree, ``expr:`` spec), ``best_loss.txt`` (the best loss
  after the coefficient phase, ``expr:`` spec), ``results.json``, ``fitness.png``,
  ``final.json`` (if ``final.enabled``).
  """
  return driver.run(GLO, config, workdir, log=log, on_step=on_step)
