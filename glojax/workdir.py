"""The workdir: the one storage contract of every glojax binary.

A workdir is the unit of a run. Every binary (the search binaries through
:mod:`glojax.search.driver`, ``experiments/train.py`` through
:mod:`glojax.train.experiment`) uses this module, so they all behave the same way:

* ``config.json`` — the run's config. A rerun on the same workdir must match it
  (:func:`prepare`); keys that were added to the defaults after the run was written
  count as their default value (**the defaults rule**), and only a binary's declared
  *resumable* keys may change.
* ``log.jsonl`` (or ``runs.jsonl``) — one strict-JSON object per line, appended as
  steps finish. A run killed at any byte leaves at most a partial last line, which
  readers skip and the next append cuts off (:func:`append_jsonl`).
* ``checkpoint.npz`` — the state after the last finished step: one entry per pytree
  leaf keyed by its path (``jax.tree_util.keystr``), plus JSON metadata; loaded
  against a template whose paths, dtypes and shapes must match
  (:func:`load_checkpoint`), so a state whose fields were renamed or reordered fails
  loudly instead of loading wrong values.
* results files (``results.json``, ``final.json``, ``best_loss.txt``, plots).

Every file is written atomically (temp file + ``os.replace``: a kill leaves the old
or the new file, never half of one) with the permissions a plain ``open()`` would
give (``0666 & ~umask``), and every JSON file is strict JSON (NaN and ±inf are
written as ``null``).

Callers validate every config value *before* :func:`prepare` (which is the first
thing that touches the disk), so a bad config never leaves a workdir behind.

With several processes (``jax.distributed``) only process 0 writes the workdir: the
others run on a private copy (:func:`for_process`), so every process resumes from the
same files and no file is written twice.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import shutil
import tempfile
from typing import Any, Callable, Iterable, Mapping, Optional

import jax
import jax.numpy as jnp
import numpy as np

CONFIG_FILE = "config.json"
LOG_FILE = "log.jsonl"
CHECKPOINT_FILE = "checkpoint.npz"
CHECKPOINT_FORMAT = 2  # 1: positional leaves ("es/0", ...), before tree-path keys
_META = "__meta__"


def interrupted_message(workdir: str) -> str:
  """What a binary prints on Ctrl-C: finished work is saved, rerun to resume."""
  return (f"interrupted; finished work is saved in {workdir}: rerun the same command "
          "to resume")


# ---- strict JSON ------------------------------------------------------------------


@contextlib.contextmanager
def for_process(workdir: str):
  """The folder this process writes the run to: ``workdir`` itself in process 0.

  With one process this is just ``workdir``. With several (``jax.distributed``), every
  process runs the same program and would write every file once per process; so
  process ``i > 0`` gets a private copy of ``workdir`` (in a temporary folder, deleted
  on exit) and only process 0 writes the real one. The copy is made before process 0
  touches the disk (a barrier across processes), so all processes see the same
  ``config.json`` and checkpoint and resume the same run; on hosts that do not share
  ``workdir``'s file system the copy is empty and they start afresh, so resume a
  multi-host run only from a shared (or copied) workdir.

  Usage: ``with workdir_lib.for_process(workdir) as workdir: ...``.
  """
  if jax.process_count() == 1:
    yield workdir
    return
  from jax.experimental import multihost_utils
  barrier = lambda: multihost_utils.sync_global_devices(f"glojax workdir {workdir}")
  if jax.process_index() == 0:
    barrier()
    yield workdir
    return
  with tempfile.TemporaryDirectory(prefix=f"glojax-process{jax.process_index()}-") as tmp:
    scratch = os.path.join(tmp, "workdir")
    if os.path.isdir(workdir):
      shutil.copytree(workdir, scratch)
    barrier()
    yield scratch


def to_jsonable(obj: Any) -> Any:
  """``obj`` as plain JSON values: NumPy/JAX scalars and arrays become Python
  numbers and lists, tuples become lists, NaN and ±inf become ``None``.

  Raises:
    TypeError: for an object JSON cannot represent.
  """
  if hasattr(obj, "to_dict") and callable(obj.to_dict):  # ConfigDict, config sections
    obj = obj.to_dict()
  if isinstance(obj, Mapping):
    return {str(k): to_jsonable(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [to_jsonable(v) for v in obj]
  if isinstance(obj, (np.ndarray, jax.Array)):
    return to_jsonable(np.asarray(obj).tolist())
  if isinstance(obj, (bool, np.bool_)):
    return bool(obj)
  if isinstance(obj, (int, np.integer)):
    return int(obj)
  if isinstance(obj, (float, np.floating)):
    return float(obj) if math.isfinite(obj) else None
  if obj is None or isinstance(obj, str):
    return obj
  if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
    return to_jsonable(dataclasses.asdict(obj))
  raise TypeError(f"cannot write {type(obj).__name__} to JSON")


def dumps(obj: Any, indent: Optional[int] = None) -> str:
  """Strict JSON text of ``obj`` (see :func:`to_jsonable`)."""
  return json.dumps(to_jsonable(obj), indent=indent, allow_nan=False)


# ---- atomic files -------------------------------------------------------------------


def _umask() -> int:
  mask = os.umask(0)
  os.umask(mask)
  return mask


def atomic_write(path: str, write: Callable[[Any], None]) -> None:
  """Writes a file atomically: ``write(f)`` fills a temp file next to ``path``, which
  is fsynced and renamed over ``path``.

  The file gets ``0666 & ~umask`` (what ``open(path, "w")`` gives), not
  ``mkstemp``'s 0600.
  """
  folder = os.path.dirname(os.path.abspath(path))
  fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
  try:
    with os.fdopen(fd, "wb") as f:
      write(f)
      f.flush()
      os.fsync(f.fileno())
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def write_text(path: str, text: str) -> None:
  """Writes ``text`` (UTF-8) atomically."""
  atomic_write(path, lambda f: f.write(text.encode()))


def write_json(path: str, obj: Any) -> None:
  """Writes ``obj`` as indented strict JSON atomically (NaN → ``null``)."""
  write_text(path, dumps(obj, indent=2))


def read_json(path: str) -> Any:
  """The JSON value in ``path``.

  Raises:
    ValueError: naming the file, if it cannot be read or parsed.
  """
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError) as e:
    raise ValueError(f"cannot read {path!r} ({e})") from None


# ---- JSON lines ---------------------------------------------------------------------


def append_jsonl(path: str, record: Mapping) -> None:
  """Appends one strict-JSON line to ``path`` and fsyncs it.

  A partial last line (a run killed mid-append) is cut off first, so a kill at any
  byte never leaves a damaged line in the middle of the file.
  """
  line = (dumps(record) + "\n").encode()
  with open(path, "a+b") as f:
    f.seek(0, os.SEEK_END)
    size = f.tell()
    if size:
      f.seek(max(0, size - 1))
      if f.read(1) != b"\n":
        f.seek(0)
        data = f.read()
        f.truncate(data.rfind(b"\n") + 1)
    f.seek(0, os.SEEK_END)
    f.write(line)
    f.flush()
    os.fsync(f.fileno())


def write_jsonl(path: str, records: Iterable[Mapping]) -> None:
  """Rewrites ``path`` atomically with one strict-JSON line per record."""
  write_text(path, "".join(dumps(r) + "\n" for r in records))


def read_jsonl(path: str) -> list[dict]:
  """The records of a JSON-lines file (empty list if it does not exist).

  A last line without its newline (a run killed while appending) is skipped.

  Raises:
    ValueError: naming the file and line, for any other line that is not JSON.
  """
  if not os.path.exists(path):
    return []
  with open(path) as f:
    lines = f.read().split("\n")
  records = []
  for number, line in enumerate(lines, 1):
    if not line.strip():
      continue
    if number == len(lines):  # no trailing newline: an interrupted append
      break
    try:
      records.append(json.loads(line))
    except ValueError as e:
      raise ValueError(f"{path}: line {number} is not JSON ({e})") from None
  return records


# ---- config.json --------------------------------------------------------------------


def diff_configs(old: Mapping, new: Mapping, path: str = "") -> list[str]:
  """``key: old -> new`` for every leaf that differs between two config dicts."""
  out = []
  for key in sorted(set(old) | set(new)):
    p = f"{path}.{key}" if path else key
    a, b = old.get(key, "<missing>"), new.get(key, "<missing>")
    if isinstance(a, Mapping) and isinstance(b, Mapping):
      out += diff_configs(a, b, p)
    elif a != b:
      out.append(f"{p}: {a!r} -> {b!r}")
  return out


def fill_defaults(config: Mapping, defaults: Mapping) -> dict:
  """``config`` with the keys it lacks taken from ``defaults``, recursively.

  This is the defaults rule: a config written before a key existed means that key's
  default value.
  """
  out = dict(config)
  for key, value in defaults.items():
    if key not in out:
      out[key] = value
    elif isinstance(value, Mapping) and value and isinstance(out[key], Mapping):
      out[key] = fill_defaults(out[key], value)
  return out


def _check_folder(workdir: str) -> None:
  if not workdir:
    raise ValueError("--workdir is empty; give a folder for the run")
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise ValueError(f"--workdir {workdir!r} exists and is not a directory")
  try:
    os.makedirs(workdir, exist_ok=True)
  except OSError as e:
    raise ValueError(f"cannot create --workdir {workdir!r}: {e.strerror}") from None
  if not os.access(workdir, os.W_OK | os.X_OK):
    raise ValueError(f"--workdir {workdir!r} is not writable")


def prepare(workdir: str, config: Mapping, *, defaults: Mapping,
            resumable_keys: Iterable[str] = (), run_files: Iterable[str] = (LOG_FILE,
                                                                         CHECKPOINT_FILE)
            ) -> bool:
  """Creates ``workdir`` for a new run, or checks that it holds this run.

  The first function of a run that touches the disk: call it only after every config
  value has been validated.

  Args:
    workdir: the run's folder.
    config: the run's full config as JSON-able dicts (defaults filled in).
    defaults: the binary's default config; keys missing from a saved
      ``config.json`` count as their default (the defaults rule).
    resumable_keys: dotted keys (or sections) allowed to differ from the saved config
      (e.g. ``"search.generations"`` to extend a search); their new values are saved.
    run_files: files that hold a run's progress: present without ``config.json`` they
      make the workdir one we cannot check, which is refused rather than overwritten.

  Returns:
    True if the workdir already held this run (resume), False if it is new.

  Raises:
    ValueError: if the workdir holds a run with a different config (listing the
      differences), cannot be created or written, or holds progress files but no
      ``config.json``.
  """
  _check_folder(workdir)
  path = os.path.join(workdir, CONFIG_FILE)
  config = to_jsonable(config)
  if not os.path.exists(path):
    orphans = [n for n in run_files if os.path.exists(os.path.join(workdir, n))]
    if orphans:
      raise ValueError(
          f"workdir {workdir!r} holds {' and '.join(orphans)} but no {CONFIG_FILE}; "
          f"restore {CONFIG_FILE} to resume, or use a new --workdir")
    write_json(path, config)
    return False
  try:
    old = read_json(path)
    if not isinstance(old, dict):
      raise ValueError("not a JSON object")
  except ValueError as e:
    raise ValueError(f"cannot read {path!r} ({e}); restore it or use a new --workdir"
                     ) from None
  old = fill_defaults(old, to_jsonable(defaults))
  allowed = tuple(resumable_keys)
  diffs = [d for d in diff_configs(old, config)
           if not any(d.startswith(k + ":") or d.startswith(k + ".") for k in allowed)]
  if diffs:
    raise ValueError(
        f"workdir {workdir!r} holds a run with a different config; use a new --workdir "
        f"or the original config. Differences: " + "; ".join(diffs))
  write_json(path, config)  # records the resumable keys' new values
  return True


# ---- checkpoints --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LeafSpec:
  """What a checkpoint leaf must look like: a template leaf for :func:`load_checkpoint`.

  Attributes:
    dtype: NumPy dtype; for strings only the kind (``"U"``) is checked.
    shape: tuple of ints, ``None`` for an axis of any length; or ``None`` for any
      shape of any rank.
    kind: how the loaded value is returned: ``"jax"`` (``jax.Array``), ``"numpy"``
      (``np.ndarray``) or ``"python"`` (a Python scalar: int, float, bool or str).
  """
  dtype: Any
  shape: Optional[tuple] = ()
  kind: str = "numpy"

  def check(self, name: str, value: np.ndarray) -> None:
    want = np.dtype(self.dtype)
    same = (value.dtype.kind == want.kind if want.kind == "U" else value.dtype == want)
    if not same:
      raise ValueError(f"{name} has dtype {value.dtype}, this search expects {want}")
    if self.shape is None:
      return
    if len(self.shape) != value.ndim or any(
        s is not None and s != v for s, v in zip(self.shape, value.shape)):
      want_shape = tuple("*" if s is None else s for s in self.shape)
      raise ValueError(f"{name} has shape {value.shape}, this search expects "
                       f"{want_shape}")

  def restore(self, value: np.ndarray):
    if self.kind == "jax":
      return jnp.asarray(value)
    if self.kind == "python":
      return value.item()
    return value


def spec_of(tree, variable: bool = False):
  """The template (a pytree of :class:`LeafSpec`) that ``tree``'s leaves satisfy.

  Python scalars give ``kind="python"``, JAX arrays ``"jax"``, the rest ``"numpy"``.
  With ``variable=True`` every axis may have any length (only dtype and rank are
  checked): for leaves whose size depends on the run's history.
  """
  def leaf(x):
    if isinstance(x, LeafSpec):
      return x
    if isinstance(x, (bool, int, float, str)):
      return LeafSpec(np.asarray(x).dtype, (), "python")
    kind = "jax" if isinstance(x, (jax.Array, jax.ShapeDtypeStruct)) else "numpy"
    shape = tuple(np.shape(x))
    dtype = x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype
    return LeafSpec(dtype, (None,) * len(shape) if variable else shape, kind)
  return jax.tree_util.tree_map(leaf, tree)


def _leaf_paths(tree) -> tuple[list[str], list, Any]:
  leaves, treedef = jax.tree_util.tree_flatten_with_path(tree)
  return [jax.tree_util.keystr(p) for p, _ in leaves], [x for _, x in leaves], treedef


def save_checkpoint(path: str, state, meta: Mapping) -> None:
  """Atomically writes ``state`` (a pytree) and JSON ``meta`` to ``path`` (``.npz``).

  One ``.npz`` entry per leaf, named by its tree path (``jax.tree_util.keystr``, e.g.
  ``.es.mean``); strings are stored as NumPy unicode arrays, never pickled.
  """
  names, leaves, _ = _leaf_paths(state)
  payload = {name: np.asarray(leaf) for name, leaf in zip(names, leaves)}
  for name, value in payload.items():
    if value.dtype == object:
      raise TypeError(f"checkpoint leaf {name} is not an array, number or string")
  payload[_META] = np.asarray(dumps({"format": CHECKPOINT_FORMAT, **meta}))
  atomic_write(path, lambda f: np.savez(f, **payload))


def load_checkpoint(path: str, template) -> tuple[Any, dict]:
  """Reads a checkpoint written by :func:`save_checkpoint` against ``template``.

  Args:
    path: the ``.npz`` file.
    template: a pytree with the state's structure whose leaves are
      :class:`LeafSpec` (see :func:`spec_of`).

  Returns:
    ``(state, meta)``: the state with ``template``'s structure, and the metadata.

  Raises:
    ValueError: naming the file, if it cannot be read, was written in another format,
      lacks a path of the template or has one the template lacks, or a leaf's dtype
      or shape differs from the template's.
  """
  names, specs, treedef = _leaf_paths(template)
  try:
    with np.load(path, allow_pickle=False) as z:
      entries = {k: z[k] for k in z.files}
    meta = json.loads(str(entries.pop(_META)))
  except Exception as e:  # zipfile, EOF, pickle refusal, JSON, missing metadata...
    raise ValueError(f"checkpoint {path!r} is unreadable ({type(e).__name__}: {e})"
                     ) from None
  if meta.get("format") != CHECKPOINT_FORMAT:
    raise ValueError(f"checkpoint {path!r} was written in format {meta.get('format', 1)}"
                     f" by another glojax version (this one reads format "
                     f"{CHECKPOINT_FORMAT})")
  missing = [n for n in names if n not in entries]
  extra = sorted(set(entries) - set(names))
  if missing or extra:
    raise ValueError(f"checkpoint {path!r} does not match this search's state: "
                     f"missing {', '.join(missing) or 'nothing'}, unexpected "
                     f"{', '.join(extra) or 'nothing'}")
  leaves = []
  for name, spec in zip(names, specs):
    try:
      spec.check(name, entries[name])
    except ValueError as e:
      raise ValueError(f"checkpoint {path!r}: {e}") from None
    leaves.append(spec.restore(entries[name]))
  return jax.tree_util.tree_unflatten(treedef, leaves), meta


def count_lines(path: str) -> int:
  """Non-empty lines of a text file (0 if absent), without parsing them."""
  if not os.path.exists(path):
    return 0
  with open(path) as f:
    return sum(1 for line in f if line.strip())
