# make run   - install into .venv (python3.12) and run the service in the default
#              offline replay mode (no keys, no network); Ctrl-C stops it gracefully.
# make test  - install with dev tools and run lint, types and the whole test suite.
PYTHON ?= python3.12
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
ARGS   ?=

.PHONY: install run status test lint bench chaos clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/python scripts/run_supervisor.py run $(ARGS)

status: install
	$(BIN)/python scripts/run_supervisor.py status $(ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -q -p no:cacheprovider $(ARGS)
	$(BIN)/python scripts/bench.py --quick

bench: install
	$(BIN)/python scripts/bench.py

chaos: install
	CHAOS_FAULTS=100 $(BIN)/python -m pytest -q -p no:cacheprovider -m chaos

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache
