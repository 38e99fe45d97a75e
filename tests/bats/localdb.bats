#!/usr/bin/env bats
# bin/localdb against its own throwaway cluster: a port of its own via the config override.

setup_file() {
  load helpers
  TILEQUEUE__postgresql__port=$(free_port)
  export TILEQUEUE__postgresql__port
  unset TILEQUEUE__postgresql__dbnames  # its own cluster, with the built-in database name (make test sets TEST_DB's)
  # A checkout path of its own, so the cluster does not touch the demo one.
  CHECKOUT=$(mktemp -d)
  export CHECKOUT
  checkout "$CHECKOUT"
}

# A checkout at DIR with bin/localdb, its config.yaml and the .venv.
checkout() {
  mkdir -p "$1/bin"
  cp "$TOP/bin/localdb" "$TOP/bin/lib.sh" "$1/bin/"
  cp "$TOP/config.yaml" "$1/"
  ln -s "$TOP/.venv" "$1/.venv"
}

teardown_file() {
  "$CHECKOUT/bin/localdb" stop || true
  rm -rf "/var/tmp/tilebatch-$(printf '%s' "$CHECKOUT" | md5sum | cut -c1-10)" "$CHECKOUT"
}

setup() { load helpers; }

@test "usage on no or unknown arguments" {
  run "$CHECKOUT/bin/localdb"
  assert_failure 2
  assert_output --partial "usage: bin/localdb start|stop|status|remove|url|psql"
  run "$CHECKOUT/bin/localdb" launch
  assert_failure 2
}

# url starts nothing: it is what the cluster would serve.
@test "the port and database come from CONFIG, by default the checkout's config.yaml" {
  unset TILEQUEUE__postgresql__port
  printf 'postgresql:\n  port: 54400\n  dbnames: [other]\n' >"$BATS_TEST_TMPDIR/other.yaml"
  CONFIG="$BATS_TEST_TMPDIR/other.yaml" run "$CHECKOUT/bin/localdb" url
  assert_success
  assert_output "postgresql://postgres@127.0.0.1:54400/other"

  checkout "$BATS_TEST_TMPDIR/checkout"
  sed -i 's/^  port: .*/  port: 54401/' "$BATS_TEST_TMPDIR/checkout/config.yaml"
  run "$BATS_TEST_TMPDIR/checkout/bin/localdb" url
  assert_success
  assert_output "postgresql://postgres@127.0.0.1:54401/gis"
}

@test "status is non-zero while down; start, start again, query, stop" {
  run "$CHECKOUT/bin/localdb" status
  assert_failure 1
  assert_output "localdb: not running"

  run "$CHECKOUT/bin/localdb" start
  assert_success
  assert_output --partial "started on 127.0.0.1:$TILEQUEUE__postgresql__port"

  run "$CHECKOUT/bin/localdb" start
  assert_success
  assert_output --partial "already running"

  run "$CHECKOUT/bin/localdb" status
  assert_success

  run "$CHECKOUT/bin/localdb" psql -qtA -c "select extname from pg_extension where extname in ('postgis', 'hstore') order by 1"
  assert_success
  assert_output $'hstore\npostgis'

  run "$CHECKOUT/bin/localdb" url
  assert_output "postgresql://postgres@127.0.0.1:$TILEQUEUE__postgresql__port/gis"

  run "$CHECKOUT/bin/localdb" stop
  assert_success
  run "$CHECKOUT/bin/localdb" status
  assert_failure 1
  run "$CHECKOUT/bin/localdb" stop
  assert_success
  assert_output --partial "not running"
}

@test "a port taken by another process is a clear error" {
  port=$(free_port)
  python3 -c 'import socket, sys, time; s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(); time.sleep(60)' "$port" &
  holder=$!
  for _ in $(seq 200); do  # until it listens (10 s at most)
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    kill -0 "$holder" || fail "the process holding port $port died"
    sleep 0.05
  done
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || fail "nothing listens on port $port after 10 s"
  TILEQUEUE__postgresql__port=$port run "$CHECKOUT/bin/localdb" start
  kill "$holder"
  assert_failure 2
  assert_output --partial "port $port on 127.0.0.1 is taken by another process"
}

@test "a cluster running on another port is not taken for the configured one's server" {
  run "$CHECKOUT/bin/localdb" start
  assert_success
  other=$(free_port)
  TILEQUEUE__postgresql__port=$other run "$CHECKOUT/bin/localdb" status
  assert_failure 1
  assert_output "localdb: not running on the configured port $other (this checkout's cluster runs on port $TILEQUEUE__postgresql__port)"
  # start would create the database and extensions in whatever answers there: it refuses.
  TILEQUEUE__postgresql__port=$other run "$CHECKOUT/bin/localdb" start
  assert_failure 2
  assert_output --partial "already runs on port $TILEQUEUE__postgresql__port, not on the configured $other"
  run "$CHECKOUT/bin/localdb" status
  assert_success
}

@test "remove stops the cluster and deletes it, not only the link to it" {
  run "$CHECKOUT/bin/localdb" start
  assert_success
  cluster=$(readlink -f "$CHECKOUT/.tilebatch/pg")
  [ -d "$cluster/data" ]
  run "$CHECKOUT/bin/localdb" remove
  assert_success
  [ ! -e "$cluster" ]
  [ "$(id -u)" -ne 0 ] || [ ! -e "$(dirname "$cluster")" ]  # as root, its keyed folder under /var/tmp goes too
  [ ! -L "$CHECKOUT/.tilebatch/pg" ]
  run "$CHECKOUT/bin/localdb" status
  assert_failure 1
}
