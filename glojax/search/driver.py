"""One driver for every search: a search is ``init`` / ``step`` / ``finalize`` over one
state pytree; the driver owns the workdir, the loop, checkpoints, logs and progress.

A search (``glojax/search/taylorglo.py``, ``glo.py``, ...) subclasses :class:`Search`
and writes only its own algorithm, in the pattern of evosax's strategies and flax's
examples: ``init(key) -> state`` and ``step(state, key) -> (state, record)`` are
functions of their arguments (the state is one pytree: arrays, numbers, strings),
and the state is checkpointed whole. :func:`run` then does for every search:

1. config: checks the user's config against the search's locked defaults, builds the
   typed sections and the search (data, model, trainer) — every value is validated
   before the workdir is touched;
2. workdir (:mod:`glojax.workdir`): ``config.json`` written, or compared with the
   saved one under the one defaults rule (only ``Search.resumable_keys`` may change);
3. load-or-init: the last checkpoint (paths, dtypes and shapes checked against
   ``Search.abstract_state``), or ``init`` — checkpointed at once;
4. the loop: ``step`` until ``done``; after each step the state is checkpointed, its
   record appended to ``log.jsonl`` and a progress line printed;
5. ``finalize`` (results files), then the final protocol hook
   (:mod:`glojax.search.final`) on the losses ``final_losses`` names, against the
   ``final.baselines`` (a tuned baseline gets the budget ``final_tuning`` reports).

Step ``i``'s key is ``fold_in(PRNGKey(seed), key_index(state))``: a pure function of
the seed and the position in the search, so a resumed run draws exactly what the
uninterrupted run would have. ``docs/search_driver.md`` has the contract and a
minimal example.
"""

from __future__ import annotations

import abc
import dataclasses
import os
from typing import Any, Callable, ClassVar, Optional

import jax
import ml_collections

from glojax import config as config_lib
from glojax import summary
from glojax import workdir as workdir_lib
from glojax.search import baselines as baselines_lib
from glojax.search import final as final_lib
from glojax.train import protocol
from glojax.train.population import STRATEGIES
from glojax.train.trainer import TrainConfig, Trainer

Log = Callable[[str], None]


# ---- the config every search shares -----------------------------------------------


@dataclasses.dataclass(frozen=True)
class RunConfig(config_lib.Composite):
  """The sections every search config has; a search subclasses it adding ``search``
  (and more) sections, and may change the defaults of these.

  Attributes:
    seed: seed of the search (every step's key derives from it).
    dataset, model: what the candidates train on.
    train: how a candidate trains during the search (the fitness protocol).
    final: the final protocol (:mod:`glojax.search.final`).
  """
  seed: int = 0
  dataset: config_lib.DatasetConfig = dataclasses.field(
      default_factory=config_lib.DatasetConfig)
  model: config_lib.ModelConfig = dataclasses.field(default_factory=config_lib.ModelConfig)
  train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
  final: final_lib.FinalConfig = dataclasses.field(default_factory=final_lib.FinalConfig)

  def __post_init__(self):
    config_lib.check_int(self, "seed", 0, config_lib.MAX_SEED)


def check_strategy(obj, field: str = "strategy") -> None:
  """A search section's population-strategy check."""
  config_lib.check_choice(obj, field, STRATEGIES)


