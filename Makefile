VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 5000
# bash for `wait -n` in `run`
SHELL := /bin/bash

.PHONY: run test test-fast lint bench clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	touch $@

.env: .env.example
	@test -f .env || PORT=$(PORT) $(PY) scripts/init_env.py

# The web server and the worker (rules + outbound SMS) together: when either exits, or on
# Ctrl-C, the other is stopped too.
run: $(VENV)/.installed .env
	@trap 'kill $$web $$worker 2>/dev/null; wait' EXIT; \
	PORT=$(PORT) $(VENV)/bin/gunicorn -c production.py 'app:create_app()' & web=$$!; \
	$(VENV)/bin/flask --app app worker & worker=$$!; \
	wait -n $$web $$worker

# The full suite, real servers and end-to-end runs included (what CI runs).
test: $(VENV)/.installed
	$(VENV)/bin/pytest

# Everything but the end-to-end tests that start real servers and processes: the edit loop.
test-fast: $(VENV)/.installed
	$(VENV)/bin/pytest -m "not slow"

# Style, types and the direction of imports (contracts in pyproject.toml).
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

bench: $(VENV)/.installed
	for script in bench/*.py; do $(PY) $$script || exit 1; done

clean:
	rm -rf $(VENV) var logs .pytest_cache
