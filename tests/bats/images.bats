#!/usr/bin/env bats
# make image / push (docker/image.mk): no Docker engine runs here, so a docker
# on PATH records each call; the aws calls of push go to a moto server (ECR).

setup_file() {
  load helpers
  moto_start
}

teardown_file() {
  moto_stop
}

setup() {
  load helpers
  export PATH="$TOP/tests/bats/shims:$PATH"
  export DOCKER_LOG="$BATS_TEST_TMPDIR/docker.log"
  REG=123456789012.dkr.ecr.us-east-1.amazonaws.com
}

repository_exists() {
  aws ecr describe-repositories --repository-names "$1" >/dev/null 2>&1
}

@test "image builds the shared base, then the job image on it, from the repository top" {
  run make -s -C "$TOP/docker/rawr" image TAG=t1
  assert_success
  run cat "$DOCKER_LOG"
  assert_output "docker build -f $TOP/docker/base.Dockerfile -t tilebatch-base:t1 $TOP
docker build -f $TOP/docker/rawr/Dockerfile --build-arg BASE=tilebatch-base:t1 -t tilebatch-rawr:t1 $TOP"
}

@test "IMAGE names the image; TAG defaults to the checked-out commit" {
  run make -s -C "$TOP/docker/meta-low" image IMAGE=my-meta-low
  assert_success
  run cat "$DOCKER_LOG"
  assert_line --index 1 --regexp "^docker build -f $TOP/docker/meta-low/Dockerfile --build-arg BASE=tilebatch-base:([0-9a-f]{7,}(-dirty)?) -t my-meta-low:\\1 $TOP\$"
}

@test "push logs in to ECR, creates the repository once, tags and pushes" {
  run repository_exists tilebatch-meta-high
  assert_failure
  run make -s -C "$TOP/docker/meta-high" push REGISTRY="$REG" TAG=t1
  assert_success
  run cat "$DOCKER_LOG"
  assert_output "docker build -f $TOP/docker/base.Dockerfile -t tilebatch-base:t1 $TOP
docker build -f $TOP/docker/meta-high/Dockerfile --build-arg BASE=tilebatch-base:t1 -t tilebatch-meta-high:t1 $TOP
docker login --username AWS --password-stdin $REG <<< 123456789012-auth-token
docker tag tilebatch-meta-high:t1 $REG/tilebatch-meta-high:t1
docker push $REG/tilebatch-meta-high:t1"
  repository_exists tilebatch-meta-high

  # Again: the repository is there, so it is not created a second time (that would fail).
  run make -s -C "$TOP/docker/meta-high" push REGISTRY="$REG" TAG=t2
  assert_success
  run tail -n 1 "$DOCKER_LOG"
  assert_output "docker push $REG/tilebatch-meta-high:t2"
}

@test "push without REGISTRY stops with a clear message before building anything" {
  run make -s -C "$TOP/docker/rawr" push TAG=t1 REGISTRY=
  assert_failure
  assert_output --partial "REGISTRY is not set: give the account's ECR registry, e.g. make push REGISTRY=123456789012.dkr.ecr."
  [ ! -e "$DOCKER_LOG" ]
  run make -s -C "$TOP" push TAG=t1 REGISTRY=
  assert_failure
  assert_output --partial "REGISTRY is not set"
  [ ! -e "$DOCKER_LOG" ]
}

@test "a failed ECR login stops the push" {
  run env AWS_ACCESS_KEY_ID= AWS_SECRET_ACCESS_KEY= AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true \
    make -s -C "$TOP/docker/rawr" push REGISTRY="$REG" TAG=t1
  assert_failure
  run cat "$DOCKER_LOG"
  refute_output --partial "docker tag"
  refute_output --partial "docker push"
}

@test "make image and make push at the top do all three jobs" {
  run make -s -C "$TOP" image TAG=t3
  assert_success
  run grep -c -- "-t tilebatch-base:t3 " "$DOCKER_LOG"
  assert_output 3
  : >"$DOCKER_LOG"
  run make -s -C "$TOP" push REGISTRY="$REG" TAG=t3
  assert_success
  run grep "^docker push" "$DOCKER_LOG"
  assert_output "docker push $REG/tilebatch-rawr:t3
docker push $REG/tilebatch-meta-high:t3
docker push $REG/tilebatch-meta-low:t3"
  for repo in tilebatch-rawr tilebatch-meta-high tilebatch-meta-low; do
    repository_exists "$repo"
  done
}
