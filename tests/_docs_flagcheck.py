"""Checks documented command lines against a binary's flags without running it.

Used by the docs tests (``conftest.py``, shell blocks marked ``docs-test: check``) for
commands that take too long to run here. Run as::

  python tests/_docs_flagcheck.py BINARY.py

then write one JSON list (an argv, program name first) per line to stdin; each gets one
JSON line back: ``{"ok": true}`` or ``{"ok": false, "error": "..."}``.

absl binaries are imported once (their module-level flag definitions run, ``main`` does
not) and each argv is parsed by absl exactly as on the command line — unknown flags,
unknown ``--config.*`` keys and values of the wrong type are errors — then every flag
named on the line is looked up in the binary's flags (what ``--helpfull`` lists).
Binaries that use argparse are checked against their ``--help`` text. A value
written as a placeholder (``--peak_gflops=<device fp32 peak>``) is checked by name only.
"""

import json
import os
import re
import runpy
import subprocess
import sys


def _flag_names(argv):
  names = []
  for arg in argv[1:]:
    if arg.startswith("--") and len(arg) > 2:
      names.append(arg[2:].split("=", 1)[0])
  return names


def _placeholder(arg: str) -> bool:
  return bool(re.match(r"^--[\w.]+=<[^>]*>$", arg))


def _check_absl(flags_module, argv):
  FLAGS = flags_module.FLAGS
  concrete = [a for a in argv if not _placeholder(a)]
  sys.argv = list(concrete)  # ml_collections reads overrides from sys.argv
  try:
    FLAGS(concrete)
  except BaseException as e:  # noqa: BLE001  absl errors, ml_collections' KeyError, ...
    return {"ok": False, "error": f"{type(e).__name__}: {e}"}
  finally:
    FLAGS.unparse_flags()
  known = set(FLAGS)
  missing = [n for n in _flag_names(argv)
             if n not in known and not (n.startswith("no") and n[2:] in known)]
  for name in [n for n in FLAGS if "." in n]:  # --config.* overrides of this line
    delattr(FLAGS, name)
  if missing:
    return {"ok": False, "error": f"not among the binary's flags: {missing}"}
  return {"ok": True}


def _check_help(binary, argv, cache={}):  # noqa: B006  (per-process cache)
  if binary not in cache:
    proc = subprocess.run([sys.executable, binary, "--help"], capture_output=True,
                          text=True, timeout=300)
    cache[binary] = proc.stdout + proc.stderr
  text = cache[binary]
  missing = [n for n in _flag_names(argv) if f"--{n}" not in text]
  if missing:
    return {"ok": False, "error": f"not in `{binary} --help`: {missing}"}
  return {"ok": True}


def main():
  binary = sys.argv[1]
  sys.path.insert(0, os.getcwd())
  from absl import flags
  with open(binary) as f:
    uses_absl = "argparse" not in f.read()
  if uses_absl:
    sys.argv = [binary]
    runpy.run_path(binary, run_name="docs_flagcheck")  # defines its flags; main() not run
  for line in sys.stdin:
    argv = json.loads(line)
    result = _check_absl(flags, argv) if uses_absl else _check_help(binary, argv)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
  main()
