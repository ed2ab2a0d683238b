# Two commands do all the set-up on a fresh machine:
#   make quickstart   serve MiniLM from notebooks/01_quickstart.ipynb on the embedded Ray cluster
#   make test         lint, type-check and run every test (unit, Ray, kernels, notebooks)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: quickstart test lint install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The CPU build of torch: an unpinned torch would pull several GB of CUDA packages.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[test]"
	# The browser tests drive Debian's Chromium: Playwright cannot download its own browsers here.
	[ -x /usr/bin/chromium ] || { apt-get update -qq && apt-get install -y -qq chromium; }
	# wrk: the load generator of the dashboard-agreement test and the benchmarks (not a Python loop).
	command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
	touch $(STAMP)

install: $(STAMP)

quickstart: $(STAMP)
	$(BIN)/python scripts/run_notebook.py notebooks/01_quickstart.ipynb

lint: $(STAMP)
	$(BIN)/ruff check nbserve tests scripts benchmarks conftest.py
	$(BIN)/ruff format --check nbserve tests scripts benchmarks conftest.py
	$(BIN)/mypy

test: lint
	# The sidebar's formatting and state (jest); node_modules came with the editable install.
	cd labextension && PATH="$(CURDIR)/$(BIN):$$PATH" jlpm install --immutable >/dev/null && PATH="$(CURDIR)/$(BIN):$$PATH" jlpm jest --ci
	$(BIN)/python -m pytest -p no:cacheprovider tests notebooks --nbval-lax -ra

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache
