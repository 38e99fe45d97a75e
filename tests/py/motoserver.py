"""A moto server on a free 127.0.0.1 port speaking real AWS HTTP, Batch without Docker: pytest's and bats'.

conftest calls start() and stop(). bats starts the server itself (so that it
reaps it) and runs `python3 tests/py/motoserver.py URL` to wait for it and set
it up as start() does.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(env=None) -> tuple[str, subprocess.Popen]:
    """A running moto server: (its URL, its process)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = shutil.which("moto_server", path=os.path.dirname(sys.executable)) or "moto_server"
    proc = subprocess.Popen([server, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env={**os.environ, **(env or {})})
    ready(url, proc)
    return url, proc


def wait_until_answers(url: str, proc: subprocess.Popen | None = None, seconds: float = 30) -> bool:
    """Whether the HTTP server at `url` answered within `seconds` (False at once if `proc` ended)."""
    deadline = time.time() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return True
        except OSError:
            if time.time() > deadline or (proc is not None and proc.poll() is not None):
                return False
            time.sleep(0.2)


def ready(url: str, proc: subprocess.Popen | None = None) -> None:
    """Wait until the server at `url` answers, then have it run Batch jobs without Docker."""
    if not wait_until_answers(f"{url}/moto-api/", proc):
        if proc is not None:
            proc.kill()
        raise RuntimeError("moto server did not start")
    request = urllib.request.Request(f"{url}/moto-api/config", method="POST",
                                     data=json.dumps({"batch": {"use_docker": False}}).encode(),
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=5).read()


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(timeout=10)


if __name__ == "__main__":
    ready(sys.argv[1])
