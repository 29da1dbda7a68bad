"""glojax.workdir: strict JSON, atomic writes with normal permissions, logs that survive
a kill at any byte, the config check's defaults rule, tree-path checkpoints."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from glojax import workdir


def _umask():
  mask = os.umask(0)
  os.umask(mask)
  return mask


def test_json_is_strict():
  obj = {"a": float("nan"), "b": [np.float32(np.inf), -np.inf, 1.5], "c": np.int64(3),
         "d": np.asarray([[1, 2]]), "e": (True, None), "f": jnp.float32(2.0)}
  text = workdir.dumps(obj)
  assert json.loads(text) == {"a": None, "b": [None, None, 1.5], "c": 3, "d": [[1, 2]],
                              "e": [True, None], "f": 2.0}
  assert "NaN" not in text and "Infinity" not in text
  with pytest.raises(TypeError, match="object"):
    workdir.dumps({"x": object()})


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_writes_honour_the_umask(tmp_path, umask):
  old = os.umask(umask)
  try:
    workdir.write_json(str(tmp_path / "r.json"), {"x": 1})
    workdir.write_text(str(tmp_path / "r.txt"), "hi\n")
    workdir.append_jsonl(str(tmp_path / "r.jsonl"), {"x": 1})
    workdir.save_checkpoint(str(tmp_path / "c.npz"), {"a": np.zeros(2)}, {})
  finally:
    os.umask(old)
  for name in ("r.json", "r.txt", "r.jsonl", "c.npz"):
    assert os.stat(tmp_path / name).st_mode & 0o777 == 0o666 & ~umask, name
  assert not [n for n in os.listdir(tmp_path) if n.startswith(".tmp")]


def test_failed_atomic_write_keeps_the_old_file(tmp_path):
  path = str(tmp_path / "r.json")
  workdir.write_json(path, {"x": 1})
  with pytest.raises(TypeError):
    workdir.write_json(path, {"x": object()})
  assert json.load(open(path)) == {"x": 1}

  def boom(f):
    f.write(b"half")
    raise KeyboardInterrupt
  with pytest.raises(KeyboardInterrupt):
    workdir.atomic_write(path, boom)
  assert json.load(open(path)) == {"x": 1}
  assert os.listdir(tmp_path) == ["r.json"]


def test_log_survives_a_kill_at_any_byte(tmp_path):
  path = str(tmp_path / "log.jsonl")
  records = [{"generation": g, "fitness": [0.1 * g, float("nan")]} for g in range(3)]
  for r in records:
    workdir.append_jsonl(path, r)
  complete = open(path, "rb").read()
  expected = [{"generation": g, "fitness": [0.1 * g, None]} for g in range(3)]
  assert workdir.read_jsonl(path) == expected
  line = (workdir.dumps({"generation": 3, "fitness": [0.3]}) + "\n").encode()
  for cut in range(len(line)):   # killed after `cut` bytes of the 4th line
    open(path, "wb").write(complete + line[:cut])
    assert workdir.read_jsonl(path) == expected, cut
    workdir.append_jsonl(path, {"generation": 4})   # the next append repairs the file
    assert workdir.read_jsonl(path) == expected + [{"generation": 4}], cut
  open(path, "w").write("garbage\n" + complete.decode())
  with pytest.raises(ValueError, match=r"log\.jsonl: line 1 is not JSON"):
    workdir.read_jsonl(path)


def test_prepare_config_check_and_defaults_rule(tmp_path):
  wd = str(tmp_path / "run")
  defaults = {"seed": 0, "search": {"sigma": 1.2, "new_key": 25}}
  config = {"seed": 0, "search": {"sigma": 1.2, "new_key": 25}}
  assert workdir.prepare(wd, config, defaults=defaults) is False
  assert workdir.prepare(wd, config, defaults=defaults) is True
  # A run written before new_key existed resumes (the key counts as its default)...
  workdir.write_json(os.path.join(wd, "config.json"), {"seed": 0, "search": {"sigma": 1.2}})
  assert workdir.prepare(wd, config, defaults=defaults) is True
  # ...unless it is set to another value.
  workdir.write_json(os.path.join(wd, "config.json"), {"seed": 0, "search": {"sigma": 1.2}})
  with pytest.raises(ValueError, match=r"search\.new_key: 25 -> 26"):
    workdir.prepare(wd, {"seed": 0, "search": {"sigma": 1.2, "new_key": 26}},
                    defaults=defaults)
  # Resumable keys may change, and the new value is recorded.
  workdir.prepare(wd, {"seed": 0, "search": {"sigma": 2.0, "new_key": 25}},
                  defaults=defaults, resumable_keys=("search.sigma",))
  assert json.load(open(os.path.join(wd, "config.json")))["search"]["sigma"] == 2.0
  # Tuples and lists are the same config (JSON has only lists).
  workdir.prepare(str(tmp_path / "t"), {"h": (64,)}, defaults={})
  assert workdir.prepare(str(tmp_path / "t"), {"h": (64,)}, defaults={}) is True


@pytest.mark.parametrize("make_workdir", [
    lambda tmp: str(tmp / "a_file" / "sub"),   # parent is a file
    lambda tmp: "",                            # empty --workdir=
    lambda tmp: "/proc/glojax_cannot_create",  # not creatable (even as root)
])
def test_uncreatable_workdir_is_a_value_error(tmp_path, make_workdir):
  (tmp_path / "a_file").write_text("x")
  with pytest.raises(ValueError, match="workdir"):
    workdir.prepare(make_workdir(tmp_path), {"seed": 0}, defaults={})


def test_progress_without_config_is_refused(tmp_path):
  workdir.append_jsonl(str(tmp_path / "log.jsonl"), {"generation": 0})
  with pytest.raises(ValueError, match=r"holds log\.jsonl but no config\.json"):
    workdir.prepare(str(tmp_path), {"seed": 0}, defaults={})
  assert os.listdir(tmp_path) == ["log.jsonl"]


class _State:
  """A state with named fields, registered as a pytree with keyed children."""

  def __init__(self, **fields):
    self.fields = fields


jax.tree_util.register_pytree_with_keys(
    _State,
    lambda s: ([(jax.tree_util.GetAttrKey(k), v) for k, v in s.fields.items()],
               tuple(s.fields)),
    lambda names, values: _State(**dict(zip(names, values))))


def test_checkpoint_is_keyed_by_tree_path(tmp_path):
  path = str(tmp_path / "c.npz")
  state = {"generation": 3, "name": "x * log(y)", "es": {"mean": jnp.arange(3.0),
                                                         "std": jnp.float32(1.5)},
           "trees": np.asarray(["x", "log(y) - x"]), "fitness": np.float32([0.5, 0.25])}
  workdir.save_checkpoint(path, state, {"history": [{"g": 0}]})
  with np.load(path) as z:
    assert set(z.files) == {"['generation']", "['name']", "['es']['mean']",
                            "['es']['std']", "['trees']", "['fitness']", "__meta__"}
  loaded, meta = workdir.load_checkpoint(path, workdir.spec_of(state))
  assert meta["history"] == [{"g": 0}]
  assert loaded["generation"] == 3 and isinstance(loaded["generation"], int)
  assert loaded["name"] == "x * log(y)" and isinstance(loaded["name"], str)
  assert isinstance(loaded["es"]["mean"], jax.Array)
  np.testing.assert_array_equal(loaded["es"]["mean"], [0, 1, 2])
  assert loaded["trees"].tolist() == ["x", "log(y) - x"]
  # The same leaves in another field order load by name, not by position.
  fields = _State(b=np.float32([1, 2]), a=np.int32([3]))
  workdir.save_checkpoint(path, fields, {})
  swapped, _ = workdir.load_checkpoint(path, workdir.spec_of(_State(a=np.int32([0]),
                                                                    b=np.float32([0, 0]))))
  assert swapped.fields["a"].tolist() == [3] and swapped.fields["b"].tolist() == [1, 2]


def test_checkpoint_checks_dtype_shape_and_paths(tmp_path):
  path = str(tmp_path / "c.npz")
  workdir.save_checkpoint(path, {"a": np.zeros((2, 3), np.float32), "b": 1}, {})
  ok = {"a": workdir.LeafSpec(np.float32, (2, 3)), "b": workdir.LeafSpec(np.int64, (),
                                                                          "python")}
  workdir.load_checkpoint(path, ok)
  with pytest.raises(ValueError, match=r"\['a'\] has shape \(2, 3\).*expects \(3, 2\)"):
    workdir.load_checkpoint(path, {**ok, "a": workdir.LeafSpec(np.float32, (3, 2))})
  with pytest.raises(ValueError, match=r"\['a'\] has dtype float32.*expects float64"):
    workdir.load_checkpoint(path, {**ok, "a": workdir.LeafSpec(np.float64, (2, 3))})
  # A variable axis: any length, same rank.
  workdir.load_checkpoint(path, {**ok, "a": workdir.LeafSpec(np.float32, (None, 3))})
  with pytest.raises(ValueError, match=r"\['a'\] has shape \(2, 3\).*\('\*',\)"):
    workdir.load_checkpoint(path, {**ok, "a": workdir.LeafSpec(np.float32, (None,))})
  with pytest.raises(ValueError, match=r"missing \['c'\], unexpected nothing"):
    workdir.load_checkpoint(path, {**ok, "c": workdir.LeafSpec(np.int64, ())})
  with pytest.raises(TypeError, match="not an array"):
    workdir.save_checkpoint(path, {"a": object()}, {})


REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("binary, config", [
    ("taylorglo.py", "quickstart.py"),
    ("glo.py", "glo_quickstart.py"),   # issue 10.6: trained a baseline, then failed
    ("train.py", "train_quick.py"),
])
def test_every_binary_validates_before_touching_the_workdir(tmp_path, binary, config):
  import subprocess
  import sys
  wd = tmp_path / "run"
  res = subprocess.run(
      [sys.executable, os.path.join(REPO, "experiments", binary),
       f"--config={os.path.join(REPO, 'experiments', 'configs', config)}",
       f"--workdir={wd}", "--config.seed=-1"],
      capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": REPO})
  assert res.returncode == 2, res.stderr
  assert res.stderr.strip().splitlines() == [
      f"error: config.seed=-1 must be an integer in [0, {2**63 - 1}]"]
  assert not wd.exists()
