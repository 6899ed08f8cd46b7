VENV := .venv
PY := $(VENV)/bin/python
# The interpreter the venv is made from: any Python 3.11 to 3.13 (README, Two commands).
PYTHON ?= python3
# What the venv gets: everything for development; a server takes the runtime lock alone
# (`make install LOCK=requirements.lock`, docs/operations.md).
LOCK ?= requirements-dev.lock
# bash for `wait -n` in `run`
SHELL := /bin/bash

.PHONY: install run test test-fast lint docs bench audit lock clean

# Exactly the locked versions, each checked against its hash, with whatever pip the interpreter
# bundles (3.11's 23.2.1 included; docs/adr/0003-uv-lock-files.md). The lock already lists every
# package, so --no-deps: an old pip resolving dependencies in hash mode stops at a requirement with
# an extra (`CacheControl[filecache]`) although its version is pinned. `pip check` then proves the
# lock is whole.
$(VENV)/.installed: $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --no-deps --require-hashes -r $(LOCK)
	$(PY) -m pip check
	touch $@

install: $(VENV)/.installed

# The web server and the worker (rules + outbound SMS) together: when either exits, or on
# Ctrl-C, the other is stopped too. scripts/init_env.py writes .env when it is missing; `make run
# PORT=N` writes PORT and the local PUBLIC_URL into it together, so a later plain `make run` serves
# where `flask sms` signs; a .env whose two disagree is reported in one line.
run: $(VENV)/.installed
	@$(PY) scripts/init_env.py
	@trap 'kill $$web $$worker 2>/dev/null; wait' EXIT; \
	$(VENV)/bin/gunicorn -c production.py 'app:create_app()' & web=$$!; \
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
	$(VENV)/bin/mkdocs build --strict --quiet --site-dir $$(mktemp -d)

# The docs site (docs/, mkdocs.yml) at http://127.0.0.1:8000, rebuilt on every save.
docs: $(VENV)/.installed
	$(VENV)/bin/mkdocs serve

# Re-resolve both lock files after editing requirements*.txt (docs/adr/0003-uv-lock-files.md).
# The dev lock is constrained by the runtime one, so both pin the same runtime versions.
lock: $(VENV)/.installed
	$(VENV)/bin/uv pip compile requirements.txt --universal --python-version 3.11 --generate-hashes \
		--no-header --quiet -o requirements.lock
	$(VENV)/bin/uv pip compile requirements-dev.txt --universal --python-version 3.11 --generate-hashes \
		--no-header --quiet -c requirements.lock -o requirements-dev.lock

# Known advisories for every locked version, from the index's vulnerability data. --strict: a
# package the index cannot answer for fails the audit instead of passing unchecked.
audit: $(VENV)/.installed
	$(VENV)/bin/pip-audit --disable-pip --strict --progress-spinner off -r requirements-dev.lock

# Every benchmark in bench/, short modes where they exist, then one Markdown table (docs/benchmarks.md).
bench: $(VENV)/.installed
	$(PY) bench/report.py

clean:
	rm -rf $(VENV) var logs .pytest_cache
