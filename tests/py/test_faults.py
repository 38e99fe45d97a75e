"""Failures injected for real, and what each must give: the exit code Batch acts on, one JSON error
line that says what went wrong, output intact, nothing left behind, and a re-run that recovers.

The parts are the real ones: the local PostGIS stopped and restarted (or its table locked so a
query waits, then the server stopped under it), a moto server stopped or frozen with SIGSTOP, a
small tmpfs for a full disk, and kill -9 of the runner and of a job. The slow cases carry the
`faults` marker (`pytest -m "not faults"` leaves them out; `make test` runs them all).
"""

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import time
import zipfile

import psycopg2
import pytest

from tilebatch import batch, cli, config, forkserver, local, metatile, oom, rawrtile, runs
from tilebatch.errors import JobFailed
from tilebatch.store import STALE_TEMP_SECONDS, TEMP_PREFIX, FileStore, S3Store, open_store
from tilebatch.tiles import Tile, ancestor, bbox_tiles, metatile_members, parse_bbox

import motoserver
import smallstore
from conftest import BIN, TOP, broken_install, build_env, metatiles, run_cli
from motoserver import free_port
from procs import alive, children, cmdline, descendants, wait_for

HELSINKI = Tile(72, 37, 7)
CONFIG = str(TOP / "config.yaml")
faults = pytest.mark.faults


# --- what every failure must give -------------------------------------------------------------

def log_lines(stderr: str) -> list[dict]:
    """Every line of stderr, each of which must be a JSON object: never a traceback."""
    assert "Traceback" not in stderr
    lines = [json.loads(line) for line in stderr.splitlines()]
    assert all(isinstance(line, dict) for line in lines)
    return lines


def errors(stderr: str) -> list[dict]:
    return [line for line in log_lines(stderr) if line["level"] == "error"]


def one_error(proc, code: int, *texts: str) -> dict:
    """A job's failure: exit `code`, exactly one error line, saying each of `texts`."""
    assert proc.returncode == code, proc.stderr[-3000:]
    [error] = errors(proc.stderr)
    for text in texts:
        assert text in error["msg"], error
    assert error["exit_code"] == code
    return error


def assert_intact(*roots) -> None:
    """No temporary file left, and every zip there opens whole."""
    for root in roots:
        for folder, _, files in os.walk(root):
            for name in files:
                assert not name.startswith(TEMP_PREFIX), os.path.join(folder, name)
                if name.endswith(".zip"):
                    with zipfile.ZipFile(os.path.join(folder, name)) as z:
                        assert z.testzip() is None


def aged(path) -> None:
    """A file made older than a sweep spares (younger ones might be another writer's)."""
    old = time.time() - STALE_TEMP_SECONDS - 60
    os.utime(path, (old, old))


def age_killed_writes(root) -> None:
    """Make the temporary files that writes killed half-way left old, as if the rerun came hours later:
    its sweep must take them."""
    for folder, _, files in os.walk(root):
        for name in files:
            if name.startswith(TEMP_PREFIX):
                aged(os.path.join(folder, name))


def job(command: str, env: dict, tile: Tile = HELSINKI, run_id: str = "faults"):
    return run_cli(command, "--config", CONFIG, "--tile", f"{tile.z}/{tile.x}/{tile.y}", "--run-id", run_id,
                   env=env)


def copy_build(built_store, tmp_path) -> dict:
    """A copy of the session's build (metatiles, records and RAWR tiles) to damage: env pointing at it."""
    root, _ = built_store
    shutil.copytree(root / "out", tmp_path / "out")
    shutil.copytree(root / "rawr", tmp_path / "rawr")
    return build_env(tmp_path)


def job_child(runner, command: str):
    """The pid of the runner's running job `command`, once there is one (a child of its job server).
    Looked for often: a small job may be over in a few hundredths of a second, and the tests hold it."""
    return wait_for(f"a {command} job", lambda: next(
        (pid for pid in descendants(runner.pid) if f" {command} " in cmdline(pid)), None), every=0.005)


def job_server(runner) -> int:
    """The pid of the runner's job server (forkserver.py)."""
    return wait_for("the job server", lambda: next(
        (pid for pid in children(runner.pid) if cmdline(pid).strip() == forkserver.TITLE), None))


