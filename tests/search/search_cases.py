"""The test case of every registered search (tests/search/conftest.py turns them into
fixtures, as evosax parametrizes over its algorithms).

Each search in ``glojax.search.SEARCHES`` needs an entry in :data:`CASES`: a tiny
config that runs in seconds, a config key to drop from a saved ``config.json`` (the
"run from before this key existed" case) and a config whose candidates partly fail.
``test_every_registered_search_has_a_case`` fails for a search added without one.
"""

import dataclasses
import os
from typing import Callable

from glojax import search as search_lib
from glojax import workdir


def tiny_taylorglo():
  c = search_lib.get("taylorglo").default_config()
  c.model.options = {"hidden": (8,)}
  c.train.steps = 20
  c.train.batch_size = 32
  c.train.learning_rate = 0.1
  c.search.population_size = 4
  c.search.generations = 3
  c.final.repeats = 2
  c.final.steps = 20
  return c


def nan_taylorglo():
  c = tiny_taylorglo()
  c.search.mean = 1e30    # every θ overflows the loss: NaN training
  c.search.nan_retries = 0
  c.search.generations = 1
  return c


def tiny_glo():
  c = search_lib.get("glo").default_config()
  c.seed = 6   # its initial population holds trainable trees (most random ones are not)
  c.model.options = {"hidden": (16,)}
  c.train.steps = 10
  c.train.batch_size = 32
  c.train.learning_rate = 0.1
  c.train.steps_per_call = 5
  c.search.population_size = 16
  c.search.generations = 2
  c.search.elites = 2
  c.search.max_len = 12
  c.search.stack_depth = 4
  c.search.batch_candidates = 4
  c.search.baseline_repeats = 2
  c.coefficients.population_size = 4
  c.coefficients.generations = 2
  c.final.repeats = 2
  c.final.steps = 10
  return c


def nan_glo():
  c = tiny_glo()   # seed 6's first generation holds a NaN-training tree
  c.search.generations = 1
  c.coefficients.enabled = False
  return c


@dataclasses.dataclass
class Case:
  name: str
  tiny: Callable
  new_key: str         # dotted key dropped from a saved config.json
  nan_config: Callable

  @property
  def search(self):
    return search_lib.get(self.name)

  def run(self, config, wd, **kwargs):
    kwargs.setdefault("log", lambda m: None)
    return search_lib.run(self.name, config, str(wd), **kwargs)


CASES = {
    "taylorglo": Case("taylorglo", tiny_taylorglo, "search.invariant_filter",
                      nan_taylorglo),
    # The example: GLO refused runs written before search.simplify_max_size.
    "glo": Case("glo", tiny_glo, "search.simplify_max_size", nan_glo),
}


def read_log(wd):
  return workdir.read_jsonl(os.path.join(str(wd), workdir.LOG_FILE))


def files(wd):
  """Every file of a workdir: name → bytes."""
  return {n: open(os.path.join(wd, n), "rb").read() for n in sorted(os.listdir(wd))}


def without_wall_time(obj):
  wall = {"wall_time_s", "train_seconds", "candidates_per_s"}
  if isinstance(obj, dict):
    return {k: without_wall_time(v) for k, v in obj.items() if k not in wall}
  if isinstance(obj, list):
    return [without_wall_time(v) for v in obj]
  return obj
