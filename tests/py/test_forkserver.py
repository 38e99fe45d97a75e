"""The job server (forkserver.py): a job forked from it runs as a spawned one would."""

import gc
import json
import os
import signal
import subprocess
import sys
import threading

import pytest

from tilebatch import forkserver, metatile, schema
from tilebatch.kinds import KINDS
from tilebatch.store import open_store
from tilebatch.tiles import Tile

from conftest import BIN, broken_install
from procs import alive, cmdline, wait_for


def tilebatch(*args) -> list[str]:
    return [str(BIN / "tilebatch"), *args]


def serving(server: forkserver.Server) -> forkserver.Job:
    """A job that runs until it is ended (the preview server), once it is under way."""
    cmd = tilebatch("serve", "--port", "0")
    job = server.start(cmd)
    wait_for("the job's title", lambda: cmdline(job.pid).strip() == " ".join(cmd))
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


def test_jobs_that_end_at_once_end_as_a_fresh_process_would(server):
    """argparse ends a process by SystemExit (--version: 0, a bad option: 2); many at once, so that some
    end before the runner has read their pid."""
    jobs = [server.start(tilebatch("--version" if i % 2 else "--no-such-option")) for i in range(20)]
    codes = [(job.communicate(), job.returncode)[1] for job in jobs]
    assert codes == [0 if i % 2 else 2 for i in range(20)]


def test_a_status_line_read_with_the_next_is_read_alone():
    """The pid and the exit status of a job that ended at once come through the pipe in one read."""
    stderr_r, stderr_w = os.pipe()
    status_r, status_w = os.pipe()
    os.write(status_w, b"4242\n2\n")
    for fd in (stderr_w, status_w):
        os.close(fd)
    job = forkserver.Job(stderr_r, status_r)
    assert job.pid == 4242
    job.communicate()
    assert job.returncode == 2


def test_a_job_is_a_process_group_of_its_own_shown_as_its_command_and_ends_by_a_signal(server):
    job = serving(server)
    assert os.getpgid(job.pid) == os.getsid(job.pid) == job.pid
    with open(f"/proc/{job.pid}/comm") as f:
        assert f.read().strip() == "tilebatch"
    assert job.poll() is None
    with pytest.raises(subprocess.TimeoutExpired):
        job.wait(0.1)
    os.killpg(job.pid, signal.SIGKILL)
    job.communicate()
    assert job.returncode == job.poll() == job.wait(0) == -signal.SIGKILL


def test_the_jobs_of_a_server_that_dies_are_ended_and_told_killed(server):
    job = serving(server)
    os.kill(server.pid, signal.SIGKILL)
    job.communicate()
    assert job.returncode == forkserver.LOST_CODE
    wait_for("the job to end with its server", lambda: not alive(job.pid))
    with pytest.raises(forkserver.ServerGone, match=r"the job server is gone \(killed by signal 9\)"):
        server.start(tilebatch("--version"))
    assert server.gone


def test_closing_the_server_ends_the_jobs_it_still_runs(server):
    job = serving(server)
    server.close()
    assert not server.alive
    wait_for("the job to end with its server", lambda: not alive(job.pid))


def test_a_server_that_cannot_start_is_gone_with_the_reason(monkeypatch):
    monkeypatch.setattr(sys, "executable", "/nonexistent/python3")
    with pytest.raises(forkserver.ServerGone, match="the job server cannot start: No such file or directory"):
        forkserver.Server()


@pytest.fixture
def broken_server(tmp_path, monkeypatch):
    """A server whose numpy does not import (an install broken ahead of the real one)."""
    monkeypatch.setenv("PYTHONPATH", broken_install(tmp_path, "numpy"))
    started = forkserver.Server()
    yield started
    started.close()


def test_a_server_that_fails_as_it_loads_the_job_code_says_why(broken_server):
    with pytest.raises(forkserver.ServerGone, match=r"the job server is gone \(the job server failed: "
                                                     r"ImportError: numpy is broken here\)"):
        broken_server.start(tilebatch("--version"))
    assert broken_server.gone and not broken_server.alive
    assert broken_server.why == "the job server failed: ImportError: numpy is broken here"


