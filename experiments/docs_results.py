r"""The one place the docs' measured numbers come from: record a quick run, render the docs.

Every number the docs quote about the quickstarts (results, wall time, the machine) is
rendered from a record in ``docs/results/<name>.json``, written by a real run of the
documented command::

  nice -n 10 python experiments/docs_results.py record quickstart
  nice -n 10 python experiments/docs_results.py record glo_quickstart
  python experiments/docs_results.py render          # rewrite the docs' result regions
  python experiments/docs_results.py render --check  # exit 1 if a region is stale

``record`` runs the command in a fresh workdir under ``runs/``, times it, samples the load
average while it runs, and stores its output, its result files (``final.json`` /
``results.json``), the machine, the date and the git commit. ``render`` rewrites each region
``<!-- results: NAME/PART -->`` … ``<!-- /results -->`` of README.md, BUILD.md and
docs/*.md from the records; ``tests/test_docs_results.py`` fails when a region differs from
what its record renders, so a number can only change by re-recording.
"""

from __future__ import annotations

import datetime
import glob
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS_DIR = os.path.join(REPO, "docs", "results")
DOC_PATTERNS = ("README.md", "BUILD.md", "BENCHMARKS.md", "docs/*.md", "docs/**/*.md")

# name -> (documented command, the result file it writes)
RUNS = {
    "quickstart": ("python experiments/taylorglo.py --config=experiments/configs/quickstart.py "
                   "--workdir=runs/quickstart", "final.json"),
    "glo_quickstart": ("python experiments/glo.py --config=experiments/configs/glo_quickstart.py "
                       "--workdir=runs/glo_quickstart", "results.json"),
    "gan_quickstart": ("python experiments/gan.py --config=experiments/configs/gan_quickstart.py "
                       "--workdir=runs/gan_quickstart", "final.json"),
    "epbt_quickstart": ("python experiments/epbt.py "
                        "--config=experiments/configs/epbt_quickstart.py "
                        "--workdir=runs/epbt_quickstart", "final.json"),
}
REGION = re.compile(r"(<!-- results: (?P<name>[\w-]+)/(?P<part>[\w-]+) -->\n)(?P<body>.*?)"
                    r"(<!-- /results -->)", re.S)


# ---- recording ---------------------------------------------------------------------------

def machine() -> dict:
  """The machine a run was measured on: CPU model, cores, memory, accelerator, versions."""
  cpu = platform.processor() or platform.machine()
  try:
    with open("/proc/cpuinfo") as f:
      names = re.findall(r"^model name\s*:\s*(.+)$", f.read(), re.M)
    cpu = names[0].strip() if names else cpu
  except OSError:
    pass
  memory_gib = None
  try:
    with open("/proc/meminfo") as f:
      kib = int(re.search(r"MemTotal:\s+(\d+)", f.read()).group(1))
    memory_gib = round(kib / 2**20)
  except (OSError, AttributeError):
    pass
  import jax
  devices = jax.devices()
  return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": memory_gib,
          "backend": jax.default_backend(), "devices": [str(d) for d in devices],
          "jax": jax.__version__, "python": platform.python_version(),
          "os": f"{platform.system()} {platform.release()}"}


def _commit() -> str:
  try:
    out = subprocess.run(["git", "-C", REPO, "log", "-1", "--format=%h %cs"],
                         capture_output=True, text=True, timeout=30).stdout.strip()
    dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--", "glojax",
                            "experiments"], capture_output=True, text=True,
                           timeout=30).stdout.strip()
    return out + (" + uncommitted changes" if dirty else "")
  except OSError:
    return "unknown"


class _LoadSampler(threading.Thread):
  """Samples the 1-minute load average every 10 s (other jobs on a shared machine)."""

  def __init__(self):
    super().__init__(daemon=True)
    self.samples, self.stop = [], threading.Event()

  def run(self):
    while not self.stop.is_set():
      self.samples.append(os.getloadavg()[0])
      self.stop.wait(10)


