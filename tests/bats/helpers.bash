# Loaded by every bats file: assertions, and the project's paths.
load /usr/lib/bats/bats-support/load.bash
load /usr/lib/bats/bats-assert/load.bash

TOP=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
export TOP
export PATH="$TOP/.venv/bin:$PATH"

# The job kinds: one job definition each.
kinds() {
  local f
  for f in "$TOP"/jobdefs/*.json; do basename "$f" .json; done
}

# A port nobody listens on.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# A moto server on a free 127.0.0.1 port for one file's tests: call moto_start
# in setup_file and moto_stop in teardown_file. It exports the AWS_* variables
# that point the aws CLI and boto3 at it, and runs Batch without Docker.
moto_start() {
  local port
  port=$(free_port)
  export AWS_ENDPOINT_URL=http://127.0.0.1:$port AWS_DEFAULT_REGION=us-east-1
  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
  # fd 3 closed: bats would otherwise wait for the server to exit.
  moto_server -H 127.0.0.1 -p "$port" >"$BATS_FILE_TMPDIR/moto.log" 2>&1 3>&- &
  echo "$!" >"$BATS_FILE_TMPDIR/moto.pid"
  python3 "$TOP/tests/py/motoserver.py" "$AWS_ENDPOINT_URL"  # waits for it and sets it up, as pytest does
}

moto_stop() {
  kill "$(cat "$BATS_FILE_TMPDIR/moto.pid")"
}
