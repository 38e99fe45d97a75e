import os
import shutil
import socket
import subprocess
import sys
import tempfile

import pytest

from tilebatch import store
from tilebatch.errors import JobFailed
from tilebatch.store import StoreError, tile_key
from tilebatch.tiles import Tile

from conftest import last_error, run_cli
from motoserver import free_port


def test_key_formats():
    t = Tile(1, 2, 3)
    h = "db47b"  # md5("3/1/2.zip")[:5]
    assert tile_key(t, "zip", "hash-prefix", "20260101") == f"{h}/20260101/3/1/2.zip"
    assert tile_key(t, "zip", "prefix-hash", "20260101") == f"20260101/{h}/3/1/2.zip"
    assert tile_key(t, "zip", "prefix", "20260101") == "20260101/3/1/2.zip"
    assert tile_key(t, "zip", "prefix") == "3/1/2.zip"
    assert tile_key(t, "zip", "hash-prefix") == f"{h}/3/1/2.zip"
    with pytest.raises(StoreError, match="bad key-format-type 'flat'"):
        tile_key(t, "zip", "flat")


@pytest.mark.parametrize("url, message", [
    ("ftp://x/y", "expected file:///dir or s3://bucket/prefix"),
    ("s3:///prefix", "no bucket"),
    ("file://", "no directory"),
])
def test_bad_urls(url, message):
    with pytest.raises(StoreError, match=message):
        store.open_store(url)


def test_defaults_by_scheme(tmp_path, aws_env):
    assert store.open_store(f"file://{tmp_path}").key_format == "prefix"
    assert store.open_store("s3://b/p").key_format == "hash-prefix"


def exercise(s):
    """The operations of the Store protocol, the same for every store."""
    assert isinstance(s, store.Store)
    assert s.read("a/b.bin") is None
    assert not s.exists("a/b.bin")
    s.write("a/b.bin", b"one")
    s.write("a/c.bin", b"two")
    s.write("z.bin", b"three")
    s.write("a/b.bin", b"ONE")
    assert s.read("a/b.bin") == b"ONE"
    assert s.exists("a/c.bin")
    assert list(s.list("a/")) == ["a/b.bin", "a/c.bin"]
    assert sorted(s.list()) == ["a/b.bin", "a/c.bin", "z.bin"]
    s.delete("a/b.bin")
    s.delete("a/b.bin")  # deleting twice is fine
    assert list(s.list("a/")) == ["a/c.bin"]
    s.write("runs/r2/x/1.json", b"{}")
    s.write("runs/r1/run.json", b"{}")
    s.write("runs/top.txt", b"")
    assert s.folders("runs") == ["r1", "r2"] and s.folders("runs/") == ["r1", "r2"]
    assert s.folders("nothing") == []
    for key in ("runs/r2/x/1.json", "runs/r1/run.json", "runs/top.txt"):
        s.delete(key)


def test_file_store(tmp_path):
    exercise(store.open_store(f"file://{tmp_path}/tiles"))


def test_s3_store_over_http(bucket):
    import boto3

    s = store.open_store(f"s3://{bucket}/run1")
    exercise(s)
    keys = [o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=bucket)["Contents"]]
    assert sorted(keys) == ["run1/a/c.bin", "run1/z.bin"]


def test_s3_store_lists_past_one_page(bucket):
    s = store.open_store(f"s3://{bucket}")
    for i in range(1005):
        s.client.put_object(Bucket=bucket, Key=f"k/{i:05d}", Body=b"")
    assert len(list(s.list("k/"))) == 1005


def test_missing_bucket_is_a_clear_error(aws_env):
    s = store.open_store("s3://no-such-bucket/x")
    with pytest.raises(StoreError, match="bucket 'no-such-bucket' does not exist") as e:
        s.write("a", b"x")
    assert e.value.exit_code == 2


