# The two set-up commands of the README. Both create the virtualenv and install on first use.
VENV := .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: run test lint
run: $(VENV)/.installed
	$(PY) -m governance.devstack run

test: $(VENV)/.installed
	$(PY) -m governance.devstack test $(ARGS)

lint: $(VENV)/.installed
	$(PY) -m ruff check .

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@