def start_build(env: dict, *args) -> subprocess.Popen:
    return subprocess.Popen([str(BIN / "tilebatch"), "build", "--config", CONFIG, *args], cwd=TOP, text=True,
                            env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def localdb(action: str) -> None:
    subprocess.run([str(TOP / "bin/localdb"), action], check=True, capture_output=True)


@contextlib.contextmanager
def database_stopped():
    """The local PostGIS stopped for the block, started again whatever happens."""
    localdb("stop")
    try:
        yield
    finally:
        localdb("start")


@contextlib.contextmanager
def tmpfs(path, size: str):
    """A tmpfs of `size` mounted at `path`: a disk that fills up for real."""
    os.makedirs(path, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"a full disk needs a tmpfs, and mount says: {mounted.stderr.strip()} (run as root)")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


# --- the database ------------------------------------------------------------------------------

@faults
def test_a_database_down_is_an_outage_and_a_restart_recovers(built_store, tmp_path):
    root, _ = built_store
    env = build_env(tmp_path)
    with database_stopped():
        for command in ("meta-tile-low-zoom", "rawr-tile"):
            one_error(job(command, env), 1, "cannot connect to the database", "Connection refused")
        proc = run_cli("build", "--config", CONFIG, "--run-id", "faults", env=env)
        one_error(proc, 1, "cannot connect to the database")
        assert metatiles(tmp_path) == {} and not os.path.exists(tmp_path / "out" / "runs" / "faults" / "rawr")
    assert job("meta-tile-low-zoom", env).returncode == 0
    got = metatiles(tmp_path / "out")
    assert got and all(got[k] == v for k, v in metatiles(root / "out").items() if k in got)


@faults
def test_the_database_stopped_under_a_waiting_query_is_an_outage(db_url, tmp_path):
    env = build_env(tmp_path)
    holder, watcher = psycopg2.connect(db_url), psycopg2.connect(db_url)
    watcher.autocommit = True  # a transaction would see one snapshot of pg_stat_activity
    try:
        with holder.cursor() as cur, watcher.cursor() as watch:
            cur.execute("LOCK TABLE planet_osm_polygon IN ACCESS EXCLUSIVE MODE")
            proc = subprocess.Popen([str(BIN / "tilebatch"), "meta-tile-low-zoom", "--config", CONFIG,
                                     "--tile", "7/72/37", "--run-id", "faults"], cwd=TOP, text=True,
                                    env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

            def waiting():
                watch.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'tilebatch' "
                              "AND wait_event_type = 'Lock'")
                return watch.fetchone()[0]

            wait_for("the job's query to wait for the lock", waiting)
            with database_stopped():
                out, err = proc.communicate(timeout=120)
    finally:
        holder.close()
        watcher.close()
    one_error(subprocess.CompletedProcess(proc.args, proc.returncode, out, err), 1,
              "database query on planet_osm_polygon failed")
    assert not os.path.exists(tmp_path / "out" / "runs" / "faults" / "meta-low")
    assert metatiles(tmp_path / "out") == {}


@faults
def test_a_statement_timeout_is_an_outage_not_bad_input(db_url, tmp_path):
    """A role whose statements time out at once: the data's extent and a job's queries both fail, exit 1."""
    admin = psycopg2.connect(db_url)
    admin.autocommit = True
    drop_role(admin)
    try:
        with admin.cursor() as cur:
            cur.execute("CREATE ROLE tilebatch_hurried LOGIN")
            cur.execute("ALTER ROLE tilebatch_hurried SET statement_timeout = '1ms'")
            cur.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO tilebatch_hurried")
        env = {**build_env(tmp_path), "TILEQUEUE__postgresql__user": "tilebatch_hurried"}
        proc = run_cli("build", "--config", CONFIG, "--run-id", "faults", env=env)
        one_error(proc, 1, "cannot find the data's extent", "statement timeout")
        one_error(job("meta-tile-low-zoom", env), 1, "statement timeout")
    finally:
        drop_role(admin)
        admin.close()


def drop_role(admin) -> None:
    with admin.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = 'tilebatch_hurried'")
        if cur.fetchone():
            cur.execute("DROP OWNED BY tilebatch_hurried")
            cur.execute("DROP ROLE tilebatch_hurried")


# --- S3 and Batch ------------------------------------------------------------------------------

AWS_TESTING = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
# A frozen endpoint is given up on in seconds, not after the default 5 attempts of 60.
QUICK_AWS = {"TILEQUEUE__aws__read_timeout": "2", "TILEQUEUE__aws__connect_timeout": "2",
             "TILEQUEUE__aws__max_attempts": "1"}


def create_bucket(url: str) -> None:
    import boto3

    boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing",
                 aws_secret_access_key="testing").create_bucket(Bucket="tiles")


@faults
def test_s3_stopped_or_frozen_is_an_outage_and_a_thawed_one_gets_the_same_tiles(built_store, tmp_path, monkeypatch):
    root, _ = built_store
    for name, value in AWS_TESTING.items():
        monkeypatch.setenv(name, value)
    quick = {**QUICK_AWS, "TILEQUEUE__store__url": "s3://tiles/meta",
             "TILEQUEUE__rawr__source__url": f"file://{root}/rawr", "TILEQUEUE__rawr__sink__url": f"file://{tmp_path}/rawr"}

    # Stopped: nothing listens.
    stopped = {**quick, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}
    one_error(job("meta-tile", stopped), 1, "store s3://tiles/meta", "Could not connect to the endpoint URL")
    one_error(run_cli("status", "--config", CONFIG, "--run-id", "faults", env=stopped), 1,
              "Could not connect to the endpoint URL")

    url, moto = motoserver.start()
    env = {**quick, "AWS_ENDPOINT_URL": url}
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    try:
        create_bucket(url)
        # Frozen: connections open, nothing answers.
        os.kill(moto.pid, signal.SIGSTOP)
        try:
            one_error(job("meta-tile", env), 1, "store s3://tiles/meta", "Read timeout")
        finally:
            os.kill(moto.pid, signal.SIGCONT)

        # Thawed, the same job writes the same metatiles the file build has.
        assert job("meta-tile", env).returncode == 0
        s3 = open_store("s3://tiles/meta")
        files = open_store(f"file://{root}/out")
        built = [k for k in files.list() if k.endswith(".zip") and not k.startswith("runs/") and int(k.split("/")[0]) >= 10]
        assert built
        for key in built:
            z, x, y = (int(v) for v in key[:-4].split("/"))
            assert s3.read(s3.tile_key(Tile(x, y, z), "zip")) == files.read(key)
    finally:
        motoserver.stop(moto)


