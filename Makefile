# Emporium: every verb a newcomer needs. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PACKAGES := libs/kit libs/testkit services/users services/ops services/catalog services/gateway stand-ins/mailsink stand-ins/rates
PYPROJECTS := $(wildcard $(addsuffix /pyproject.toml,$(PACKAGES)))
SERVICES_WITH_DB := users ops catalog
SEED_PRODUCTS ?= 100000


.PHONY: help install check-deps migrate run test lint fmt openapi bench seed clean

help: ## List the make targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  \033[1m%-12s\033[0m %s\n", $$1, $$2}'

$(STAMP): constraints.txt requirements-dev.txt $(PYPROJECTS)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -r requirements-dev.txt \
		$(addprefix -e ,$(dir $(PYPROJECTS)))
	@touch $@

install: $(STAMP) ## Create .venv and install the pinned dependencies

check-deps: $(STAMP) ## Check that PostgreSQL, Redis and RabbitMQ answer
	@$(BIN)/python scripts/check_dependencies.py

migrate: check-deps ## Create each service's database if missing and run its migrations
	@$(BIN)/python scripts/migrate.py

run: migrate ## Start the whole system in the foreground (Ctrl-C stops it)
	@$(BIN)/honcho start -f Procfile

test: migrate ## Run every test: unit, integration, API, e2e, schemathesis
	@bash scripts/ensure_chromium.sh
	$(BIN)/pytest -n 2 --dist loadfile

lint: migrate ## ruff, mypy --strict, import-linter, alembic check (on migrated databases), OpenAPI drift
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy -p emporium_kit -p emporium_testkit -p users -p ops -p catalog -p gateway -p mailsink -p fxstandin
	$(BIN)/mypy scripts bench
	$(BIN)/lint-imports
	@for svc in $(SERVICES_WITH_DB); do (cd services/$$svc && ../../$(BIN)/alembic check) || exit 1; done
	$(BIN)/python scripts/openapi.py --check

fmt: $(STAMP) ## Format and autofix the code
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

openapi: $(STAMP) ## Regenerate the committed OpenAPI documents
	$(BIN)/python scripts/openapi.py

seed: migrate ## Load a deterministic demo catalogue (SEED_PRODUCTS=100000) with COPY; idempotent
	@$(BIN)/python scripts/seed_catalog.py --products $(SEED_PRODUCTS)

bench: migrate ## Run the benchmarks and print the tables (docs/performance.md)
	@bash bench/run.sh

clean: ## Remove the virtualenv and caches
	rm -rf $(VENV) .mypy_cache .ruff_cache
