"""Pieces shared by the searches: workdir, config checks, logging, checkpoints.

The workdir is the unit of a run (``docs/design.md``, "Workdir"):

* ``config.json`` — the run's config; a rerun on the same workdir must match it.
* ``log.jsonl`` — one JSON object per finished generation (rewritten from the
  checkpoint on resume, so it never holds a generation the checkpoint lacks).
* ``checkpoint.npz`` — search state after the last finished generation, written
  atomically (temp file + ``os.replace``): a run killed at any moment loses at most
  the generation in flight.
* results files written by each search (``best_loss.txt``, ``final.json``, plots).

Fitness is *higher is better* everywhere in glojax; evosax minimizes, and
:func:`to_minimization` is the one place where the sign flips.
"""

from __future__ import annotations

import difflib
import json
import os
import tempfile
from typing import Any, Iterable, Mapping, Optional

import jax
import numpy as np

CONFIG_FILE = "config.json"
LOG_FILE = "log.jsonl"
CHECKPOINT_FILE = "checkpoint.npz"


def sanitize_fitness(fitness) -> np.ndarray:
  """Maps non-finite fitness to the worst value (0) before any ranking.

  ``argmax([0.5, nan, 0.9])`` is 1, so every selection step goes through here.

  Args:
    fitness: ``float[K]`` accuracies (higher is better).

  Returns:
    ``float32[K]`` with NaN/±inf replaced by 0.
  """
  fitness = np.asarray(fitness, np.float32)
  return np.where(np.isfinite(fitness), fitness, 0.0).astype(np.float32)


def to_minimization(fitness) -> jax.Array:
  """glojax fitness (maximize, ``float[K]``) → evosax fitness (minimize): ``-fitness``."""
  return -jax.numpy.asarray(sanitize_fitness(fitness))


def config_to_dict(config) -> dict:
  """A ConfigDict (or mapping) as plain JSON-able Python values."""
  if hasattr(config, "to_dict"):
    config = config.to_dict()
  return json.loads(json.dumps(config, default=_json_default))


def _json_default(obj):
  if isinstance(obj, (np.integer,)):
    return int(obj)
  if isinstance(obj, (np.floating,)):
    return float(obj)
  if isinstance(obj, (np.ndarray, jax.Array)):
    return np.asarray(obj).tolist()
  if isinstance(obj, tuple):
    return list(obj)
  raise TypeError(f"cannot write {type(obj).__name__} to JSON")


def check_config_keys(config: Mapping, reference: Mapping, path: str = "config") -> None:
  """Raises a clear error for keys of ``config`` that ``reference`` does not have.

  Catches typos in config files (``--config.serach.sigma``-style mistakes are already
  caught by ml_collections; a misspelt key *inside* a config file is caught here).

  Args:
    config: the user's config (nested mappings).
    reference: the default config with every allowed key.
    path: prefix used in the error message.

  Raises:
    ValueError: naming the unknown key and the closest known ones.
  """
  for key, value in config.items():
    if key not in reference:
      close = difflib.get_close_matches(key, list(reference), n=3)
      hint = f"; did you mean {close}?" if close else f"; known keys: {sorted(reference)}"
      raise ValueError(f"unknown config key {path}.{key}{hint}")
    ref_value = reference[key]
    if isinstance(ref_value, Mapping) and ref_value and isinstance(value, Mapping):
      check_config_keys(value, ref_value, f"{path}.{key}")