@faults
def test_a_store_gone_mid_build_still_says_which_job_failed_and_why(db_url, tmp_path):
    """The store freezes once the runner has written its lists and started a job: the job fails, its
    failure record cannot be written, and the log still names the job and its reason first."""
    url, moto = motoserver.start()
    env = {**QUICK_AWS, **AWS_TESTING, "AWS_ENDPOINT_URL": url, "TILEQUEUE__store__url": "s3://tiles/meta",
           "TILEQUEUE__rawr__sink__url": f"file://{tmp_path}/rawr"}
    try:
        create_bucket(url)
        runner = start_build(env, "--bbox", "24.94,60.16,24.95,60.17", "--run-id", "gone", "--jobs", "1")
        job_child(runner, "rawr-tile")
        os.kill(moto.pid, signal.SIGSTOP)
        try:
            _, err = runner.communicate(timeout=300)
        finally:
            os.kill(moto.pid, signal.SIGCONT)
    finally:
        motoserver.stop(moto)
    assert runner.returncode == 1, err[-3000:]
    lines = log_lines(err)
    failed = [i for i, line in enumerate(lines) if line["msg"] == "job failed"]
    assert failed, err[-3000:]
    first = lines[failed[0]]
    assert (first["failed_job"], first["failed_tile"]) == ("rawr", "7/72/37")
    assert "Read timeout" in first["reason"] and first["out_of_memory"] is False
    unrecorded = [i for i, line in enumerate(lines) if line["msg"] == "cannot record the job's failure"]
    assert unrecorded and failed[0] < unrecorded[0]
    assert lines[-1]["level"] == "error" and lines[-1]["msg"].startswith("store s3://tiles/meta")


def test_batch_throttling_and_5xx_are_worth_a_retry_and_a_refusal_is_not():
    from botocore.exceptions import ClientError

    def answer(code: str, status: int):
        def call():
            raise ClientError({"Error": {"Code": code, "Message": "as AWS says it"},
                               "ResponseMetadata": {"HTTPStatusCode": status}}, "SubmitJob")
        return call

    for code, status in (("TooManyRequestsException", 429), ("ThrottlingException", 400), ("ServerException", 500),
                         ("ServiceUnavailable", 503)):
        with pytest.raises(JobFailed, match=f"submit x: {code}"):
            batch.call("submit x", answer(code, status))
    for code in ("ClientException", "AccessDeniedException"):
        with pytest.raises(Exception, match=code) as e:
            batch.call("submit x", answer(code, 400))
        assert e.value.exit_code == 2


def test_batch_unreachable_is_an_outage():
    """Nothing answers at the endpoint, S3's included: the queue check fails first, before anything is written."""
    env = {**AWS_TESTING, **QUICK_AWS, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",
           "TILEQUEUE__batch__job_queue": "q", "TILEQUEUE__store__url": "s3://tiles"}
    proc = run_cli("batch-enqueue", "--config", CONFIG, "--job", "rawr", "--tile", "7/72/37", "--run-id", "r1", env=env)
    one_error(proc, 1, "job queue q", "Could not connect to the endpoint URL")


# --- a full disk -------------------------------------------------------------------------------

@faults
def test_a_full_disk_is_an_outage_that_leaves_nothing_half_written(built_store, tmp_path):
    root, _ = built_store
    with tmpfs(tmp_path / "disk", "256k") as disk:
        env = {"TILEQUEUE__store__url": f"file://{disk}/out", "TILEQUEUE__rawr__source__url": f"file://{root}/rawr"}
        proc = job("meta-tile", env)
        one_error(proc, 1, f"store file://{disk}/out: cannot write", "No space left on device")
        assert_intact(disk)
        assert not os.path.exists(disk / "out" / "runs" / "faults" / "meta-high")

        subprocess.run(["mount", "-o", "remount,size=16m", str(disk)], check=True)
        assert job("meta-tile", env).returncode == 0
        got = metatiles(disk / "out")
        assert got == {k: v for k, v in metatiles(root / "out").items() if int(k.split("/")[0]) >= 10}
        assert_intact(disk)


