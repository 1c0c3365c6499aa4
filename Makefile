# Two commands set everything up on a fresh machine with Python 3.11+:
#   make run    - create .venv, install, start the API on http://127.0.0.1:8000 (in-memory storage)
#   make test   - create .venv, install the dev tools, run the whole test suite
#   make test-fast - the same without the slow tests (real servers, the fuzzer, the workshop verifier)
#   make exercise N=01 / make solution N=01 - a workshop exercise's checks / its reference diff
PYTHON ?= python3
PORT ?= 8000
VENV := .venv
BIN := $(VENV)/bin
# uvicorn trusts X-Forwarded-For from 127.0.0.1 when FORWARDED_ALLOW_IPS is unset, so anyone on
# this host could pose as any client to the rate limits. Empty trusts no proxy; behind one, name it.
export FORWARDED_ALLOW_IPS ?=
# One pytest worker per core and one more, since much of the suite waits on servers and timeouts;
# tests/conftest.py keeps the tests that start servers together on one worker.
ON_EVERY_CORE = -n $(shell $(PYTHON) -c 'import os; print((os.cpu_count() or 1) + 1)') --dist loadgroup

.PHONY: run test test-fast exercise solution lint bench example-db clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(VENV)/.runtime $@

run: $(VENV)/.runtime
	$(BIN)/uvicorn main:app --reload --reload-exclude "$(CURDIR)/$(VENV)" --port $(PORT)

test: $(VENV)/.dev
	$(BIN)/pytest $(ON_EVERY_CORE)

test-fast: $(VENV)/.dev
	$(BIN)/pytest $(ON_EVERY_CORE) -m "not slow"

exercise: $(VENV)/.dev
	@test -n "$(N)" || { echo "Say which exercise: make exercise N=01 (see workshop/README.md)"; exit 2; }
	$(BIN)/pytest workshop/$(N)-*/test_exercise.py

solution:
	@test -n "$(N)" || { echo "Say which exercise: make solution N=01 (see workshop/README.md)"; exit 2; }
	@cat workshop/$(N)-*/solution.patch

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	for exercise in workshop/[0-9]*/; do $(BIN)/mypy "$$exercise"*.py || exit 1; done

example-db: $(VENV)/.runtime
	$(BIN)/python demo_data.py tasks.db.example

# make bench BASE=<commit> BENCH_ARGS="--quick --backends memory": see bench/README.md
bench: $(VENV)/.dev
	$(BIN)/python bench/run.py $(if $(BASE),--base $(BASE)) $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