@dataclasses.dataclass(frozen=True)
class Problem:
  """What every candidate trains on, built once per run from the config.

  Attributes:
    dataset: the loaded :class:`glojax.data.Dataset`.
    model: the flax model.
    model_name: its registry name (for ``strategy="auto"``).
    train_config: the search's :class:`TrainConfig` (the fitness protocol).
  """
  dataset: Any
  model: Any
  model_name: str
  train_config: TrainConfig

  @classmethod
  def build(cls, config: RunConfig) -> "Problem":
    """Loads the dataset and builds the model.

    Raises:
      ValueError: for a bad model option or a batch larger than the train split;
        FileNotFoundError if the dataset is not available (the message says how to
        get it).
    """
    from glojax import data as data_lib
    from glojax import models as models_lib
    d, m = config.dataset, config.model
    key = workdir_lib.dumps(d)
    if key not in _DATASETS:  # runs in one process (notebooks, tests) load data once
      if len(_DATASETS) >= _MAX_DATASETS:
        _DATASETS.pop(next(iter(_DATASETS)))
      _DATASETS[key] = data_lib.load(d.name, seed=d.seed, **d.options)
    dataset = _DATASETS[key]
    try:
      model = models_lib.get(m.name, num_classes=dataset.num_classes, **m.options)
    except (TypeError, ValueError) as e:
      raise _model_error(m, e) from None
    if config.train.batch_size > len(dataset.train):
      raise ValueError(f"config.train.batch_size={config.train.batch_size} is larger "
                       f"than the train split of {dataset.name} ({len(dataset.train)} "
                       "examples)")
    return cls(dataset, model, m.name, config.train)

  def trainer(self, loss_fn, config: RunConfig, loss_key: Optional[str] = None
              ) -> Trainer:
    """A :class:`Trainer` of ``loss_fn``; the model is initialized abstractly (no
    FLOPs), so bad model options fail here, naming ``config.model.options``.

    With ``loss_key`` (a string that identifies ``loss_fn``'s behaviour), trainers
    are shared by runs in one process with the same data, model, training and loss,
    so a notebook or test that runs several searches compiles once.
    """
    key = workdir_lib.dumps({"dataset": config.dataset, "model": config.model,
                             "train": self.train_config, "loss": loss_key})
    if loss_key is not None and key in _TRAINERS:
      return _TRAINERS[key]
    try:
      trainer = Trainer(self.model, self.dataset, loss_fn, self.train_config)
      jax.eval_shape(trainer.init, jax.random.PRNGKey(0))
    except Exception as e:  # flax/JAX raise TypeError/ValueError/... for bad fields
      raise _model_error(config.model, e) from None
    if loss_key is not None:
      if len(_TRAINERS) >= _MAX_TRAINERS:
        _TRAINERS.pop(next(iter(_TRAINERS)))
      _TRAINERS[key] = trainer
    return trainer


_TRAINERS: dict[str, Trainer] = {}
_MAX_TRAINERS = 4
_DATASETS: dict = {}
_MAX_DATASETS = 2


def _model_error(model: config_lib.ModelConfig, e: Exception) -> ValueError:
  first_line = (str(e).strip().splitlines() or [type(e).__name__])[0]
  return ValueError(f"config.model.options={dict(model.options)!r} cannot build model "
                    f"{model.name!r}: {first_line}")


# ---- the search contract ----------------------------------------------------------


