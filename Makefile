# The two set-up commands of the README, and two for a second terminal beside `make run`. Each creates the
# virtualenv and installs on first use.
VENV := .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: run test lint manage shell
run: $(VENV)/.installed
	$(PY) -m governance.devstack run

# From another terminal, while `make run` runs: a manage.py command, or Django's shell, against its database.
manage: $(VENV)/.installed
	$(PY) -m governance.devstack manage $(ARGS)

shell: $(VENV)/.installed
	$(PY) -m governance.devstack manage shell

test: $(VENV)/.installed
	$(PY) -m governance.devstack test $(ARGS)

lint: $(VENV)/.installed
	$(PY) -m ruff check .

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@
