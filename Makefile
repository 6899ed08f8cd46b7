VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 5000

.PHONY: run test lint bench clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	touch $@

.env: .env.example
	@test -f .env || $(PY) scripts/init_env.py

run: $(VENV)/.installed .env
	PORT=$(PORT) $(VENV)/bin/gunicorn -c production.py 'app:create_app()'

test: $(VENV)/.installed
	$(VENV)/bin/pytest

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: $(VENV)/.installed
	for script in bench/*.py; do $(PY) $$script || exit 1; done

clean:
	rm -rf $(VENV) var logs .pytest_cache