class Search(abc.ABC):
  """A search algorithm run by :func:`run` (see the module docstring).

  Subclasses set ``name`` and ``config_class`` and implement the abstract methods.
  The constructor receives the typed config and builds everything the steps need
  (:class:`Problem`, trainer, ES); it must validate and raise ``ValueError`` without
  touching the disk. ``init`` and ``step`` must not mutate ``self``.
  """
  name: ClassVar[str]
  config_class: ClassVar[type]  # a RunConfig subclass
  # Config keys (or sections) that may change when a run is resumed.
  resumable_keys: ClassVar[tuple[str, ...]] = ("final",)

  def __init__(self, config: RunConfig):
    self.config = config
    self.problem = Problem.build(config)

  @classmethod
  def default_config(cls) -> ml_collections.ConfigDict:
    """Every key a config may set, with its default (locked: a typo raises)."""
    return config_lib.locked_config(cls.config_class().to_dict())

  # -- the algorithm --
  @abc.abstractmethod
  def init(self, key: jax.Array):
    """The initial state (a pytree) from ``key``."""

  @abc.abstractmethod
  def abstract_state(self):
    """The state's template for checkpoints: a pytree of
    :class:`glojax.workdir.LeafSpec` (:func:`glojax.workdir.spec_of`)."""

  @abc.abstractmethod
  def step(self, state, key: jax.Array) -> tuple[Any, dict]:
    """One generation: ``(new_state, record)``; ``record`` is a JSON-able dict (one
    line of ``log.jsonl``)."""

  @abc.abstractmethod
  def done(self, state) -> bool:
    """Whether the search has finished (no more steps)."""

  @abc.abstractmethod
  def finalize(self, state, workdir: str, log: Log) -> dict:
    """Writes the results files (best loss, plots) and returns the results dict."""

  # -- optional hooks --
  def key_index(self, state) -> int:
    """The index of the next step's key (default ``state.generation``)."""
    return int(state.generation)

  def describe(self, workdir: str) -> str:
    """The first progress line."""
    return f"{self.name} search; workdir {workdir}"

  def progress(self, state, record: dict) -> str:
    """The progress line printed after a step."""
    return f"step {self.key_index(state)}: {record}"

  def init_message(self, state) -> Optional[str]:
    """What a new run prints after ``init`` (None: nothing)."""
    return None

  def resume_message(self, state) -> str:
    """What a resumed run prints after loading its checkpoint."""
    return f"resuming from generation {self.key_index(state)}"

  def final_losses(self, state, results: dict, log: Log
                   ) -> Optional[tuple[protocol.LossUnderTest, protocol.LossUnderTest]]:
    """``(candidate, baseline)`` for the final protocol, or None to skip it (saying
    why with ``log`` when the reason is not obvious)."""
    return None

  def final_strategy(self) -> str:
    """Population strategy of the final protocol's runs."""
    return getattr(getattr(self.config, "search", None), "strategy", "auto")

  def final_tuning(self, state, results: dict) -> baselines_lib.TuningContext:
    """What ``@tuned`` baselines of the final protocol get from this search
    (:mod:`glojax.search.baselines`): the number of partial trainings it ran
    (default ``results["trainings"]``, else ``search.population_size ×
    search.generations``), its population size, NaN retries and ES policy."""
    s = getattr(self.config, "search", None)
    budget = results.get("trainings")
    if budget is None and hasattr(s, "population_size") and hasattr(s, "generations"):
      budget = s.population_size * s.generations
    return baselines_lib.TuningContext(
        budget=budget,
        population_size=getattr(s, "population_size", 20),
        nan_retries=getattr(s, "nan_retries", 0), seed=self.config.seed)


# ---- the driver -----------------------------------------------------------------------


def parse_config(search_class: type[Search], config) -> tuple[RunConfig, dict]:
  """The typed config and its plain-dict form (what ``config.json`` holds).

  Raises:
    ValueError: for unknown keys (typos) or bad values, naming them.
  """
  cfg = config_lib.with_defaults(config, search_class.default_config())
  return search_class.config_class.from_dict(cfg), cfg


def step_key(seed: int, index: int) -> jax.Array:
  """The key of step ``index``: ``fold_in(PRNGKey(seed), index)``."""
  return jax.random.fold_in(jax.random.PRNGKey(seed), index)


def run(search_class: type[Search], config, workdir: str, *, log: Log = print,
        on_step: Optional[Callable[[Any, dict], None]] = None) -> dict:
  """Runs (or resumes) ``search_class`` on ``config`` in ``workdir``.

  Args:
    search_class: a :class:`Search` subclass.
    config: a ConfigDict/mapping with keys of ``search_class.default_config()``.
    workdir: the run's folder; rerunning on the same folder resumes.
    log: progress printer.
    on_step: optional callback ``(state, record)`` after each step's checkpoint and
      log line (tests interrupt runs with it).

  Returns:
    ``finalize``'s results, with ``"final"``: the final protocol's result or None.

  Raises:
    ValueError: for a bad config or a workdir holding a different run or a damaged
      checkpoint (nothing in the workdir is changed then).
    FileNotFoundError: if the dataset is not available.
    KeyboardInterrupt: with a note saying how to resume (finished steps are saved).
  """
  typed, cfg = parse_config(search_class, config)
  search = search_class(typed)  # builds data, model, trainer: may raise ValueError
  # Several processes (jax.distributed): only process 0 writes the workdir.
  with workdir_lib.for_process(workdir) as workdir:
    return _run(search, typed, cfg, workdir, log, on_step)


