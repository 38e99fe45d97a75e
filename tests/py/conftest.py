"""Shared fixtures: the real local PostGIS, a moto server over HTTP, the CLI as a subprocess."""

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import mapbox_vector_tile
import psycopg2
import pytest

from tilebatch import metatile, render
from tilebatch.kinds import NAMES
from tilebatch.store import open_store

import motoserver

TOP = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def pytest_configure(config):
    config.addinivalue_line("markers", "faults: slow fault injection (servers stopped, disks filled, processes "
                                       "killed); make test runs them, -m 'not faults' leaves them out")


def run_cli(*args, env=None, cwd=None, input=None):
    """Run `tilebatch ARGS` as a user would; returns the CompletedProcess."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([str(BIN / "tilebatch"), *map(str, args)], capture_output=True, text=True,
                          env=full_env, cwd=cwd or TOP, input=input, timeout=600)


def last_error(proc) -> str:
    """The message of the error log line a failed command printed last."""
    lines = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    errors = [entry["msg"] for entry in lines if entry.get("level") == "error"]
    assert errors, f"no error line in stderr:\n{proc.stderr}"
    return errors[-1]


@pytest.fixture(scope="session")
def moto_url():
    """A moto server for the whole session."""
    url, proc = motoserver.start()
    yield url
    motoserver.stop(proc)


@pytest.fixture
def aws_env(moto_url, monkeypatch):
    """Environment pointing boto3 and the aws CLI at the moto server; state reset afterwards."""
    env = {
        "AWS_ENDPOINT_URL": moto_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    yield env
    urllib.request.urlopen(urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST"), timeout=10).read()


@pytest.fixture
def bucket(aws_env):
    """A fresh S3 bucket on the moto server."""
    import boto3

    boto3.client("s3").create_bucket(Bucket="tiles")
    return "tiles"


@pytest.fixture(scope="session")
def db_url():
    """The project-local PostGIS with the demo data (make test starts and loads it)."""
    url = subprocess.run([str(TOP / "bin/localdb"), "url"], capture_output=True, text=True, check=True).stdout.strip()
    status = subprocess.run([str(TOP / "bin/localdb"), "status"], capture_output=True, text=True)
    if status.returncode != 0:
        pytest.fail("the local database is not running: run the tests with 'make test'")
    return url


def metatiles(root) -> dict[str, bytes]:
    """Every zip under `root`, by path, with its bytes: metatiles, and RAWR tiles where `root` holds
    them too (run records left out)."""
    out = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            if name.endswith(".zip") and "/runs/" not in path:
                out[os.path.relpath(path, root)] = open(path, "rb").read()
    return out


def broken_install(folder, module: str) -> str:
    """A folder holding a package `module` that fails to import, for PYTHONPATH to put ahead of the real
    one: a broken install, for real. The folder, as PYTHONPATH takes it."""
    package = folder / module
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(f"raise ImportError('{module} is broken here')\n")
    return str(folder)


def build_env(root) -> dict:
    """Overrides that send a build's metatiles and RAWR tiles under `root`."""
    return {"TILEQUEUE__store__url": f"file://{root}/out", "TILEQUEUE__rawr__sink__url": f"file://{root}/rawr"}


def decode(data: bytes) -> dict:
    """An MVT tile's layers as mapbox_vector_tile decodes them ({} for an empty tile)."""
    return mapbox_vector_tile.decode(data, default_options={"y_coord_down": True}) if data else {}


def built_tile(root, tile) -> dict:
    """One tile of the build under `root` (build_env), decoded."""
    return decode(metatile.read_tile(open_store(f"file://{root}/out"), tile))


# What Tilezen's roads layer holds by zoom 15: these highways, railway tracks, runways and taxiways,
# ferries and piers (highway=trail or platform are not roads; the extract has no aerialway or piste).
ROAD_HIGHWAYS = ("motorway", "trunk", "motorway_link", "trunk_link", "primary", "secondary", "tertiary",
                 "primary_link", "secondary_link", "tertiary_link", "residential", "unclassified", "road",
                 "living_street", "service", "raceway", "pedestrian", "footway", "cycleway", "path", "steps",
                 "track", "bridleway", "corridor")
