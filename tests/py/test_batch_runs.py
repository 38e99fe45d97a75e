"""status and missing on a Batch run, against a moto server whose jobs all fail.

moto runs no containers: MOTO_SIMPLE_BATCH_FAIL_AFTER=0 makes every job it is
given fail at once, and TerminateJob then gives a failed child the reason AWS
gives a job the kernel killed for its memory.
"""

import json
import os
import time

import boto3
import pytest

from tilebatch import cli, config, records, runs
from tilebatch.batch_runs import ROUND_LEASE
from tilebatch.runkeys import round_key, submission_key
from tilebatch.store import FileStore, metatile_store
from tilebatch.tiles import Tile, children

import motoserver

OOM = "OutOfMemoryError: Container killed due to memory usage"
BBOX = "24,59,27,61"  # four z7 tiles: 7/72/36, 7/72/37, 7/73/36, 7/73/37


@pytest.fixture(scope="module")
def moto_url():
    """Overrides the session's server for this module: here every Batch job fails."""
    url, proc = motoserver.start(env={"MOTO_SIMPLE_BATCH_FAIL_AFTER": "0"})
    yield url
    motoserver.stop(proc)


def main(capsys, *args) -> tuple[int, str]:
    code = cli.main([*map(str, args)])
    return code, capsys.readouterr().out


def enqueue(capsys, job: str) -> dict:
    code, out = main(capsys, "batch-enqueue", "--run-id", "r1", "--bbox", BBOX, "--job", job)
    assert code == 0
    return json.loads(out.splitlines()[0])


def done(tile: Tile, job: str = "rawr", counts=None) -> None:
    records.write_record(metatile_store(config.load()), "r1", job, tile, {"counts": counts or {}})


def resubmitted(out: str) -> list[dict]:
    """The submissions a command printed (moto does not echo memory overrides back), each checked with Batch."""
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    found = {j["jobId"]: j for j in boto3.client("batch").describe_jobs(jobs=[s["jobId"] for s in lines])["jobs"]}
    for line in lines:
        job = found[line["jobId"]]
        assert (job["jobName"], job["parameters"]) == (line["jobName"], line["parameters"])
        assert job["jobQueue"].endswith("/tb-queue")
    return sorted(lines, key=lambda j: j["jobName"])


def memory_of(job: dict) -> str | None:
    for r in job.get("containerOverrides", {}).get("resourceRequirements", []):
        if r["type"] == "MEMORY":
            return r["value"]
    return None


def test_status_and_missing_on_batch(queue, capsys):
    array = enqueue(capsys, "rawr")
    done(Tile(72, 36, 7))
    done(Tile(73, 37, 7))
    code, out = main(capsys, "status", "--run-id", "r1")
    assert code == 0
    rawr = next(line.split() for line in out.splitlines() if line.split()[0] == "rawr")
    assert rawr[1:6] == ["4", "2", "0", "4", "2"]  # expected, done, running, failed (Batch says), missing
    code, out = main(capsys, "missing", "--run-id", "r1")
    assert out.splitlines() == ["rawr 7/72/37", "rawr 7/73/36"]
    assert array["arrayProperties"]["size"] == 4


def test_missing_enqueue_resubmits_exactly_those_with_more_memory_after_oom(queue, capsys):
    array = enqueue(capsys, "rawr")
    done(Tile(72, 36, 7))
    done(Tile(73, 37, 7))
    batch = boto3.client("batch")
    batch.terminate_job(jobId=f"{array['jobId']}:1", reason=OOM)  # child 1 is 7/72/37
    code, out = main(capsys, "missing", "--run-id", "r1", "--enqueue")
    assert code == 0
    jobs = resubmitted(out)
    # A job a memory, the default first: names carry the round and the memory group (r01m0, r01m1).
    assert [(j["parameters"]["tile"], memory_of(j)) for j in jobs] == [("7/73/36", None), ("7/72/37", "768")]
    assert all(j["jobName"].startswith("tilebatch-r1-") for j in jobs)

    # The retried OOM job failed again (this moto fails everything): next time 1.5x again, up to the cap.
    retried = next(j for j in jobs if j["parameters"]["tile"] == "7/72/37")
    batch.terminate_job(jobId=retried["jobId"], reason=OOM)
    code, out = main(capsys, "missing", "--run-id", "r1", "--enqueue")
    again = resubmitted(out)
    assert {j["parameters"]["tile"]: memory_of(j) for j in again} == {"7/72/37": "1152", "7/73/36": None}


def test_a_job_given_more_memory_and_then_lost_to_something_else_keeps_it(queue, capsys):
    array = enqueue(capsys, "rawr")
    batch = boto3.client("batch")
    batch.terminate_job(jobId=f"{array['jobId']}:1", reason=OOM)  # child 1 is 7/72/37
    main(capsys, "missing", "--run-id", "r1", "--enqueue")
    # Its 768 MiB job is reclaimed with its Spot instance: the next goes with 768 again, not the 512 that ran out.
    for _ in range(2):
        code, out = main(capsys, "missing", "--run-id", "r1", "--enqueue")
        assert code == 0
        retried = next(j for j in resubmitted(out) if j["parameters"]["tile"] == "7/72/37")
        assert memory_of(retried) == "768"
        batch.terminate_job(jobId=retried["jobId"], reason="Host EC2 (instance i-0abc) terminated.")


def test_a_child_of_several_low_zoom_jobs_that_ran_out_goes_again_whole_with_more_memory(queue, capsys):
    code, out = main(capsys, "batch-enqueue", "--run-id", "r1", "--bbox", BBOX, "--pyramid", "--job", "meta-low")
    array = json.loads(out.splitlines()[0])
    low = [Tile(0, 0, 0), Tile(1, 0, 1), Tile(2, 1, 2), Tile(4, 2, 3), Tile(9, 4, 4), Tile(18, 9, 5), Tile(36, 18, 6)]
    for tile in [*low[:3], Tile(72, 36, 7), Tile(72, 37, 7), Tile(73, 36, 7), Tile(73, 37, 7)]:
        done(tile, "meta-low")
    boto3.client("batch").terminate_job(jobId=f"{array['jobId']}:0", reason=OOM)  # child 0: the low zooms
    code, out = main(capsys, "missing", "--run-id", "r1", "--enqueue")
    assert code == 0
    jobs = resubmitted(out)
    # The four it did not finish, in one job again, with 1.5 times the memory the child had.
    assert [(j["parameters"]["tile"], memory_of(j)) for j in jobs] == [("3/4/2,4/9/4,5/18/9,6/36/18", "768")]
    # That plain job runs out too: its four go again with 1.5 times that (the later failure counts).
    boto3.client("batch").terminate_job(jobId=jobs[0]["jobId"], reason=OOM)
    code, out = main(capsys, "missing", "--run-id", "r1", "--enqueue")
    assert [(j["parameters"]["tile"], memory_of(j)) for j in resubmitted(out)] == [
        ("3/4/2,4/9/4,5/18/9,6/36/18", "1152")]


def test_the_memory_cap_holds(queue, capsys, monkeypatch):
    array = enqueue(capsys, "rawr")
    boto3.client("batch").terminate_job(jobId=f"{array['jobId']}:0", reason=OOM)
    monkeypatch.setenv("TILEQUEUE__batch__max_memory", "600")
    code, out = main(capsys, "missing", "--run-id", "r1", "--enqueue")
    jobs = resubmitted(out)
    assert {j["parameters"]["tile"]: memory_of(j) for j in jobs if memory_of(j)} == {"7/72/36": "600"}


def split_meta_high(capsys, monkeypatch) -> tuple[list[Tile], list[dict]]:
    """A run whose one missing meta-high job, 7/72/37, goes again in four z8 parts: the parts, the submissions."""
    enqueue(capsys, "meta-high")
    z7 = Tile(72, 37, 7)
    parts = children(z7, 8)
    sizes = {f"10/{t.x}/{t.y}": 300 for p in parts[:2] for t in children(p, 10)[:2]}  # data under two z8 tiles
    for tile in (Tile(72, 36, 7), Tile(73, 36, 7), Tile(73, 37, 7)):
        done(tile, "meta-high")
    done(z7, "rawr", {"rawr_bytes": sizes})
    monkeypatch.setenv("TILEQUEUE__batch__split_rawr_bytes", "1000")
    code, out = main(capsys, "missing", "--run-id", "r1", "--enqueue")
    assert code == 0
    return parts, resubmitted(out)


def test_a_meta_high_job_over_large_rawr_tiles_goes_in_parts(queue, capsys, monkeypatch):
    parts, jobs = split_meta_high(capsys, monkeypatch)
    assert len(jobs) == 1 and jobs[0]["arrayProperties"]["size"] == 4
    store = metatile_store(config.load())
    listed = store.read(jobs[0]["parameters"]["tile"][1:]).decode().split()
    assert listed == [f"8/{p.x}/{p.y}" for p in parts]

    # Three parts done: still missing. All four: the z7 job counts as done.
    for p in parts[:3]:
        done(p, "meta-high")
    code, out = main(capsys, "missing", "--run-id", "r1")
    assert out == "meta-high 7/72/37\n"
    done(parts[3], "meta-high")
    code, out = main(capsys, "missing", "--run-id", "r1")
    assert "meta-high" not in out


def test_a_part_that_ran_out_of_memory_goes_again_alone_with_more(queue, capsys, monkeypatch):
    parts, (array,) = split_meta_high(capsys, monkeypatch)
    for p in parts[:3]:
        done(p, "meta-high")
    boto3.client("batch").terminate_job(jobId=f"{array['jobId']}:3", reason=OOM)
    code, out = main(capsys, "missing", "--run-id", "r1", "--enqueue")
    assert code == 0
    # Not the four parts again at the definition's memory: the one left, with 1.5 times what it had.
    assert [(j["parameters"]["tile"], memory_of(j)) for j in resubmitted(out)] == [("8/145/75", "768")]


def test_a_resubmitted_meta_high_job_waits_only_for_the_rawr_job_of_its_own_tile(queue, capsys):
    enqueue(capsys, "rawr")
    enqueue(capsys, "meta-high")
    for tile in (Tile(72, 36, 7), Tile(73, 37, 7)):
        done(tile, "rawr")
    done(Tile(73, 37, 7), "meta-high")
    code, out = main(capsys, "missing", "--run-id", "r1", "--enqueue")
    assert code == 0
    jobs = resubmitted(out)
    (rawr,) = [j for j in jobs if j["jobDefinition"] == "tilebatch-rawr"]
    waits = {j["parameters"]["tile"] if "arrayProperties" not in j else j["tiles"]: j.get("dependsOn")
             for j in jobs if j["jobDefinition"] == "tilebatch-meta-high"}
    # 7/72/36's rawr is done: it waits for nothing. The two whose rawr goes again pair with it child by
    # child, so that one rawr child failing fails one meta-high job, not both.
    assert waits == {"7/72/36": None, 2: [{"jobId": rawr["jobId"], "type": "N_TO_N"}]}
    store = metatile_store(config.load())
    array = next(j for j in jobs if j["jobDefinition"] == "tilebatch-meta-high" and "arrayProperties" in j)
    assert store.read(array["parameters"]["tile"][1:]) == store.read(rawr["parameters"]["tile"][1:])


def test_a_rebuild_on_batch_resubmits_what_is_missing_then_gives_up(queue, capsys):
    code = cli.main(["rebuild", "--executor", "batch", "--bbox", "24.94,60.165,24.95,60.17", "--run-id", "rb",
                     "--attempts", "2", "--progress-seconds", "0.1"])
    out = capsys.readouterr().out
    assert code == 1  # moto runs nothing, so no job ever writes its record
    assert "rebuild rb: bbox 24.94,60.165,24.95,60.17: 1 rawr, 1 meta-high, 8 meta-low jobs, on batch" in out
    # rawr and meta-high plain; meta-low too: a box within one z7 tile is one job, its seven low zooms then z7
    assert out.count("submitted 3 Batch jobs") == 2
    assert "progress: rawr 0/1 (0 running, 1 failed), meta-high 0/1" in out
    assert "missing: meta-low 7/72/37" in out
    submitted = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    meta_high = [s for s in submitted if s["jobDefinition"] == "tilebatch-meta-high"]
    rawr_ids = {s["jobId"] for s in submitted if s["jobDefinition"] == "tilebatch-rawr"}
    assert len(meta_high) == 2 and all(s["dependsOn"][0]["jobId"] in rawr_ids for s in meta_high)
    meta_low = [s for s in submitted if s["jobDefinition"] == "tilebatch-meta-low"]
    assert [(s.get("arrayProperties"), s["tiles"]) for s in meta_low] == [(None, 8), (None, 8)]
    assert meta_low[0]["parameters"]["tile"] == "0/0/0,1/1/0,2/2/1,3/4/2,4/9/4,5/18/9,6/36/18,7/72/37"


def test_a_damaged_submission_record_or_a_lost_tile_list_is_bad_input_naming_it(queue, capsys):
    """Without them the run's Batch jobs cannot be followed: a clear exit 2, not a bug's exit 1."""
    array = enqueue(capsys, "rawr")
    code, out = main(capsys, "missing", "--run-id", "r1", "--enqueue")  # all four again, as one array
    assert code == 0
    (again,) = resubmitted(out)
    jobs = boto3.client("batch").list_jobs(jobQueue=queue)["jobSummaryList"]
    store = metatile_store(config.load())
    key = submission_key("r1", "rawr", array["jobName"])
    record = store.read(key)
    store.write(key, record[:-5])
    code = cli.main(["missing", "--run-id", "r1", "--enqueue"])
    assert code == 2 and f"submission record {key}" in capsys.readouterr().err
    store.write(key, record)
    listed = again["parameters"]["tile"][1:]  # @KEY: the array's tile list
    store.delete(listed)
    code = cli.main(["missing", "--run-id", "r1", "--enqueue"])
    assert code == 2 and f"tile list {listed} of Batch job {again['jobId']} is not in" in capsys.readouterr().err
    assert boto3.client("batch").list_jobs(jobQueue=queue)["jobSummaryList"] == jobs  # nothing more submitted


def test_missing_enqueue_from_a_local_store_is_refused_before_anything_is_submitted(queue, capsys, tmp_path,
                                                                                    monkeypatch):
    """Batch jobs could neither read its tile lists nor leave their records there."""
    store = FileStore(str(tmp_path))
    runs.add_expected(store, "r1", "rawr", [(Tile(72, 37, 7),), (Tile(72, 36, 7),)])
    monkeypatch.setenv("TILEQUEUE__store__url", f"file://{tmp_path}")
    code = cli.main(["missing", "--run-id", "r1", "--enqueue"])
    assert code == 2 and "which Batch jobs cannot reach" in capsys.readouterr().err
    assert boto3.client("batch").list_jobs(jobQueue=queue)["jobSummaryList"] == []


def test_a_rebuild_on_batch_from_a_local_store_is_refused_by_its_dry_run(queue, capsys, tmp_path, monkeypatch):
    """bbox_rebuild.sh starts with the dry run: a store Batch jobs cannot use is said there, before any log."""
    monkeypatch.setenv("TILEQUEUE__store__url", f"file://{tmp_path}")
    code = cli.main(["rebuild", "--executor", "batch", "--bbox", "24.94,60.165,24.95,60.17", "--run-id", "rb",
                     "--dry-run"])
    assert code == 2 and "which Batch jobs cannot reach" in capsys.readouterr().err
    assert not os.listdir(tmp_path)