def _run(search: Search, typed, cfg: dict, workdir: str, log: Log, on_step) -> dict:
  search_class = type(search)
  resumed = workdir_lib.prepare(workdir, cfg, defaults=search_class.default_config(),
                                resumable_keys=search.resumable_keys)
  log(search.describe(workdir))
  try:
    state = _loop(search, workdir, resumed, log, on_step)
  except KeyboardInterrupt as e:
    e.add_note(workdir_lib.interrupted_message(workdir))
    raise
  results = search.finalize(state, workdir, log)
  results.setdefault("final", None)
  losses = search.final_losses(state, results, log)
  if losses is not None and typed.final.enabled:
    results["final"] = final_lib.run(typed.final, *losses, problem=search.problem,
                                     strategy=search.final_strategy(), workdir=workdir,
                                     log=log, tuning=search.final_tuning(state, results))
  return results


def _loop(search: Search, workdir: str, resumed: bool, log: Log, on_step):
  seed = search.config.seed
  ckpt_path = os.path.join(workdir, workdir_lib.CHECKPOINT_FILE)
  loaded = load(search, workdir) if resumed else None
  if loaded is None:
    state, history = search.init(step_key(seed, 0)), []
    workdir_lib.save_checkpoint(ckpt_path, state, {"history": history})
    message = search.init_message(state)
    if message:
      log(message)
  else:
    state, history = loaded
    log(search.resume_message(state))
  workdir_lib.write_jsonl(os.path.join(workdir, workdir_lib.LOG_FILE), history)
  if search.done(state):
    return state
  with summary.Writer(workdir) as tensorboard:  # a view of log.jsonl for TensorBoard
    while not search.done(state):
      state, record = search.step(state, step_key(seed, search.key_index(state)))
      history.append(record)
      workdir_lib.save_checkpoint(ckpt_path, state, {"history": history})
      workdir_lib.append_jsonl(os.path.join(workdir, workdir_lib.LOG_FILE), record)
      tensorboard.record(len(history), record)
      log(search.progress(state, record))
      if on_step is not None:
        on_step(state, record)
  return state


def load(search: Search, workdir: str) -> Optional[tuple[Any, list]]:
  """The checkpointed ``(state, history)`` of ``workdir``, or None if it has none.

  Raises:
    ValueError: naming the file, if the checkpoint is damaged or does not match the
      search's state, or is missing while ``log.jsonl`` holds steps (a lost
      checkpoint: the run stops rather than silently starting over).
  """
  path = os.path.join(workdir, workdir_lib.CHECKPOINT_FILE)
  log_path = os.path.join(workdir, workdir_lib.LOG_FILE)
  if not os.path.exists(path):
    logged = workdir_lib.count_lines(log_path)
    if logged:  # log lines are appended only after their checkpoint was saved
      raise ValueError(
          f"workdir {workdir!r}: {workdir_lib.LOG_FILE} has {logged} generation(s) but "
          f"{workdir_lib.CHECKPOINT_FILE} is missing; restore it to resume, or move "
          f"{workdir_lib.LOG_FILE} away to restart the search (a restart rewrites the log)")
    return None
  hint = (f". Restore it, or move it and {workdir_lib.LOG_FILE} away to restart the "
          "search from scratch")
  try:
    state, meta = workdir_lib.load_checkpoint(path, search.abstract_state())
  except ValueError as e:
    raise ValueError(f"{e}{hint}") from None
  if not isinstance(meta.get("history"), list):
    raise ValueError(f"checkpoint {path!r} is unreadable (its metadata lacks the "
                     f"history){hint}")
  return state, meta["history"]

