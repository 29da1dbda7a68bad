"""experiments/compile_cache.py: the binaries' --compilation_cache flag."""

import os
import subprocess
import sys

import pytest

from experiments import compile_cache

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A fresh process: parse --compilation_cache, enable it, compile one program, and print
# how many persistent-cache hits JAX recorded (0 when compiled, >= 1 when loaded).
SNIPPET = """
import sys
import jax, jax.numpy as jnp
from absl import flags
from experiments import compile_cache
flags.FLAGS(["prog"] + sys.argv[1:])
print("dir", compile_cache.enable_from_flags())
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
hits = []
jax.monitoring.register_event_listener(
    lambda event, **kw: hits.append(1) if event == "/jax/compilation_cache/cache_hits"
    else None)
print("value", float(jax.jit(lambda x: jnp.sin(x) * 3.0)(jnp.float32(0.5))))
print("hits", len(hits))
"""


def _run(*args, env_value=None):
  env = {**os.environ, "PYTHONPATH": REPO}
  env.pop(compile_cache.ENV, None)
  if env_value is not None:
    env[compile_cache.ENV] = env_value
  res = subprocess.run([sys.executable, "-c", SNIPPET, *args], capture_output=True,
                       text=True, env=env, timeout=120, cwd=REPO)
  assert res.returncode == 0, res.stderr
  return dict(line.split(" ", 1) for line in res.stdout.splitlines())


def test_cache_is_written_then_hit(tmp_path):
  cache = tmp_path / "cache"
  first = _run(f"--compilation_cache={cache}")
  assert first["dir"] == str(cache) and first["hits"] == "0"
  assert any(cache.iterdir())  # an entry was written
  second = _run(f"--compilation_cache={cache}")
  assert int(second["hits"]) >= 1 and second["value"] == first["value"]


def test_environment_default_and_off(tmp_path):
  assert _run(env_value=str(tmp_path / "env"))["dir"] == str(tmp_path / "env")
  off = _run("--compilation_cache=none", env_value=str(tmp_path / "env2"))
  assert off["dir"] == "None" and not (tmp_path / "env2").exists()


def test_resolve(monkeypatch, tmp_path):
  monkeypatch.delenv(compile_cache.ENV, raising=False)
  assert compile_cache.resolve(None) == os.path.expanduser("~/.cache/glojax/jax")
  monkeypatch.setenv(compile_cache.ENV, "Off")
  assert compile_cache.resolve(None) is None
  assert compile_cache.resolve("") is None
  assert compile_cache.resolve(str(tmp_path)) == str(tmp_path)
  assert compile_cache.resolve("~/x") == os.path.expanduser("~/x")


def test_unusable_directory_is_a_value_error(tmp_path):
  not_a_dir = tmp_path / "file"
  not_a_dir.write_text("x")
  with pytest.raises(ValueError, match="--compilation_cache="):
    compile_cache.enable(str(not_a_dir / "sub"))


def test_tests_run_with_the_cache_off():
  assert compile_cache.resolve(None) is None  # conftest.py sets GLOJAX_COMPILATION_CACHE
