# Builds and pushes one job image; docker/<job>/Makefile sets JOB and IMAGE and
# includes this. Every variable has its default in config.mk:
#   make image                   build the shared base image on BASE_IMAGE, then the job image IMAGE:TAG
#   make push REGISTRY=<ECR>     build, log in to ECR, create the repository if missing, tag, push
TOP := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))..)
include $(TOP)/config.mk

SHELL := /bin/bash
# pipefail: a failed `aws ecr get-login-password` must fail the login it feeds.
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := image
.PHONY: image push

# Expanded once: the default runs git, and a commit half-way must not change it.
TAG := $(TAG)
SHARED_IMAGE = $(IMAGE_PREFIX)-base:$(TAG)
REMOTE     = $(REGISTRY)/$(IMAGE):$(TAG)

# Checked before anything is built, so a push cannot half-happen for want of it.
ifneq ($(filter push,$(MAKECMDGOALS)),)
ifeq ($(strip $(REGISTRY)),)
$(error REGISTRY is not set: give the account's ECR registry, e.g. make push REGISTRY=123456789012.dkr.ecr.$(REGION).amazonaws.com)
endif
endif

BUILD = docker build --force-rm $(if $(BUILD_NETWORK),--network $(BUILD_NETWORK))

# The context is the repository top: the base image copies py/ and config.yaml.
image:
	$(BUILD) -f $(TOP)/docker/base.Dockerfile --build-arg BASE_IMAGE=$(BASE_IMAGE) -t $(SHARED_IMAGE) $(TOP)
	$(BUILD) -f $(TOP)/docker/$(JOB)/Dockerfile --build-arg BASE=$(SHARED_IMAGE) -t $(IMAGE):$(TAG) $(TOP)
	docker image ls --format 'image: {{.Repository}}:{{.Tag}} {{.Size}}' $(IMAGE):$(TAG)

push: image
	aws ecr get-login-password --region $(REGION) | docker login --username AWS --password-stdin $(REGISTRY)
	aws ecr describe-repositories --region $(REGION) --repository-names $(IMAGE) >/dev/null 2>&1 \
	  || aws ecr create-repository --region $(REGION) --repository-name $(IMAGE) >/dev/null
	docker tag $(IMAGE):$(TAG) $(REMOTE)
	docker push $(REMOTE)
