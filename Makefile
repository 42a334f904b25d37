# cofre: one entry point for running, checking and testing. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

include devcluster/devcluster.mk

.PHONY: help setup run lint test test-fast fuzz bench profile faults browser-deps screenshots

help:
	@echo "make run        set up and start cofre on this machine (cofre local up)"
	@echo "make test       set up and run the whole test suite (lint, unit, integration, cluster)"
	@echo "make test-fast  lint, unit and integration tests only (no Kubernetes)"
	@echo "make lint       ruff, mypy --strict, import-linter"
	@echo "make fuzz       fuzz both services' HTTP APIs with many more cases (FUZZ_EXAMPLES=500)"
	@echo "make bench      run the benchmark and write docs/benchmarks.md"
	@echo "make profile    profile the big-file path (py-spy) into docs/benchmarks.md"
	@echo "make faults     run the fault scenarios and write docs/reliability.md (FAULTS_SCALE=1)"
	@echo "make screenshots  regenerate docs/status-page*.png from the status page's browser test"

# The venv is rebuilt when the dependency pins change. constraints.txt locks every transitive
# dependency (regenerate: pip freeze --exclude-editable > constraints.txt).
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

# The status page's browser tests drive Debian's headless Chromium and its driver; installed
# here when missing (needs root, or sudo), so a fresh machine runs them like any other test.
BROWSER_PKGS := chromium chromium-driver
browser-deps:
	@missing=""; for p in $(BROWSER_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" \
	    || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing" >&2; \
	  sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  $$sudo apt-get update -qq \
	    && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	      $$missing >/dev/null; \
	fi

# promtool checks the chart's alert rules (tests/e2e/test_chart_monitoring.py). It comes from
# Debian's prometheus package, taken apart rather than installed (no Prometheus server runs).
PROMTOOL := $(HOME)/.cache/cofre/promtool/promtool
$(PROMTOOL):
	@mkdir -p $(dir $@)
	@sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  cd $(dir $@) && { apt-get download prometheus >/dev/null 2>&1 \
	    || { $$sudo apt-get update -qq && apt-get download prometheus >/dev/null; }; } \
	  && rm -rf x && dpkg-deb -x prometheus_*.deb x && cp x/usr/bin/promtool $@ \
	  && rm -rf x prometheus_*.deb
promtool: $(PROMTOOL)

run: setup
	$(BIN)/cofre local up $(ARGS)

lint: setup
	$(BIN)/ruff check cofre tests bench devcluster
	$(BIN)/ruff format --check cofre tests bench devcluster
	$(BIN)/mypy cofre
	$(BIN)/lint-imports

test-fast: lint browser-deps promtool
	$(BIN)/pytest -q -m "not cluster" tests

# The API fuzz tests with far more (and random) cases than the normal suite tries.
FUZZ_EXAMPLES ?= 500
fuzz: setup
	COFRE_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/pytest -q --timeout=3600 tests/api/test_api_fuzz.py

bench: setup
	$(BIN)/python bench/run.py

# py-spy (PyPI) is installed into the venv on first use: a profiling tool, not a dependency.
profile: setup
	$(BIN)/python bench/profile.py

# Fault scenarios against real local clusters; FAULTS_SCALE=0.1 runs a tenth of each count.
FAULTS_SCALE ?= 1
faults: setup
	$(BIN)/python bench/faults.py --runs-scale $(FAULTS_SCALE)

# The same browser test as in the suite, told to copy its screenshots into docs/.
screenshots: setup browser-deps
	COFRE_SCREENSHOTS=$(CURDIR)/docs $(BIN)/pytest -q tests/integration/test_integration_status_page.py

# The whole suite: lint, then every test (unit, services, real processes, and the Kubernetes
# tests on the dev cluster, which is started here and always stopped afterwards).
test: lint browser-deps promtool
	bash devcluster/setup.sh
	$(BIN)/python -m devcluster up
	$(BIN)/pytest -q tests; rc=$$?; $(BIN)/python -m devcluster down; exit $$rc
