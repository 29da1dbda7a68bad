"""glojax.analysis.lineage: ancestry by hand, repeats from elitism, plot inputs."""

import numpy as np
import pytest

from glojax.analysis import lineage


def test_ancestry_by_hand():
  # Generation 0: members 0, 1, 2. Generation 1: 0 survives, 3 ← 0, 4 ← 1.
  # Generation 2: 3 survives, 5 ← 3, 6 ← 4.
  member = np.array([[0, 1, 2], [0, 3, 4], [5, 3, 6]])
  parent = np.array([[-1, -1, -1], [0, 0, 1], [3, 3, 4]])
  assert lineage.ancestry(member, parent, 0) == [(0, 0), (1, 1), (2, 0)]   # 0 → 3 → 5
  assert lineage.ancestry(member, parent, 2) == [(0, 1), (1, 2), (2, 2)]   # 1 → 4 → 6
  chain = lineage.ancestry(member, parent, 1)                              # 0 → 3 → 3
  assert chain == [(0, 0), (1, 1), (2, 1)]
  assert lineage.drop_repeats(chain, member) == [(0, 0), (1, 1)]           # 3 listed once
  with pytest.raises(ValueError, match="parent id 9"):
    lineage.ancestry(member, np.array([[-1, -1, -1], [0, 0, 1], [9, 3, 4]]), 0)
  with pytest.raises(ValueError, match="slot 3"):
    lineage.ancestry(member, parent, 3)


def test_plot_inputs_are_checked(tmp_path):
  with pytest.raises(ValueError, match="float\\[n>0, 8\\]"):
    lineage.plot_lineage_phenotypes(np.zeros((2, 7)), [0, 1], tmp_path / "a.png")
  with pytest.raises(ValueError, match="2 thetas but 1 generations"):
    lineage.plot_lineage_phenotypes(np.zeros((2, 8)), [0], tmp_path / "a.png")
  with pytest.raises(ValueError, match="no curves"):
    lineage.plot_accuracy_curves({}, tmp_path / "b.png")
  path = lineage.plot_accuracy_curves(
      {"epbt seed 0": [{"steps": 10, "accuracy": 0.5}, {"steps": 20, "accuracy": 0.7}],
       "epbt seed 1": [{"steps": 10, "accuracy": 0.4}]}, tmp_path / "c.png")
  assert (tmp_path / "c.png").stat().st_size > 0 and path.endswith("c.png")
