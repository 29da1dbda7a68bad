"""EPBT search: vectorized == one-by-one training, a finished run's workdir and lineage,
the comparison with the baselines, config errors, paper configs. (Resume, damaged
checkpoints, NaN members, bad common config values: tests/search/test_driver.py, whose
EPBT case is in search_cases.py.)"""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from glojax import config as config_lib
from glojax import losses, models
from glojax import workdir as workdir_lib
from glojax.analysis import lineage
from glojax.search import driver, epbt, epbt_config
from search_cases import CASES, read_log, tiny_epbt
from glojax.train import (TrainConfig, Trainer, evaluate_population, evaluate_states,
                          init_population, train_population_from)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EPBT_CASE = [CASES["epbt"]]   # the driver tests' finished tiny run is shared (conftest)


def quiet(_):
  pass


def test_vectorized_training_equals_member_by_member(tiny_mnist):
  config = TrainConfig(steps=10, batch_size=32, learning_rate=0.1, steps_per_call=2)
  trainer = Trainer(models.get("mlp", num_classes=10, hidden=(8,)), tiny_mnist,
                    losses.taylorglo, config)
  k = 5  # unroll runs groups of 4: one full group and one padded
  keys = jax.random.split(jax.random.PRNGKey(3), k)
  thetas = jnp.tile(jnp.asarray([[0., 0., 0., -1., 0., 2., 0., 0.]]), (k, 1))
  thetas = thetas + 0.3 * jax.random.normal(jax.random.PRNGKey(4), (k, 8))
  states = init_population(trainer, keys)
  np.testing.assert_array_equal(states.params["Dense_0"]["kernel"][4],
                                jax.jit(trainer.init)(keys[4]).params["Dense_0"]["kernel"])
  # The reference: each member alone, one jitted optimizer step at a time.
  step = jax.jit(trainer.train_step)
  alone = []
  for i in range(k):
    s = jax.tree_util.tree_map(lambda a: a[i], states)
    for _ in range(10):
      s = step(s, thetas[i], trainer.data)
    alone.append(s)
  for strategy in ("vmap", "unroll", "sequential"):
    # 4 + 6 steps in two calls: a member continues from its own state.
    mid = train_population_from(trainer, states, thetas, 4, strategy=strategy)
    out = train_population_from(trainer, mid, thetas, 6, strategy=strategy)
    for i in range(k):
      for a, b in zip(jax.tree_util.tree_leaves((out.params, out.opt_state, out.key)),
                      jax.tree_util.tree_leaves((alone[i].params, alone[i].opt_state,
                                                 alone[i].key))):
        np.testing.assert_allclose(a[i], b, rtol=2e-5, atol=2e-6)
      assert int(out.step[i]) == 10
  # And it is the same training evaluate_population does from scratch.
  metrics = evaluate_states(trainer, out, "validation", strategy="vmap")
  fresh = evaluate_population(trainer, thetas, keys, strategy="vmap", nan_retries=0)
  np.testing.assert_allclose(metrics["loss"], fresh.metrics["loss"], rtol=1e-4)
  assert len(set(np.round(metrics["loss"], 5))) == k  # members really differ
  with pytest.raises(ValueError, match="num_steps"):
    train_population_from(trainer, states, thetas, -1)
  with pytest.raises(ValueError, match="leading member axis"):
    train_population_from(trainer, states, thetas[:3], 5)



