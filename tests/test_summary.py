"""glojax.summary: the TensorBoard view of a workdir's logs."""

import math
import os

import pytest

from glojax import summary


def test_record_scalars_hand_values():
  record = {"generation": 4, "fitness": [0.5, 0.7, 0.0, 0.9], "best": 0.9, "failed": 1,
            "converged": False, "best_spec": "taylorglo(...)", "sigma": 1.25,
            "genomes": [[1, 2], [3]], "ssim": [None, 0.25, 0.75], "wall_time_s": 2.0}
  assert summary.record_scalars(record) == {
      "fitness/max": 0.9, "fitness/median": 0.6, "best": 0.9, "failed": 1.0,
      "sigma": 1.25, "ssim/max": 0.75, "ssim/median": 0.5, "wall_time_s": 2.0,
      "candidates_per_s": 2.0}


def test_record_scalars_skips_non_finite_entries_of_lists():
  out = summary.record_scalars({"fitness": [math.nan, 0.25, math.inf]})
  assert out == {"fitness/max": 0.25, "fitness/median": 0.25}
  assert summary.record_scalars({"fitness": [math.nan]}) == {}


def test_a_resumed_writer_in_the_same_second_keeps_the_earlier_steps(tmp_path):
  # tensorboardX names event files by the second: a second writer used to overwrite.
  with summary.Writer(str(tmp_path)) as w:
    w.record(1, {"best": 0.5})
    w.record(2, {"best": 0.75})
  with summary.Writer(str(tmp_path)) as w:
    w.record(3, {"best": 1.0})
  assert len(os.listdir(tmp_path / summary.TB_DIR)) == 2
  assert summary.read_scalars(str(tmp_path / summary.TB_DIR)) == {
      "best": [(1, 0.5), (2, 0.75), (3, 1.0)]}


def test_curve_skips_missing_points(tmp_path):
  with summary.Writer(str(tmp_path), "loss_a/run_0") as w:
    w.curve("train_loss", [1, 2, 3], [2.5, None, math.nan])
  assert summary.read_scalars(str(tmp_path / "tb" / "loss_a" / "run_0")) == {
      "train_loss": [(1, 2.5)]}


def test_read_scalars_of_a_missing_folder(tmp_path):
  with pytest.raises(FileNotFoundError, match="no TensorBoard folder"):
    summary.read_scalars(str(tmp_path / "nope"))
