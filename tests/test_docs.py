"""The docs stay runnable and true: what the Sybil examples (conftest.py) cannot see.

The examples themselves (every Python block, every marked shell command) run through
``conftest.py`` as items of README.md, BUILD.md, BENCHMARKS.md and docs/*.md. Here:
every shell block carries a marker, every fence names its language, links and repository
paths exist, the dataset options table matches the code, and every config docstring's
command is checked against its binary's flags.
"""

import ast
import glob
import importlib
import importlib.util
import os
import re
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def _load_runner():
  """The root conftest.py (the docs runner), as pytest loaded it when it did."""
  path = os.path.join(REPO, "conftest.py")
  for module in list(sys.modules.values()):
    if getattr(module, "__file__", None) == path:
      return module
  spec = importlib.util.spec_from_file_location("glojax_docs_runner", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


docs_runner = _load_runner()


def doc_files():
  out = []
  for pattern in docs_runner.DOCS:
    out += glob.glob(os.path.join(REPO, pattern), recursive=True)
  return sorted(set(out))


DOCS = doc_files()
DOC_IDS = [os.path.relpath(p, REPO) for p in DOCS]
FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```",
                   re.M | re.S)


def read(path):
  with open(path) as f:
    return f.read()


def test_docs_are_found_including_new_pages():
  for name in ("README.md", "BUILD.md", "BENCHMARKS.md", "docs/glo.md", "docs/losses.md",
               "docs/theory.md", "docs/models_and_data.md", "docs/plots.md",
               "docs/results.md"):
    assert name in DOC_IDS
  # A page added later (docs/epbt.md, ...) matches the same patterns.
  import fnmatch
  assert any(fnmatch.fnmatch("docs/epbt.md", p) for p in docs_runner.DOCS)


@pytest.mark.parametrize("path", DOCS, ids=DOC_IDS)
def test_every_fence_names_its_language_and_every_shell_block_its_marker(path):
  text = read(path)
  problems = []
  for m in FENCE.finditer(text):
    line = text.count("\n", 0, m.start()) + 1
    language = m.group("info").strip().split(" ")[0]
    if not language:
      problems.append(f"line {line}: fence without a language (python, bash, text, ...)")
      continue
    if language in docs_runner.SHELL_LANGUAGES:
      before = text[:m.start()].rstrip().splitlines()[-1:] or [""]
      if not re.match(r"^\s*<!-- (docs-test: (run|run tiny|check \"[^\"]+\")|"
                      r"skip: next \"[^\"]+\") -->$", before[0]):
        problems.append(f"line {line}: shell block without a docs-test or skip marker with a "
                        "reason on the line before it")
  assert not problems, f"{os.path.relpath(path, REPO)}: " + "; ".join(problems)


@pytest.mark.parametrize("path", DOCS, ids=DOC_IDS)
def test_links_and_repository_paths_exist(path):
  """Stale docs point at files that moved or never were in this repository."""
  text = read(path)
  missing = []
  for target in re.findall(r"\]\(([^)\s]+)\)", text):
    if re.match(r"^(https?:|mailto:|#)", target):
      continue
    file_part = target.split("#")[0]
    if not os.path.exists(os.path.join(os.path.dirname(path), file_part)):
      missing.append(target)
  for ref in re.findall(r"`((?:experiments|glojax|benchmarks|notebooks|tests|docs)/[\w./-]+)`",
                        text):
    if "*" not in ref and not os.path.exists(os.path.join(REPO, ref)):
      missing.append(ref)
  assert not missing, f"{os.path.relpath(path, REPO)} refers to missing files: {missing}"
  # The project's internal design notes are not part of the repository.
  assert not re.search(r"\bSPEC\b|DESIGN\.md", text), os.path.relpath(path, REPO)


def test_dataset_options_table_matches_the_loaders():
  """mnist5k takes fractions, the others counts: the docs list each dataset's options."""
  from glojax import data
  text = read(os.path.join(REPO, "docs", "models_and_data.md"))
  text = text[text.index("## Data"):]
  text = text[:text.index("\n## ", 1)]
  rows = {}
  for line in text.splitlines():
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if len(cells) == 4 and cells[0].startswith("`"):
      for name in re.findall(r"`(\w+)`", cells[0]):
        rows[name] = sorted(re.findall(r"`(\w+)`", cells[3]))
  assert set(rows) == set(data.names())
  for name in data.names():
    assert rows[name] == data.options(name), name


# ---- config docstrings ------------------------------------------------------------------

CONFIGS = sorted(p for p in glob.glob(os.path.join(REPO, "experiments", "configs", "*.py"))
                 if not p.endswith("__init__.py"))


def config_module(path):
  return importlib.import_module(f"experiments.configs.{os.path.basename(path)[:-3]}")


def docstring_commands(doc):
  """The indented ``python experiments/...`` commands of a docstring, continuations joined."""
  text = re.sub(r"\\\n\s*", " ", doc)
  return [line.strip() for line in text.splitlines()
          if re.match(r"^\s{2,}python experiments/", line)]


def test_every_config_docstring_command_has_valid_flags():
  """Each config's docstring shows a command for it, and the command's flags (config keys
  and value types included) are those of its binary — checked without running it."""
  box = docs_runner.sandbox()
  checked = 0
  for path in CONFIGS:
    doc = config_module(path).__doc__ or ""
    commands = docstring_commands(doc)
    own = f"--config=experiments/configs/{os.path.basename(path)}"
    assert any(own in c for c in commands), f"{path}: no command running this config"
    for command in commands:
      box.check(command)
      checked += 1
  assert checked >= len(CONFIGS)


def test_every_binary_docstring_command_has_valid_flags():
  """The usage lines in the binaries' docstrings (what --help prints first)."""
  box = docs_runner.sandbox()
  for name in ("taylorglo", "glo", "train", "analyze"):
    # Read, not imported: importing two binaries would define --workdir twice.
    doc = ast.get_docstring(ast.parse(read(os.path.join(REPO, "experiments", f"{name}.py"))))
    commands = docstring_commands(doc)
    assert commands, name
    for command in commands:
      box.check(command)


def test_config_docstring_overrides_are_valid_flags():
  """Inline suggestions such as ``--config.dataset.options.data_dir=DIR`` work with that
  config (train_quick.py suggested a key its options did not have)."""
  box = docs_runner.sandbox()
  for path in CONFIGS:
    doc = config_module(path).__doc__ or ""
    run = next(c for c in docstring_commands(doc)
               if f"configs/{os.path.basename(path)}" in c)
    binary = run.split()[1]
    for override in re.findall(r"``(--config\.[^`]+=[^`]+)``", doc):
      box.check(f"python {binary} --config=experiments/configs/{os.path.basename(path)} "
                f"--workdir=runs/x {override}")


def test_import_glojax_reaches_every_subpackage():
  """docs/losses.md uses glojax.train, glojax.models, glojax.data after `import glojax`."""
  import subprocess
  code = ("import glojax; glojax.train.Trainer; glojax.models.get; glojax.data.load; "
          "glojax.analysis.theory; glojax.expr.parse; print(sorted(dir(glojax)))")
  proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                        text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr
  assert "'train'" in proc.stdout and "'search'" in proc.stdout
  import glojax
  with pytest.raises(AttributeError, match="subpackages: analysis, data"):
    glojax.trian  # noqa: B018


def test_tiny_overrides_are_valid_flags():
  """The docs runner's tiny overrides parse against each binary (with its quickstart)."""
  box = docs_runner.sandbox()
  configs = {"experiments/taylorglo.py": "quickstart.py", "experiments/glo.py":
             "glo_quickstart.py", "experiments/train.py": "train_quick.py",
             "experiments/epbt.py": "epbt_quickstart.py"}
  for binary, tiny in docs_runner.TINY.items():
    box.check(f"python {binary} --config=experiments/configs/{configs[binary]} "
              f"--workdir=runs/x {tiny}")


def test_configs_without_data_here_say_what_they_print():
  """A config whose dataset must be prepared says in its docstring that the run stops at
  once with 'dataset ... is not prepared at DIR' (what the loader prints), and promises no
  fallback that does not exist."""
  tfds_names = {"mnist", "cifar10", "cifar100", "svhn"}
  for path in CONFIGS:
    names = set(re.findall(r'dataset\.name = "(\w+)"', read(path)))
    doc = config_module(path).__doc__
    if names & tfds_names:
      assert "is not prepared at DIR" in doc, path
    assert "falls back" not in doc, path


# ---- the docs runner itself ---------------------------------------------------------------

def test_runner_rejects_unmarked_shell_blocks_and_reasonless_checks(tmp_path):
  """No shell block is skipped silently: an unmarked one fails, a check needs a reason, a
  failing command fails; a marked skip is reported as a skip with its reason."""
  from sybil import Document
  page = tmp_path / "page.md"
  page.write_text("# t\n\n```bash\npython -c 'print(1)'\n```\n\n"
                  "<!-- docs-test: check -->\n```bash\npython -c 'print(2)'\n```\n\n"
                  "<!-- docs-test: run -->\n```bash\npython -c 'import sys; sys.exit(3)'\n```\n\n"
                  "<!-- skip: next \"needs a GPU\" -->\n```bash\nrm -rf /\n```\n")
  document = Document.parse(str(page), *docs_runner.PARSERS)
  outcomes = []
  for example in document.examples():
    try:
      example.evaluate()
      outcomes.append("ok")
    except Exception as e:  # noqa: BLE001  SkipTest, AssertionError, ValueError
      outcomes.append(f"{type(e).__name__}: {e}")
  text = "\n".join(outcomes)
  assert "this shell block has no marker" in outcomes[0]
  assert "needs a reason" in text
  assert "documented command failed (exit 3)" in text
  assert "SkipTest: needs a GPU" in text
