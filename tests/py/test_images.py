"""The job images, built and run for real: a whole small run inside the three containers.

A Docker engine (tests/docker-engine starts Debian's when none answers), the
Python base built from Debian packages (make base-image), the three job images
pushed with make push to a registry on 127.0.0.1 (Debian's docker-registry)
with the ECR login pointed at a moto server, and pulled back. Then each job
runs as AWS Batch runs it, from what the rendered job definition
(build/jobdefs/*.json) says: its image, its environment, its command with
Ref::tile and Ref::run_id filled in from the submitted job's parameters, its
memory and vCPUs, the password secret read from Secrets Manager and injected as
an environment variable; plus what Batch adds (the job id, an array child's
index), and for the job role, credentials for the moto server that stands in
for S3. The rawr job reads the local PostGIS (containers share the host's
network), meta-high reads the RAWR tiles from S3 as an array child, meta-low
runs as the array children of the pyramid.
"""

import json
import os
import shutil
import subprocess
import time
import urllib.request

import boto3
import pytest

from tilebatch import config
from tilebatch.kinds import NAMES

import motoserver
from conftest import TOP
from motoserver import free_port

TAG = "test"
RUN_ID = "images-run"
# Recursive in make: the base image config.mk names for make base-image.
LOCAL_BASE = "BASE_IMAGE=$(LOCAL_BASE_IMAGE)"
PASSWORD = "pw-from-the-secret-7f3a"
DEMO_TILE = "7/72/37"
# meta-high goes as an array job over the demo tile and its eastern neighbour, which has no data.
META_HIGH_TILES = [DEMO_TILE, "7/73/37"]
PYRAMID = ["0/0/0", "1/1/0", "2/2/1", "3/4/2", "4/9/4", "5/18/9", "6/36/18", DEMO_TILE]
IMAGE_LIMIT = 400_000_000  # bytes


def sh(*cmd, env=None, timeout=1800, check=True):
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    if check:
        assert proc.returncode == 0, f"{cmd}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def make(*args, env=None, check=True):
    return sh("make", "-s", "--no-print-directory", "-C", TOP, *args, env=env, check=check)


def client(aws: dict, service: str):
    return boto3.client(service, endpoint_url=aws["AWS_ENDPOINT_URL"], region_name=aws["AWS_DEFAULT_REGION"],
                        aws_access_key_id=aws["AWS_ACCESS_KEY_ID"], aws_secret_access_key=aws["AWS_SECRET_ACCESS_KEY"])


def say(request, line: str) -> None:
    """A line on the terminal of `make test` (image sizes, build seconds), past pytest's capture."""
    plugins = request.config.pluginmanager
    with plugins.getplugin("capturemanager").global_and_fixture_disabled():
        plugins.getplugin("terminalreporter").write_line(f"images: {line}")


def image_id(name: str) -> str:
    """The id of a local image, "" when there is none."""
    return sh("docker", "image", "inspect", "-f", "{{.Id}}", name, check=False).stdout.strip()


def last_line(proc) -> dict:
    return json.loads(proc.stderr.strip().splitlines()[-1])


def s3_objects(aws: dict, bucket: str, prefix: str) -> dict[str, bytes]:
    """Every object under `prefix`, by key without its hash-prefix directory: {z/x/y.ext or runs/…: bytes}."""
    s3 = client(aws, "s3")
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
        for obj in page.get("Contents", []):
            key = obj["Key"][len(prefix) + 1:]
            name = key if key.startswith("runs/") else key.split("/", 1)[1]
            out[name] = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
    return out


def local_objects(root) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def engine():
    started = sh(TOP / "tests/docker-engine", "start").stdout.strip() == "started"
    yield
    if started:
        sh(TOP / "tests/docker-engine", "stop")