def test_a_job_of_a_kind_loaded_is_forked_while_the_rest_loads(tmp_path, monkeypatch):
    """rawr's code comes first and needs no shapely: its job is forked before the server goes on to load
    the rest (here a shapely that does not import, which ends the server); a meta-high job never is."""
    monkeypatch.setenv("PYTHONPATH", broken_install(tmp_path, "shapely"))
    started = forkserver.Server()
    try:
        early = started.start(tilebatch("rawr-tile", "--tile", "99/0/0", "--run-id", "early"))
        assert early.pid > 0
        with pytest.raises(forkserver.ServerGone, match="ImportError: shapely is broken here"):
            started.start(tilebatch("meta-tile", "--tile", "99/0/0", "--run-id", "late"))
        early.communicate()
    finally:
        started.close()


def test_threads_that_find_a_server_gone_at_once_all_hear_why(broken_server):
    """The runner's workers start jobs on one server side by side: each hears the same cause, whichever
    finds the server gone first, and none of them an error of another kind."""
    heard = []

    def start():
        try:
            broken_server.start(tilebatch("--version"))
        except forkserver.ServerGone as e:
            heard.append(str(e))

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert heard == ["the job server is gone (the job server failed: ImportError: numpy is broken here)"] * 4


@pytest.fixture
def own_schema(tmp_path, monkeypatch):
    """A configuration file naming a schema file of its own (a copy of Shortbread's), and a store."""
    own = tmp_path / "own.yaml"
    own.write_bytes(open(schema.schema_path("shortbread"), "rb").read())
    config_file = tmp_path / "config.yaml"
    config_file.write_text(f"schema:\n  name: {own}\n")
    monkeypatch.setenv("TILEQUEUE__store__url", f"file://{tmp_path}/out")
    return own, str(config_file)


def test_the_server_loads_the_schema_of_its_configuration_and_compiles_its_rules(own_schema, monkeypatch):
    """What each job would load and compile, the server has done once before it forks any."""
    own, config_file = own_schema
    monkeypatch.setattr(schema, "_CACHE", {})
    try:
        steps = list(forkserver._preload(config_file))
    finally:
        gc.unfreeze()
    assert steps == [{kind.command} for kind in KINDS]
    [(path, (_, loaded))] = schema._CACHE.items()
    assert path == str(own) and set(loaded.compiled) == set(loaded.tables)
    started = forkserver.Server(config_file)
    try:
        # What it was started with: /proc shows nothing while it execs, and its title once it runs.
        assert started._proc.args[-1] == config_file
    finally:
        started.close()


def test_a_job_reads_its_schema_as_the_file_is_now(own_schema):
    """The server loaded the schema as it started: a job forked after the file changed sees the change."""
    own, config_file = own_schema
    started = forkserver.Server(config_file)
    try:
        started.start(tilebatch("--version")).communicate()  # answered once the server has loaded it
        own.write_text("layers: [\n")
        job = started.start(tilebatch("meta-tile-low-zoom", "--config", config_file, "--tile", "0/0/0",
                                      "--run-id", "changed"))
        _, err = job.communicate()
    finally:
        started.close()
    assert job.returncode == 2
    assert json.loads(err.splitlines()[-1])["msg"].startswith(f"{own}:2: not valid YAML"), err


def test_a_configuration_that_does_not_load_is_left_to_the_jobs_to_report(tmp_path, monkeypatch):
    monkeypatch.setenv("TILEQUEUE__schema__name", "no-such-schema")
    monkeypatch.setenv("TILEQUEUE__store__url", f"file://{tmp_path}/out")
    started = forkserver.Server()
    try:
        job = started.start(tilebatch("meta-tile-low-zoom", "--tile", "0/0/0", "--run-id", "bad"))
        _, err = job.communicate()
        assert not started.gone
    finally:
        started.close()
    assert job.returncode == 2
    assert "schema.name 'no-such-schema': no built-in schema" in json.loads(err.splitlines()[-1])["msg"], err