@pytest.mark.parametrize("case", EPBT_CASE)
def test_finished_run_workdir_lineage_and_bounds(case, finished):
  wd, out = finished
  for name in ("config.json", "log.jsonl", "checkpoint.npz", "results.json", "fitness.png",
               "lineage.png"):
    assert os.path.exists(os.path.join(wd, name)), name
  assert json.load(open(os.path.join(wd, "results.json"))) == {
      k: v for k, v in out.items() if k != "final"}
  log = read_log(wd)
  p = 4
  assert [r["children"] for r in log] == [0, 2, 2]   # p − k children, k = p/2
  assert [r["steps_per_member"] for r in log] == [4, 8, 12]
  for prev, rec in zip(log, log[1:]):
    for slot in range(p):
      pid = rec["parent_id"][slot]
      assert pid in prev["member_id"]                 # every member has a parent
      if rec["member_id"][slot] == pid:               # an elite: unchanged θ
        assert rec["hparams"][slot] == prev["hparams"][prev["member_id"].index(pid)]
  # The ancestry follows the parent ids back to generation 0, repeats removed.
  ids = np.asarray([r["member_id"] for r in log])
  parents = np.asarray([r["parent_id"] for r in log])
  chain = lineage.ancestry(ids, parents, log[-1]["best_slot"])
  assert [g for g, _ in chain] == [0, 1, 2]
  kept = lineage.drop_repeats(chain, ids)
  assert [a["member_id"] for a in out["ancestry"]] == [int(ids[g, s]) for g, s in kept]
  assert out["ancestry"][-1]["hparams"] == [out["best_hparams"][n]
                                            for n in out["hparam_names"]]
  assert out["best_validation_accuracy"] == max(log[-1]["fitness"])
  assert out["best_test_accuracy"] == log[-1]["best_test_accuracy"]
  assert out["curve"] == [{"steps": r["steps_per_member"], "accuracy": r["best_test_accuracy"]}
                          for r in log]
  assert losses.get(out["best_spec"]) is not None      # a loadable loss spec
  # θ bounds are the paper's ±10 in eq. 1's convention (±10·α!⁻¹ in the project layout).
  theta = np.asarray([r["hparams"] for r in log])
  bound = 10 * np.asarray(losses.theta_from_eq57(np.ones(8)))
  assert (np.abs(theta) <= bound + 1e-6).all()
  # The driver's checkpoint holds the whole population: every member's weights.
  with np.load(os.path.join(wd, "checkpoint.npz")) as z:
    kernel = [k for k in z.files if k.startswith(".population.train.params")
              and k.endswith("['kernel']")]
    assert kernel and all(z[k].shape[0] == p for k in kernel)
    assert z[".generation"] == 3
  # A finished run reruns without training again.
  messages = []
  again = case.run(case.tiny(), wd, log=messages.append)
  assert "resuming after generation 3" in messages
  assert not any(m.startswith("gen") for m in messages)
  assert again["best_spec"] == out["best_spec"]


@pytest.mark.parametrize("case", EPBT_CASE)
def test_final_comparison_with_baselines(case, finished):
  wd, main = finished   # a finished run; the comparison is a resumable key (final.*)
  c = tiny_epbt()
  c.final.enabled = True
  c.final.repeats = 2
  messages = []
  out = epbt.run(c, wd, log=messages.append)
  final = out["final"]
  assert list(final["methods"]) == ["epbt", "cross_entropy", "pbt_theta", "pbt_sgd"]
  assert set(final["welch"]) == {"cross_entropy", "pbt_theta", "pbt_sgd"}
  assert final["methods"]["epbt"]["runs"][0] == main["best_test_accuracy"]
  for name in ("epbt", "cross_entropy", "pbt_theta", "pbt_sgd"):
    for seed in (0, 1):
      if (name, seed) == ("epbt", 0):
        continue
      sub = os.path.join(wd, "final", name, f"seed_{seed}")
      res = json.load(open(os.path.join(sub, "results.json")))
      assert res["steps_per_member"] == 12
      assert res["method"] == (epbt_config.BASELINES[name]["method"] if name != "epbt"
                               else "epbt")
      assert final["methods"][name]["runs"][seed] == res["best_test_accuracy"]
    runs = final["methods"][name]["runs"]
    assert final["methods"][name]["mean"] == pytest.approx(np.mean(runs))
    assert final["methods"][name]["std"] == pytest.approx(np.std(runs, ddof=1))
  # Runs with the same seed start from the same networks; baselines differ from EPBT.
  ce = read_log(os.path.join(wd, "final", "cross_entropy", "seed_0"))
  assert ce[0]["children"] == 0 and ce[-1]["hparams"] == [[]] * 4
  sgd = read_log(os.path.join(wd, "final", "pbt_sgd", "seed_1"))
  lr = np.asarray(sgd[-1]["hparams"])[:, 0]
  assert ((lr >= 1e-3) & (lr <= 1.0)).all() and len(set(lr.tolist())) > 1
  theta = np.asarray(read_log(os.path.join(wd, "final", "pbt_theta", "seed_0"))[0]["hparams"])
  assert (np.abs(theta) <= np.asarray(losses.theta_from_eq57(np.ones(8))) + 1e-6).all()
  assert "Welch p (epbt vs)" in final["table"] and final["table"] in messages
  assert os.path.exists(os.path.join(wd, "final.json"))
  assert os.path.exists(os.path.join(wd, "accuracy.png"))
  # A rerun reuses final.json.
  messages = []
  assert epbt.run(c, wd, log=messages.append)["final"] == final
  assert any(m.startswith("comparison already done") for m in messages)


