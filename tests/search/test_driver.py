"""The driver's contract, for every registered search (fixtures in conftest.py):
resume == uninterrupted, old configs resume, damaged workdirs fail without losing
anything, bad configs leave no workdir, NaN candidates stay contained."""

import json
import os

import numpy as np
import pytest
from search_cases import CASES, files, read_log, without_wall_time

from glojax import config as config_lib
from glojax import summary
from glojax import search as search_lib
from glojax import workdir


class Interrupt(Exception):
  pass


def test_every_registered_search_has_a_case():
  assert set(search_lib.SEARCHES) <= set(CASES)
  with pytest.raises(ValueError, match="unknown search 'nope'.*glo"):
    search_lib.get("nope")


def test_default_config_is_locked(case):
  c = case.search.default_config()
  with pytest.raises(AttributeError, match="seach"):
    c.seach = 1
  with pytest.raises(AttributeError, match="populaton_size"):
    c.search.populaton_size = 4
  c.model.options = {"hidden": (8,)}   # free-form sections stay open
  c.model.options.extra = 1


def test_resume_equals_uninterrupted(case, finished, tmp_path):
  full_wd, full = finished
  wd = str(tmp_path / "resumed")
  n_steps = len(read_log(full_wd))
  assert n_steps >= 3

  def stop_at(count):
    def on_step(state, record):
      if len(read_log(wd)) == count:
        raise Interrupt
    return on_step

  # Stop after step 2, then after step 3 (for GLO: the GA→coefficients transition and
  # a coefficient generation; for TaylorGLO after the last step, before finalize).
  for count in (2, 3):
    with pytest.raises(Interrupt):
      case.run(case.tiny(), wd, on_step=stop_at(count))
    assert len(read_log(wd)) == count
  messages = []
  resumed = case.run(case.tiny(), wd, log=messages.append)
  assert any(m.startswith("resuming") for m in messages), messages
  assert without_wall_time(read_log(wd)) == without_wall_time(read_log(full_wd))
  assert without_wall_time(resumed) == without_wall_time(full)
  steps = lambda w: {tag: [s for s, _ in points] for tag, points in
                     summary.read_scalars(os.path.join(w, summary.TB_DIR)).items()}
  assert steps(wd) == steps(full_wd)  # TensorBoard: each step once across the restarts
  for name in ("best_loss.txt", "best_tree.txt"):
    if os.path.exists(os.path.join(full_wd, name)):
      assert open(os.path.join(wd, name)).read() == open(os.path.join(full_wd, name)).read()
  assert len(read_log(full_wd)) == n_steps


def test_run_written_before_a_config_key_existed_resumes(case, finished):
  wd, results = finished
  path = os.path.join(wd, workdir.CONFIG_FILE)
  saved = json.load(open(path))
  section, key = case.new_key.split(".")
  del saved[section][key]           # as written by glojax before that key existed
  workdir.write_json(path, saved)
  messages = []
  again = case.run(case.tiny(), wd, log=messages.append)
  assert any(m.startswith("resuming") for m in messages), messages
  assert without_wall_time(again) == without_wall_time(results)
  assert key in json.load(open(path))[section]   # config.json now names it
  # The new key at a non-default value is a different run.
  workdir.write_json(path, saved)
  c = case.tiny()
  default = c[section][key]
  c[section][key] = (not default) if isinstance(default, bool) else default + 1
  before = files(wd)
  with pytest.raises(ValueError, match=rf"{section}\.{key}: '<missing>'|{section}\.{key}: "):
    case.run(c, wd)
  assert files(wd) == before


def test_changed_config_is_refused_and_nothing_changes(case, finished):
  wd, _ = finished
  c = case.tiny()
  c.train.learning_rate = 0.2
  before = files(wd)
  with pytest.raises(ValueError, match=r"different config.*train\.learning_rate: 0\.1 -> 0\.2"):
    case.run(c, wd)
  assert files(wd) == before


