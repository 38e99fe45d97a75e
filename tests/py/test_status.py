"""tilebatch status and missing on local runs (the Batch side is in test_batch_runs.py)."""

import os
import shutil
import subprocess

from tilebatch import runs
from tilebatch.store import open_store
from tilebatch.tiles import Tile, children

from conftest import TOP, build_env, last_error, run_cli


def copy_run(built_store, tmp_path):
    """A copy of the session's build (its RAWR tiles too), to take records away from."""
    root, _ = built_store
    for folder in ("out", "rawr"):
        shutil.copytree(root / folder, tmp_path / folder)
    return build_env(tmp_path), open_store(f"file://{tmp_path}/out")


def test_status_of_a_complete_run(built_store):
    _, env = built_store
    proc = run_cli("status", "--config", "config.yaml", "--run-id", "test-build", env=env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("run test-build in file://")
    rows = {line.split()[0]: line.split()[1:6] for line in lines[2:]}
    assert rows == {"rawr": ["1", "1", "-", "0", "0"], "meta-high": ["1", "1", "-", "0", "0"],
                    "meta-low": ["8", "8", "-", "0", "0"]}
    assert "100%" in lines[-1]


def test_missing_lists_exactly_the_jobs_without_a_record(built_store, tmp_path):
    env, store = copy_run(built_store, tmp_path)
    store.delete("runs/test-build/meta-low/5/18/9.json")
    store.delete("runs/test-build/meta-low/0/0/0.json")
    runs.write_failure(store, "test-build", "meta-low", Tile(18, 9, 5), runs.Failure(-9, True, None))
    proc = run_cli("missing", "--config", "config.yaml", "--run-id", "test-build", env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["meta-low 0/0/0", "meta-low 5/18/9  # failed, exit -9, out of memory"]
    proc = run_cli("status", "--config", "config.yaml", "--run-id", "test-build", env=env)
    assert [line.split()[1:6] for line in proc.stdout.splitlines() if line.split()[0] == "meta-low"] == \
        [["8", "6", "-", "1", "2"]]


def test_a_build_again_fills_in_what_is_missing(built_store, tmp_path):
    env, store = copy_run(built_store, tmp_path)
    store.delete("runs/test-build/meta-high/7/72/37.json")
    proc = run_cli("build", "--config", "config.yaml", "--run-id", "test-build", env=env)
    assert proc.returncode == 0
    assert "1 jobs run, 9 already done, 0 missing" in proc.stdout
    assert run_cli("missing", "--config", "config.yaml", "--run-id", "test-build", env=env).stdout == ""


def test_a_split_meta_high_job_counts_as_done_when_every_part_is():
    z7 = Tile(72, 37, 7)
    parts = set(children(z7, 8)[:3]) | set(children(children(z7, 8)[3], 9))
    assert runs.covered(z7, parts, 10)
    assert not runs.covered(z7, parts - {children(z7, 8)[0]}, 10)
    assert not runs.covered(z7, parts, 7)


def test_unknown_run_is_bad_input(built_store):
    _, env = built_store
    proc = run_cli("status", "--config", "config.yaml", "--run-id", "no-such-run", env=env)
    assert proc.returncode == 2
    assert "run 'no-such-run' has no jobs" in last_error(proc)
    assert "its runs, oldest first: " in last_error(proc) and "test-build" in last_error(proc)
    proc = run_cli("missing", "--config", "config.yaml", "--run-id", "bad run", env=env)
    assert proc.returncode == 2
    assert "bad run id" in last_error(proc)


def test_expected_lists_grow_but_never_change(tmp_path):
    store = open_store(f"file://{tmp_path}")
    runs.add_expected(store, "r", "rawr", [(Tile(1, 1, 7),), (Tile(2, 2, 7),)])
    first = store.read("runs/r/rawr/tiles-0000.txt")
    runs.add_expected(store, "r", "rawr", [(Tile(2, 2, 7),), (Tile(3, 3, 7),)])
    assert store.read("runs/r/rawr/tiles-0000.txt") == first
    assert store.read("runs/r/rawr/tiles-0001.txt") == b"7/3/3\n"
    assert runs.expected_tiles(store, "r", "rawr") == {Tile(1, 1, 7), Tile(2, 2, 7), Tile(3, 3, 7)}


def test_a_line_of_several_tiles_expects_each_and_is_listed_once_all_are(tmp_path):
    store = open_store(f"file://{tmp_path}")
    low = (Tile(0, 0, 0), Tile(1, 0, 1))
    runs.add_expected(store, "r", "meta-low", [low, (Tile(72, 37, 7),)])
    assert store.read("runs/r/meta-low/tiles-0000.txt") == b"0/0/0,1/1/0\n7/72/37\n"
    assert runs.expected_tiles(store, "r", "meta-low") == {*low, Tile(72, 37, 7)}
    # A unit with a tile not listed yet goes again, whole; one whose tiles all are does not.
    runs.add_expected(store, "r", "meta-low", [(Tile(0, 0, 0),), (Tile(1, 0, 1), Tile(2, 1, 2))])
    assert store.read("runs/r/meta-low/tiles-0001.txt") == b"1/1/0,2/2/1\n"


def test_status_and_missing_default_to_the_latest_run(built_store, tmp_path):
    env, store = copy_run(built_store, tmp_path)
    runs.add_expected(store, "later", "rawr", [(Tile(72, 37, 7),)])
    assert runs.run_ids(store)[-1] == "later"
    proc = run_cli("status", "--config", "config.yaml", env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("run later in file://")
    assert run_cli("missing", "--config", "config.yaml", env=env).stdout == "rawr 7/72/37\n"
    # make status right after a build (no RUN_ID): the latest run.
    make_env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    proc = subprocess.run(["make", "--no-print-directory", "-C", str(TOP), "status"], capture_output=True, text=True,
                          env={**make_env, **env}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("run later in file://")


def test_a_store_with_no_runs_says_so(tmp_path):
    proc = run_cli("status", "--config", "config.yaml", env={"TILEQUEUE__store__url": f"file://{tmp_path}"})
    assert proc.returncode == 2
    assert "holds no runs: build some tiles first" in last_error(proc)
