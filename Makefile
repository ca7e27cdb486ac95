# Two entry points do all set-up on a fresh machine:
#   make repro   — install (once) and run the pipeline on the embedded default data
#   make test    — install (once) and run the test suite
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
# Test processes (pytest-xdist): many tests wait on servers, schedulers and subprocesses, so two keep two cores busy.
TEST_WORKERS ?= 2

.PHONY: setup repro flow test test-fast bench clean-venv

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade "pip>=24"
	$(VENV)/bin/python -m pip install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP)

repro: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" dvc repro

flow: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" python -m flows.pipeline

test: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" python -m pytest -q -n $(TEST_WORKERS) --durations=25

test-fast: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" python -m pytest -q -m unit

bench: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" python benchmarks/throughput.py

clean-venv:
	rm -rf $(VENV)
