"""Docs as tests: pytest runs every example in README.md, BUILD.md, BENCHMARKS.md and
docs/**/*.md (collected through ``testpaths`` in pyproject.toml; new docs are picked up
automatically). The runner is Sybil; the markers are described here and in BUILD.md.

* ```` ```python ```` blocks run in order in one namespace per document (``>>>`` blocks are
  doctests: their printed output is compared).
* ```` ```bash ```` (``sh``, ``shell``, ``console``) blocks must follow a marker saying what
  the test does with them — no shell block is left out silently:

  - ``<!-- docs-test: run -->``: every command runs as printed and must exit 0;
  - ``<!-- docs-test: run tiny -->``: every command runs as printed plus the binary's tiny
    overrides (:data:`TINY`, appended, so later flags win: few generations and steps);
  - ``<!-- docs-test: check "why it cannot run here" -->``: commands are only checked —
    the binary's flags (absl: parsed exactly as on the command line, ``--config.*`` keys
    and value types included; argparse: its ``--help``), ``make -n TARGET``;
  - ``<!-- skip: next "why" -->`` (Sybil's own): the next block is skipped, with the
    reason in the test report.

Everything runs in one sandbox folder per session, laid out like a checkout (symlinks to
``glojax/``, ``experiments/``, ``benchmarks/``, ``Makefile``; ``.venv/bin/python`` and
``python`` run this interpreter), so relative paths in the docs work. Workdirs the docs
read (``runs/quickstart``, ``runs/glo_quickstart``) are made on first use by running the
quickstart commands with the tiny overrides.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from sybil import Sybil
from sybil.parsers.markdown import CodeBlockParser, PythonCodeBlockParser, SkipParser
from sybil.parsers.markdown.lexers import DirectiveInHTMLCommentLexer

REPO = os.path.dirname(os.path.abspath(__file__))
DOCS = ["README.md", "BUILD.md", "BENCHMARKS.md", "docs/*.md", "docs/**/*.md"]
SHELL_LANGUAGES = ("bash", "sh", "shell", "console")
COMMAND_TIMEOUT_S = 900  # a safety net for a hung command, not a speed check

# Appended to a binary's command in ``docs-test: run tiny`` blocks: the same code path at a
# few seconds' cost (few candidates, generations and SGD steps; a small final protocol).
TINY = {
    "experiments/taylorglo.py": (
        "--config.search.generations=2 --config.search.population_size=4 "
        "--config.search.strategy=sequential --config.train.steps=5 "
        "--config.final.enabled=False"),
    # The quickstart's 40 random trees: fewer would all lack x or y (no loss to load).
    "experiments/glo.py": (
        "--config.search.generations=2 --config.coefficients.generations=1 "
        "--config.search.baseline_repeats=2 --config.train.steps=5"),
    "experiments/epbt.py": (
        "--config.search.population_size=4 --config.search.generations=2 "
        "--config.search.steps_per_generation=5 --config.final.enabled=False"),
    "experiments/train.py": (
        "--config.repeats=2 --config.train.steps=2 --config.eval_every=1"),
}
# Workdirs that docs read, and the documented command (run tiny) that makes each.
FIXTURE_RUNS = {
    "runs/quickstart": ".venv/bin/python experiments/taylorglo.py "
                       "--config=experiments/configs/quickstart.py --workdir=runs/quickstart",
    "runs/glo_quickstart": ".venv/bin/python experiments/glo.py "
                           "--config=experiments/configs/glo_quickstart.py "
                           "--workdir=runs/glo_quickstart",
}
_PYTHON_NAMES = (".venv/bin/python", "python", "python3")


class Sandbox:
  """One folder laid out like a checkout, shared by every docs example of a session."""

  def __init__(self):
    self.path = tempfile.mkdtemp(prefix="glojax-docs-")
    atexit.register(self.close)
    for name in ("glojax", "experiments", "benchmarks", "notebooks", "Makefile",
                 "pyproject.toml"):
      os.symlink(os.path.join(REPO, name), os.path.join(self.path, name))
    for folder in (".venv/bin", "bin"):
      os.makedirs(os.path.join(self.path, folder))
    for script in (".venv/bin/python", "bin/python", "bin/python3"):
      with open(os.path.join(self.path, script), "w") as f:
        f.write(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n')
      os.chmod(os.path.join(self.path, script), 0o755)
    self.done: dict[tuple, str] = {}  # command tokens -> its output (each runs once)
    self.checkers: dict[str, subprocess.Popen] = {}
    self.stats = {"python": 0, "run": 0, "checked": 0, "seconds": 0.0, "cpu_seconds": 0.0}

  def close(self):
    for proc in self.checkers.values():
      proc.stdin.close()
      proc.wait(timeout=60)
    self.checkers.clear()
    shutil.rmtree(self.path, ignore_errors=True)

  def env(self):
    env = dict(os.environ)
    env["PATH"] = os.path.join(self.path, "bin") + os.pathsep + env.get("PATH", "")
    env.pop("PYTHONPATH", None)  # the binaries find glojax next to themselves
    return env

  def run(self, command: str, extra: str = "") -> str:
    """Runs ``command`` (+ ``extra`` flags) with bash in the sandbox; once per session."""
    key = (tuple(_canonical(shlex.split(command))), extra)
    if key in self.done:
      return self.done[key]
    for workdir in _input_workdirs(command):
      self.ensure(workdir)
    start, cpu = time.time(), _children_cpu()
    proc = subprocess.run(["bash", "-c", f"{command} {extra}".strip()], cwd=self.path,
                          env=self.env(), capture_output=True, text=True,
                          timeout=COMMAND_TIMEOUT_S)
    self.stats["seconds"] += time.time() - start
    self.stats["cpu_seconds"] += _children_cpu() - cpu
    self.stats["run"] += 1
    if proc.returncode != 0:
      raise AssertionError(
          f"documented command failed (exit {proc.returncode}):\n  {command}"
          f"{' ' + extra if extra else ''}\nstderr (end):\n{proc.stderr[-3000:]}"
          f"\nstdout (end):\n{proc.stdout[-1500:]}")
    self.done[key] = proc.stdout
    return proc.stdout

  def ensure(self, workdir: str) -> None:
    """Makes a workdir the docs read by running its quickstart command, tiny."""
    if workdir in FIXTURE_RUNS:
      command = FIXTURE_RUNS[workdir]
      self.run(command, TINY[_binary(shlex.split(command))])

  def check(self, command: str) -> None:
    """Checks a command without running it (flags, make targets)."""
    tokens = _strip_prefix(shlex.split(command))
    self.stats["checked"] += 1
    if tokens[0] == "make":
      proc = subprocess.run(["make", "-n"] + tokens[1:], cwd=self.path, env=self.env(),
                            capture_output=True, text=True, timeout=120)
      assert proc.returncode == 0, f"`make -n {' '.join(tokens[1:])}` fails: {proc.stderr}"
      return
    binary = _binary(tokens)
    if binary is None:
      raise AssertionError(f"cannot check {command!r}: only python binaries and make "
                           "targets are checked; skip it with a reason instead")
    argv = [binary] + [a for a in tokens[tokens.index(binary) + 1:]]
    if binary not in self.checkers:
      self.checkers[binary] = subprocess.Popen(
          [sys.executable, os.path.join(REPO, "tests", "_docs_flagcheck.py"), binary],
          cwd=self.path, env=self.env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
          text=True)
    proc = self.checkers[binary]
    proc.stdin.write(json.dumps(argv) + "\n")
    proc.stdin.flush()
    answer = proc.stdout.readline()
    assert answer, f"the flag checker for {binary} died"
    result = json.loads(answer)
    assert result["ok"], f"documented command has bad flags:\n  {command}\n{result['error']}"


def _children_cpu() -> float:
  usage = resource.getrusage(resource.RUSAGE_CHILDREN)
  return usage.ru_utime + usage.ru_stime


_SANDBOX: Sandbox | None = None


def sandbox() -> Sandbox:
  global _SANDBOX
  if _SANDBOX is None:
    _SANDBOX = Sandbox()
  return _SANDBOX


def _canonical(tokens):
  return ["python" if t in _PYTHON_NAMES else t for t in tokens]


def _strip_prefix(tokens):
  """``nice -n 10 python ...`` / ``VAR=value python ...`` -> ``python ...``."""
  tokens = list(tokens)
  while tokens:
    if tokens[0] == "nice":
      tokens = tokens[3:] if len(tokens) > 2 and tokens[1] == "-n" else tokens[1:]
    elif re.match(r"^[A-Z_][A-Z0-9_]*=", tokens[0]):
      tokens = tokens[1:]
    else:
      break
  return tokens


def _binary(tokens):
  """The script a ``python script.py ...`` command runs, else None."""
  tokens = _strip_prefix(tokens)
  if tokens and tokens[0] in _PYTHON_NAMES and len(tokens) > 1 and tokens[1].endswith(".py"):
    return tokens[1]
  return None


def _input_workdirs(command: str):
  """Fixture workdirs a command reads (analyze's ``--workdir``, or a path inside one)."""
  tokens = shlex.split(command)
  reads = [t for t in tokens if _binary(tokens) == "experiments/analyze.py"
           and t.startswith("--workdir=")]
  text = " ".join(reads)
  return [w for w in FIXTURE_RUNS if w in text]


def _commands(source: str):
  """The commands of a shell block: continuation lines joined, comments dropped."""
  text = re.sub(r"\\\n\s*", " ", source)
  out = []
  for line in text.splitlines():
    line = line.strip()
    if line.startswith("$ "):
      line = line[2:]
    if line and not line.startswith("#"):
      out.append(re.split(r"\s+#\s", line)[0].strip())  # a trailing "# comment"
  return out


# ---- Sybil parsers and evaluators -----------------------------------------------------------

_MODE_KEY = "__docs_test_mode__"


def _marker(example):
  """``<!-- docs-test: MODE -->``: remembered for the next shell block."""
  arguments = (example.parsed or "").strip()
  m = re.match(r'^(run tiny|run|check)(?:\s+"([^"]+)")?$', arguments)
  if not m:
    raise ValueError(f"bad docs-test marker {arguments!r}: use run, run tiny, or "
                     'check "reason"')
  if m.group(1) == "check" and not m.group(2):
    raise ValueError('a docs-test check marker needs a reason: check "needs a GPU"')
  example.namespace[_MODE_KEY] = m.group(1)


class MarkerParser:
  def __init__(self):
    self.lexer = DirectiveInHTMLCommentLexer(directive="docs-test")

  def __call__(self, document):
    for region in self.lexer(document):
      region.parsed = region.lexemes["arguments"]
      region.evaluator = _marker
      yield region


def _shell(example):
  mode = example.namespace.pop(_MODE_KEY, None)
  where = f"{os.path.relpath(example.path, REPO)}:{example.line}"
  if mode is None:
    raise AssertionError(
        f"{where}: this shell block has no marker; put <!-- docs-test: run -->, "
        '<!-- docs-test: run tiny -->, <!-- docs-test: check "reason" --> or '
        '<!-- skip: next "reason" --> on the line before it (see conftest.py)')
  box = sandbox()
  for command in _commands(example.parsed):
    if mode == "check":
      box.check(command)
    elif mode == "run":
      box.run(command)
    else:
      binary = _binary(shlex.split(command))
      if binary not in TINY:
        raise AssertionError(f"{where}: no tiny overrides for {command!r}; use run")
      box.run(command, TINY[binary])


def _python_with_fixtures(evaluator):
  def evaluate(example):
    box = sandbox()
    for workdir in FIXTURE_RUNS:
      if workdir + "/" in example.parsed:
        box.ensure(workdir)
    box.stats["python"] += 1
    return evaluator(example)
  return evaluate


class _PythonBlocks(PythonCodeBlockParser):
  """Sybil's Python parser (code blocks and ``>>>`` doctests) with the workdir fixtures."""

  @staticmethod
  def codeblock_parser_class(language, evaluator):
    return CodeBlockParser(language, _python_with_fixtures(evaluator))


def _setup(namespace):
  namespace["__docs_cwd__"] = os.getcwd()
  os.chdir(sandbox().path)


def _teardown(namespace):
  os.chdir(namespace.pop("__docs_cwd__", REPO))


PARSERS = [_PythonBlocks(), SkipParser(), MarkerParser()]
PARSERS += [CodeBlockParser(language, _shell) for language in SHELL_LANGUAGES]

pytest_collect_file = Sybil(parsers=PARSERS, patterns=DOCS, setup=_setup,
                            teardown=_teardown).pytest()


_WORKER_STATS: list[dict] = []  # under pytest-xdist: each worker's sandbox stats


def pytest_sessionfinish(session):
  output = getattr(session.config, "workeroutput", None)  # set in xdist workers only
  if output is not None and _SANDBOX is not None:
    output["docs_stats"] = dict(_SANDBOX.stats)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
  stats = getattr(node, "workeroutput", {}).get("docs_stats")
  if stats:
    _WORKER_STATS.append(stats)


def pytest_terminal_summary(terminalreporter):
  parts = _WORKER_STATS + ([_SANDBOX.stats] if _SANDBOX is not None else [])
  if parts:
    s = {k: sum(p[k] for p in parts) for k in parts[0]}
    terminalreporter.write_line(
        f"docs: {s['python']} Python blocks run, {s['run']} commands run "
        f"({s['seconds']:.0f} s wall, {s['cpu_seconds']:.0f} s CPU), {s['checked']} commands "
        "checked without running")
