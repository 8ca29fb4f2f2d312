# make run   - install into .venv (python3.12) and run the service in the default
#              offline replay mode (no keys, no network); Ctrl-C stops it gracefully.
# make test  - install with dev tools (and Debian's chromium and strace for tests) and run
#              lint, types, the Prometheus rules (promtool), the docs site (mkdocs
#              --strict), the whole test suite and the quick benchmark.
# make dashboard - the operator dashboard on http://127.0.0.1:8501 (DB=state/paper.db).
PYTHON ?= python3.12
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
ARGS   ?=
DB     ?= state/paper.db
PORT   ?= 8501

.PHONY: install install-prod run status dashboard test-tools test lint deploy-check docs bench bench-strategies bench-beside bench-metrics chaos clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

# make install-prod - the service's own dependencies, no dev tools: what a host runs
#              (docs/operator/install.md). Editable, so scripts/ runs from the checkout.
install-prod: | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .

run: install
	$(BIN)/paper-node run $(ARGS)

status: install
	$(BIN)/paper-node status $(ARGS)

dashboard: install
	$(BIN)/streamlit run scripts/dashboard.py --server.address 127.0.0.1 --server.port $(PORT) \
		--server.headless true --browser.gatherUsageStats false --client.toolbarMode viewer \
		-- --db $(DB)

# Debian tools some tests need, as command:package - chromium (the dashboard in a browser),
# strace (what a launched session writes), promtool from prometheus (checks the /metrics
# output); a fresh machine gets them here.
TEST_TOOLS := chromium:chromium strace:strace promtool:prometheus
test-tools:
	@missing=""; for pair in $(TEST_TOOLS); do tool=$${pair%%:*}; \
		command -v $$tool >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian's$$missing for the tests"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The tests run on one worker more than the cores (pytest-xdist; three on the CI machine's
# two): most of a test's time is a service or a node child waiting on its pace, its
# restarts or a timeout, so a core is rarely busy with one test alone (measured on two
# cores: 15 min 8 s with two workers, 12 min 31 s with three). Each test keeps to its own
# temporary directory, database, ports and processes.
WORKERS ?= $(shell echo $$(( $$(nproc) + 1 )))
test: lint test-tools deploy-check docs
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(WORKERS) --dist worksteal $(ARGS)
	$(BIN)/python -m scripts.bench --quick

# The shipped Prometheus rules: syntax, and each alert firing and not firing (promtool from
# Debian's prometheus package, which test-tools installs).
deploy-check: test-tools
	promtool check rules deploy/prometheus/*.rules.yml deploy/prometheus/*.recording.yml
	promtool test rules deploy/prometheus/tests/*.test.yml

# The documentation site (docs/, MkDocs with the Material theme); --strict fails on a broken
# link or anchor, or a nav entry without its page. The config and metrics references are
# generated from the code by a hook (scripts/mkdocs_hooks.py).
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir site

bench: install
	$(BIN)/python -m scripts.bench

# One node with 1, 5 and 20 strategies (part of `make bench`; about 4 minutes alone).
bench-strategies: install
	$(BIN)/python -m scripts.bench_strategies $(ARGS)

# The hot paths beside a worktree of cbd79ba, alternating rounds (part of `make bench`).
bench-beside: install
	$(BIN)/python -m scripts.bench_beside $(ARGS)

bench-metrics: install
	$(BIN)/python -m scripts.bench_metrics $(ARGS)

chaos: install
	CHAOS_FAULTS=100 $(BIN)/python -m pytest -q -p no:cacheprovider -m chaos

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache
