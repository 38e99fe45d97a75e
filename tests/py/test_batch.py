"""tilebatch batch-enqueue against a moto server over HTTP: what it submits, writes and refuses."""

import json

import boto3
import pytest

from tilebatch import cli, config
from tilebatch.jobs import resolve_tiles
from tilebatch.store import metatile_store
from tilebatch.tiles import Tile


def enqueue(capsys, *args):
    """Run `tilebatch batch-enqueue ARGS` in this process: (exit code, JSON lines printed)."""
    code = cli.main(["batch-enqueue", "--run-id", "r1", *map(str, args)])
    out = capsys.readouterr().out
    return code, [json.loads(line) for line in out.splitlines()]


def described(job_ids):
    return {j["jobId"]: j for j in boto3.client("batch").describe_jobs(jobs=job_ids)["jobs"]}


def stored(key):
    return metatile_store(config.load()).read(key).decode().split()


def test_a_bbox_goes_as_one_array_job_over_a_stored_tile_list(queue, capsys):
    code, lines = enqueue(capsys, "--bbox", "24,59,27,61")
    assert code == 0 and len(lines) == 1
    job = described([lines[0]["jobId"]])[lines[0]["jobId"]]
    assert job["jobName"] == "tilebatch-r1-0000"
    assert job["parameters"] == {"tile": "@runs/r1/rawr/tiles-0000.txt", "run_id": "r1"}
    assert job["arrayProperties"]["size"] == 4
    assert job["jobDefinition"].endswith(":job-definition/tilebatch-rawr:1")
    assert stored("runs/r1/rawr/tiles-0000.txt") == ["7/72/36", "7/72/37", "7/73/36", "7/73/37"]


def test_an_array_child_resolves_its_tiles_from_its_index(queue, capsys):
    code, lines = enqueue(capsys, "--bbox", "24,59,27,61", "--pyramid", "--job", "meta-low")
    assert code == 0
    tile = lines[0]["parameters"]["tile"]
    # The box's seven low-zoom jobs are one child, done in turn; each z7 job a child of its own.
    assert tile == "@runs/r1/meta-low/tiles-0000.txt" and lines[0]["arrayProperties"] == {"size": 5}
    assert lines[0]["tiles"] == 11
    cfg = config.load()
    child = {i: resolve_tiles(tile, cfg, {"AWS_BATCH_JOB_ARRAY_INDEX": str(i)}) for i in (0, 1, 4)}
    assert child == {0: [Tile(0, 0, 0), Tile(1, 0, 1), Tile(2, 1, 2), Tile(4, 2, 3), Tile(9, 4, 4), Tile(18, 9, 5),
                         Tile(36, 18, 6)],
                     1: [Tile(72, 36, 7)], 4: [Tile(73, 37, 7)]}


def test_one_tile_goes_as_a_plain_job(queue, capsys):
    code, lines = enqueue(capsys, "--tile", "7/73/37", "--job", "meta-high")
    assert code == 0
    job = described([lines[0]["jobId"]])[lines[0]["jobId"]]
    assert job["jobName"] == "tilebatch-r1-7-73-37"
    assert job["parameters"] == {"tile": "7/73/37", "run_id": "r1"}
    assert "arrayProperties" not in job
    assert job["jobDefinition"].endswith(":job-definition/tilebatch-meta-high:1")
    # what the run expects (for status and missing), and the record of the submission
    store = metatile_store(config.load())
    assert list(store.list("runs/")) == ["runs/r1/meta-high/batch/tilebatch-r1-7-73-37.json",
                                         "runs/r1/meta-high/tiles-0000.txt", "runs/r1/run.json"]
    assert store.read("runs/r1/meta-high/tiles-0000.txt") == b"7/73/37\n"


def test_a_file_of_expired_tiles_enqueues_their_z7_ancestors(queue, capsys, tmp_path):
    expired = tmp_path / "expire.list"
    expired.write_text("14/9326/4741\n14/9327/4742\n10/582/296\n14/9400/4700\n")
    code, lines = enqueue(capsys, "--file", expired)
    assert code == 0
    assert [(line["jobName"], line["arrayProperties"]["size"]) for line in lines] == [("tilebatch-r1-0000", 2)]
    assert stored("runs/r1/rawr/tiles-0000.txt") == ["7/72/37", "7/73/36"]


def test_meta_high_waits_for_rawr_child_by_child(queue, capsys):
    _, rawr = enqueue(capsys, "--bbox", "24,59,27,61")
    _, single = enqueue(capsys, "--tile", "7/1/1")
    _, meta = enqueue(capsys, "--bbox", "24,59,27,61", "--job", "meta-high",
                      "--depends-on", rawr[0]["jobId"], "--depends-on", single[0]["jobId"])
    job = described([meta[0]["jobId"]])[meta[0]["jobId"]]
    assert job["dependsOn"] == [{"jobId": rawr[0]["jobId"], "type": "N_TO_N"}, {"jobId": single[0]["jobId"]}]
    assert stored("runs/r1/meta-high/tiles-0000.txt") == stored("runs/r1/rawr/tiles-0000.txt")

    # Over other tiles, the rawr job is waited for as a whole.
    _, other = enqueue(capsys, "--bbox", "0,0,5,5", "--job", "meta-high", "--run-id", "r2",
                       "--depends-on", rawr[0]["jobId"])
    assert described([other[0]["jobId"]])[other[0]["jobId"]]["dependsOn"] == [{"jobId": rawr[0]["jobId"]}]


def test_a_planet_with_its_pyramid_is_a_handful_of_api_calls(queue, capsys, monkeypatch):
    calls = []
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    boto3.setup_default_session()
    boto3.DEFAULT_SESSION.events.register("before-call", lambda event_name, **_: calls.append(event_name))

    code, lines = enqueue(capsys, "--pyramid", "--job", "meta-low")

    assert code == 0
    assert [line["arrayProperties"]["size"] for line in lines] == [10_000, 10_000, 1_845]
    assert len(calls) < 20, calls
    assert calls.count("before-call.batch.SubmitJob") == 3
    assert calls.count("before-call.s3.PutObject") == 7  # three tile lists and submission records, run.json
    assert stored("runs/r1/meta-low/tiles-0002.txt")[-1] == "7/127/127"


def test_dry_run_prints_the_jobs_and_submits_and_writes_nothing(queue, capsys):
    code, lines = enqueue(capsys, "--dry-run", "--bbox", "24,59,27,61", "--pyramid")
    assert code == 0
    assert lines == [{"jobName": "tilebatch-r1-0000", "jobQueue": "tb-queue", "jobDefinition": "tilebatch-rawr",
                      "parameters": {"tile": "@runs/r1/rawr/tiles-0000.txt", "run_id": "r1"},
                      "arrayProperties": {"size": 11}, "tiles": 11}]
    assert boto3.client("batch").list_jobs(jobQueue=queue)["jobSummaryList"] == []
    assert list(metatile_store(config.load()).list("")) == []


@pytest.mark.parametrize("args, env, message", [
    (["--run-id", "bad id"], {}, "bad run id 'bad id'"),
    (["--tile", "7/200/1"], {}, "at zoom 7, x and y must be below 128"),
    (["--bbox", "27,59,24,61"], {}, "west 27.0 must be less than east 24.0"),
    ([], {"TILEQUEUE__batch__job_queue": "nope"}, "job queue 'nope' does not exist"),
    ([], {"TILEQUEUE__batch__job_definition": "nope"}, "job definition 'nope' is not registered"),
    (["--job", "meta-high"], {"TILEQUEUE__batch__job_definition": "tilebatch-rawr"},
     "job definition 'tilebatch-rawr' runs rawr jobs, not meta-high"),
    (["--depends-on", "no-such-job"], {}, "depends-on: no job 'no-such-job'"),
    ([], {"TILEQUEUE__store__url": "file:///tmp/x"}, "which Batch jobs cannot reach"),
    (["--tile", "7/72/37"], {"TILEQUEUE__store__url": "file:///tmp/x"}, "which Batch jobs cannot reach"),
])
def test_bad_input_exits_2_with_one_line_and_nothing_submitted(queue, capsys, monkeypatch, args, env, message):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert cli.main(["batch-enqueue", "--run-id", "r1", *args]) == 2
    err = capsys.readouterr().err.splitlines()
    assert message in json.loads(err[-1])["msg"]
    assert boto3.client("batch").list_jobs(jobQueue=queue)["jobSummaryList"] == []
    assert list(metatile_store(config.load()).list("runs/")) == []


def test_a_run_never_overwrites_a_tile_list_with_other_tiles(queue, capsys):
    assert enqueue(capsys, "--bbox", "24,59,27,61")[0] == 0
    # The same tiles again (a retried enqueue) reuse the list; other tiles are refused.
    assert enqueue(capsys, "--bbox", "24,59,27,61")[0] == 0
    assert cli.main(["batch-enqueue", "--run-id", "r1", "--bbox", "0,0,5,5"]) == 2
    assert "already holds other tiles (or the same in other lines): use a new run id" in capsys.readouterr().err
    assert stored("runs/r1/rawr/tiles-0000.txt") == ["7/72/36", "7/72/37", "7/73/36", "7/73/37"]
