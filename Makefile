# glojax: set-up, quickstart and tests. Everything runs inside .venv, created on demand.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
WORKDIR ?= runs/quickstart
PYTEST_ARGS ?=
# pytest-xdist workers (CI has 2 cores); PYTEST_WORKERS=0 runs the tests in one process.
PYTEST_WORKERS ?= 2

.PHONY: install quickstart test clean-venv

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "glojax needs Python >= 3.11; run make PYTHON=python3.11 ...")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test]"
	touch $@

install: $(VENV)/.installed

quickstart: install
	$(PY) experiments/taylorglo.py --config=experiments/configs/quickstart.py --workdir=$(WORKDIR)

test: install
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

clean-venv:
	rm -rf $(VENV)