@pytest.mark.parametrize("damage", [
    lambda b: b[:len(b) // 2],      # truncated
    lambda b: b"",                  # empty
    lambda b: b"not a zip at all",  # replaced
])
def test_damaged_checkpoint_fails_naming_it_and_keeps_everything(case, finished, damage):
  wd, _ = finished
  path = os.path.join(wd, workdir.CHECKPOINT_FILE)
  open(path, "wb").write(damage(open(path, "rb").read()))
  before = files(wd)
  with pytest.raises(ValueError, match=r"checkpoint\.npz.*unreadable"):
    case.run(case.tiny(), wd)
  assert files(wd) == before


def _rewrite_checkpoint(path, edit):
  with np.load(path) as z:
    entries = {k: z[k] for k in z.files}
  edit(entries)
  np.savez(open(path, "wb"), **entries)


@pytest.mark.parametrize("edit, message", [
    # A state whose field was renamed (e.g. by a library upgrade) must not load into
    # whatever field now sits at the same position.
    (lambda e: e.update({".renamed": e.pop(sorted(k for k in e if k != "__meta__")[0])}),
     r"missing \.\w+.*unexpected \.renamed"),
    (lambda e: e.update({k: e[k].astype(np.float16) for k in list(e)
                         if e[k].dtype == np.float32}), r"dtype float16.*expects float32"),
    (lambda e: e.update({"__meta__": np.asarray(json.dumps({"history": []}))}),
     "format 1"),
])
def test_checkpoint_of_another_layout_fails_loudly(case, finished, edit, message):
  wd, _ = finished
  _rewrite_checkpoint(os.path.join(wd, workdir.CHECKPOINT_FILE), edit)
  before = files(wd)
  with pytest.raises(ValueError, match=message):
    case.run(case.tiny(), wd)
  assert files(wd) == before


def test_lost_checkpoint_or_config_fails_and_keeps_the_log(case, finished):
  wd, _ = finished
  n = len(read_log(wd))
  os.remove(os.path.join(wd, workdir.CHECKPOINT_FILE))
  before = files(wd)
  with pytest.raises(ValueError, match=rf"log\.jsonl has {n} generation.*checkpoint\.npz"):
    case.run(case.tiny(), wd)
  assert files(wd) == before
  os.remove(os.path.join(wd, workdir.CONFIG_FILE))
  before = files(wd)
  with pytest.raises(ValueError, match=r"no config\.json"):
    case.run(case.tiny(), wd)
  assert files(wd) == before


def _with(config, dotted, value):
  """``config`` as plain dicts (a config file can hold any type) with one value set."""
  config = config_lib.to_plain(config)
  *sections, key = dotted.split(".")
  target = config
  for part in sections:
    target = target[part]
  target[key] = value
  return config


@pytest.mark.parametrize("key, value, message", [
    ("seed", -1, r"config\.seed=-1"),   # issue 10.6: GLO trained a baseline first
    ("seed", "0", r"config\.seed='0'"),
    ("dataset.name", "mnist_typo", r"config\.dataset\.name='mnist_typo' is not a known"),
    ("model.name", "resnet9000", r"config\.model\.name='resnet9000'"),
    ("model.options", {"hiddn": (8,)}, r"config\.model\.options=.*hiddn"),
    ("model.options", "hidden=8", r"config\.model\.options='hidden=8'"),
    ("train.learning_rate", "fast", r"config\.train\.learning_rate='fast'"),
    ("train.momentum", 1.0, r"config\.train\.momentum=1\.0"),
    ("train.batch_size", 100_000, r"config\.train\.batch_size=100000 is larger"),
    ("search.population_size", 1, r"config\.search\.population_size=1"),
    ("search.population_size", True, r"config\.search\.population_size=True"),
    ("search.strategy", "fast", r"config\.search\.strategy='fast'"),
    ("search.populaton_size", 4, r"unknown config key config\.search\.populaton_size"),
    ("final.enabled", "yes", r"config\.final\.enabled='yes'"),
])
def test_bad_config_fails_before_the_workdir_is_touched(case, tmp_path, key, value,
                                                       message):
  section, _, field = key.rpartition(".")
  if (section and field not in config_lib.to_plain(case.tiny())[section]
      and not message.startswith("unknown config key")):
    pytest.skip(f"the {case.name} search has no {key}")
  wd = str(tmp_path / "run")
  with pytest.raises(ValueError, match=message):
    case.run(_with(case.tiny(), key, value), wd)
  assert not os.path.exists(wd)


def test_final_protocol_values_checked_up_front(case, tmp_path):
  c = _with(case.tiny(), "final.enabled", True)
  c = _with(c, "final.repeats", 1)
  with pytest.raises(ValueError, match=r"config\.final\.repeats=1 .*t-test"):
    case.run(c, str(tmp_path / "run"))
  assert not os.path.exists(tmp_path / "run")


def test_nan_candidates_are_contained(case, tmp_path):
  wd = str(tmp_path / "run")
  case.run(case.nan_config(), wd)
  log = read_log(wd)
  failed = sum(r["failed"] for r in log)
  assert failed > 0, "the config must make some candidates fail"
  for r in log:
    assert case.valid_fitness(r["fitness"]), r["fitness"]
  # Every line is strict JSON (no NaN/Infinity tokens).
  text = open(os.path.join(wd, workdir.LOG_FILE)).read()
  assert "NaN" not in text and "Infinity" not in text


def test_files_honour_the_umask(case, finished):
  wd, _ = finished
  for root, dirs, names in os.walk(wd):
    for name in names:
      mode = os.stat(os.path.join(root, name)).st_mode & 0o777
      assert mode == 0o666 & ~_umask(), (name, oct(mode))
    for name in dirs:
      mode = os.stat(os.path.join(root, name)).st_mode & 0o777
      assert mode == 0o777 & ~_umask(), (name, oct(mode))


def test_tensorboard_mirrors_the_log(case, finished):
  """<workdir>/tb holds, per logged step (1-based), every number of that log record."""
  wd, _ = finished
  scalars = summary.read_scalars(os.path.join(wd, summary.TB_DIR))
  log = read_log(wd)
  expected = {}
  for step, record in enumerate(log, start=1):
    for tag, value in summary.record_scalars(record).items():
      expected.setdefault(tag, []).append((step, value))
  assert "fitness/max" in expected and "failed" in expected
  assert sorted(scalars) == sorted(expected)
  for tag, points in expected.items():
    assert [s for s, _ in scalars[tag]] == [s for s, _ in points], tag
    np.testing.assert_allclose([v for _, v in scalars[tag]], [v for _, v in points],
                               rtol=1e-6, err_msg=tag)  # event files hold float32


def _umask():
  mask = os.umask(0)
  os.umask(mask)
  return mask


def test_docs_minimal_search_runs_and_resumes(tmp_path):
  """docs/search_driver.md's example is a real search: it runs on the driver."""
  import re
  root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  text = open(os.path.join(root, "docs", "search_driver.md")).read()
  namespace = {}
  exec(compile(re.findall(r"```python\n(.*?)```", text, re.S)[0], "search_driver.md",
               "exec"), namespace)  # noqa: S102 (our own docs)
  from glojax.search import driver
  cls = namespace["RandomSearch"]
  c = cls.default_config()
  c.model.options = {"hidden": (8,)}
  c.train.steps, c.train.batch_size = 10, 32
  c.search.population_size, c.search.generations = 2, 2
  c.final.repeats, c.final.steps = 2, 10
  out = driver.run(cls, c, str(tmp_path / "run"), log=lambda m: None)
  assert out["best_spec"].startswith("taylorglo(theta=[")
  assert set(out["final"]) >= {"candidate", "baseline", "welch"}
  assert [r["generation"] for r in read_log(tmp_path / "run")] == [0, 1]
  c.search.generations = 3   # a resumable key: the search extends
  messages = []
  driver.run(cls, c, str(tmp_path / "run"), log=messages.append)
  assert any(m.startswith("resuming from generation 2") for m in messages)
  assert len(read_log(tmp_path / "run")) == 3
