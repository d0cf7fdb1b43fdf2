# Each target sets up what it needs: a local virtualenv with the project and its dev tools, and
# (for tests) Debian's chromium for the browser suite.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo relay test test-fast lint format bench system-deps clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,cluster]'
	touch $(STAMP)

## demo: the relay with the example pages, on the embedded in-memory default
demo: $(STAMP)
	$(VENV)/bin/agent-socket demo

## relay: just the relay (pass flags with ARGS="--port 9000 --debug")
relay: $(STAMP)
	$(VENV)/bin/agent-socket relay $(ARGS)

## system-deps: Debian packages the test suite needs (chromium for browser tests)
system-deps:
	@if [ ! -x /usr/bin/chromium ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
		else \
			sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
		fi; \
	fi

## test: the whole suite (unit, end-to-end, browser)
test: $(STAMP) system-deps
	$(PY) -m pytest -n 4 --dist loadfile -q

## test-fast: unit tests only
test-fast: $(STAMP)
	$(PY) -m pytest -q tests/unit

## bench: relay throughput, latency, baseline and idle sessions; writes bench/RESULTS.md (ARGS="--quick")
bench: $(STAMP)
	@if ! command -v wrk >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; \
		else \
			sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; \
		fi; \
	fi
	@[ -x $(VENV)/bin/py-spy ] || $(PY) -m pip install --quiet py-spy
	$(PY) bench/run.py $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests
	$(VENV)/bin/ruff format --check src tests
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff format src tests
	$(VENV)/bin/ruff check --fix src tests

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