@pytest.fixture(scope="module")
def registry(engine, tmp_path_factory):
    """Debian's docker-registry on a free 127.0.0.1 port (Docker pushes to a 127.0.0.1 registry over plain HTTP)."""
    root = tmp_path_factory.mktemp("registry")
    address = f"127.0.0.1:{free_port()}"
    (root / "config.yml").write_text(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
                                     f"    rootdirectory: {root}/data\nhttp:\n  addr: {address}\n")
    with open(root / "log", "w") as log:
        proc = subprocess.Popen(["docker-registry", "serve", str(root / "config.yml")], stdout=log, stderr=log)
    assert motoserver.wait_until_answers(f"http://{address}/v2/", proc), (root / "log").read_text()
    yield address
    proc.terminate()
    proc.wait(timeout=10)
    shutil.rmtree(root / "data")


@pytest.fixture(scope="module")
def aws(engine):
    """This module's own moto server (S3, ECR, Secrets Manager, Batch without Docker) and the environment for it."""
    url, proc = motoserver.start()
    yield {"AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1"}
    motoserver.stop(proc)


@pytest.fixture(scope="module")
def pushed(request, registry, aws, tmp_path_factory):
    """make base-image, then make push: the images built on it, logged in with the ECR password, pushed;
    then each pulled back by its registry name. The images: {job: registry name}."""
    make("base-image")
    env = {**aws, "DOCKER_CONFIG": str(tmp_path_factory.mktemp("docker-config"))}
    local = [f"tilebatch-{job}:{TAG}" for job in NAMES]
    before = [image_id(name) for name in local]
    started = time.monotonic()
    out = make("push", f"REGISTRY={registry}", f"TAG={TAG}", LOCAL_BASE, env=env).stdout
    say(request, f"make push (build, log in, push) took {time.monotonic() - started:.0f} s")
    for line in out.splitlines():
        if line.startswith("image: "):
            say(request, line[len("image: "):])
    images = {job: f"{registry}/tilebatch-{job}:{TAG}" for job in NAMES}
    for image in images.values():
        sh("docker", "image", "rm", image)  # the tag only: the layers stay under the local name
        sh("docker", "pull", "-q", image)
    # The job images of an earlier run that these replaced, and with them the base they stood on
    # (what the next build reuses is in the layers they share with these).
    for name, old in zip(local, before):
        if old not in ("", image_id(name)):
            # Gone already when another build (a test run beside this one) removed it.
            sh("docker", "image", "rm", old, check=False)
    yield images
    # The registry goes with the test; the images stay, under their local names, as the next build's cache.
    sh("docker", "image", "rm", *images.values())


def test_push_creates_the_ecr_repositories_and_the_registry_serves_the_images(pushed, registry, aws, tmp_path):
    repos = client(aws, "ecr").describe_repositories()["repositories"]
    assert {r["repositoryName"] for r in repos} == {f"tilebatch-{job}" for job in NAMES}
    for job, image in pushed.items():
        tags = json.load(urllib.request.urlopen(f"http://{registry}/v2/tilebatch-{job}/tags/list", timeout=5))
        assert tags["tags"] == [TAG]
        # What came back is what was built.
        assert image_id(image) == image_id(f"tilebatch-{job}:{TAG}") != ""
    # Again: the repository is there now, so it is not created a second time (that would fail).
    env = {**aws, "DOCKER_CONFIG": str(tmp_path)}
    make("-C", "docker/rawr", "push", f"REGISTRY={registry}", f"TAG={TAG}", LOCAL_BASE, env=env)