def record(name: str) -> dict:
  """Runs the documented command of ``name`` in a fresh workdir and writes its record."""
  command, result_file = RUNS[name]
  workdir = os.path.join("runs", f"record_{name}")
  shutil.rmtree(os.path.join(REPO, workdir), ignore_errors=True)
  argv = command.replace("python ", "", 1).split()
  argv = [a if not a.startswith("--workdir=") else f"--workdir={workdir}" for a in argv]
  commit = _commit()  # the code that runs (HEAD may move while it runs)
  sampler = _LoadSampler()
  sampler.start()
  start, cpu_start = time.time(), resource.getrusage(resource.RUSAGE_CHILDREN)
  proc = subprocess.run([sys.executable] + argv, cwd=REPO, capture_output=True, text=True)
  wall = time.time() - start
  cpu_end = resource.getrusage(resource.RUSAGE_CHILDREN)
  cpu = (cpu_end.ru_utime - cpu_start.ru_utime) + (cpu_end.ru_stime - cpu_start.ru_stime)
  sampler.stop.set()
  if proc.returncode != 0:
    raise SystemExit(f"{command} failed:\n{proc.stderr[-3000:]}")
  with open(os.path.join(REPO, workdir, result_file)) as f:
    result = json.load(f)
  loads = sampler.samples or [os.getloadavg()[0]]
  rec = {"name": name, "command": command, "result_file": result_file, "result": result,
         "wall_time_s": round(wall, 1), "cpu_time_s": round(cpu, 1), "stdout": proc.stdout,
         "date": datetime.date.today().isoformat(), "commit": commit,
         "machine": machine(),
         "load_average": {"mean": round(sum(loads) / len(loads), 1),
                          "max": round(max(loads), 1)}}
  os.makedirs(RESULTS_DIR, exist_ok=True)
  with open(os.path.join(RESULTS_DIR, f"{name}.json"), "w") as f:
    json.dump(rec, f, indent=1)
    f.write("\n")
  return rec


# ---- rendering ---------------------------------------------------------------------------

def load_records() -> dict:
  records = {}
  for path in sorted(glob.glob(os.path.join(RESULTS_DIR, "*.json"))):
    with open(path) as f:
      rec = json.load(f)
    records[rec["name"]] = rec
  return records


def duration(seconds: float) -> str:
  """``170.2`` -> ``"2 min 50 s"``."""
  seconds = int(round(seconds))
  return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"


def machine_text(rec: dict) -> str:
  m = rec["machine"]
  accel = "no GPU" if m["backend"] == "cpu" else f"{m['backend']}: {', '.join(m['devices'])}"
  cpu = (f"; {duration(rec['cpu_time_s'])} of CPU time" if rec.get("cpu_time_s") else "")
  return (f"{m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, {accel} (jax "
          f"{m['jax']}), shared: load average {rec['load_average']['mean']} during the run"
          f"{cpu}")


def _short_spec(spec: str) -> str:
  """Coefficients of an ``expr:`` spec rounded to 3 significant digits, for reading."""
  return re.sub(r"\d+\.\d+(?:e-?\d+)?", lambda m: f"{float(m.group()):.3g}", spec)


def _pm(stats: dict) -> str:
  return f"{stats['mean']:.3f} ± {stats['std']:.3f}"


