# email-ingest: `make run` starts the local pipeline, `make test` runs every check. Both set themselves up.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
# devstack/tools.py is the one rule for where the tools live (stdlib only: it runs before .venv exists).
TOOLS_DIR ?= $(shell python3 $(CURDIR)/devstack/tools.py)
export EMAIL_INGEST_TOOLS_DIR := $(TOOLS_DIR)
export PATH := $(TOOLS_DIR)/bin:$(BIN):$(PATH)
PYTEST_ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help venv tools lint fmt test test-cluster test-fast run objects observe bench soak lock

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

venv: ## create .venv from requirements/dev.lock (skipped when up to date)
	@bash scripts/bootstrap.sh

tools: ## install the pinned external tools into $(TOOLS_DIR) (skips what is there)
	@bash scripts/tools/install-all.sh

lint: venv ## ruff and mypy
	ruff check .
	ruff format --check .
	mypy

fmt: venv ## format the code
	ruff check --fix .
	ruff format .

test: venv tools lint ## the whole test suite: lint, unit, integration, end-to-end, chart, the cluster, Terraform, workflows
	EMAIL_INGEST_REQUIRE_TOOLS=1 pytest -m "not slow" $(PYTEST_ARGS)

test-cluster: venv tools ## only the chart on a single-node Kubernetes cluster (tests/cluster; root, about 3 minutes)
	EMAIL_INGEST_REQUIRE_TOOLS=1 pytest -m cluster tests/cluster $(PYTEST_ARGS)

test-fast: venv ## every test not marked integration: no server, no process (a started process fails the test)
	pytest -m "not integration and not slow" --no-processes $(PYTEST_ARGS)

run: venv ## the pipeline on 127.0.0.1: moto, the API, the consumer (LOCAL_AWS=fast: ElasticMQ + gofakes3, installed on demand)
	@if [ "$${LOCAL_AWS:-moto}" = fast ]; then bash scripts/tools/install-elasticmq.sh && bash scripts/tools/install-gofakes3.sh; fi
	python -m devstack

objects: venv ## what make run stored: the keys and the newest (KEY=<key>: that one); same LOCAL_AWS, ports as make run
	python -m devstack.objects $(KEY)

observe: venv ## make run plus a Prometheus scraping it with the alert rules (PROMETHEUS_PORT, default 9090); TRACING=jaeger adds Jaeger
	@command -v prometheus >/dev/null 2>&1 || bash scripts/tools/install-observability.sh
	@if [ "$${TRACING:-off}" = jaeger ]; then bash scripts/tools/install-jaeger.sh; fi
	@if [ "$${LOCAL_AWS:-moto}" = fast ]; then bash scripts/tools/install-elasticmq.sh && bash scripts/tools/install-gofakes3.sh; fi
	python -m observability.observe

bench: venv ## the benchmark table (docs/benchmarks.md): API and consumer beside their ceilings, e2e latency, overload
	@bash scripts/tools/install-elasticmq.sh && bash scripts/tools/install-gofakes3.sh && bash scripts/tools/install-bench.sh
	python -m bench $(BENCH_ARGS)

soak: venv ## 100k emails through the pipeline with faults injected; ends "acknowledged N, stored N, missing 0, duplicates 0"
	@bash scripts/tools/install-elasticmq.sh && bash scripts/tools/install-gofakes3.sh
	python scripts/soak.py $(SOAK_ARGS)

lock: venv ## regenerate requirements/*.lock from pyproject.toml, with hashes (uv.lock: the pinned uv's)
	uv pip compile pyproject.toml --extra dev --python-version 3.11 --generate-hashes -o requirements/dev.lock -q --no-build
	for x in api consumer; do uv pip compile pyproject.toml --extra $$x --python-version 3.11 --generate-hashes --no-build -c requirements/dev.lock -o requirements/$$x.lock -q; done
	sed -n 's/^\(uv==[^ ]*\).*/\1/p' requirements/uv.lock | uv pip compile - --python-version 3.11 --generate-hashes --no-build -o requirements/uv.lock -q