def test_a_failed_ecr_login_stops_the_push(pushed, registry, aws, tmp_path):
    env = {**aws, "DOCKER_CONFIG": str(tmp_path), "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "",
           "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "AWS_EC2_METADATA_DISABLED": "true"}
    proc = make("-C", "docker/rawr", "push", f"REGISTRY={registry}", "TAG=nologin", LOCAL_BASE, env=env, check=False)
    assert proc.returncode != 0
    tags = json.load(urllib.request.urlopen(f"http://{registry}/v2/tilebatch-rawr/tags/list", timeout=5))
    assert tags["tags"] == [TAG]
    sh("docker", "image", "rm", "tilebatch-rawr:nologin", "tilebatch-base:nologin")


def test_the_images_are_small_run_as_non_root_and_hold_no_build_leftovers(request, pushed):
    for image in pushed.values():
        size = int(sh("docker", "image", "inspect", "-f", "{{.Size}}", image).stdout)
        say(request, f"{image} {size / 1e6:.0f} MB")
        assert size < IMAGE_LIMIT
        assert sh("docker", "run", "--rm", "--network", "host", image, "id", "-u").stdout.strip() == "10001"
    # As a new user would type it.
    proc = sh("docker", "run", "--rm", "--network", "host", pushed["meta-high"], "tilebatch", "--version")
    assert proc.stdout.startswith("tilebatch ")
    # No compiler, no apt lists or packages, no pip cache.
    leftovers = sh("docker", "run", "--rm", "--user", "0", "--entrypoint", "sh", pushed["rawr"], "-c",
                   "command -v gcc cc make; find /var/lib/apt/lists /var/cache/apt /root/.cache "
                   "/home/tilebatch/.cache -type f ! -name lock 2>/dev/null; true").stdout
    assert leftovers == ""
    # The three share every layer: a job image adds only its command.
    layers = {sh("docker", "image", "inspect", "-f", "{{json .RootFS.Layers}}", image).stdout for image in pushed.values()}
    assert len(layers) == 1


def test_docker_stop_reaches_the_job_which_ends_with_its_status_and_resources_line(pushed):
    """Batch stops a job (a timeout, a cancel) as docker stop does: a SIGTERM to the container's PID 1, the
    entrypoint, then a SIGKILL once the grace period is over. The stand-in job answers it as tilebatch does.
    tests/bats/job_entrypoint.bats checks the entrypoint without Docker."""
    name = f"tilebatch-stop-{os.getpid()}"
    # It answers with a code of its own: 143 is also what the entrypoint's interrupted wait gives.
    sh("docker", "run", "-d", "--name", name, "--network", "host", pushed["meta-high"],
       "sh", "-c", 'trap "exit 3" TERM; echo ready; sleep 600 & wait')
    try:
        deadline = time.monotonic() + 30
        while "ready" not in sh("docker", "logs", name).stdout:  # its trap is set: a signal now is answered
            assert time.monotonic() < deadline, "the job never started"
            time.sleep(0.1)
        started = time.monotonic()
        sh("docker", "stop", "--time", "20", name)
        assert time.monotonic() - started < 15, "the SIGTERM was dropped: the job was killed at the end of the grace period"
        assert sh("docker", "wait", name).stdout.strip() == "3"
        assert last_line(sh("docker", "logs", name))["msg"] == "process resources"
    finally:
        sh("docker", "rm", "-f", name, check=False)


@pytest.fixture(scope="module")
def jobdefs(pushed, registry, aws):
    """make jobdefs with the moto server's secret, the local PostGIS, the S3 buckets: the rendered definitions."""
    s3 = client(aws, "s3")
    for bucket in ("tiles", "rawr"):
        s3.create_bucket(Bucket=bucket)
    secret = client(aws, "secretsmanager").create_secret(Name="tilebatch-db", SecretString=PASSWORD)["ARN"]
    db = config.load(str(TOP / "config.yaml"))["postgresql"]  # make test's own database
    port, name = db["port"], db["dbnames"][0]
    make("jobdefs", f"REGISTRY={registry}", f"TAG={TAG}", "JOB_ROLE_ARN=arn:aws:iam::123456789012:role/tilebatch-job",
         "EXECUTION_ROLE_ARN=arn:aws:iam::123456789012:role/tilebatch-execution", f"DB_PASSWORD_SECRET_ARN={secret}",
         "DB_HOST=127.0.0.1", f"DB_PORT={port}", f"DB_NAME={name}", "TILES_BUCKET=tiles", "TILES_PREFIX=meta", "RAWR_BUCKET=rawr",
         "RAWR_PREFIX=tiles", env=aws)
    defs = {job: json.loads((TOP / "build/jobdefs" / f"{job}.json").read_text()) for job in NAMES}
    for job, image in pushed.items():
        assert defs[job]["containerProperties"]["image"] == image
    return defs


@pytest.fixture(scope="module")
def queue(jobdefs, aws):
    """A job queue on the moto server, for make enqueue."""
    role = client(aws, "iam").create_role(RoleName="batch-service", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    batch = client(aws, "batch")
    env = batch.create_compute_environment(computeEnvironmentName="tb-env", type="UNMANAGED", serviceRole=role)
    batch.create_job_queue(jobQueueName="tb-queue", state="ENABLED", priority=1,
                           computeEnvironmentOrder=[{"order": 1, "computeEnvironment": env["computeEnvironmentArn"]}])
    return "tb-queue"


def enqueue(aws, queue, job: str, *selection) -> dict:
    """make enqueue: the one job it submitted, as printed (jobId, parameters, arrayProperties)."""
    out = make("enqueue", f"RUN_ID={RUN_ID}", f"JOB={job}", f"JOB_QUEUE={queue}", "TILES_BUCKET=tiles",
               "TILES_PREFIX=meta", *selection, env=aws).stdout
    (submitted,) = [json.loads(line) for line in out.splitlines()]
    return submitted


def batch_run(jobdef: dict, job: dict, aws: dict, array_index: int | None = None, endpoint: str | None = None):
    """Run one job, or one child of an array job, in its container as Batch would."""
    props = jobdef["containerProperties"]
    secrets = client(aws, "secretsmanager")
    env = {e["name"]: e["value"] for e in props["environment"]}
    env |= {s["name"]: secrets.get_secret_value(SecretId=s["valueFrom"])["SecretString"]
            for s in props.get("secrets", [])}
    env["AWS_BATCH_JOB_ID"] = job["jobId"] if array_index is None else f"{job['jobId']}:{array_index}"
    if array_index is not None:
        env["AWS_BATCH_JOB_ARRAY_INDEX"] = str(array_index)
    env |= {**aws, "AWS_ENDPOINT_URL": endpoint or aws["AWS_ENDPOINT_URL"]}
    command = [job["parameters"][word[5:]] if word.startswith("Ref::") else word for word in props["command"]]
    resources = {r["type"]: r["value"] for r in props["resourceRequirements"]}
    # `--env NAME` takes the value from docker's own environment: no secret on a command line.
    names = [arg for name in env for arg in ("--env", name)]
    return sh("docker", "run", "--rm", "--network", "host", "--memory", f"{resources['MEMORY']}m",
              "--cpus", resources["VCPU"], *names, props["image"], *command, env=env, check=False)


@pytest.fixture(scope="module")
def container_run(request, jobdefs, queue, aws, tmp_path_factory):
    """The whole run: rawr for the demo's z7 tile, meta-high as array children, meta-low over the pyramid.
    [(job kind, the tiles it should have built, the finished container)]."""
    tiles = tmp_path_factory.mktemp("enqueue") / "meta-high.txt"
    tiles.write_text("\n".join(META_HIGH_TILES) + "\n")
    jobs = [("rawr", enqueue(aws, queue, "rawr", f"TILE={DEMO_TILE}"), [[DEMO_TILE]]),
            ("meta-high", enqueue(aws, queue, "meta-high", f"FILE={tiles}"), [[t] for t in META_HIGH_TILES]),
            ("meta-low", enqueue(aws, queue, "meta-low", f"TILE={DEMO_TILE}", "PYRAMID=1"), [PYRAMID])]
    assert "arrayProperties" not in jobs[0][1]
    assert jobs[1][1]["parameters"]["tile"] == f"@runs/{RUN_ID}/meta-high/tiles-0000.txt"
    # One z7 tile's pyramid is one meta-low job (enqueue.job_units): its low zooms, then the z7 tile.
    assert "arrayProperties" not in jobs[2][1] and jobs[2][1]["parameters"]["tile"] == ",".join(PYRAMID)
    started = time.monotonic()
    done = []
    for kind, job, expected in jobs:
        children = [None] if "arrayProperties" not in job else range(job["arrayProperties"]["size"])
        for index, tiles in zip(children, expected, strict=True):
            done.append((kind, tiles, batch_run(jobdefs[kind], job, aws, index)))
    say(request, f"{len(done)} job containers ran in {time.monotonic() - started:.0f} s")
    return done


def test_every_job_succeeds_and_its_last_log_line_is_its_resources(container_run):
    for kind, tiles, proc in container_run:
        assert proc.returncode == 0, proc.stderr[-3000:]
        last = last_line(proc)
        assert last["msg"] == "process resources", proc.stderr[-2000:]
        assert (last["run_id"], last["job"], last["tile"]) == (RUN_ID, kind, tiles[-1])  # the last it did
        assert last["peak_memory_kb"] > 0
        assert PASSWORD not in proc.stderr + proc.stdout


def test_the_metatiles_on_s3_equal_a_local_builds_byte_for_byte(container_run, built_store, aws):
    root, _ = built_store
    local = {k: v for k, v in local_objects(root / "out").items() if not k.startswith("runs/")}
    remote = s3_objects(aws, "tiles", "meta")
    # Both kinds are there: meta-low's metatiles z7..z9 (above z7 the schema may show nothing of a city)
    # and meta-high's z10..z13.
    assert set(range(7, 14)) <= {int(key.split("/")[0]) for key in local}
    assert {k: v for k, v in remote.items() if not k.startswith("runs/")} == local
    rawr = local_objects(root / "rawr")
    assert rawr and s3_objects(aws, "rawr", "tiles") == rawr
    # Each job's completion record, under the run.
    records = {k for k in remote if k.startswith(f"runs/{RUN_ID}/") and "/batch/" not in k and k.endswith(".json")}
    assert {f"runs/{RUN_ID}/{kind}/{tile}.json" for kind, tiles, _ in container_run for tile in tiles} <= records


def test_an_unreachable_store_exits_1_and_a_bad_tile_exits_2_writing_nothing(container_run, jobdefs, aws):
    before = s3_objects(aws, "tiles", "meta")
    job = {"jobId": "f0", "parameters": {"tile": DEMO_TILE, "run_id": "images-fail"}}
    unreachable = batch_run(jobdefs["meta-high"], job, aws, endpoint=f"http://127.0.0.1:{free_port()}")
    assert unreachable.returncode == 1, unreachable.stderr[-2000:]
    errors = [json.loads(line) for line in unreachable.stderr.splitlines() if '"level": "error"' in line]
    assert "Could not connect to the endpoint URL" in errors[-1]["msg"]
    assert last_line(unreachable)["msg"] == "process resources"

    bad = batch_run(jobdefs["rawr"], {**job, "parameters": {"tile": "7/999/0", "run_id": "images-fail"}}, aws)
    assert bad.returncode == 2, bad.stderr[-2000:]
    assert "bad tile '7/999/0'" in bad.stderr
    assert (last_line(bad)["msg"], last_line(bad)["tile"]) == ("process resources", "7/999/0")
    assert s3_objects(aws, "tiles", "meta") == before


def test_a_code_change_rebuilds_only_the_code_layers(request, pushed, tmp_path):
    """docker build keeps the dependency layer when only py/ changed; the rebuild's seconds are printed."""
    files = sh("git", "-C", TOP, "ls-files", "-co", "--exclude-standard", "--", "py", "docker", "config.mk",
               "config.yaml", ".dockerignore").stdout.split()
    for name in files:
        if (TOP / name).is_file() and "__pycache__" not in name:
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(TOP / name, tmp_path / name)
    with open(tmp_path / "py/tilebatch/__init__.py", "a") as f:
        f.write("# a one-line change\n")
    started = time.monotonic()
    sh("make", "-s", "-C", tmp_path / "docker/rawr", "image", "TAG=codechange", LOCAL_BASE)
    say(request, f"rebuild after a one-line change in py/: {time.monotonic() - started:.0f} s")
    try:
        old, new = (json.loads(sh("docker", "image", "inspect", "-f", "{{json .RootFS.Layers}}", image).stdout)
                    for image in (pushed["rawr"], "tilebatch-rawr:codechange"))
        # Everything up to the code, the requirements' layer among them, is the same; COPY py/ and its install are new.
        assert len(new) == len(old) and new[:-2] == old[:-2]
        assert new[-2] != old[-2] and new[-1] != old[-1]
    finally:
        sh("docker", "image", "rm", "tilebatch-rawr:codechange", "tilebatch-base:codechange")
