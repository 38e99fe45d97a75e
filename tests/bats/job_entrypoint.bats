#!/usr/bin/env bats
# docker/job-entrypoint without Docker, on a stand-in job: as PID 1 of a PID
# namespace of its own, as in a container, where unshare can make one (root),
# else as a plain child. tests/py/test_images.py runs it in the images.

setup() {
  load helpers
  # A job as tilebatch behaves: it keeps its log context and answers a signal
  # by exiting, here with codes of its own (3 for TERM, 4 for INT): 143 or 130
  # are also what an interrupted wait gives, so they could not tell the job's
  # status from the entrypoint's. Arguments: the file it creates once it runs,
  # its seconds, its exit status.
  job=$BATS_TEST_TMPDIR/job
  cat >"$job" <<'JOB'
#!/bin/sh
printf '{"run_id": "r1", "job": "rawr", "tile": "7/1/2"}' >"$TILEBATCH_LOG_CONTEXT"
trap 'kill "$sleeper"; echo "job: got TERM" >&2; exit 3' TERM
trap 'kill "$sleeper"; echo "job: got INT" >&2; exit 4' INT
sleep "$2" &
sleeper=$!
: >"$1"
wait "$sleeper"
exit "$3"
JOB
  chmod +x "$job"
  as_pid1=()
  if [ "$(id -u)" -eq 0 ] && unshare -pf --mount-proc true 2>/dev/null; then
    as_pid1=(unshare -pf --mount-proc)
  fi
}

# start SECONDS STATUS: the entrypoint running the job, in the background, once
# the job runs: $runner to wait for, $entrypoint its pid (here, outside the namespace).
# Started with SIGINT as a container starts it: not ignored, as bash's & would leave it.
start() {
  env --default-signal=INT "${as_pid1[@]}" "$TOP/docker/job-entrypoint" "$job" "$BATS_TEST_TMPDIR/running" "$@" \
    2>"$BATS_TEST_TMPDIR/stderr" 3>&- &
  runner=$!
  local tries=0
  until [ -e "$BATS_TEST_TMPDIR/running" ]; do
    [ "$((tries += 1))" -le 100 ] || fail "the job did not start"
    sleep 0.05
  done
  entrypoint=$runner
  [ "${#as_pid1[@]}" -eq 0 ] || entrypoint=$(ps -o pid= --ppid "$runner" | tr -d ' ')
}

# finish STATUS: the entrypoint ended with STATUS, and the last line it wrote is
# the resources line in the job's log context.
finish() {
  local status=0
  wait "$runner" || status=$?
  [ "$status" -eq "$1" ] || fail "exit $status, not $1: $(cat "$BATS_TEST_TMPDIR/stderr")"
  run jq -c '[.msg, .run_id, .tile, .peak_memory_kb > 0]' <<<"$(tail -n 1 "$BATS_TEST_TMPDIR/stderr")"
  assert_output '["process resources","r1","7/1/2",true]'
}

@test "the job's own exit status, then the resources line" {
  start 0 3
  finish 3
}

# Batch's SIGTERM on a timeout or a stop: without it passed on, PID 1 drops it.
@test "a SIGTERM reaches the job: its exit status, and the resources line still last" {
  start 20 0
  kill -TERM "$entrypoint"
  finish 3
  run grep -c "job: got TERM" "$BATS_TEST_TMPDIR/stderr"
  assert_output 1
}

@test "a SIGINT reaches the job: its exit status, and the resources line still last" {
  start 20 0
  kill -INT "$entrypoint"
  finish 4
  run grep -c "job: got INT" "$BATS_TEST_TMPDIR/stderr"
  assert_output 1
}

# `tilebatch rebuild --file -` in a container reads the tile list from its stdin.
@test "the job reads the entrypoint's standard input" {
  run bash -c 'printf "7/72/37\n" | "$1" sh -c "cat; exit 0" 2>/dev/null' _ "$TOP/docker/job-entrypoint"
  assert_success
  assert_output "7/72/37"
}
