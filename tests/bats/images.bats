#!/usr/bin/env bats
# What the image verbs refuse before they touch Docker. Building, pushing and
# running the images for real: tests/py/test_images.py.

setup() { load helpers; }

@test "push without REGISTRY stops with a clear message before building anything" {
  for dir in "$TOP/docker/rawr" "$TOP"; do
    run make -s -C "$dir" push TAG=t1 REGISTRY=
    assert_failure
    assert_output --partial "REGISTRY is not set: give the account's ECR registry, e.g. make push REGISTRY=123456789012.dkr.ecr."
    refute_output --partial "Step 1/"
  done
}

@test "bin/base-image and tests/docker-engine say how to call them" {
  run "$TOP/bin/base-image"
  assert_failure 2
  assert_output --partial "usage: bin/base-image IMAGE"
  run "$TOP/tests/docker-engine" restart
  assert_failure 2
  assert_output --partial "usage: tests/docker-engine start|stop"
}
