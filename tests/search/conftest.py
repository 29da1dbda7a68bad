"""Fixtures over every registered search (cases in search_cases.py)."""

import shutil

import pytest
from search_cases import CASES

from glojax import search as search_lib


@pytest.fixture(params=sorted(search_lib.SEARCHES))
def case(request):
  if request.param not in CASES:
    pytest.fail(f"search {request.param!r} has no entry in tests/search/search_cases.py CASES")
  return CASES[request.param]


_FINISHED = {}


@pytest.fixture
def finished(case, tmp_path_factory):
  """``(workdir, results)`` of one finished tiny run of ``case`` (made once per session;
  tests get their own copy of the workdir)."""
  if case.name not in _FINISHED:
    wd = str(tmp_path_factory.mktemp(f"finished_{case.name}") / "run")
    _FINISHED[case.name] = (wd, case.run(case.tiny(), wd))
  wd, results = _FINISHED[case.name]
  copy = str(tmp_path_factory.mktemp("copy") / "run")
  shutil.copytree(wd, copy)
  return copy, results
