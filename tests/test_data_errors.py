"""A dataset that is not there is reported as what it is, with the way to get it."""

import json
import os

import pytest

from glojax import data


def first_line(excinfo):
  return str(excinfo.value).splitlines()[0]


def test_missing_tfds_folder_says_not_prepared(tmp_path):
  """TFDS itself says "Random access ... TFRECORD is not supported" for a missing folder."""
  with pytest.raises(FileNotFoundError) as e:
    data.load("mnist", data_dir=str(tmp_path))
  assert first_line(e) == (f"dataset 'mnist' is not prepared at {tmp_path} "
                           f"(no {tmp_path}/mnist/<version>/dataset_info.json)")
  text = str(e.value)
  assert "TFRECORD" not in text and "Random access" not in text
  assert "tfds build mnist --file_format=array_record" in text and "TFDS_DATA_DIR=DIR" in text


def test_tfrecord_preparation_says_rebuild_as_array_record(tmp_path):
  version = tmp_path / "cifar10" / "3.0.2"
  version.mkdir(parents=True)
  (version / "dataset_info.json").write_text(json.dumps({"name": "cifar10"}))
  (version / "cifar10-train.tfrecord-00000-of-00001").write_bytes(b"")
  with pytest.raises(FileNotFoundError) as e:
    data.load("cifar10", data_dir=str(tmp_path))
  assert first_line(e) == (f"dataset 'cifar10' is prepared at {tmp_path} but not in "
                           "ArrayRecord format (glojax reads it with random access); prepare "
                           "it again with --file_format=array_record")


def test_tfds_data_dir_environment_is_the_folder_named(tmp_path, monkeypatch):
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
  with pytest.raises(FileNotFoundError) as e:
    data.load("svhn")
  assert first_line(e).startswith(f"dataset 'svhn_cropped' is not prepared at {tmp_path} ")


def test_dataset_options_are_listed_per_dataset():
  assert data.options("mnist5k") == ["train_fraction", "validation_fraction"]
  assert data.options("cifar10") == ["data_dir", "download", "num_test", "num_train",
                                     "num_validation"]
  with pytest.raises(ValueError, match="unknown dataset 'nope'"):
    data.options("nope")
  with pytest.raises(ValueError, match=r"dataset 'mnist5k' has no option\(s\) \['data_dir'\]; "
                                       r"options: \['train_fraction', 'validation_fraction'\]"):
    data.load("mnist5k", data_dir="/x")
