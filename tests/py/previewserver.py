"""`tilebatch serve` run as a user runs it, in the background of a test."""

import contextlib
import http.client
import json
import os
import re
import socket
import subprocess
import tempfile

from conftest import BIN, TOP
from motoserver import free_port


class Running:
    """A started server: its port, and what it logged once stopped."""

    def __init__(self, port: int, proc):
        self.port, self.proc = port, proc
        self.stderr = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, method: str = "GET") -> tuple[int, dict, bytes]:
        """(status, headers, body) for `path` sent exactly as written (no normalising of dots or escapes)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.putrequest(method, path, skip_accept_encoding=True)
            conn.endheaders()
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def raw(self, request: bytes) -> int:
        """The status answering a request sent byte for byte, however malformed.

        To a request line it cannot parse, http.server answers as HTTP/0.9
        would: no status line, only a page saying the code.
        """
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as sock:
            sock.sendall(request)
            answer = sock.makefile("rb")
            first = answer.readline()
            m = re.match(rb"HTTP/1\.[01] (\d{3}) ", first) or re.search(rb"Error code: (\d{3})", answer.read())
        assert m, first
        return int(m.group(1))

    def json(self, path: str) -> dict:
        status, _, body = self.get(path)
        assert status == 200, (path, status, body)
        return json.loads(body)


@contextlib.contextmanager
def serving(env: dict, *args):
    """Start `tilebatch serve` over the store `env` points at; stop it afterwards."""
    port = free_port()
    # stderr to a file: a pipe nobody reads until the end could fill up and stall the server.
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen([str(BIN / "tilebatch"), "serve", "--config", str(TOP / "config.yaml"),
                                 "--port", str(port), *args],
                                env={**os.environ, **env}, cwd=TOP, text=True, stdout=subprocess.PIPE, stderr=log)
        server = Running(port, proc)
        try:
            if not proc.stdout.readline().startswith("preview: "):  # printed once it listens
                proc.wait(timeout=10)
                log.seek(0)
                raise AssertionError(f"tilebatch serve did not start:\n{log.read()}")
            yield server
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            proc.stdout.close()
            log.seek(0)
            server.stderr = log.read()

