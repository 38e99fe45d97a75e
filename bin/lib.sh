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

# A run id for WHAT (rebuild, update) started without one, in the form rebuild.default_run_id gives.
default_run_id() {
  "$venv/bin/python" -c 'import sys; from tilebatch.rebuild import default_run_id; print(default_run_id(sys.argv[1]))' "$1"
}
