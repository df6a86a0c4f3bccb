# BalDistill Studio. `make demo` serves the dashboard on the bundled data; `make test` runs every test.
# Both create .venv and install the pinned requirements first; a second run reinstalls nothing
# unless requirements*.txt or pyproject.toml changed.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8501
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo test test-tour test-fast browser-deps bench clean-workspace

$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check --upgrade pip
	# torch first, by exact version: this machine keeps the CPU build on disk (any other spec pulls CUDA).
	$(BIN)/pip install -q --disable-pip-version-check "$$(grep '^torch==' requirements.txt)"
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.txt
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -r requirements-nodeps.txt
	$(BIN)/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

# Debian's Chromium for the real-browser tests (root on CI and on this project's machines).
browser-deps:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium is missing: run 'sudo apt-get install chromium' (needed by the browser tests)"; exit 1; fi; }

demo: install
	$(BIN)/streamlit run app.py --server.port $(PORT) --server.address localhost

test: install browser-deps
	$(BIN)/python -m pytest

# The demo tour walked end to end in Chromium with a real SmolLM2 run (~18 min on a free 2-core CPU).
test-tour: install browser-deps
	BALDISTILL_TOUR=1 $(BIN)/python -m pytest tests/test_browser_tour.py

# Everything but the real-browser and slow (bundled model) tests.
test-fast: install
	$(BIN)/python -m pytest -m "not browser and not slow"

bench: install
	for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean-workspace:
	rm -rf workspace
