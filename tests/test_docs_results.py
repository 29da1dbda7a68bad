"""Measured numbers in the docs come from one place: the records in docs/results/."""

import glob
import json
import os
import re
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from experiments import docs_results  # noqa: E402


def read(path):
  with open(os.path.join(REPO, path)) as f:
    return f.read()


def test_every_documented_quick_run_has_a_record_naming_the_machine():
  records = docs_results.load_records()
  assert set(records) == set(docs_results.RUNS)
  for name, rec in records.items():
    assert rec["command"] == docs_results.RUNS[name][0]
    m = rec["machine"]
    assert m["cpu"] and m["cores"] >= 1 and m["memory_gib"] and m["backend"] and m["jax"]
    assert rec["wall_time_s"] > 0 and rec["date"] and rec["commit"]
    assert rec["load_average"]["mean"] >= 0
  table = records["quickstart"]["result"]["table"]
  assert "Welch's test" in table and "cross_entropy@tuned" in table  # both baselines
  assert records["glo_quickstart"]["result"]["confirm"]["repeats"] >= 2
  assert "Welch p (epbt vs)" in records["epbt_quickstart"]["result"]["table"]


def test_doc_regions_are_rendered_from_the_records():
  """A number quoted in the docs changes only by re-recording: every results region equals
  what its record renders (python experiments/docs_results.py render)."""
  assert docs_results.render(check=True) == []
  regions = {}
  for path in docs_results.doc_files():
    for m in docs_results.REGION.finditer(read(path)):
      regions.setdefault(os.path.relpath(path, REPO), []).append(
          f"{m.group('name')}/{m.group('part')}")
  assert "quickstart/summary" in regions["README.md"]
  assert "glo_quickstart/summary" in regions["docs/glo.md"]
  assert "epbt_quickstart/summary" in regions["README.md"]
  assert "epbt_quickstart/summary" in regions["docs/epbt.md"]
  assert sorted(regions["docs/results.md"]) == ["epbt_quickstart/summary",
                                                "glo_quickstart/summary", "quickstart/summary"]


def test_readme_quotes_the_recorded_final_table():
  rec = docs_results.load_records()["quickstart"]
  readme = read("README.md")
  assert f"```text\n{rec['result']['table']}\n```" in readme
  assert f"**{docs_results.duration(rec['wall_time_s'])}** on {rec['machine']['cpu']}" in readme


def test_no_measured_number_outside_the_records():
  """Durations like "2 min 50 s" appear only inside rendered regions, and the recorded
  configs' docstrings point at docs/results.md instead of quoting results."""
  for path in docs_results.doc_files():
    text = docs_results.REGION.sub("", read(path))
    assert not re.search(r"\b\d+ min \d+ s\b", text), path
  for config in ("quickstart", "glo_quickstart", "epbt_quickstart"):
    doc = read(f"experiments/configs/{config}.py").split('"""')[1]
    assert "docs/results.md" in doc, config
    assert not re.search(r"\b\d+ min \d+ s\b|~\d+(–\d+)? minutes|0\.\d\d\d", doc), config
    assert not re.search(r"0\.\d\d–0\.\d\d", doc), config


@pytest.mark.parametrize("seconds, text", [(170.2, "2 min 50 s"), (59.6, "1 min 0 s"),
                                           (42.0, "42 s"), (3600, "60 min 0 s")])
def test_duration_format(seconds, text):
  assert docs_results.duration(seconds) == text


def test_render_rejects_a_region_without_a_record():
  with pytest.raises(ValueError, match="no record"):
    docs_results.render_text("<!-- results: nothing/summary -->\n<!-- /results -->\n", {},
                             "x.md")
