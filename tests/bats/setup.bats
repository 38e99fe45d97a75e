#!/usr/bin/env bats

setup() { load helpers; }

@test "bin/setup is quiet when everything is installed" {
  run "$TOP/bin/setup"
  assert_success
  assert_output ""
}

@test "bin/setup refuses arguments" {
  run "$TOP/bin/setup" --now
  assert_failure 2
  assert_output --partial "usage: bin/setup"
}

@test "make help lists every verb with one line" {
  run make -C "$TOP" --no-print-directory
  assert_success
  assert_line --regexp '^  make test +run every test'
  assert_line --regexp '^  make demo +'
}