def test_unreachable_endpoint_is_an_outage_worth_a_retry(aws_env, monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    s = store.open_store("s3://tiles", aws={"connect-timeout": 1, "read-timeout": 1, "max-attempts": 1})
    with pytest.raises(JobFailed, match=f"store s3://tiles: read a: Could not connect to the endpoint URL: \"http://127.0.0.1:{port}/") as e:
        s.read("a")
    assert e.value.exit_code == 1


def test_failed_file_write_leaves_nothing(tmp_path, monkeypatch):
    s = store.open_store(f"file://{tmp_path}")
    s.write("old.bin", b"old")
    real_fdopen = os.fdopen

    def failing_fdopen(fd, mode):
        f = real_fdopen(fd, mode)
        f.write = lambda data: (_ for _ in ()).throw(OSError("disk full"))
        return f

    monkeypatch.setattr(os, "fdopen", failing_fdopen)
    for key in ("old.bin", "new.bin"):
        with pytest.raises(JobFailed, match=f"cannot write {key}: disk full"):
            s.write(key, b"new")
    monkeypatch.undo()
    assert s.read("old.bin") == b"old"
    assert sorted(os.listdir(tmp_path)) == ["old.bin"]


def test_file_store_refuses_keys_outside_its_root(tmp_path):
    s = store.open_store(f"file://{tmp_path}/root")
    with pytest.raises(StoreError, match="outside the store"):
        s.write("../escape", b"x")


def test_config_locations(aws_env, tmp_path):
    from tilebatch import config

    cfg = config.load(None, environ={"TILEQUEUE__store__name": "tiles", "TILEQUEUE__store__path": "osm",
                                     "TILEQUEUE__rawr__sink__bucket": "rawr", "TILEQUEUE__rawr__sink__prefix": "r"})
    assert store.metatile_store(cfg).url == "s3://tiles/osm"
    assert store.rawr_sink(cfg).url == "s3://rawr/r"
    assert store.rawr_source(cfg).url == "s3://rawr/r"
    cfg = config.load(None, environ={"TILEQUEUE__rawr__source__url": f"file://{tmp_path}"})
    assert store.rawr_source(cfg).url == f"file://{tmp_path}"


@pytest.mark.parametrize("env, says", [
    ({"AWS_PROFILE": "no-such-profile"}, "no-such-profile"),
    ({"AWS_ENDPOINT_URL": "localhost:9000"}, "localhost:9000"),
    ({"TILEQUEUE__store__region": "us east 1"}, "us east 1"),
])
def test_aws_settings_a_client_cannot_use_are_bad_input_in_one_line(env, says, aws_env):
    proc = run_cli("status", "--run-id", "r1", env={**aws_env, "TILEQUEUE__store__url": "s3://tiles", **env})
    assert proc.returncode == 2, proc.stderr
    assert says in last_error(proc) and "unexpected" not in last_error(proc)


NO_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
                  "AWS_CONFIG_FILE": "/nonexistent", "AWS_EC2_METADATA_DISABLED": "true",
                  "TILEQUEUE__store__url": "s3://tiles"}


def test_no_credentials_is_bad_input_and_a_role_endpoint_that_fails_an_outage(aws_env):
    """Nobody gave any: no retry helps. On Batch a job's role gives them through the container's credential
    endpoint (AWS_CONTAINER_CREDENTIALS_*): when it does not answer, a retry may find it up."""
    none = run_cli("status", "--run-id", "r1", env={**aws_env, **NO_CREDENTIALS})
    endpoint_down = run_cli("status", "--run-id", "r1", env={
        **aws_env, **NO_CREDENTIALS, "AWS_CONTAINER_CREDENTIALS_FULL_URI": f"http://127.0.0.1:{free_port()}/creds"})
    assert (none.returncode, endpoint_down.returncode) == (2, 1), none.stderr + endpoint_down.stderr
    assert "Unable to locate credentials" in last_error(none)
    assert "credential" in last_error(endpoint_down).lower()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root, to list as nobody")
def test_a_folder_the_store_cannot_read_fails_a_listing_rather_than_shorten_it():
    """As root every folder is readable, so the listing runs as nobody over a folder only root may open."""
    root = tempfile.mkdtemp(prefix="tilebatch-list-")  # not under pytest's root-only folder
    try:
        os.chmod(root, 0o755)
        for key in ("runs/a/1.json", "runs/b/2.json"):
            os.makedirs(os.path.dirname(os.path.join(root, key)), exist_ok=True)
            open(os.path.join(root, key), "w").close()
        os.chmod(os.path.join(root, "runs/b"), 0o700)
        code = f"from tilebatch.store import FileStore; print(list(FileStore({root!r}).list('runs/')))"
        proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                               sys.executable, "-c", code], capture_output=True, text=True)
        assert proc.returncode != 0 and "cannot list" in proc.stderr and "runs/b" in proc.stderr, proc.stdout
        assert list(store.FileStore(root).list("runs/")) == ["runs/a/1.json", "runs/b/2.json"]  # root reads both
        assert list(store.FileStore(root).list("nothing/")) == []  # a folder not made yet lists nothing, as before
    finally:
        shutil.rmtree(root)
