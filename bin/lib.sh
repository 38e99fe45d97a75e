# shellcheck shell=bash
# Sourced by the bin/ scripts: where the checkout and its virtualenv are, the
# tilebatch command in it, and how work started without a run id names its run.

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${VENV:-$top/.venv}
tilebatch=${TILEBATCH:-$venv/bin/tilebatch}

# The command, before anything runs: a clear line and exit 2 when it is not installed.
need_tilebatch() {
  [ -x "$tilebatch" ] || { echo "${0##*/}: $tilebatch is missing; run 'make setup' first" >&2; exit 2; }
}

# A run id for WHAT (rebuild, update) started without one: the UTC time and WHAT, e.g. 20261124-153000-rebuild.
default_run_id() {
  printf '%s-%s\n' "$(date -u +%Y%m%d-%H%M%S)" "$1"
}
