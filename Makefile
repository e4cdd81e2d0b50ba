# Comptoir: `make up` runs the platform locally, `make test` runs every check.
# Both install what is missing first (system packages, Python deps, Kafka jars).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON_BOOT ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
SERVICES := $(sort $(patsubst services/%/pyproject.toml,%,$(wildcard services/*/pyproject.toml)))
# Suites run one by one: each is its own Django project with its own settings.
SUITES := libs/comptoir $(addprefix services/,$(SERVICES)) devstack/tests

.PHONY: help install up down status logs test lint typecheck pytest e2e lock demo clean assets

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' \
	  '{name[NR] = $$1; text[NR] = $$2; if (length($$1) > width) width = length($$1)} \
	   END {for (i = 1; i <= NR; i++) printf "  make %-*s  %s\n", width, name[i], text[i]}'

$(VENV)/.installed: requirements/dev.txt libs/comptoir/pyproject.toml
	@echo "== python environment ($(VENV))"
	@test -x $(PY) || $(PYTHON_BOOT) -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check "uv==0.13.9"
	@$(UV) pip install -q --python $(PY) --require-hashes -r requirements/dev.txt
	@$(UV) pip install -q --python $(PY) --no-deps --no-build-isolation -e libs/comptoir
	@touch $@

# Front-end assets from npm (package-lock.json): the storefront's htmx and uPlot,
# axe-core for its browser tests, the gateway's self-hosted Swagger UI.
NODE_PROJECTS := services/storefront services/api_gateway
%/node_modules/.package-lock.json: %/package-lock.json
	@echo "== npm ci ($*)"
	@cd $* && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-fund --no-audit --ignore-scripts --loglevel=error
	@touch $@

assets: $(addsuffix /node_modules/.package-lock.json,$(NODE_PROJECTS)) ## front-end assets from npm (lock files), served by the storefront and the gateway

install: ## install system packages, Python deps, the Kafka jars and the front-end assets when missing
	@bash devstack/install-system-packages.sh
	@$(MAKE) --no-print-directory $(VENV)/.installed assets

up: install ## start infrastructure + every service, migrated and seeded
	@$(PY) -m devstack up

down: ## stop everything `make up` started
	@test -x $(PY) && $(PY) -m devstack down || true

status: ## what runs, with pids and ports
	@$(PY) -m devstack status

logs: ## log files of every process (`python -m devstack logs NAME` for one)
	@$(PY) -m devstack logs

demo: ## with `make up` running: place orders in both saga modes and print their timelines
	@$(PY) -m devstack.demo

lint: ## ruff lint + format check
	@echo "== ruff"
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .

# The Django plugin loads each project's settings: with DEBUG they need no secrets.
typecheck: export DJANGO_DEBUG = true
typecheck: ## mypy: strict on the chassis and devstack, django-stubs on services
	@echo "== mypy devstack"
	@$(VENV)/bin/mypy --config-file devstack/mypy.ini devstack
	@echo "== mypy libs/comptoir"
	@cd libs/comptoir && DJANGO_SETTINGS_MODULE=testproject.settings MYPYPATH=tests ../../$(VENV)/bin/mypy --strict src tests
	@echo "== mypy tests/e2e"
	@cd tests/e2e && ../../$(VENV)/bin/mypy --config-file mypy.ini .
	@echo "== mypy tests/browser"
	@cd tests/browser && MYPYPATH=../e2e ../../$(VENV)/bin/mypy --config-file mypy.ini .
	@echo "== mypy tests/chaos"
	@cd tests/chaos && MYPYPATH=../e2e ../../$(VENV)/bin/mypy --config-file mypy.ini .
	@echo "== mypy tests/contract"
	@cd tests/contract && MYPYPATH=../e2e ../../$(VENV)/bin/mypy --config-file mypy.ini .
	@echo "== mypy tests/observability"
	@cd tests/observability && MYPYPATH=../e2e ../../$(VENV)/bin/mypy --config-file mypy.ini .
	@echo "== mypy tests/delivery"
	@cd tests/delivery && ../../$(VENV)/bin/mypy --config-file mypy.ini .
	@for s in $(SERVICES); do \
	  echo "== mypy services/$$s"; \
	  if [ -f services/$$s/mypy.ini ]; then \
	    (cd services/$$s && ../../$(VENV)/bin/mypy --config-file mypy.ini .) || exit 1; \
	  else \
	    (cd services/$$s && DJANGO_SETTINGS_MODULE=config.settings ../../$(VENV)/bin/mypy .) || exit 1; \
	  fi; \
	done

REPORTS := .devstack/test-reports

# The whole-platform scenarios run many orders quickly through one gateway and
# one set of demo accounts: raise the per-client limits for them. The benchmarks
# change nothing else (the saga's timings are the shipped ones); the test
# scenarios also shorten the saga's retries and sweeps, to see recoveries soon.
RATE_LIMITS_ENV := GATEWAY_RATE_LIMIT_AUTHENTICATED=100000/minute GATEWAY_RATE_LIMIT_ANONYMOUS=100000/minute \
  GATEWAY_RATE_LIMIT_LOGIN=10000/minute THROTTLE_LOGIN=10000/minute THROTTLE_REGISTER=10000/minute \
  THROTTLE_SERVICE_TOKEN=10000/minute
E2E_ENV := $(RATE_LIMITS_ENV) \
  SAGA_RETRY_BACKOFF_MAX_S=5 SAGA_STEP_MAX_ATTEMPTS=40 CELERY_VISIBILITY_TIMEOUT_S=20 \
  SAGA_STALL_SECONDS=15 SAGA_SWEEP_INTERVAL_S=2

pytest: ## every unit/integration suite (needs the infrastructure: use `make test`)
	@$(PY) tests/run_suites.py --reports $(REPORTS) $(SUITES)

# The fuzz run (tests/contract) goes last: it writes through every public route.
# tests/chaos runs its fast scenarios here (CHAOS_SCOPE=fast, its default); `make chaos` runs them all.
e2e: install $(VENV)/.load-installed ## the whole platform started: observability checks, the saga scenarios (both modes), the storefront in chromium, a short chaos round, the API fuzz run
	@command -v chromium >/dev/null || (echo "== installing chromium" && apt-get install -y -q chromium >/dev/null)
	@$(E2E_ENV) $(PY) -m devstack run --platform -- \
	  $(PY) tests/run_suites.py --reports $(REPORTS) tests/observability tests/e2e tests/browser tests/chaos tests/contract

.PHONY: chaos
# Two passes: every scenario on the single broker, then (CHAOS_KAFKA_CLUSTER=1, the default)
# the `kafka_cluster` ones on the 3-broker cluster (COMPTOIR_KAFKA_BROKERS=3), one table.
CHAOS_KAFKA_CLUSTER ?= 1
chaos: install ## faults under load on the whole platform (SIGKILL loops, Kafka/PostgreSQL/Redis down, a broker of 3 killed, poison, rebalance, slow upstream), then recovery and reconciliation; a result table (~35 min)
	@rm -f $(REPORTS)/tests_chaos.xml $(REPORTS)/kafka-cluster/tests_chaos.xml
	@status=0; CHAOS_SCOPE=all CHAOS_REPORTS=$(abspath $(REPORTS)) $(E2E_ENV) $(PY) -m devstack run --platform -- \
	  $(PY) tests/run_suites.py --reports $(REPORTS) tests/chaos || status=$$?; \
	  if [ "$(CHAOS_KAFKA_CLUSTER)" = 1 ]; then \
	    echo; echo "== chaos on the 3-broker Kafka cluster (COMPTOIR_KAFKA_BROKERS=3)"; \
	    COMPTOIR_KAFKA_BROKERS=3 CHAOS_KEEP_RESULTS=1 CHAOS_SCOPE=all CHAOS_REPORTS=$(abspath $(REPORTS)) $(E2E_ENV) \
	      $(PY) -m devstack run --platform -- \
	      $(PY) tests/run_suites.py --reports $(REPORTS)/kafka-cluster tests/chaos || status=$$?; \
	  fi; \
	  echo; echo "== chaos results ($(REPORTS)/chaos-results.txt)"; cat $(REPORTS)/chaos-results.txt 2>/dev/null || true; \
	  exit $$status

test: install ## every check: lint, types, contracts, alerts, delivery, suites, e2e (all run; fails if any fails)
	@rm -rf $(REPORTS)
	@failed=""; \
	  $(MAKE) --no-print-directory lint || failed="$$failed lint"; \
	  $(MAKE) --no-print-directory typecheck || failed="$$failed typecheck"; \
	  $(MAKE) --no-print-directory contracts-check || failed="$$failed contracts-check"; \
	  $(MAKE) --no-print-directory observability-check || failed="$$failed observability-check"; \
	  $(PY) -m devstack run -- $(MAKE) -k --no-print-directory delivery-check pytest || failed="$$failed suites"; \
	  $(MAKE) --no-print-directory e2e || failed="$$failed e2e"; \
	  $(PY) tests/run_suites.py --summarize $(REPORTS); \
	  if [ -n "$$failed" ]; then echo "make test: FAILED:$$failed"; exit 1; fi; \
	  echo "make test: every check passed"

lock: ## re-pin requirements (hash-locked, no download host) after editing a .in file
	@$(UV) pip compile -q --python-version 3.11 --generate-hashes --no-header requirements/dev.in -o requirements/dev.txt
	@$(UV) pip compile -q --python-version 3.11 --generate-hashes --no-header \
	  requirements/load.in -c requirements/dev.txt -o requirements/load.txt
	@for s in $(patsubst services/%/requirements.in,%,$(wildcard services/*/requirements.in)); do \
	  $(UV) pip compile -q --python-version 3.11 --generate-hashes --no-header \
	    services/$$s/requirements.in -c requirements/dev.txt -o services/$$s/requirements.txt; \
	done

clean: down ## stop everything and delete local state (databases, Kafka data, venv)
	@test -x $(PY) && $(PY) -c "import shutil; from devstack._config import postgres_home; \
	  shutil.rmtree(postgres_home(), ignore_errors=True)" || true
	rm -rf .devstack $(VENV)

.PHONY: contracts-check openapi
contracts-check: $(VENV)/.installed ## event and REST contracts: compatibility with git history, OpenAPI documents up to date, AsyncAPI parser
	@echo "== contracts"
	@$(PY) contracts/check_compatibility.py
	@$(PY) contracts/check_openapi.py check
	@$(PY) tests/run_suites.py --reports $(REPORTS) contracts
	@test -d contracts/node_modules/@asyncapi/parser || \
	  (cd contracts && npm install --no-package-lock --no-fund --no-audit --ignore-scripts --loglevel=error)
	@node contracts/validate-asyncapi.mjs

openapi: $(VENV)/.installed ## write contracts/openapi/<service>.yaml (and the gateway's merged one) from the code
	@$(PY) contracts/check_openapi.py generate

.PHONY: delivery-check
delivery-check: $(VENV)/.installed ## Dockerfiles, compose, workflows, Helm chart, image commands (no Docker engine)
	@echo "== delivery (tools: devstack/tools.sh)"
	@bash devstack/tools.sh
	@$(PY) tests/run_suites.py --reports $(REPORTS) tests/delivery

.PHONY: observability-check
observability-check: ## alert rules: promtool check rules + promtool test rules (fire when meant to, silent otherwise)
	@echo "== observability (promtool)"
	@promtool check rules deploy/observability/prometheus/rules/*.yml
	@promtool test rules deploy/observability/prometheus/tests/*.yml

.PHONY: observability-e2e
observability-e2e: install $(VENV)/.load-installed ## the whole platform started: one order = one trace (Jaeger), its logs, every metric and dashboard query in Prometheus
	@$(PY) -m devstack run --platform -- $(PY) tests/run_suites.py --reports $(REPORTS) tests/observability

.PHONY: bench bench-quick
BENCH_TOOLS := wrk nginx
bench: install ## the gateway, event and saga benchmarks on a fresh platform, one table of targets (~25 min)
	@for tool in $(BENCH_TOOLS); do command -v $$tool >/dev/null || test -x /usr/sbin/$$tool || \
	  (echo "== installing $(BENCH_TOOLS)" && apt-get install -y -q $(BENCH_TOOLS) >/dev/null); done
	@$(RATE_LIMITS_ENV) $(PY) -m devstack run --platform -- $(PY) bench/run_all.py $(BENCH_ARGS)

bench-quick: ## `make bench` with short phases (a smoke run, figures less stable)
	@$(MAKE) --no-print-directory bench BENCH_ARGS=--quick

.PHONY: traces-backend
traces-backend: ## build Jaeger v2 from its Go module (~10 min once); without it the devstack runs its OTLP sink
	@bash devstack/jaeger.sh

.PHONY: load
# `make load` (with `make up` running): LOAD_RATE orders/s between LOAD_USERS simulated
# customers (half order, half browse) for LOAD_SECONDS, split between the saga modes.
LOAD_RATE ?= 5
LOAD_USERS ?= 20
LOAD_SECONDS ?= 60
LOAD_MODES ?= orchestration choreography
$(VENV)/.load-installed: requirements/load.txt $(VENV)/.installed
	@$(UV) pip install -q --python $(PY) --require-hashes -r requirements/load.txt
	@touch $@

load: $(VENV)/.load-installed ## with `make up` running: steady Locust load, every order outcome, both saga modes (LOAD_RATE=5 LOAD_USERS=20 LOAD_SECONDS=60)
	@$(PY) bench/load/run.py --rate $(LOAD_RATE) --users $(LOAD_USERS) --seconds $(LOAD_SECONDS) --modes "$(LOAD_MODES)"
