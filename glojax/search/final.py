"""The final protocol hook: after a search, retrain its best loss and a baseline.

Dissertation §3.3 / §5.3: the best-validation loss is retrained with full training
``final.repeats`` times, as is the baseline (cross-entropy), and their test accuracies
are compared with Welch's t-test (:func:`glojax.train.protocol.compare`, which also
defines the rule for failed runs). The driver (:mod:`glojax.search.driver`) calls
:func:`run` with the losses a search names in ``Search.final_losses``; a search never
calls the protocol itself, so changing the protocol (more baselines, another test)
happens here only.

The result is written to ``final.json`` with the ``final`` config section that
produced it; a rerun of a finished search reuses it when the loss and the section
are unchanged, instead of repeating ``2 × final.repeats`` full trainings.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable, Optional

from glojax import config as config_lib
from glojax import workdir as workdir_lib
from glojax.analysis import stats
from glojax.train import protocol

FINAL_FILE = "final.json"


@dataclasses.dataclass(frozen=True)
class FinalConfig(config_lib.Section):
  """``config.final``: the final protocol.

  Attributes:
    enabled: run it after the search.
    repeats: runs per loss (R ≥ 2 for Welch's t-test; the papers: 10).
    steps: training steps of each run (the full training, e.g. 20,000 for MNIST).
    alternative: Welch alternative for candidate vs baseline (``"greater"``).
    seed: seed of the runs' keys (both losses use the same R keys).
  """
  enabled: bool = True
  repeats: int = 10
  steps: int = 20000
  alternative: str = "greater"
  seed: int = 1

  def __post_init__(self):
    config_lib.check_bool(self, "enabled")
    config_lib.check_int(self, "seed", 0, config_lib.MAX_SEED)
    if self.enabled:
      config_lib.check_int(self, "repeats", 2, why=" (Welch's t-test)")
      config_lib.check_int(self, "steps", 1)
      config_lib.check_choice(self, "alternative", stats.ALTERNATIVES)


def finished(final: FinalConfig, candidate_spec: str, workdir: str
             ) -> Optional[dict]:
  """``final.json`` if it already holds ``candidate_spec``'s protocol under ``final``."""
  path = os.path.join(workdir, FINAL_FILE)
  try:
    result = workdir_lib.read_json(path)
    done = (result["candidate"]["spec"] == candidate_spec
            and result["final_config"] == workdir_lib.to_jsonable(final.to_dict()))
  except (ValueError, KeyError, TypeError):
    return None
  return result if done else None


def run(final: FinalConfig, candidate: protocol.LossUnderTest,
        baseline: protocol.LossUnderTest, *, problem, strategy: str, workdir: str,
        log: Callable[[str], None] = print) -> dict:
  """Retrains ``candidate`` and ``baseline`` ``final.repeats`` times; writes
  ``final.json``.

  Args:
    final: the ``final`` section.
    candidate, baseline: the losses to compare.
    problem: the search's :class:`glojax.search.driver.Problem` (data, model, training
      recipe; the number of steps is ``final.steps``).
    strategy: population strategy for the R runs.
    workdir: the run's folder.
    log: progress printer.

  Returns:
    :func:`glojax.train.protocol.compare`'s result plus ``table`` (the printed table)
    and ``final_config``.
  """
  done = finished(final, candidate.spec, workdir)
  if done is not None:
    log(f"final protocol already done for this loss and config.final "
        f"({os.path.join(workdir, FINAL_FILE)}; delete it to retrain)")
    log(done["table"])
    return done
  train_config = dataclasses.replace(problem.train_config, steps=final.steps)
  result = protocol.compare(candidate, baseline, model=problem.model,
                            dataset=problem.dataset, train_config=train_config,
                            repeats=final.repeats, seed=final.seed, strategy=strategy,
                            model_name=problem.model_name, alternative=final.alternative,
                            log=log)
  result["table"] = protocol.format_table(result)
  # Keys sorted, as config.json has them (ml_collections' order).
  result["final_config"] = dict(sorted(final.to_dict().items()))
  workdir_lib.write_json(os.path.join(workdir, FINAL_FILE), result)
  log(result["table"])
  return result
