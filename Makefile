# proxycore developer tasks.  `make run` and `make test` are all a newcomer needs.
#
#   make install   create .venv (Python >= 3.11) and install proxycore[dev,parallel] into it
#   make run       start proxyweb: proxy on 8080, web UI on 127.0.0.1:8081; flags: make run ARGS='-v'
#                  (the first run fetches mitmproxy's web front end into ~/.proxycore/web/)
#   make test      the test suite, 2 workers (the first run downloads what docs/testing.md lists into .cache/)
#   make test-fast the tests that start no process and open no socket (-m "not e2e"; docs/testing.md)
#   make test-adversarial  only the attack battery (tests/adversarial, docs/adversarial.md)
#   make lint      ruff and mypy (tools/typecheck.py; docs/testing.md, "Type checking")
#   make bench     benchmark against mitmdump (see bench/README.md)
#   make bench-h2  HTTP/2 through the proxy next to mitmdump (bench/h2bench.py; after make bench set up)
#   make conformance  mitmproxy's own unit tests, unmodified, against proxycore (conformance/run.sh)

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

ROOT := $(CURDIR)
VENV := $(ROOT)/.venv
VPY := $(VENV)/bin/python
# The stamp lives inside the venv so that deleting .venv also forgets the install.
STAMP := $(VENV)/.install-stamp
BENCH := $(ROOT)/bench
BENCH_SYSTEMS := $(ROOT)/bench/systems.txt
ARGS ?=

.PHONY: help install run test lint bench bench-h2 conformance

help:
	@sed -n 's/^#   make /make /p' Makefile

# First interpreter that is Python >= 3.11 (override: make install PYTHON=/path/to/python3).
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	  command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	  && { command -v $$p; break; }; done)

$(VPY):
	@test -n "$(PYTHON)" || { echo "make: no python3 >= 3.11 found (set PYTHON=...)" >&2; exit 1; }
	"$(PYTHON)" -m venv "$(VENV)"

$(STAMP): pyproject.toml | $(VPY)
	"$(VPY)" -m pip install -q --disable-pip-version-check -e '.[dev,parallel]'
	touch "$@"

install: $(STAMP)

run: install
	"$(VENV)/bin/proxyweb" $(ARGS)

# pytest-xdist: WORKERS processes (2, CI's cores); each test file stays on one worker, so a
# module's proxy process and origins start once (docs/testing.md).
WORKERS ?= 2
# Bytecode is written even where PYTHONDONTWRITEBYTECODE is set: without .pyc files every
# proxy process a test starts compiles proxycore again (0.48 -> 0.32 s of CPU per start),
# and so does every pytest worker with the test modules (4.4 -> 1.5 s to collect).
PYTEST := env -u PYTHONDONTWRITEBYTECODE "$(VENV)/bin/pytest"

test: install
	$(PYTEST) -q -n $(WORKERS) --dist loadfile

.PHONY: test-fast
test-fast: install
	$(PYTEST) -q -m "not e2e" -n $(WORKERS)

.PHONY: test-adversarial
test-adversarial: install
	"$(VENV)/bin/pytest" -q -m adversarial tests/adversarial

# Both run even when the first fails, so one pass shows every finding; either fails the target.
lint: install
	status=0; \
	"$(VENV)/bin/ruff" check . || status=1; \
	"$(VPY)" tools/typecheck.py || status=1; \
	exit $$status

# Needs root for apt (setup.sh installs nginx, wrk, go, curl if missing); results land in
# $$BENCH_WORK (default /tmp/proxybench).  bench/systems.txt refers to this checkout as
# $$PROXYCORE_ROOT, which bash expands when bench.py starts the proxy.
# compileall: with PYTHONDONTWRITEBYTECODE set, every proxy start would compile the sources
# again (~0.5 s of the start time; mitmdump's site-packages are compiled at install).
bench: install
	"$(VPY)" -m compileall -q proxycore addons api >/dev/null
	"$(BENCH)/setup.sh" --venvs
	"$(BENCH)/origin.sh" start
	PROXYCORE_ROOT="$(ROOT)" python3 "$(BENCH)/bench.py" matrix --rounds 2 \
	  --only direct,mitm-q,proxypy,proxycore,proxycore-w1-nopin,proxycore-w2-nopin --results-md "$(BENCH)/RESULTS.md" "$(BENCH_SYSTEMS)"

# HTTP/2 (bench.py's clients speak HTTP/1.1 only): bench/h2load.go through each proxy.
bench-h2: install
	"$(BENCH)/setup.sh" --venvs
	"$(BENCH)/origin.sh" start
	python3 bench/h2bench.py --rounds 2

conformance: install
	"$(ROOT)/conformance/run.sh"