def test_a_round_stopped_by_one_kind_submits_none_of_the_others(queue, capsys):
    """meta-high's definition, registered again as another kind's, stops the round before the rawr jobs it
    found missing are sent."""
    enqueue(capsys, "rawr")
    enqueue(capsys, "meta-high")
    batch = boto3.client("batch")
    listed = lambda: batch.list_jobs(jobQueue=queue, filters=[{"name": "JOB_NAME", "values": ["*"]}])[  # noqa: E731
        "jobSummaryList"]
    jobs = listed()
    batch.register_job_definition(jobDefinitionName="tilebatch-meta-high", type="container", tags={"job": "rawr"},
                                  containerProperties={"image": "tilebatch", "command": ["true"],
                                                       "resourceRequirements": [{"type": "VCPU", "value": "1"},
                                                                                {"type": "MEMORY", "value": "512"}]})
    assert cli.main(["missing", "--run-id", "r1", "--enqueue"]) == 2
    assert "job definition 'tilebatch-meta-high' runs rawr jobs, not meta-high" in capsys.readouterr().err
    assert listed() == jobs


def test_two_resubmitters_at_the_same_moment_send_the_round_once(queue, capsys, monkeypatch):
    """Both find the same jobs missing and the same next round; the one whose claim of it comes second
    submits nothing (its tile lists would overwrite the first's) and says why, exit 1."""
    enqueue(capsys, "rawr")
    batch = boto3.client("batch")
    jobs = batch.list_jobs(jobQueue=queue)["jobSummaryList"]
    store = metatile_store(config.load())
    claim = type(store).write_new

    def rival_first(self, key, data):  # the other re-submitter's claim lands just before this one's
        if key == round_key("r1", 1):
            assert claim(self, key, json.dumps({"round": 1, "began": time.time()}).encode())
        return claim(self, key, data)

    monkeypatch.setattr(type(store), "write_new", rival_first)
    assert cli.main(["missing", "--run-id", "r1", "--enqueue"]) == 1
    assert "another re-submission of run r1 took round 1" in capsys.readouterr().err
    assert batch.list_jobs(jobQueue=queue)["jobSummaryList"] == jobs
    assert "ended" not in json.loads(store.read(round_key("r1", 1)))  # the rival's claim, left as it wrote it


def test_a_round_being_sent_holds_off_others_and_a_dead_resubmitters_only_for_its_lease(queue, capsys):
    """Its jobs are not on Batch yet, so not seen as running: the unended claim is what says so."""
    enqueue(capsys, "rawr")
    batch = boto3.client("batch")
    jobs = batch.list_jobs(jobQueue=queue)["jobSummaryList"]
    store = metatile_store(config.load())
    store.write(round_key("r1", 1), json.dumps({"round": 1, "began": time.time() - 60}).encode())
    assert cli.main(["missing", "--run-id", "r1", "--enqueue"]) == 1
    assert "another re-submission of run r1 is under way (round 1)" in capsys.readouterr().err
    assert batch.list_jobs(jobQueue=queue)["jobSummaryList"] == jobs

    store.write(round_key("r1", 1), json.dumps({"round": 1, "began": time.time() - ROUND_LEASE - 1}).encode())
    code, out = main(capsys, "missing", "--run-id", "r1", "--enqueue")
    assert code == 0
    (again,) = resubmitted(out)
    assert "-r02m0-" in again["jobName"]  # the dead one's round is passed over
    assert "ended" in json.loads(store.read(round_key("r1", 2)))  # this one's, ended: the next may go
    code, out = main(capsys, "missing", "--run-id", "r1", "--enqueue")
    assert code == 0 and "-r03m0-" in resubmitted(out)[0]["jobName"]


def test_a_damaged_round_claim_is_bad_input_naming_it(queue, capsys):
    enqueue(capsys, "rawr")
    store = metatile_store(config.load())
    store.write(round_key("r1", 1), b"{\"round\": 1, \"beg")
    assert cli.main(["missing", "--run-id", "r1", "--enqueue"]) == 2
    assert f"round claim {round_key('r1', 1)} in {store.url} is damaged" in capsys.readouterr().err