@pytest.mark.parametrize("key, value, message", [
    ("search.method", "ga", "search.method='ga'"),
    ("search.hparams", ("theta", "lr"), "search.hparams"),
    ("search.loss", "cross_entropy", "needs 'theta' in hparams"),
    ("search.crossover_rate", 1.5, "search.crossover_rate=1.5"),
    ("search.elite_fraction", 1.0, "search.elite_fraction=1.0"),
    ("search.truncation", 0.6, "search.truncation=0.6"),
    ("search.theta_init", 11.0, "search.theta_init=11.0"),
    ("search.learning_rate_range", (1.0, 0.1), "low <= high"),
    ("search.tournament_size", 5, "search.tournament_size=5"),
    ("final.repeats", 1, "final.repeats=1"),
    ("final.baselines", ("random",), "final.baselines"),
    ("train.schedule", "sometimes", "config.train.schedule='sometimes'"),
    ("search.stepz", 3, "unknown config key config.search.stepz"),
])
def test_bad_config_fails_before_the_workdir(tmp_path, key, value, message):
  c = tiny_epbt().to_dict()
  section, name = key.split(".")
  c[section][name] = value
  wd = tmp_path / "never"
  with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
    epbt.run(c, str(wd), log=quiet)
  assert not wd.exists()


def test_searched_learning_rate_needs_constant_schedule(tmp_path):
  c = tiny_epbt()
  c.search.method, c.search.loss = "pbt", "cross_entropy"
  c.search.hparams = ("learning_rate", "momentum")
  c.train.schedule, c.train.boundaries = "step", (5,)
  with pytest.raises(ValueError, match="schedule='constant'"):
    epbt.run(c, str(tmp_path / "never"), log=quiet)
  assert not (tmp_path / "never").exists()


def test_binary_reports_bad_config_in_one_line(tmp_path):
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  cmd = [sys.executable, os.path.join(REPO, "experiments", "epbt.py"),
         f"--config={os.path.join(REPO, 'experiments', 'configs', 'epbt_quickstart.py')}",
         f"--workdir={tmp_path / 'bad'}", "--config.search.method=ga"]
  bad = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
  assert bad.returncode == 2
  assert "error: config.search.method='ga' is not one of" in bad.stderr
  assert "Traceback" not in bad.stderr and not (tmp_path / "bad").exists()


def test_paper_configs_at_tiny_scale(tmp_path):
  sys.path.insert(0, REPO)
  from experiments.configs import epbt_paper
  expected = {  # (dataset, model, p, generations, steps per generation, k, seeds)
      "cifar10_resnet32": ("cifar10", "resnet32", 40, 25, 8 * 352, 0.5, 5),
      "cifar10_wrn16_8": ("cifar10", "wrn16_8", 40, 25, 8 * 352, 0.5, 5),
      "svhn_resnet32": ("svhn", "resnet32", 40, 40, 369, 0.5, 5),
  }
  for row, want in expected.items():
    c = epbt_paper.get_config(row)
    s = c.search
    assert (c.dataset.name, c.model.name, s.population_size, s.generations,
            s.steps_per_generation, s.elite_fraction, c.final.repeats) == want
  c = epbt_paper.get_config("cifar10_resnet32")
  assert tuple(c.train.boundaries) == (100 * 352, 150 * 352)  # epochs 100, 150 of 200
  # CIFAR-10 is not prepared here: a clear error before any work.
  with pytest.raises(FileNotFoundError, match="cifar10"):
    epbt.run(c, str(tmp_path / "no_data"), log=quiet)
  assert not (tmp_path / "no_data").exists()
  # The same recipe (augmentation, momentum, weight decay, step schedule, epoch
  # sampling) at tiny scale on the embedded digits, with a small model.
  c.dataset.name, c.dataset.options = "mnist5k", {}
  c.model.name, c.model.options = "mlp", {"hidden": (8,)}
  c.search.population_size, c.search.generations, c.search.steps_per_generation = 4, 1, 4
  c.search.strategy = "vmap"
  c.train.boundaries = (2, 3)
  c.train.steps_per_call, c.train.batch_size, c.train.eval_batch_size = 2, 16, 500
  c.final.enabled = False
  out = epbt.run(c, str(tmp_path / "paper"), log=quiet)
  assert out["steps_per_member"] == 4 and out["best_spec"]
  # Every baseline of every row is a valid config (PBT on SGD: constant schedule).
  for row in expected:
    cfg, _ = driver.parse_config(epbt.EPBT, epbt_paper.get_config(row))
    plain = config_lib.to_plain(cfg)
    for name in cfg.final.baselines:
      sub = epbt.EPBT.config_class.from_dict(epbt_config.baseline_config(plain, name, 1))
      assert sub.seed == 1 and sub.search.method == epbt_config.BASELINES[name]["method"]
      if name == "pbt_sgd":
        assert sub.train.schedule == "constant"
