"""Runs every notebook in notebooks/ with tiny settings (GLOJAX_NOTEBOOK_TINY=1).

New notebooks are picked up automatically (the parametrization is a glob). Each runs
in a fresh ``python3`` kernel of the active environment, with the working directory
``notebooks/`` and the repository root on ``PYTHONPATH`` so ``import glojax`` works
without installing the package.
"""

import os
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
TIMEOUT_S = 240  # per cell; the whole tiny notebook should take well under a minute


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, monkeypatch, tmp_path):
  nbformat = pytest.importorskip("nbformat")
  nbclient = pytest.importorskip("nbclient")
  # The kernel inherits this process's environment: use this interpreter's `python`,
  # find glojax in the checkout, shrink settings, and keep outputs out of the repo.
  monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep
                     + os.environ.get("PATH", ""))
  monkeypatch.setenv("PYTHONPATH", str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
  monkeypatch.setenv("GLOJAX_NOTEBOOK_TINY", "1")
  monkeypatch.setenv("GLOJAX_NOTEBOOK_OUT", str(tmp_path))
  monkeypatch.setenv("MPLBACKEND", "Agg")
  nb = nbformat.read(str(path), as_version=4)
  client = nbclient.NotebookClient(nb, timeout=TIMEOUT_S, kernel_name="python3",
                                   resources={"metadata": {"path": str(path.parent)}})
  client.execute()  # raises CellExecutionError (with the cell's traceback) on failure
  errors = [o for cell in nb.cells if cell.cell_type == "code"
            for o in cell.get("outputs", []) if o.get("output_type") == "error"]
  assert not errors


def test_notebooks_exist():
  assert any(p.name == "01_loss_zoo.ipynb" for p in NOTEBOOKS)