ROAD_RAILWAYS = ("rail", "tram", "light_rail", "narrow_gauge", "monorail", "subway", "funicular", "preserved",
                 "miniature", "disused")
# Tilezen's building area steps: at zoom 15 a building or part of 50 square metres or more.
BUILDING_Z15_M2 = 50


def counted_in_database(db_url: str, tile) -> tuple[int, int]:
    """The buildings and roads a z15 tile of the Tilezen schema should hold, counted in the database with SQL."""
    assert tile.z == 15, "the counts follow Tilezen's zoom-15 rules"
    box = render.clip_box(tile)
    with psycopg2.connect(db_url) as conn, conn.cursor() as cur:
        envelope = "ST_MakeEnvelope(%s, %s, %s, %s, 3857)"
        cur.execute(f"SELECT count(*) FROM planet_osm_polygon WHERE ST_Intersects(way, {envelope}) AND "
                    "((building IS NOT NULL AND building <> 'no') OR "
                    " (tags->'building:part' IS NOT NULL AND tags->'building:part' <> 'no')) AND way_area >= %s",
                    (*box, BUILDING_Z15_M2))
        buildings = cur.fetchone()[0]
        cur.execute(f"SELECT count(*) FROM planet_osm_line WHERE ST_Intersects(way, {envelope}) AND "
                    "(highway IN %s OR railway IN %s OR aeroway IN ('runway', 'taxiway') OR route = 'ferry'"
                    " OR man_made IN ('pier', 'quay'))",
                    (*box, ROAD_HIGHWAYS, ROAD_RAILWAYS))
        roads = cur.fetchone()[0]
    conn.close()
    return buildings, roads


@pytest.fixture(scope="session")
def built_store(db_url, tmp_path_factory):
    """A whole build of the demo data, once a session: (root dir, env overrides pointing at it)."""
    root = tmp_path_factory.mktemp("build")
    env = build_env(root)
    proc = run_cli("build", "--config", "config.yaml", "--run-id", "test-build", env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root, env


SHORTBREAD = {"TILEQUEUE__schema__name": "shortbread"}


@pytest.fixture(scope="session")
def shortbread_build(db_url, tmp_path_factory):
    """A whole build of the demo data with the Shortbread schema, once a session: its root dir."""
    root = tmp_path_factory.mktemp("shortbread")
    proc = run_cli("build", "--config", "config.yaml", "--run-id", "sb", env={**build_env(root), **SHORTBREAD})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root


@pytest.fixture
def queue(bucket, monkeypatch):
    """A job queue on an unmanaged compute environment and the three job definitions (512 MiB), as on AWS;
    the metatile store on S3 (s3://tiles/meta), where Batch jobs find their tile lists."""
    import boto3

    iam, batch = boto3.client("iam"), boto3.client("batch")
    role = iam.create_role(RoleName="batch-service", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                "Principal": {"Service": "batch.amazonaws.com"}}]}))
    env = batch.create_compute_environment(computeEnvironmentName="tb-env", type="UNMANAGED",
                                           serviceRole=role["Role"]["Arn"])
    batch.create_job_queue(jobQueueName="tb-queue", state="ENABLED", priority=1,
                           computeEnvironmentOrder=[{"order": 1, "computeEnvironment": env["computeEnvironmentArn"]}])
    for job in NAMES:
        batch.register_job_definition(jobDefinitionName=f"tilebatch-{job}", type="container", tags={"job": job},
                                      containerProperties={
                                          "image": "tilebatch", "command": ["true"],
                                          "resourceRequirements": [{"type": "VCPU", "value": "1"},
                                                                   {"type": "MEMORY", "value": "512"}]})
    monkeypatch.setenv("TILEQUEUE__batch__job_queue", "tb-queue")
    monkeypatch.setenv("TILEQUEUE__store__url", "s3://tiles/meta")
    return "tb-queue"