def with_defaults(config, reference) -> dict:
  """Checks ``config`` against the default ``reference`` and fills in missing keys.

  Args:
    config: the user's config (ConfigDict or mapping).
    reference: the search's default config (every allowed key).

  Returns:
    A plain dict: ``reference`` overlaid with ``config``, sections and non-empty
    sub-sections merged key by key.

  Raises:
    ValueError: if the config is not a mapping, a section is not a mapping, or a key is
      unknown (naming the closest known keys).
  """
  cfg = config_to_dict(config)
  if not isinstance(cfg, dict):
    raise ValueError(f"the config must be a ConfigDict or dict (get_config() in the "
                     f"config file), got {type(config).__name__} {config!r}")
  ref = config_to_dict(reference)
  check_config_keys(cfg, ref)
  for section, values in ref.items():
    if not isinstance(values, dict):
      cfg.setdefault(section, values)
      continue
    if not isinstance(cfg.get(section, {}), dict):
      raise ValueError(f"config.{section}={cfg[section]!r} must be a section (a dict) "
                       f"with keys {sorted(values)}")
    merged = {**values, **cfg.get(section, {})}
    for sub, sub_values in values.items():
      if isinstance(sub_values, dict) and sub_values:
        merged[sub] = {**sub_values, **merged.get(sub, {})}
    cfg[section] = merged
  return cfg


def check_names(cfg: dict, strategies: Iterable[str]) -> None:
  """Raises a clear ValueError for an unknown dataset, model or population strategy."""
  from glojax import data as data_lib
  from glojax import models as models_lib
  if cfg["dataset"]["name"] not in data_lib.names():
    raise ValueError(f"config.dataset.name={cfg['dataset']['name']!r} is not a known "
                     f"dataset; known: {data_lib.names()}")
  if cfg["model"]["name"] not in models_lib.names():
    raise ValueError(f"config.model.name={cfg['model']['name']!r} is not a known model; "
                     f"known: {models_lib.names()}")
  strategy = cfg["search"]["strategy"]
  if strategy not in tuple(strategies):
    raise ValueError(f"config.search.strategy={strategy!r} is not one of "
                     f"{tuple(strategies)}")


def build_run(cfg: dict, steps: int | None = None):
  """Dataset, model and TrainConfig of a validated search config.

  Args:
    cfg: a validated config dict with ``dataset``, ``model`` and ``train`` sections.
    steps: overrides ``train.steps`` (the final protocol's full training length).

  Returns:
    ``(dataset, model, train_config)``.

  Raises:
    ValueError: for a bad model option or training value; FileNotFoundError if the
      dataset is not available.
  """
  from glojax import data as data_lib
  from glojax import models as models_lib
  from glojax.train.trainer import TrainConfig
  dataset = data_lib.load(cfg["dataset"]["name"], seed=cfg["dataset"]["seed"],
                          **cfg["dataset"].get("options", {}))
  model = models_lib.get(cfg["model"]["name"], num_classes=dataset.num_classes,
                         **cfg["model"]["options"])
  train_cfg = dict(cfg["train"])
  if steps is not None:
    train_cfg["steps"] = steps
  return dataset, model, TrainConfig(**train_cfg)


def diff_configs(old: Mapping, new: Mapping, path: str = "") -> list[str]:
  """Lists ``key: old -> new`` for every leaf that differs between two config dicts."""
  out = []
  for key in sorted(set(old) | set(new)):
    p = f"{path}.{key}" if path else key
    a, b = old.get(key, "<missing>"), new.get(key, "<missing>")
    if isinstance(a, Mapping) and isinstance(b, Mapping):
      out += diff_configs(a, b, p)
    elif a != b:
      out.append(f"{p}: {a!r} -> {b!r}")
  return out


def _with_defaults(config: Mapping, defaults: Mapping) -> dict:
  """``config`` with keys it lacks taken from ``defaults`` (recursively)."""
  out = dict(config)
  for key, value in defaults.items():
    if key not in out:
      out[key] = value
    elif isinstance(value, Mapping) and value and isinstance(out[key], Mapping):
      out[key] = _with_defaults(out[key], value)
  return out


