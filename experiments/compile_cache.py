"""JAX's persistent compilation cache for the binaries: compile once per machine.

A search compiles its programs once per process (11–34 s each for the CNNs on a 2-core
CPU); with the cache, a rerun, a resumed run or another search with the same model,
batch and strategy loads them from disk instead. Every binary defines
``--compilation_cache``:

* default: ``$GLOJAX_COMPILATION_CACHE`` if set, else ``~/.cache/glojax/jax``;
* ``--compilation_cache=/path``: that directory (created if missing);
* ``--compilation_cache=none`` (or an empty value): off. The test suite sets
  ``GLOJAX_COMPILATION_CACHE=none`` so that tests never share compiled programs.

Only programs that took at least ``jax_persistent_cache_min_compile_time_secs`` (JAX's
default, 1 s) to compile are stored, so the cache holds the few large training and
evaluation programs, not every small op. Entries are keyed by the program, the JAX/XLA
version and the device, so a stale entry is never used; deleting the directory is
always safe.
"""

import os

import jax
from absl import flags

ENV = "GLOJAX_COMPILATION_CACHE"
DEFAULT_DIR = os.path.join("~", ".cache", "glojax", "jax")
OFF = ("", "none", "off")

_CACHE = flags.DEFINE_string(
    "compilation_cache", None,
    f"Directory of JAX's persistent compilation cache ('none' = off). Default: ${ENV} "
    f"if set, else {DEFAULT_DIR}.")


def resolve(value):
  """The cache directory for a flag value (``None`` = default), or None when off."""
  if value is None:
    value = os.environ.get(ENV, DEFAULT_DIR)
  if value.strip().lower() in OFF:
    return None
  return os.path.abspath(os.path.expanduser(value))


def enable(directory):
  """Points JAX's persistent compilation cache at ``directory`` (None: leave it off).

  Returns:
    The directory in use, or None.

  Raises:
    ValueError: if ``directory`` exists and is not a directory, or cannot be created.
  """
  if directory is None:
    return None
  try:
    os.makedirs(directory, exist_ok=True)
  except OSError as e:
    raise ValueError(f"--compilation_cache={directory!r} cannot be used as a directory: "
                     f"{e.strerror or e}") from e
  jax.config.update("jax_compilation_cache_dir", directory)
  return directory


def enable_from_flags():
  """:func:`enable` with the ``--compilation_cache`` flag's value; returns the dir."""
  return enable(resolve(_CACHE.value))
