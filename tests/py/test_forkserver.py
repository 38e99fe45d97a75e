"""The job server (forkserver.py): a job forked from it runs as a spawned one would."""

import json
import os
import signal
import subprocess
import time

import pytest

from tilebatch import forkserver, metatile
from tilebatch.store import open_store
from tilebatch.tiles import Tile

from conftest import BIN


def tilebatch(*args) -> list[str]:
    return [str(BIN / "tilebatch"), *args]


def gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def wait_until(what: str, probe, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, f"waited {timeout} s for {what}"
        time.sleep(0.05)


def serving(server: forkserver.Server, tmp_path) -> forkserver.Job:
    """A job that runs until it is ended (the preview server), once it is under way."""
    cmd = tilebatch("serve", "--port", "0")
    job = server.start(cmd)

    def titled():
        with open(f"/proc/{job.pid}/cmdline") as f:
            return f.read().rstrip("\0") == " ".join(cmd)
    wait_until("the job's title", titled)
    return job


@pytest.fixture
def server(tmp_path, monkeypatch):
    """A job server whose jobs see a store of one (empty) metatile: enough for the preview to serve."""
    store = open_store(f"file://{tmp_path}/out")
    store.write(metatile.key(store, Tile(0, 0, 0)), metatile.pack({}))
    monkeypatch.setenv("TILEQUEUE__store__url", store.url)
    started = forkserver.Server()
    yield started
    started.close()


def test_a_job_ends_with_its_exit_code_and_its_own_stderr(server):
    job = server.start(tilebatch("meta-tile-low-zoom", "--tile", "99/0/0", "--run-id", "forked"))
    _, err = job.communicate()
    assert job.returncode == 2
    [line] = err.splitlines()
    entry = json.loads(line)
    assert entry["level"] == "error" and "99/0/0" in entry["msg"], entry


def test_a_job_is_a_process_group_of_its_own_shown_as_its_command_and_ends_by_a_signal(server, tmp_path):
    job = serving(server, tmp_path)
    assert os.getpgid(job.pid) == os.getsid(job.pid) == job.pid
    with open(f"/proc/{job.pid}/comm") as f:
        assert f.read().strip() == "tilebatch"
    assert job.poll() is None
    with pytest.raises(subprocess.TimeoutExpired):
        job.wait(0.1)
    os.killpg(job.pid, signal.SIGKILL)
    job.communicate()
    assert job.returncode == job.poll() == job.wait(0) == -signal.SIGKILL


def test_the_jobs_of_a_server_that_dies_are_ended_and_told_killed(server, tmp_path):
    job = serving(server, tmp_path)
    os.kill(server.pid, signal.SIGKILL)
    job.communicate()
    assert job.returncode == forkserver.LOST_CODE
    wait_until("the job to end with its server", lambda: gone(job.pid))
    wait_until("the server to be reaped", lambda: not server.alive)
    with pytest.raises(ChildProcessError, match="the job server is gone"):
        server.start(tilebatch("config", "show"))


def test_closing_the_server_ends_the_jobs_it_still_runs(server, tmp_path):
    job = serving(server, tmp_path)
    server.close()
    assert not server.alive
    wait_until("the job to end with its server", lambda: gone(job.pid))
