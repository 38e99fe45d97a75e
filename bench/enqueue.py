"""A planet run enqueued on a Batch API (a moto server on 127.0.0.1): array jobs against one job per tile.

The array way is `tilebatch batch-enqueue` itself, the three stages as an
operator runs them (rawr; meta-high waiting on it; meta-low with the pyramid
waiting on meta-high). Every HTTP request the server receives is counted with
moto's recorder, S3 writes of the tile lists included. The other way, one
submit_job a tile, is timed on a sample against the same server and
extrapolated to the planet's job count.
"""

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

import boto3

from tilebatch.enqueue import select_tiles
from tilebatch.kinds import NAMES

from .data import TOP

QUEUE, BUCKET, PREFIX = "bench-queue", "bench-tiles", "tilebatch"
STAGES = (("rawr", []), ("meta-high", []), ("meta-low", ["--pyramid"]))


def _post(url: str, path: str, body: bytes = b"") -> bytes:
    return urllib.request.urlopen(urllib.request.Request(url + path, data=body, method="POST"), timeout=30).read()


class MotoServer:
    """A moto server on a free local port, recording what it is asked, for the length of a `with`."""

    def __enter__(self):
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.dir = tempfile.TemporaryDirectory()
        env = {**os.environ, "MOTO_ENABLE_RECORDING": "true",
               "MOTO_RECORDER_FILEPATH": os.path.join(self.dir.name, "recording")}
        self.proc = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "moto_server"),
                                      "-H", "127.0.0.1", "-p", str(port)], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                urllib.request.urlopen(self.url + "/moto-api/", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise SystemExit("bench: the moto server did not start")
        _post(self.url, "/moto-api/config", json.dumps({"batch": {"use_docker": False}}).encode())
        self.env = {**os.environ, "AWS_ENDPOINT_URL": self.url, "AWS_ACCESS_KEY_ID": "bench",
                    "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.dir.cleanup()

    def client(self, service: str):
        return boto3.client(service, endpoint_url=self.url, region_name="us-east-1",
                            aws_access_key_id="bench", aws_secret_access_key="bench")

    def record(self, on: bool) -> None:
        """Start recording from an empty recording, or stop."""
        if on:
            _post(self.url, "/moto-api/recorder/reset-recording")
        _post(self.url, "/moto-api/recorder/" + ("start-recording" if on else "stop-recording"))

    def recorded(self) -> dict:
        """The requests recorded since recording started, counted by AWS service."""
        data = urllib.request.urlopen(self.url + "/moto-api/recorder/download-recording", timeout=30).read()
        counts = {}
        for line in data.decode().splitlines():
            if line.strip():
                # The signing scope names the service: Credential=key/date/region/SERVICE/aws4_request.
                service = json.loads(line)["headers"].get("Authorization", "").split("/")[3:4] or ["?"]
                counts[service[0]] = counts.get(service[0], 0) + 1
        return counts


def _set_up(moto: MotoServer) -> None:
    """A bucket, a job queue and the three job definitions, as make batch-setup and make jobdefs leave them."""
    iam, batch = moto.client("iam"), moto.client("batch")
    moto.client("s3").create_bucket(Bucket=BUCKET)
    role = iam.create_role(RoleName="bench-batch", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                "Principal": {"Service": "batch.amazonaws.com"}}]}))
    env = batch.create_compute_environment(computeEnvironmentName="bench-env", type="UNMANAGED",
                                           serviceRole=role["Role"]["Arn"])
    batch.create_job_queue(jobQueueName=QUEUE, state="ENABLED", priority=1,
                           computeEnvironmentOrder=[{"order": 1, "computeEnvironment": env["computeEnvironmentArn"]}])
    for job in NAMES:
        batch.register_job_definition(jobDefinitionName=f"tilebatch-{job}", type="container", containerProperties={
            "image": "tilebatch", "command": ["true"],
            "resourceRequirements": [{"type": "VCPU", "value": "1"}, {"type": "MEMORY", "value": "512"}]})


def _arrays(moto: MotoServer, config_path: str | None) -> dict:
    env = {**moto.env, "TILEQUEUE__batch__job_queue": QUEUE, "TILEQUEUE__store__url": f"s3://{BUCKET}/{PREFIX}"}
    seconds, submissions, depends = 0.0, 0, []
    moto.record(True)
    for job, extra in STAGES:
        cmd = [os.path.join(os.path.dirname(sys.executable), "tilebatch"), "batch-enqueue", "--run-id", "planet",
               "--job", job, *extra, *[a for d in depends for a in ("--depends-on", d)]]
        if config_path:
            cmd += ["--config", config_path]
        started = time.monotonic()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=TOP)
        seconds += time.monotonic() - started
        if proc.returncode != 0:
            raise SystemExit(f"bench: batch-enqueue --job {job} failed:\n{proc.stderr[-2000:]}")
        depends = [json.loads(line)["jobId"] for line in proc.stdout.splitlines()]
        submissions += len(depends)
    moto.record(False)
    calls = moto.recorded()
    return {"api_calls": sum(calls.values()), "by_service": calls, "submissions": submissions,
            "seconds": round(seconds, 2)}


def _per_tile(moto: MotoServer, jobs: int, sample: int) -> dict:
    """submit_job once a tile, timed over `sample` tiles and extrapolated to `jobs`."""
    batch = moto.client("batch")
    tiles = select_tiles(7)[:sample]
    started = time.monotonic()
    for t in tiles:
        batch.submit_job(jobName=f"tilebatch-planet-{t.z}-{t.x}-{t.y}", jobQueue=QUEUE,
                         jobDefinition="tilebatch-rawr", parameters={"tile": f"{t.z}/{t.x}/{t.y}", "run_id": "planet"})
    seconds = time.monotonic() - started
    return {"api_calls": jobs, "sampled": len(tiles), "sample_seconds": round(seconds, 2),
            "seconds": round(seconds / len(tiles) * jobs, 1)}


def run(config_path: str | None, sample: int) -> dict:
    """API calls and seconds of a planet enqueue, array jobs and one job a tile."""
    jobs = len(select_tiles(7)) * 2 + len(select_tiles(7, with_pyramid=True))
    with MotoServer() as moto:
        _set_up(moto)
        arrays = _arrays(moto, config_path)
        per_tile = _per_tile(moto, jobs, sample)
    return {"jobs": jobs, "arrays": arrays, "per_tile": per_tile}
