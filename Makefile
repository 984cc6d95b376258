# Entry points on a fresh Linux machine with Python 3.11:
#   make demo   - virtualenv + install + the whole pipeline on configs/demo.toml into runs/demo/,
#                 then `make look`: the shipped paper-scale models dreaming, into runs/look/
#   make test   - virtualenv + install with dev extras + Debian's chromium (for the report's
#                 browser test) + ruff + the whole test suite: what CI runs (.ci/run)
#   make test-fast - the fast tier only (pytest -m "not slow"): no game, no training, under a minute
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo look test test-fast browser install install-dev lint clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch first and pinned: that CPU wheel is on local disk; an unpinned torch pulls a CUDA build.
install: $(BIN)/python
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e .

install-dev: $(BIN)/python
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev]"

demo: install
	$(BIN)/mdnworld pipeline --config configs/demo.toml
	$(MAKE) --no-print-directory look

# The first look (configs/look.toml): dreams and the three analyses of the shipped paper-scale
# models, in runs/look/ (~2 minutes; the demo's own models are too small to show much).
look: install
	test -e runs/look/vae/model.json || $(BIN)/mdnworld from-shipped runs/look
	$(BIN)/mdnworld dream --config configs/look.toml
	$(BIN)/mdnworld analyze all --config configs/look.toml
	$(BIN)/mdnworld report --config configs/look.toml
	@echo "look: open runs/look/report/index.html (dreams: runs/look/dreams/model_0/); steer one: $(BIN)/mdnworld play runs/look"

# Debian's chromium for tests/test_report.py's browser test (a no-op when /usr/bin/chromium is
# there). Where it cannot be installed (no apt, no root and no password-less sudo) `make test`
# goes on and that one test is skipped, saying why; .ci/run requires it.
browser:
	.ci/install-browser.sh || echo "make: chromium could not be installed: the browser test will be skipped"

test: install-dev browser
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/python -m pytest -q

test-fast: install-dev
	$(BIN)/python -m pytest -q -m "not slow"

lint: install-dev
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks
