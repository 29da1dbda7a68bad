"""The final protocol hook: after a search, retrain its best loss and the baselines.

Dissertation §3.3 / §5.3: the best-validation loss is retrained with full training
``final.repeats`` times, as is each baseline, and their test accuracies are compared
with Welch's t-test (one per baseline; :func:`glojax.train.protocol.compare_all`, whose
module defines the rule for failed runs). ``final.baselines`` lists the baselines
(default: cross-entropy at the config's learning rate and cross-entropy with its
learning rate tuned on the search's budget, :mod:`glojax.search.baselines`); an empty
list compares with the baseline the search names. The driver
(:mod:`glojax.search.driver`) calls :func:`run` with the losses a search names in
``Search.final_losses`` and the budget of ``Search.final_tuning``; a search never
calls the protocol itself, so changing the protocol happens here only.

The result is written to ``final.json`` with the ``final`` config section that
produced it; a rerun of a finished search reuses it when the loss and the section
are unchanged, instead of repeating the full trainings (a finished learning-rate
tuning is reused from ``lr_tuning.json`` even when the section changed).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, Mapping, Optional

from glojax import config as config_lib
from glojax import workdir as workdir_lib
from glojax.analysis import stats
from glojax.search import baselines as baselines_lib
from glojax.train import protocol

FINAL_FILE = "final.json"


@dataclasses.dataclass(frozen=True)
class FinalConfig(config_lib.Section):
  """``config.final``: the final protocol.

  Attributes:
    enabled: run it after the search.
    repeats: runs per loss (R ≥ 2 for Welch's t-test; the papers: 10).
    steps: training steps of each run (the full training, e.g. 20,000 for MNIST).
    alternative: Welch alternative for candidate vs each baseline (``"greater"``).
    seed: seed of the runs' keys (every loss uses the same R keys).
    baselines: the rows to compare with: loss specs, optionally ``@tuned`` (learning
      rate tuned with the search's budget of partial trainings, on validation only)
      or ``@<learning rate>`` (:mod:`glojax.search.baselines`); ``()``: the search's
      own baseline.
    tuning: the ``@tuned`` searches: ``budget`` (partial trainings; 0 = as many as
      the loss search ran), ``population_size`` (0 = the search's), ``method``
      (``"cma"``: 1-D CMA-ES on ln(lr); ``"grid"``), ``sigma`` (CMA-ES σ0 in ln(lr)),
      ``decades`` (the grid's half-width).
  """
  enabled: bool = True
  repeats: int = 10
  steps: int = 20000
  alternative: str = "greater"
  seed: int = 1
  baselines: tuple = baselines_lib.DEFAULT_BASELINES
  tuning: Mapping = dataclasses.field(
      default_factory=lambda: dict(baselines_lib.TUNING_DEFAULTS))

  def __post_init__(self):
    config_lib.check_bool(self, "enabled")
    config_lib.check_int(self, "seed", 0, config_lib.MAX_SEED)
    if isinstance(self.baselines, (list, tuple)):
      object.__setattr__(self, "baselines", tuple(self.baselines))
    if self.enabled:
      config_lib.check_int(self, "repeats", 2, why=" (Welch's t-test)")
      config_lib.check_int(self, "steps", 1)
      config_lib.check_choice(self, "alternative", stats.ALTERNATIVES)
      # Raises ValueError naming config.final.<key> and the bad value.
      baselines_lib.validate_final({"baselines": self.baselines, "tuning": self.tuning})


def finished(final: FinalConfig, candidate_spec: str, workdir: str,
             learning_rate: Optional[float] = None) -> Optional[dict]:
  """``final.json`` if it already holds ``candidate_spec``'s protocol (at
  ``learning_rate``, when given) under ``final``."""
  path = os.path.join(workdir, FINAL_FILE)
  try:
    result = workdir_lib.read_json(path)
    done = (result["candidate"]["spec"] == candidate_spec
            and (learning_rate is None
                 or result["candidate"].get("learning_rate") == learning_rate)
            and result["final_config"] == workdir_lib.to_jsonable(
                dict(sorted(final.to_dict().items()))))
  except (ValueError, KeyError, TypeError):
    return None
  return result if done else None


def run(final: FinalConfig, candidate: protocol.LossUnderTest,
        baseline: protocol.LossUnderTest, *, problem, strategy: str, workdir: str,
        log: Callable[[str], None] = print,
        tuning: Optional[baselines_lib.TuningContext] = None) -> dict:
  """Retrains ``candidate`` and every baseline ``final.repeats`` times; writes
  ``final.json``.

  Args:
    final: the ``final`` section.
    candidate: the loss under test (its ``loss_params`` may carry a co-evolved
      learning rate, :class:`glojax.train.trainer.ScaledLearningRate`).
    baseline: the search's own baseline, used when ``final.baselines`` is empty.
    problem: the search's :class:`glojax.search.driver.Problem` (data, model, training
      recipe; the number of steps is ``final.steps``).
    strategy: population strategy for the R runs.
    workdir: the run's folder.
    log: progress printer.
    tuning: the search's budget and settings for ``@tuned`` baselines
      (``Search.final_tuning``); needed only when one is listed.

  Returns:
    :func:`glojax.search.baselines.final_comparison`'s result (rows, one Welch test
    per baseline, tuning traces, the candidate's effective learning rate, ``table``)
    plus ``final_config``.

  Raises:
    ValueError: if a ``@tuned`` baseline is listed, ``final.tuning.budget`` is 0 and
      the search reports no budget.
  """
  lr = (problem.train_config.learning_rate if candidate.learning_rate is None
        else candidate.learning_rate)
  done = finished(final, candidate.spec, workdir, learning_rate=lr)
  if done is not None:
    log(f"final protocol already done for this loss and config.final "
        f"({os.path.join(workdir, FINAL_FILE)}; delete it to retrain)")
    log(done["table"])
    return done
  train_config = dataclasses.replace(problem.train_config, steps=final.steps)
  result = baselines_lib.final_comparison(
      candidate, model=problem.model, dataset=problem.dataset,
      search_train_config=problem.train_config, final_train_config=train_config,
      baselines=final.baselines, fallback=baseline, repeats=final.repeats,
      seed=final.seed, tuning=dict(final.tuning), context=tuning, strategy=strategy,
      model_name=problem.model_name, alternative=final.alternative, workdir=workdir,
      log=log)
  # Keys sorted, as config.json has them (ml_collections' order).
  result["final_config"] = dict(sorted(final.to_dict().items()))
  # As final.json holds it (tuples as lists, NaN as null): a rerun that reuses the
  # file returns the same value.
  result = workdir_lib.to_jsonable(result)
  workdir_lib.write_json(os.path.join(workdir, FINAL_FILE), result)
  log(result["table"])
  return result