def prepare_workdir(workdir: str, config: dict, resumable_keys: Iterable[str] = (),
                    defaults: Optional[Mapping] = None) -> bool:
  """Creates ``workdir`` or checks that it belongs to the same run.

  Args:
    workdir: the run's folder.
    config: the run's config as a plain dict.
    resumable_keys: dotted keys allowed to change on resume (e.g.
      ``"search.generations"`` to extend a finished run).
    defaults: the default config; a key missing from the saved config (written
      before that key existed) counts as its default value.

  Returns:
    True if the workdir already held this run (resume), False if it is new.

  Raises:
    ValueError: if the workdir holds a run with a different config (listing the
      differences), ``workdir`` is a file or cannot be created or written, or it
      holds a checkpoint/log but no ``config.json``.
  """
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise ValueError(f"--workdir {workdir!r} exists and is not a directory")
  if not workdir:
    raise ValueError("--workdir is empty; give a folder for the run")
  try:
    os.makedirs(workdir, exist_ok=True)
  except OSError as e:
    raise ValueError(f"cannot create --workdir {workdir!r}: {e.strerror}") from None
  if not os.access(workdir, os.W_OK | os.X_OK):
    raise ValueError(f"--workdir {workdir!r} is not writable")
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    # A checkpoint or log without config.json is a run we cannot check against; a
    # fresh start would overwrite it.
    orphans = [n for n in (CHECKPOINT_FILE, LOG_FILE)
               if os.path.exists(os.path.join(workdir, n))]
    if orphans:
      raise ValueError(
          f"workdir {workdir!r} holds {' and '.join(orphans)} but no {CONFIG_FILE}; "
          f"restore {CONFIG_FILE} to resume, or use a new --workdir")
  if os.path.exists(path):
    try:
      with open(path) as f:
        old = json.load(f)
    except (OSError, ValueError) as e:
      raise ValueError(f"cannot read {path!r} ({e}); restore it or use a new --workdir"
                       ) from None
    if defaults is not None:
      old = _with_defaults(old, defaults)
    allowed = tuple(resumable_keys)
    diffs = [d for d in diff_configs(old, config)
             if not any(d.startswith(k + ":") or d.startswith(k + ".") for k in allowed)]
    if diffs:
      raise ValueError(
          f"workdir {workdir!r} holds a run with a different config; use a new --workdir "
          f"or the original config. Differences: " + "; ".join(diffs))
    write_json(path, config)  # records the resumable keys' new values
    return True
  write_json(path, config)
  return False


def write_json(path: str, obj: Any) -> None:
  """Writes ``obj`` as indented JSON atomically."""
  _atomic_write(path, lambda f: f.write(json.dumps(obj, indent=2, default=_json_default)
                                        .encode()))


def write_text(path: str, text: str) -> None:
  """Writes ``text`` atomically."""
  _atomic_write(path, lambda f: f.write(text.encode()))