def render_part(rec: dict, part: str) -> str:
  """The Markdown of one region (without the markers)."""
  commit = re.sub(r" \d{4}-\d\d-\d\d", "", rec["commit"])  # the date is said once
  when = f"recorded {rec['date']} at glojax commit {commit}"
  if part == "time":
    return (f"**{duration(rec['wall_time_s'])}** on {machine_text(rec)} ({when}; "
            f"[record](docs/results/{rec['name']}.json)).\n")
  if rec["name"] == "quickstart" and part == "summary":
    return (f"Measured (search and final comparison, compiles included, no installation): "
            f"**{duration(rec['wall_time_s'])}** on {machine_text(rec)} ({when}). "
            f"It ended with:\n\n```text\n{rec['result']['table']}\n```\n")
  if rec["name"] == "glo_quickstart" and part == "summary":
    r = rec["result"]
    c, conf = r["counters"], r["confirm"]
    steps = _train_steps(rec)
    rows = [
        ("tree evaluations", f"{c['evaluations']}"),
        ("trees without both x and y (fitness 0, no training) / too large",
         f"{c['invalid']} / {c['too_large']}"),
        ("cache hits / trees trained", f"{c['hits']} / {c['trained_trees']} — hit rate "
                                       f"{r['hit_rate']:.0%}"),
        ("trainings in all (trees + CMA-ES candidates) / NaN", f"{c['trained']} / {c['failed']}"),
        (f"candidates trained per second ({steps} steps each, padding included)",
         f"{r['candidates_per_s']:.1f} (≈ {r['candidates_per_s'] * steps:,.0f} "
         "candidate-steps/s)"),
        ("best tree (search fitness)", f"`{_short_spec(r['best_tree'])}` "
                                       f"({r['best_tree_fitness']:.3f})"),
        ("best loss after CMA-ES (search fitness)", f"`{_short_spec(r['best_loss'])}` "
                                                    f"({r['best_loss_fitness']:.3f})"),
        (f"retrained {conf['repeats']}× with the cross-entropy runs' keys: best tree / best "
         "loss / cross-entropy", f"{_pm(conf['best_tree'])} / {_pm(conf['best_loss'])} / "
                                 f"{_pm(conf['cross_entropy'])}"),
    ]
    table = "| quantity | value |\n|---|---|\n" + "".join(f"| {a} | {b} |\n" for a, b in rows)
    return (f"Measured: **{duration(rec['wall_time_s'])}** wall time in all (compiles "
            f"included) on {machine_text(rec)} ({when}).\n\n{table}")
  if rec["name"] == "gan_quickstart" and part == "summary":
    best = re.search(r"best validation fitness .*?: (gan_taylor\(.*\))$", rec["stdout"], re.M)
    return (f"Measured (search and final comparison, compiles included): "
            f"**{duration(rec['wall_time_s'])}** on {machine_text(rec)} ({when}). Best "
            f"triple (`best_loss.txt`):\n\n```text\n{best.group(1) if best else '?'}\n```\n\n"
            f"Test split, {rec['result']['final_config']['repeats']} seeds each:\n\n"
            f"{rec['result']['table']}\n")
  if rec["name"] == "epbt_quickstart" and part == "summary":
    return (f"Measured (the EPBT run and the comparison, compiles included): "
            f"**{duration(rec['wall_time_s'])}** on {machine_text(rec)} ({when}). It "
            f"ended with:\n\n```text\n{rec['result']['table']}\n```\n")
  raise ValueError(f"no renderer for results region {rec['name']}/{part}")


def _train_steps(rec: dict) -> int:
  m = re.search(r"(\d+) training steps per candidate", rec["stdout"])
  return int(m.group(1)) if m else 0


def doc_files() -> list[str]:
  out = []
  for pattern in DOC_PATTERNS:
    out += glob.glob(os.path.join(REPO, pattern), recursive=True)
  return sorted(set(out))


def render_text(text: str, records: dict, path: str = "") -> str:
  """``text`` with every results region re-rendered from ``records``.

  Raises:
    ValueError: for a region naming a run that has no record.
  """
  def sub(m):
    name = m.group("name")
    if name not in records:
      raise ValueError(f"{path}: results region {name}/{m.group('part')} has no record "
                       f"docs/results/{name}.json")
    body = render_part(records[name], m.group("part"))
    if os.path.dirname(path) != REPO and path:  # links are relative to the document
      body = body.replace("](docs/results/", "](results/")
    return m.group(1) + body + m.group(5)
  return REGION.sub(sub, text)


def render(check: bool = False) -> list[str]:
  """Re-renders every results region; returns the files that changed (or would)."""
  records = load_records()
  stale = []
  for path in doc_files():
    with open(path) as f:
      text = f.read()
    new = render_text(text, records, path)
    if new != text:
      stale.append(os.path.relpath(path, REPO))
      if not check:
        with open(path, "w") as f:
          f.write(new)
  return stale


def main(argv):
  if len(argv) >= 2 and argv[0] == "record" and all(n in RUNS for n in argv[1:]):
    for name in argv[1:]:
      rec = record(name)
      print(f"{name}: {duration(rec['wall_time_s'])}; wrote docs/results/{name}.json")
    return 0
  if argv[:1] == ["render"]:
    stale = render(check="--check" in argv)
    if "--check" in argv and stale:
      print("stale results regions (run: python experiments/docs_results.py render): "
            + ", ".join(stale), file=sys.stderr)
      return 1
    print("rendered: " + (", ".join(stale) or "nothing changed"))
    return 0
  print(f"usage: docs_results.py record {'|'.join(RUNS)} ... | render [--check]",
        file=sys.stderr)
  return 2


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
