"""missing --enqueue while a job of the run is still running on Batch, against a moto server that holds
each job it is given running for a few seconds (MOTO_SIMPLE_BATCH_FAIL_AFTER) before it fails."""

import json
import threading
import time

import boto3
import pytest

from tilebatch import cli, config, runs
from tilebatch.runkeys import submission_key
from tilebatch.store import metatile_store
from tilebatch.tiles import Tile

import motoserver

HELD = 6  # seconds moto holds a job running: the refusal must come within them, on a loaded machine too


@pytest.fixture(scope="module")
def moto_url():
    """Overrides the session's server for this module: here every Batch job runs HELD seconds, then fails."""
    url, proc = motoserver.start(env={"MOTO_SIMPLE_BATCH_FAIL_AFTER": str(HELD)})
    yield url
    motoserver.stop(proc)


def jobs(batch, queue: str) -> list[dict]:
    """The run's jobs in the queue, whatever their status."""
    return batch.list_jobs(jobQueue=queue, filters=[{"name": "JOB_NAME", "values": ["tilebatch-r1-*"]}])[
        "jobSummaryList"]


def test_missing_enqueue_while_a_job_of_the_run_runs_is_refused(queue, capsys):
    """The running job has no completion record yet, so it counts as missing: sent again, it would run twice."""
    batch = boto3.client("batch")
    # moto answers a submission once its job has ended; the job runs meanwhile, and the run's records
    # say what batch-enqueue would have written for it.
    submitting = threading.Thread(target=batch.submit_job, kwargs={
        "jobName": "tilebatch-r1-7-72-37", "jobQueue": queue, "jobDefinition": "tilebatch-rawr",
        "parameters": {"tile": "7/72/37", "run_id": "r1"}})
    submitting.start()
    deadline = time.time() + HELD
    while not (running := jobs(batch, queue)):
        assert time.time() < deadline, "moto never held the job"
        time.sleep(0.1)
    assert running[0]["status"] == "SUBMITTED"  # queued: as long as moto holds it
    store = metatile_store(config.load())
    runs.add_expected(store, "r1", "rawr", [(Tile(72, 37, 7),)])
    store.write(submission_key("r1", "rawr", running[0]["jobName"]), json.dumps(
        {"jobId": running[0]["jobId"], "jobName": running[0]["jobName"], "list": None, "tile": "7/72/37",
         "tiles": 1, "memory": None, "round": 0}).encode())
    try:
        assert cli.main(["missing", "--run-id", "r1", "--enqueue"]) == 1
        assert "1 jobs of run r1 are still queued or running on Batch" in capsys.readouterr().err
        assert len(jobs(batch, queue)) == 1  # nothing submitted
    finally:
        submitting.join()
    assert cli.main(["missing", "--run-id", "r1", "--enqueue"]) == 0  # once it has ended (failed), it goes again
    assert "tilebatch-r1-" in capsys.readouterr().out
