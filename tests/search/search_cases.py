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

import numpy as np

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
  c.final.baselines = ("cross_entropy",)  # the tuned baseline: tests/search/test_baselines.py
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
  c.final.baselines = ("cross_entropy",)
  return c


def nan_glo():
  c = tiny_glo()   # seed 6's first generation holds a NaN-training tree
  c.search.generations = 1
  c.coefficients.enabled = False
  return c


def tiny_gan():
  # The data/network/training settings of tests/gan/test_train.py: in one process the
  # compiled GAN programs are shared (same trainer signature).
  c = search_lib.get("gan").default_config()
  c.pairs.max_train = 64
  c.pairs.max_eval = 16
  c.model.options = {"generator_features": (8,), "discriminator_features": (8,)}
  c.embedding.options = {"features": (4, 8), "dense": 16}
  c.embedding.steps = 0
  c.train.steps = 3
  c.train.batch_size = 4
  c.train.steps_per_call = 1
  c.train.eval_batch_size = 16
  c.train.num_samples = 2
  c.train.learning_rate = 0.1  # only the baselines use it; candidates evolve theirs
  c.search.population_size = 3
  c.search.elites = 1
  c.search.generations = 3
  c.search.strategy = "vmap"
  c.final.repeats = 3   # = population_size and train.steps: the programs are reused
  c.final.steps = 3
  c.final.baselines = ("wgan", "wgan@best")
  return c


def nan_gan():
  c = tiny_gan()
  c.search.theta_bounds = (1e15, 1e16)   # (d - c)³ overflows float32: NaN training
  c.search.generations = 1
  return c


def tiny_nlfs():
  # tests/test_nlfs_search.py trains the same trainer: one compile per test process.
  c = search_lib.get("nlfs").default_config()
  c.model.name = "mlp"
  c.model.options = {"hidden": (8,)}
  c.train.steps = 8
  c.train.batch_size = 32
  c.train.learning_rate = 0.1
  c.train.steps_per_call = 1
  c.initial.size = 6
  c.initial.batch = 2
  c.initial.early_stopping = ((4, 0.05),)
  c.early_stopping.checks = ((4, 0.12, "reject"),)
  c.early_stopping.train_examples = 500
  c.search.population_size = 4
  c.search.tournament_size = 2
  c.search.children_per_step = 2
  c.search.steps = 2
  c.search.archive_size = 8
  c.search.strategy = "sequential"
  # The final protocol compiles two more programs per run; NLFS.final_losses is
  # checked in tests/test_nlfs_search.py.
  c.final.enabled = False
  return c


def nan_nlfs():
  c = tiny_nlfs()
  c.train.learning_rate = 1e30   # the parameters overflow: NaN training
  c.search.steps = 1
  c.search.max_redo = 1
  return c


def tiny_epbt():
  c = search_lib.get("epbt").default_config()
  c.model.options = {"hidden": (8,)}
  c.train.batch_size = 32
  c.train.learning_rate = 0.1
  c.train.steps_per_call = 2
  c.search.population_size = 4
  c.search.generations = 3
  c.search.steps_per_generation = 4
  c.search.strategy = "vmap"
  c.final.enabled = False   # the comparison with the baselines: tests/search/test_epbt.py
  return c


def nan_epbt():
  c = tiny_epbt()
  c.search.theta_bound = c.search.theta_init = 1e30   # θ overflows the loss: NaN training
  # One generation (no selection to compile for this θ space) of tiny_epbt's 12 steps
  # in all: its compiled training and evaluation programs are reused.
  c.search.generations, c.search.steps_per_generation = 1, 12
  return c


def accuracy_fitness(fitness) -> bool:
  """Classification searches: every fitness is an accuracy, 0 for failed candidates."""
  f = np.asarray(fitness, np.float64)
  return bool(np.all(np.isfinite(f)) and np.all((f >= 0) & (f <= 1)))


def gan_fitness(fitness) -> bool:
  """GAN search: 17·SSIM − PD is unbounded; failed candidates are null (worst)."""
  return all(v is None or (isinstance(v, float) and np.isfinite(v)) for v in fitness)


@dataclasses.dataclass
class Case:
  name: str
  tiny: Callable
  new_key: str         # dotted key dropped from a saved config.json
  nan_config: Callable
  valid_fitness: Callable = accuracy_fitness   # a log record's fitness list is sound

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
    "gan": Case("gan", tiny_gan, "search.mutation_scale", nan_gan, gan_fitness),
    "nlfs": Case("nlfs", tiny_nlfs, "search.nan_retries", nan_nlfs),
    "epbt": Case("epbt", tiny_epbt, "search.sigma", nan_epbt),
}


def read_log(wd):
  return workdir.read_jsonl(os.path.join(str(wd), workdir.LOG_FILE))


def files(wd):
  """Every file of a workdir: relative path → bytes (TensorBoard's event files too)."""
  out = {}
  for root, _, names in os.walk(wd):
    for n in names:
      path = os.path.join(root, n)
      out[os.path.relpath(path, wd)] = open(path, "rb").read()
  return dict(sorted(out.items()))


def without_wall_time(obj):
  wall = {"wall_time_s", "train_seconds", "candidates_per_s", "select_time_s",
          "train_time_s", "eval_time_s"}
  if isinstance(obj, dict):
    return {k: without_wall_time(v) for k, v in obj.items() if k not in wall}
  if isinstance(obj, list):
    return [without_wall_time(v) for v in obj]
  return obj