def _atomic_write(path: str, write) -> None:
  folder = os.path.dirname(os.path.abspath(path))
  fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
  try:
    with os.fdopen(fd, "wb") as f:
      write(f)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def save_checkpoint(workdir: str, arrays: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
  """Atomically writes ``checkpoint.npz``: named arrays plus JSON metadata.

  Args:
    workdir: the run's folder.
    arrays: name → array (NumPy/JAX); pytrees should be flattened by the caller
      (see :func:`flatten_state`).
    meta: JSON-able metadata (generation counter, history, best candidate, ...).
  """
  payload = {k: np.asarray(v) for k, v in arrays.items()}
  payload["__meta__"] = np.asarray(json.dumps(meta, default=_json_default))
  _atomic_write(os.path.join(workdir, CHECKPOINT_FILE),
                lambda f: np.savez(f, **payload))


def load_checkpoint(workdir: str, required_meta: Iterable[str] = ()
                    ) -> tuple[dict, dict] | None:
  """Reads ``checkpoint.npz`` → ``(arrays, meta)``, or None if there is none.

  Args:
    workdir: the run's folder.
    required_meta: metadata keys the caller needs.

  Raises:
    ValueError: naming the file, if it cannot be read or lacks ``required_meta``, or
      if it is missing while ``log.jsonl`` holds generations (a lost checkpoint).
      The file is written atomically, so this means it was damaged or replaced;
      the run stops rather than silently starting over.
  """
  path = os.path.join(workdir, CHECKPOINT_FILE)
  if not os.path.exists(path):
    logged = _count_lines(os.path.join(workdir, LOG_FILE))
    if logged:  # log lines are appended only after their checkpoint was saved
      raise ValueError(
          f"workdir {workdir!r}: {LOG_FILE} has {logged} generation(s) but "
          f"{CHECKPOINT_FILE} is missing; restore it to resume, or move {LOG_FILE} away "
          "to restart the search (a restart rewrites the log)")
    return None
  try:
    with np.load(path, allow_pickle=False) as z:
      arrays = {k: z[k] for k in z.files if k != "__meta__"}
      meta = json.loads(str(z["__meta__"]))
    missing = [k for k in required_meta if k not in meta]
    if missing:
      raise KeyError(f"metadata lacks {missing}")
  except Exception as e:  # zipfile, EOF, pickle refusal, JSON, missing keys...
    raise ValueError(
        f"checkpoint {path!r} is unreadable ({type(e).__name__}: {e}). Restore it, or "
        f"move it and {LOG_FILE} away to restart the search from scratch") from None
  return arrays, meta


def _count_lines(path: str) -> int:
  """Non-empty lines of a text file (0 if absent), without parsing them."""
  if not os.path.exists(path):
    return 0
  with open(path) as f:
    return sum(1 for line in f if line.strip())


def flatten_state(prefix: str, tree) -> dict:
  """A pytree's leaves as ``{prefix/0: leaf0, ...}`` for :func:`save_checkpoint`."""
  leaves = jax.tree_util.tree_leaves(tree)
  return {f"{prefix}/{i}": np.asarray(leaf) for i, leaf in enumerate(leaves)}


def unflatten_state(prefix: str, arrays: Mapping[str, np.ndarray], like):
  """Rebuilds a pytree with the structure of ``like`` from :func:`flatten_state` output.

  Raises:
    ValueError: if the checkpoint's leaves don't match ``like`` (a different search).
  """
  leaves, treedef = jax.tree_util.tree_flatten(like)
  try:
    new = [arrays[f"{prefix}/{i}"] for i in range(len(leaves))]
  except KeyError as e:
    raise ValueError(f"checkpoint does not match this search ({prefix} leaf {e} missing)"
                     ) from None
  for a, b in zip(new, leaves):
    if np.shape(a) != np.shape(b):
      raise ValueError(f"checkpoint does not match this search ({prefix}: shape "
                       f"{np.shape(a)} vs {np.shape(b)})")
  return jax.tree_util.tree_unflatten(
      treedef, [jax.numpy.asarray(a, dtype=jax.numpy.asarray(b).dtype)
                for a, b in zip(new, leaves)])


def write_log(workdir: str, records: list[dict]) -> None:
  """Rewrites ``log.jsonl`` with ``records`` (one JSON object per generation)."""
  text = "".join(json.dumps(r, default=_json_default) + "\n" for r in records)
  write_text(os.path.join(workdir, LOG_FILE), text)


def append_log(workdir: str, record: dict) -> None:
  """Appends one generation's record to ``log.jsonl``."""
  with open(os.path.join(workdir, LOG_FILE), "a") as f:
    f.write(json.dumps(record, default=_json_default) + "\n")


def read_log(workdir: str) -> list[dict]:
  """The records of ``log.jsonl`` (empty list if absent).

  A last line without its newline that does not parse (a run killed while
  appending) is skipped.

  Raises:
    ValueError: naming the file and line, for any other line that is not JSON.
  """
  path = os.path.join(workdir, LOG_FILE)
  if not os.path.exists(path):
    return []
  with open(path) as f:
    lines = f.read().split("\n")
  records = []
  for number, line in enumerate(lines, 1):
    if not line.strip():
      continue
    try:
      records.append(json.loads(line))
    except ValueError as e:
      if number == len(lines):  # no trailing newline: an interrupted append
        break
      raise ValueError(f"{path}: line {number} is not JSON ({e})") from None
  return records


def generation_key(seed: int, generation: int, purpose: int) -> jax.Array:
  """The PRNG key of ``purpose`` in ``generation``: a pure function of the seed.

  Deriving keys this way (instead of threading one key through the run) makes a
  resumed run draw exactly what the uninterrupted run would have drawn.
  """
  key = jax.random.fold_in(jax.random.PRNGKey(seed), generation)
  return jax.random.fold_in(key, purpose)
