# Two commands do all the set-up on a fresh machine:
#   make quickstart   serve MiniLM from notebooks/01_quickstart.ipynb on the embedded Ray cluster
#   make test         lint, type-check and run every test (unit, Ray, kernels, browser, and the
#                     notebooks in a Binder-like session: tests/binder)
# and one is for the developer's loop:
#   make check        lint, types, jest and the unit tests (no cluster, a few minutes at most)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: quickstart test check lint jest install constraints clean

$(STAMP): pyproject.toml binder/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The CPU build of torch: an unpinned torch would pull several GB of CUDA packages.
	$(BIN)/pip install --quiet torch==2.13.0
	# The versions Binder installs too: CI tests what a Binder user gets.
	$(BIN)/pip install --quiet -c binder/constraints.txt -e ".[test]"
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

jest: $(STAMP)
	# The sidebar's formatting and state; node_modules came with the editable install.
	cd labextension && PATH="$(CURDIR)/$(BIN):$$PATH" jlpm install --immutable >/dev/null && PATH="$(CURDIR)/$(BIN):$$PATH" jlpm jest --ci

check: lint jest
	$(BIN)/python -m pytest -p no:cacheprovider tests/unit -q

test: lint jest
	$(BIN)/python -m pytest -p no:cacheprovider tests -ra --durations=25

# After a dependency changed in pyproject.toml: pin what `make install` resolved.
constraints:
	rm -f $(STAMP) && sed -i '/^[^#]/d' binder/constraints.txt
	$(MAKE) install
	$(BIN)/pip freeze --exclude-editable >> binder/constraints.txt

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache
