#!/usr/bin/env bats
# bin/bbox_rebuild.sh: its checks of the box, and a real local rebuild's log.

setup() {
  load helpers
  unset BBOX BBOX_WEST BBOX_SOUTH BBOX_EAST BBOX_NORTH RUN_ID EXECUTOR
  export TILEQUEUE__store__url="file://$BATS_TEST_TMPDIR/out"
  export TILEQUEUE__rawr__sink__url="file://$BATS_TEST_TMPDIR/rawr"
  export LOG="$BATS_TEST_TMPDIR/rebuild.log"
}

@test "no box at all: usage, exit 2" {
  run "$TOP/bin/bbox_rebuild.sh"
  assert_failure 2
  assert_output --partial "no box: set BBOX_WEST, BBOX_SOUTH, BBOX_EAST and BBOX_NORTH"
  assert_output --partial "usage: BBOX_WEST=W"
}

# The runbook installs it as /usr/local/bin/bbox_rebuild.sh: a symlink, from
# which lib.sh is not beside it.
@test "run through a symlink elsewhere it still finds lib.sh" {
  ln -s "$TOP/bin/bbox_rebuild.sh" "$BATS_TEST_TMPDIR/bbox_rebuild.sh"
  run "$BATS_TEST_TMPDIR/bbox_rebuild.sh"
  assert_failure 2
  assert_output --partial "no box: set BBOX_WEST"
}

@test "arguments are refused" {
  BBOX=1,2,3,4 run "$TOP/bin/bbox_rebuild.sh" now
  assert_failure 2
  assert_output --partial "usage:"
}

@test "a box with some variables missing names them" {
  BBOX_WEST=24.9 BBOX_NORTH=60.2 run "$TOP/bin/bbox_rebuild.sh"
  assert_failure 2
  assert_output "bbox_rebuild: BBOX_SOUTH BBOX_EAST not set"
}

bad_box() {
  run "$TOP/bin/bbox_rebuild.sh"
  assert_failure 2
  assert_output --partial "$1"
  [ ! -e "$LOG" ]
  [ ! -e "$BATS_TEST_TMPDIR/out" ]
}

@test "each bad box exits 2 with the reason and writes nothing" {
  BBOX=24.9,60.1,25.0 bad_box "expected four numbers west,south,east,north"
  BBOX_WEST=a BBOX_SOUTH=60.1 BBOX_EAST=25 BBOX_NORTH=60.2 bad_box "expected four numbers"
  BBOX=24.9,60.2,25.0,60.1 bad_box "south 60.2 must be less than north 60.1"
  BBOX=179,0,-179,1 bad_box "for a box across the antimeridian give two boxes"
  BBOX=-190,0,10,1 bad_box "west -190.0 is outside -180..180"
  BBOX=0,-95,10,1 bad_box "south -95.0 is outside -90..90"
  BBOX=0,0,inf,1 bad_box "every value must be a finite number"
}

@test "a bad executor or attempts exits 2" {
  BBOX=24.94,60.165,24.95,60.17 EXECUTOR=cloud run "$TOP/bin/bbox_rebuild.sh"
  assert_failure 2
  BBOX=24.94,60.165,24.95,60.17 EXECUTOR=batch run "$TOP/bin/bbox_rebuild.sh"
  assert_failure 2
  assert_output --partial "needs a job queue"
  [ ! -e "$LOG" ]
}

@test "a local rebuild inside Helsinki: exit 0 and a timestamped plain-text log with progress" {
  BBOX_WEST=24.94 BBOX_SOUTH=60.165 BBOX_EAST=24.95 BBOX_NORTH=60.17 EXECUTOR=local PROGRESS_SECONDS=0.1 \
    RUN_ID=bats-rebuild run "$TOP/bin/bbox_rebuild.sh"
  assert_success
  assert_output --partial "run bats-rebuild, log $LOG"
  run cat "$LOG"
  # every line starts with a UTC timestamp; nothing a terminal would interpret
  refute_line --regexp '^([^2]|2[^0-9])'
  run grep -cvE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z ' "$LOG"
  assert_output "0"
  run grep -c $'\e\\|\r' "$LOG"
  assert_output "0"
  run cat "$LOG"
  assert_line --regexp 'Z rebuild bats-rebuild: bbox 24.94,60.165,24.95,60.17: 1 rawr, 1 meta-high, 8 meta-low jobs, on local'
  assert_line --regexp 'Z progress: rawr [0-9]/1, meta-high [0-9]/1, meta-low [0-9]/8$'
  assert_line --regexp 'Z rebuild bats-rebuild: done in [0-9]+ s, nothing missing$'
  assert_line --regexp 'Z bbox_rebuild: exit 0$'
  [ -n "$(find "$BATS_TEST_TMPDIR/out/runs/bats-rebuild/meta-low" -name '*.json')" ]
}
