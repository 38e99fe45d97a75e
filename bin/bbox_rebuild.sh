#!/usr/bin/env bash
# Rebuilds every RAWR tile and metatile that touches a box, then re-runs what is
# missing until nothing is (tilebatch rebuild). Meant to run under nohup on an
# ops host; it writes a timestamped plain-text log and exits 0 only when the
# rebuild is complete.
set -euo pipefail

usage() {
  cat >&2 <<'USAGE'
usage: BBOX_WEST=W BBOX_SOUTH=S BBOX_EAST=E BBOX_NORTH=N bin/bbox_rebuild.sh
   or: BBOX=W,S,E,N bin/bbox_rebuild.sh
  e.g. BBOX_WEST=-123.57 BBOX_SOUTH=45.26 BBOX_EAST=-118.39 BBOX_NORTH=48.76 nohup bin/bbox_rebuild.sh &
optional: RUN_ID (default: a datestamp plus 'rebuild'), EXECUTOR=local|batch
  (default: batch when the config has a job queue), ATTEMPTS (3), CONFIG (config.yaml),
  LOG (default .tilebatch/logs/RUN_ID.log), PROGRESS_SECONDS (60)
USAGE
  exit 2
}
[ "$#" -eq 0 ] || usage

# shellcheck source=bin/lib.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lib.sh"
need_tilebatch

if [ -z "${BBOX:-}" ]; then
  unset_vars=()
  for var in BBOX_WEST BBOX_SOUTH BBOX_EAST BBOX_NORTH; do
    [ -n "${!var:-}" ] || unset_vars+=("$var")
  done
  if [ "${#unset_vars[@]}" -eq 4 ]; then
    echo "bbox_rebuild: no box: set BBOX_WEST, BBOX_SOUTH, BBOX_EAST and BBOX_NORTH (or BBOX=w,s,e,n)" >&2
    usage
  fi
  if [ "${#unset_vars[@]}" -gt 0 ]; then
    echo "bbox_rebuild: ${unset_vars[*]} not set" >&2
    exit 2
  fi
  BBOX="$BBOX_WEST,$BBOX_SOUTH,$BBOX_EAST,$BBOX_NORTH"
fi

run_id=${RUN_ID:-$(default_run_id rebuild)}
args=(rebuild --config "$config" --bbox="$BBOX" --run-id "$run_id"
      --attempts "${ATTEMPTS:-3}" --progress-seconds "${PROGRESS_SECONDS:-60}")
[ -z "${EXECUTOR:-}" ] || args+=(--executor "$EXECUTOR")

# Check the box and the settings before anything runs or any log is started.
"$tilebatch" "${args[@]}" --dry-run >/dev/null

log=${LOG:-$top/.tilebatch/logs/$run_id.log}
mkdir -p "$(dirname "$log")"
echo "bbox_rebuild: run $run_id, log $log" >&2

stamp() {
  while IFS= read -r line; do
    printf '%s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$line"
  done
}

status=0
"$tilebatch" "${args[@]}" 2>&1 | stamp >> "$log" || status=${PIPESTATUS[0]}
echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) bbox_rebuild: exit $status" >> "$log"
exit "$status"