@faults
def test_a_read_only_store_is_bad_input(built_store, tmp_path):
    root, _ = built_store
    with tmpfs(tmp_path / "disk", "1m") as disk:
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        env = {"TILEQUEUE__store__url": f"file://{disk}/out", "TILEQUEUE__rawr__source__url": f"file://{root}/rawr"}
        one_error(job("meta-tile", env), 2, f"store file://{disk}/out: cannot write", "Read-only file system")


@faults
def test_export_onto_a_full_disk_is_an_outage_and_leaves_nothing(built_store, tmp_path):
    _, env = built_store
    with tmpfs(tmp_path / "disk", "64k") as disk:
        for name in ("tiles.pmtiles", "tiles.mbtiles"):
            proc = run_cli("export", "--config", CONFIG, disk / name, env=env)
            one_error(proc, 1, f"cannot export to {disk / name}")
            assert os.listdir(disk) == []


# --- kill -9, SIGTERM, and what killed writes leave --------------------------------------------

@faults
def test_a_job_killed_by_hand_is_not_out_of_memory_and_a_rerun_clears_its_failure(built_store, tmp_path):
    root, _ = built_store
    env = copy_build(built_store, tmp_path)
    store = open_store(f"file://{tmp_path}/out")
    store.delete("runs/test-build/meta-low/7/72/37.json")
    runner = start_build(env, "--run-id", "test-build", "--jobs", "1")
    os.kill(job_child(runner, "meta-tile-low-zoom"), signal.SIGKILL)
    _, err = runner.communicate(timeout=300)
    assert runner.returncode == 1
    [failed] = [line for line in log_lines(err) if line["msg"] == "job failed"]
    assert (failed["exit_code"], failed["out_of_memory"], failed["reason"]) == (-9, False, "killed")
    assert runs.failures(store, "test-build", "meta-low") == {HELSINKI: runs.Failure(-9, False, None)}
    missing = run_cli("missing", "--config", CONFIG, "--run-id", "test-build", env=env)
    assert missing.stdout == "meta-low 7/72/37  # failed, exit -9\n"

    age_killed_writes(tmp_path)
    proc = run_cli("build", "--config", CONFIG, "--run-id", "test-build", env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert runs.failures(store, "test-build", "meta-low") == {}
    assert metatiles(tmp_path / "out") == metatiles(root / "out")
    assert_intact(tmp_path)


@faults
def test_a_job_killed_after_writing_its_record_is_done(built_store, tmp_path):
    root, _ = built_store
    env = copy_build(built_store, tmp_path)
    store = open_store(f"file://{tmp_path}/out")
    key = "runs/test-build/meta-low/7/72/37.json"
    record = store.read(key)
    store.delete(key)
    runner = start_build(env, "--run-id", "test-build", "--jobs", "1")
    pid = job_child(runner, "meta-tile-low-zoom")
    os.kill(pid, signal.SIGSTOP)
    store.write(key, record)  # as if the job had got that far
    os.kill(pid, signal.SIGKILL)
    _, err = runner.communicate(timeout=300)
    assert runner.returncode == 0, err[-3000:]
    assert "job ended badly after writing its completion record: done" in [line["msg"] for line in log_lines(err)]
    assert runs.failures(store, "test-build", "meta-low") == {}
    assert list(store.list("runs/test-build/failures/")) == []


@faults
def test_a_process_of_several_jobs_killed_half_way_keeps_those_it_recorded(built_store, tmp_path):
    """A box's low-zoom meta-low jobs run in one process: killed after its first job, that one is done,
    the one it was doing failed, those after it are missing; a rerun does just those."""
    root, _ = built_store
    env = copy_build(built_store, tmp_path)
    store = open_store(f"file://{tmp_path}/out")
    low = [ancestor(HELSINKI, z) for z in range(7)]
    key = {t: f"runs/test-build/meta-low/{t.z}/{t.x}/{t.y}.json" for t in low}
    for t in low:
        store.delete(key[t])
    runner = start_build(env, "--run-id", "test-build", "--jobs", "1")
    pid = job_child(runner, "meta-tile-low-zoom")
    assert f"--tile {','.join(f'{t.z}/{t.x}/{t.y}' for t in low)} " in cmdline(pid)
    # Looked for often: the next jobs are a few hundredths of a second each, and one must be caught running.
    wait_for("the first job's record", lambda: store.exists(key[low[0]]), timeout=120, every=0.002)
    os.kill(pid, signal.SIGSTOP)
    done = [t for t in low if store.exists(key[t])]
    assert low[:len(done)] == done and len(done) < len(low)
    os.kill(pid, signal.SIGKILL)
    _, err = runner.communicate(timeout=300)
    assert runner.returncode == 1
    [failed] = [line for line in log_lines(err) if line["msg"] == "job failed"]
    stopped = low[len(done)]
    assert (failed["failed_tile"], failed["exit_code"]) == (f"{stopped.z}/{stopped.x}/{stopped.y}", -9)
    assert runs.failures(store, "test-build", "meta-low") == {stopped: runs.Failure(-9, False, None)}

    age_killed_writes(tmp_path)
    proc = run_cli("build", "--config", CONFIG, "--run-id", "test-build", env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    started = [line["tile"] for line in log_lines(proc.stderr) if line["msg"] == "job started"]
    assert sorted(started) == sorted(f"{t.z}/{t.x}/{t.y}" for t in low[len(done):])
    assert runs.failures(store, "test-build", "meta-low") == {}
    assert metatiles(tmp_path / "out") == metatiles(root / "out")
    assert_intact(tmp_path)


@faults
def test_kill_9_of_the_job_server_fails_its_job_and_a_new_server_runs_the_next(built_store, tmp_path):
    """The server that forks the jobs dies (the kernel's OOM killer may pick it): the job it forked ends
    too and is failed as killed, the next job starts from a new server, and a rerun does the rest."""
    root, _ = built_store
    env = copy_build(built_store, tmp_path)
    store = open_store(f"file://{tmp_path}/out")
    z6 = ancestor(HELSINKI, 6)
    for t in (z6, HELSINKI):  # two jobs, the z6 one first (it is the box's low-zoom group)
        store.delete(f"runs/test-build/meta-low/{t.z}/{t.x}/{t.y}.json")
    runner = start_build(env, "--run-id", "test-build", "--jobs", "1")
    server, pid = job_server(runner), job_child(runner, "meta-tile-low-zoom")
    os.kill(pid, signal.SIGSTOP)  # held, so that it cannot finish before its server is gone
    os.kill(server, signal.SIGKILL)
    wait_for("the job server to be gone", lambda: not alive(server))
    os.kill(pid, signal.SIGCONT)
    _, err = runner.communicate(timeout=300)
    assert runner.returncode == 1, err[-3000:]
    assert not alive(pid)
    lines = log_lines(err)
    [failed] = [line for line in lines if line["msg"] == "job failed"]
    assert (failed["failed_tile"], failed["exit_code"], failed["reason"]) == ("6/36/18", -9, "killed")
    [gone] = [line for line in lines if line["msg"] == "the job server is gone: starting another"]
    assert (gone["run_id"], gone["why"]) == ("test-build", "killed by signal 9")
    assert store.exists("runs/test-build/meta-low/7/72/37.json")

    proc = run_cli("build", "--config", CONFIG, "--run-id", "test-build", env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert [line["tile"] for line in log_lines(proc.stderr) if line["msg"] == "job started"] == ["6/36/18"]
    assert metatiles(tmp_path / "out") == metatiles(root / "out")
    assert_intact(tmp_path)


@faults
def test_a_job_server_that_cannot_load_the_job_code_fails_the_job_saying_why(built_store, tmp_path):
    """A broken install (msgpack, which only the jobs import, does not import): each of the round's job
    servers fails as it loads the job code, and the job fails with the error they logged, not only
    'gone'; the runner's warnings carry the run id."""
    root, _ = built_store
    env = copy_build(built_store, tmp_path)
    store = open_store(f"file://{tmp_path}/out")
    store.delete(f"runs/test-build/meta-low/{HELSINKI.z}/{HELSINKI.x}/{HELSINKI.y}.json")
    proc = run_cli("build", "--config", CONFIG, "--run-id", "test-build", "--jobs", "1",
                   env={**env, "PYTHONPATH": broken_install(tmp_path / "broken", "msgpack")})
    assert proc.returncode == 1, proc.stderr[-3000:]
    lines = log_lines(proc.stderr)
    why = "the job server failed: ImportError: msgpack is broken here"
    [failed] = [line for line in lines if line["msg"] == "job failed"]
    assert (failed["failed_tile"], failed["exit_code"]) == ("7/72/37", 1)
    assert failed["reason"] == f"the job server is gone ({why}), started {local.SERVER_STARTS} times"
    gone = [line for line in lines if line["msg"] == "the job server is gone: starting another"]
    assert [(line["run_id"], line["why"]) for line in gone] == [("test-build", why)] * (local.SERVER_STARTS - 1)
    assert "Traceback" not in proc.stderr
    assert metatiles(tmp_path / "out") == metatiles(root / "out")
    assert_intact(tmp_path)


@faults
def test_kill_9_of_the_runner_ends_its_jobs_and_a_rerun_recovers(built_store, db_url, tmp_path):
    root, _ = built_store
    env = build_env(tmp_path)
    watcher = psycopg2.connect(db_url)
    watcher.autocommit = True
    try:
        runner = start_build(env, "--run-id", "killed", "--jobs", "2")
        server, pid = job_server(runner), job_child(runner, "rawr-tile")

        def working():  # the job is under way: it has logged its start and reads the database
            with watcher.cursor() as cur:
                cur.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'tilebatch'")
                return cur.fetchone()[0]

        wait_for("the rawr job to read the database", working)
    finally:
        watcher.close()
    os.kill(pid, signal.SIGSTOP)  # held, so that it cannot finish before the runner is gone
    jobs = {pid, *children(server)}  # the held one, and the other worker's
    runner.kill()
    runner.communicate()
    # The job hears of it from its server's end: let go of it before that, and it may finish first.
    wait_for("the job server to end with its runner", lambda: not alive(server))
    os.kill(pid, signal.SIGCONT)
    wait_for("the orphaned jobs to end", lambda: not any(map(alive, jobs)))
    # It was ended, not left to finish its work: no completion record.
    assert not os.path.exists(tmp_path / "out" / "runs" / "killed" / "rawr" / "7" / "72" / "37.json")
    assert_intact(tmp_path)

    proc = run_cli("build", "--config", CONFIG, "--run-id", "killed", env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert metatiles(tmp_path / "out") == metatiles(root / "out")
    assert_intact(tmp_path)


def test_sigterm_while_a_job_starts_up_is_answered_in_one_line(monkeypatch, capsys):
    """Building the parser imports the job's modules (numpy, shapely), the first moments of a job:
    a SIGTERM there (a runner ending the jobs it just started) ends it as anywhere else, exit 143
    and one line, no traceback. The signal is the handler's own exception, raised where it lands."""
    def signalled(_modules):
        cli._terminate(signal.SIGTERM, None)
    monkeypatch.setattr(cli, "build_parser", signalled)
    try:
        code = cli.main(["meta-tile-low-zoom", "--tile", "7/72/37", "--run-id", "early"])
    except KeyboardInterrupt:  # Terminated is one: it escaped main(), a traceback on a real job's stderr
        pytest.fail("a SIGTERM while the parser is built escapes main()")
    assert code == 143
    assert [line["msg"] for line in errors(capsys.readouterr().err)] == ["terminated"]


@faults
def test_sigterm_to_the_runner_ends_its_jobs_and_says_so(tmp_path, db_url):
    runner = start_build(build_env(tmp_path), "--run-id", "stopped", "--jobs", "2")
    pid = job_child(runner, "rawr-tile")
    runner.terminate()
    _, err = runner.communicate(timeout=120)
    assert runner.returncode == 143, err[-3000:]
    assert [line["msg"] for line in errors(err)] == ["terminated"]
    assert "stopping: ending the running jobs" in [line["msg"] for line in log_lines(err)]
    assert not alive(pid)
    assert_intact(tmp_path)


def test_old_temporary_files_are_swept_and_young_ones_kept(built_store, tmp_path):
    env = copy_build(built_store, tmp_path)
    stale = [tmp_path / "out" / "13" / ".tmp-killed", tmp_path / "rawr" / "10" / ".tmp-killed"]
    young = tmp_path / "out" / "runs" / ".tmp-being-written"
    for path in stale + [young]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half a metatile")
    for path in stale:
        aged(path)
    proc = run_cli("build", "--config", CONFIG, "--run-id", "test-build", env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not any(p.exists() for p in stale) and young.exists()


@faults
def test_export_terminated_removes_its_file_and_a_killed_ones_is_swept_later(tmp_path):
    # Thousands of metatiles (copies of one), so that the export is still writing when it is told to stop.
    data = metatile.pack({name: smallstore.encode(t) for t, name in metatile_members(Tile(0, 0, 13))})
    for x in range(3000):
        (tmp_path / "store" / "13" / str(x)).mkdir(parents=True)
        (tmp_path / "store" / "13" / str(x) / "0.zip").write_bytes(data)
    store = open_store(f"file://{tmp_path}/store")
    dest = tmp_path / "export"
    dest.mkdir()
    left = dest / ".tmp-killed.mbtiles"
    left.write_bytes(b"an export killed with -9")
    aged(left)
    proc = subprocess.Popen([str(BIN / "tilebatch"), "export", "--config", CONFIG, str(dest / "t.mbtiles")],
                            cwd=TOP, text=True, env={**os.environ, "TILEQUEUE__store__url": store.url},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for("the export's temporary file", lambda: [n for n in os.listdir(dest) if n != left.name])
    proc.terminate()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-3000:]
    assert [line["msg"] for line in errors(err)] == ["terminated"]
    assert os.listdir(dest) == []  # its own file gone, and the old one swept when it started


# --- corrupt inputs ----------------------------------------------------------------------------

def test_a_corrupt_rawr_tile_is_bad_input_naming_it_and_its_rebuild(built_store, tmp_path):
    env = copy_build(built_store, tmp_path)
    rawr = FileStore(str(tmp_path / "rawr"))
    key = max((k for k in rawr.list() if k.endswith(".zip")), key=lambda k: len(rawr.read(k)))
    data = rawr.read(key)
    rawr.write(key, data[:len(data) // 2])
    out = tmp_path / "meta"
    env = {**env, "TILEQUEUE__store__url": f"file://{out}"}
    one_error(job("meta-tile", env, run_id="test-build"), 2, f"RAWR tile {key} in {rawr.url} is corrupt",
              "rebuild it with `tilebatch rawr-tile --tile 7/72/37`")
    assert_intact(out)
    assert not os.path.exists(out / "runs" / "test-build" / "meta-high")


def test_a_rawr_tile_of_an_older_format_is_bad_input_naming_it_and_its_rebuild(built_store, tmp_path):
    """A RAWR tile whose zip has no comment, as format 1 wrote them, is refused: no stamp says which rows it holds.

    The build's largest RAWR tile is written again with the same members and no comment (the comment alone
    tells the formats apart). The meta-tile job over it exits 2 with one error naming the tile, its store,
    what its comment says (nothing) and the rawr-tile command that rebuilds it; it leaves no half-written
    zip behind and records no meta-high job done.
    """
    env = copy_build(built_store, tmp_path)
    rawr = FileStore(str(tmp_path / "rawr"))
    key = max((k for k in rawr.list() if k.endswith(".zip")), key=lambda k: len(rawr.read(k)))
    with zipfile.ZipFile(io.BytesIO(rawr.read(key))) as z:
        members = {name: z.read(name) for name in z.namelist()}
    old = io.BytesIO()
    with zipfile.ZipFile(old, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    rawr.write(key, old.getvalue())
    out = tmp_path / "meta"
    env = {**env, "TILEQUEUE__store__url": f"file://{out}"}
    one_error(job("meta-tile", env, run_id="test-build"), 2,
              f"RAWR tile {key} in {rawr.url} is not a RAWR tile of format {rawrtile.FORMAT} with the rows schema "
              "tilezen reads",
              "its comment says nothing", "rebuild it with `tilebatch rawr-tile --tile 7/72/37`")
    assert_intact(out)
    assert not os.path.exists(out / "runs" / "test-build" / "meta-high")


def test_an_empty_metatile_file_is_corrupt_not_empty(built_store, tmp_path):
    env = copy_build(built_store, tmp_path)
    store = open_store(f"file://{tmp_path}/out")
    key = next(k for k in store.list("13/") if k.endswith(".zip"))
    store.write(key, b"")
    z, x, y = (int(v) for v in key[:-4].split("/"))
    tile = f"16/{x * 8}/{y * 8}"
    one_error(run_cli("tile", tile, "--config", CONFIG, env=env), 2, f"metatile {key}", "is corrupt")
    one_error(run_cli("export", "--config", CONFIG, tmp_path / "t.pmtiles", env=env), 2, f"metatile {key}",
              f"echo {z}/{x}/{y} | tilebatch rebuild --file -")
    assert not [n for n in os.listdir(tmp_path) if n.endswith("pmtiles")]


def test_damaged_run_records_are_passed_over_with_a_warning(built_store, tmp_path):
    env = copy_build(built_store, tmp_path)
    store = open_store(f"file://{tmp_path}/out")
    record = "runs/test-build/meta-low/0/0/0.json"
    store.write(record, store.read(record)[:20])
    proc = run_cli("build", "--config", CONFIG, "--run-id", "test-build", env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "completion record unreadable, its counts left out" in [line["msg"] for line in log_lines(proc.stderr)]

    store.delete("runs/test-build/meta-low/5/18/9.json")
    store.write("runs/test-build/failures/meta-low/5/18/9.json", b'{"exit_code": ')
    for command in ("status", "missing"):
        proc = run_cli(command, "--config", CONFIG, "--run-id", "test-build", env=env)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "failure record unreadable, passed over" in [line["msg"] for line in log_lines(proc.stderr)]
    assert proc.stdout == "meta-low 5/18/9\n"


# --- two builds of one run at once -------------------------------------------------------------

class _Interleaved:
    """A real store, where another writer adds its tiles to the run just before this one's first
    tile list is written: the worst moment for a writer that lists, then writes."""

    other: tuple = ()

    def _twin(self):
        """Another store on the same place: the other writer's."""
        raise NotImplementedError

    def _interleave(self, key: str) -> None:
        if "/tiles-" in key and self.other:
            other, self.other = self.other, ()
            runs.add_expected(self._twin(), *other)

    def write(self, key, data):
        self._interleave(key)
        super().write(key, data)

    def write_new(self, key, data):
        self._interleave(key)
        return super().write_new(key, data)


class InterleavedFileStore(_Interleaved, FileStore):
    def _twin(self):
        return FileStore(self.root)


class InterleavedS3Store(_Interleaved, S3Store):
    def _twin(self):
        return S3Store(self.bucket, self.prefix)


@pytest.mark.parametrize("kind", ["file", "s3"])
def test_concurrent_writers_of_a_run_never_lose_each_others_tiles(kind, tmp_path, request):
    if kind == "s3":
        request.getfixturevalue("bucket")
        store = InterleavedS3Store("tiles", "meta")
    else:
        store = InterleavedFileStore(str(tmp_path))
    mine, theirs = [(Tile(72, 37, 7),), (Tile(73, 37, 7),)], [(Tile(10, 10, 7),)]
    store.other = ("r", "rawr", theirs)
    runs.add_expected(store, "r", "rawr", mine)
    assert runs.expected_tiles(store, "r", "rawr") == {t for unit in mine + theirs for t in unit}
    assert list(store.list("runs/r/rawr/")) == ["runs/r/rawr/tiles-0000.txt", "runs/r/rawr/tiles-0001.txt"]


@faults
def test_two_builds_of_one_run_at_once_both_count(built_store, tmp_path):
    env = build_env(tmp_path)
    boxes = ("24.94,60.16,24.95,60.17", "10.0,50.0,10.1,50.1")  # Helsinki, and a z7 tile with no data
    builds = [start_build(env, "--run-id", "both", "--jobs", "1", "--bbox", box) for box in boxes]
    for proc in builds:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-2000:]
    store = open_store(f"file://{tmp_path}/out")
    assert runs.expected_tiles(store, "both", "rawr") == {t for box in boxes for t in bbox_tiles(parse_bbox(box), 7)}
    status = run_cli("status", "--config", CONFIG, "--run-id", "both", env=env)
    rows = {line.split()[0]: line.split()[1:6] for line in status.stdout.splitlines()[2:]}
    assert rows["rawr"] == ["2", "2", "-", "0", "0"] and rows["meta-high"] == ["2", "2", "-", "0", "0"]
    assert rows["meta-low"][0] == rows["meta-low"][1] and rows["meta-low"][4] == "0"


# --- bad input that used to hang, lie or crash -------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["build", "--run-id", ""], "bad run id ''"),
    (["build", "--run-id", "r1", "--bbox="], "bad bbox ''"),
    (["rebuild", "--bbox=", "--run-id", "r1"], "bad bbox ''"),
    (["rawr-tile", "--tile", "7/72/37", "--run-id", "abc\n"], "bad run id 'abc\\n'"),
    (["batch-enqueue", "--tile=", "--run-id", "r1"], "bad tile ''"),
    (["tile", "١/0/0"], "bad tile"),
])
def test_empty_and_trailing_values_are_refused(tmp_path, args, message):
    proc = run_cli(*args, "--config", CONFIG, env={**build_env(tmp_path), "TILEQUEUE__batch__job_queue": "q"})
    one_error(proc, 2, message)
    assert not os.path.exists(tmp_path / "out")


def test_a_closed_stdout_stops_the_command_as_sigpipe_would_in_one_line():
    """A reader gone half-way (`tilebatch batch-enqueue … | head`) leaves the work part done: not exit 0."""
    read, write = os.pipe()
    os.close(read)  # the reader is gone before a byte is written: `tilebatch config show | true`
    proc = subprocess.run([str(BIN / "tilebatch"), "config", "show"], stdout=write, stderr=subprocess.PIPE,
                          text=True, cwd=TOP)
    os.close(write)
    one_error(proc, 141, "standard output closed")


@pytest.mark.parametrize("given", ["file", "stdin"])
def test_a_tile_list_that_is_not_text_is_bad_input(given, tmp_path):
    bad = tmp_path / "tiles.txt"
    bad.write_bytes(b"7/72/37\n\xff\xfe\n")
    path = str(bad) if given == "file" else "-"
    proc = subprocess.run([str(BIN / "tilebatch"), "batch-enqueue", "--file", path, "--run-id", "r1", "--dry-run",
                           "--config", CONFIG], input=bad.read_bytes(), capture_output=True, cwd=TOP,
                          env={**os.environ, **build_env(tmp_path), "TILEQUEUE__batch__job_queue": "q"})
    one_error(subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(), proc.stderr.decode()),
              2, f"tile file {path}: not UTF-8 text")


def test_a_file_error_reaching_the_top_names_the_file(tmp_path):
    proc = run_cli("status", "--run-id", "r1", "--config", CONFIG,
                   env={**build_env(tmp_path), "TILEBATCH_LOG_CONTEXT": str(tmp_path / "no-such-folder/context.json")})
    one_error(proc, 1, f"FileNotFoundError {tmp_path}/no-such-folder/context.json: No such file or directory")


def test_a_bug_is_one_error_line_with_its_type_and_where(monkeypatch, capsys):
    def broken(path=None, environ=None):
        return {}["no such section"]

    monkeypatch.setattr(config, "load", broken)
    monkeypatch.setattr(signal, "signal", lambda *args: None)  # main's SIGTERM handler stays out of pytest
    assert cli.main(["config", "show"]) == 1
    [line] = capsys.readouterr().err.splitlines()
    entry = json.loads(line)
    assert (entry["level"], entry["msg"], entry["error_type"], entry["exit_code"]) == \
        ("error", "unexpected error", "KeyError", 1)
    assert "cli.py" in entry["traceback"] and "test_faults.py" in entry["traceback"]


def test_out_of_memory_evidence_is_the_kernels_count_for_the_cgroup(tmp_path):
    v2 = oom.memory_cgroup_files("0::/system.slice/batch.service\n", str(tmp_path))
    assert str(tmp_path / "system.slice/batch.service/memory.events") in v2
    v1 = oom.memory_cgroup_files("4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n", str(tmp_path))
    assert v1 == [str(tmp_path / "memory/docker/abc/memory.oom_control")]
    assert oom.parse_oom_kills("low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 0\n") == 2
    assert oom.parse_oom_kills("oom_kill_disable 0\nunder_oom 0\noom_kill 7\n") == 7
    assert oom.parse_oom_kills("oom_kill_disable 0\nunder_oom 0\n") is None
