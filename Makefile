# Set-up and checks in one command each: `make test`, `make demo`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: test test-fast lint demo install clean system-deps

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] >= (3, 10), "Python 3.10+ needed (3.11 tested)"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	# The project itself, editable, without touching the pinned dependencies: gives the mask-* commands.
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

install: $(VENV)/.installed

# Lint, format and layer contracts first: they take seconds, the suite minutes.
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

# The service's tests run a real broker (Mosquitto) and a real browser (headless Chromium): Debian packages.
system-deps:
	sh scripts/system-deps.sh

test: lint system-deps
	$(PY) -m pytest -q tests

# The edit-test loop: unit tests with stand-in models, in seconds (`make test` runs them too, with the rest).
test-fast: $(VENV)/.installed
	$(PY) -m pytest -q tests/fast

demo: $(VENV)/.installed
	$(PY) detect_image.py --demo --no-display

clean:
	rm -rf $(VENV) .pytest_cache
