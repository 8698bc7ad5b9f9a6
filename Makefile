# One command per chore. `make demo` and `make test` work on a fresh machine (see README).
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo test test-fast lint format services bench clean

install: $(STAMP) node_modules/.package-lock.json

$(STAMP): pyproject.toml requirements-fl.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch is pinned exactly: a CPU wheel lies on local disk, a range pulls a multi-GB CUDA build.
	$(PIP) install -q torch==2.13.0 numpy
	$(PIP) install -q -e '.[dev]'
	# Flower without its pins (requirements-fl.txt says why).
	$(PIP) install -q --no-deps -r requirements-fl.txt
	touch $@

node_modules/.package-lock.json: package.json
	npm install --no-audit --no-fund --loglevel=error

# System packages and services the full test suite needs (z3 for solc-js, PostgreSQL).
services:
	bash scripts/services.sh

demo: install
	$(VENV)/bin/forgeproof up --demo

lint: install
	$(VENV)/bin/ruff format --check ledger ml api tests bench
	$(VENV)/bin/ruff check ledger ml api tests bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

format: install
	$(VENV)/bin/ruff format ledger ml api tests bench
	$(VENV)/bin/ruff check --fix ledger ml api tests bench

# Everything: services, lint, type check and the whole suite, slow and service tests included,
# then the fault drill (docs/operations.md): processes killed, PostgreSQL and the node stopped,
# then the wheel, installed outside the checkout and run (scripts/wheel_check.sh).
test: install services lint
	. ./var/services.env && $(PY) -m pytest -n 2 --dist loadgroup
	. ./var/services.env && $(PY) bench/drill.py
	bash scripts/wheel_check.sh

# The quick inner loop: no services, no slow tests.
test-fast: install
	$(PY) -m pytest -n 2 -m "not slow and not postgres and not node"

bench: install
	for b in bench/*.py; do $(PY) $$b --quick || exit 1; done

clean:
	rm -rf $(VENV) node_modules var .pytest_cache .mypy_cache .ruff_cache
