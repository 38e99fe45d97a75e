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
  python3 - "$AWS_ENDPOINT_URL" <<'PY'
import json, sys, time, urllib.request
url = sys.argv[1]
deadline = time.time() + 30
while True:
    try:
        urllib.request.urlopen(url + "/moto-api/", timeout=1).read()
        break
    except OSError:
        if time.time() > deadline:
            sys.exit("moto server did not start")
        time.sleep(0.2)
config = json.dumps({"batch": {"use_docker": False}}).encode()
urllib.request.urlopen(urllib.request.Request(url + "/moto-api/config", data=config, method="POST",
                                              headers={"Content-Type": "application/json"}), timeout=5).read()
PY
}

moto_stop() {
  kill "$(cat "$BATS_FILE_TMPDIR/moto.pid")"
}
