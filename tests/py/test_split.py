"""Queue-zoom jobs cut into parts for idle workers (split.py): the same bytes as uncut, against the real PostGIS."""

import json
import os

import pytest

from tilebatch import split
from tilebatch.tiles import Tile, make_bbox

from conftest import build_env, last_error, metatiles, run_cli

Z7 = Tile(72, 37, 7)  # holds the Helsinki extract
# Around the extract and inside its z7 tile: two z10 tiles, one with data, one without.
BBOX = "24.8,60.1,25.1,60.2"
DATA_Z10, EMPTY_Z10 = Tile(582, 296, 10), Tile(583, 296, 10)


def record(root, run_id: str, kind: str, tile: Tile) -> dict:
    with open(root / "out" / "runs" / run_id / kind / str(tile.z) / str(tile.x) / f"{tile.y}.json") as f:
        return json.load(f)


def build(root, jobs: int, run_id: str):
    return run_cli("build", "--config", "config.yaml", "--jobs", jobs, "--bbox", BBOX, "--run-id", run_id,
                   env=build_env(root))


@pytest.fixture(scope="module")
def whole(db_url, tmp_path_factory):
    """A build with one worker, so nothing is cut: (root, run id)."""
    root = tmp_path_factory.mktemp("whole")
    proc = build(root, 1, "whole")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "after_parts" not in proc.stderr
    return root, "whole"


def test_parts_are_cut_only_for_idle_workers():
    box = make_bbox(*map(float, BBOX.split(",")))
    assert split.parts("rawr", [Z7], box, 1, 7, 10) == {}
    assert split.parts("rawr", [Z7, Tile(72, 36, 7)], box, 2, 7, 10) == {}
    # The coarsest zoom that gives each worker a part: z8 and z9 hold the box in one tile, z10 in two.
    assert split.parts("meta-high", [Z7], box, 2, 7, 10) == {Z7: [DATA_Z10, EMPTY_Z10]}
    # meta-low: each z8 and z9 metatile touching the box, alone.
    assert split.parts("meta-low", [Z7], box, 2, 7, 10) == {Z7: [Tile(145, 74, 8), Tile(291, 148, 9)]}
    # Data in a single part: cut, it would only run one part, then the job.
    assert split.parts("rawr", [Z7], make_bbox(24.94, 60.165, 24.95, 60.17), 2, 7, 10) == {}


def test_a_cut_build_writes_the_same_bytes_and_records(whole, tmp_path):
    root, run_id = whole
    proc = build(tmp_path, 2, "cut")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "10 jobs run, 0 already done, 0 missing" in proc.stdout
    lines = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    joined = {line["job"] for line in lines if line.get("after_parts")}
    assert joined == {"rawr", "meta-high", "meta-low"}
    # Each part wrote its own record; the job's record holds the whole job's counts.
    for kind, part in (("rawr", DATA_Z10), ("meta-high", EMPTY_Z10), ("meta-low", Tile(291, 148, 9))):
        assert record(tmp_path, "cut", kind, part)["tile"] == f"{part.z}/{part.x}/{part.y}"
    for kind in ("rawr", "meta-high", "meta-low"):
        assert record(tmp_path, "cut", kind, Z7)["counts"] == record(root, run_id, kind, Z7)["counts"]
    want, got = metatiles(root), metatiles(tmp_path)
    assert any(k.startswith("rawr/") for k in want) and len(want) > 10
    assert got == want


def test_a_failed_part_leaves_its_job_missing_until_a_rerun(whole, tmp_path, db_url):
    root, _ = whole
    env = build_env(tmp_path)
    proc = run_cli("rawr-tile", "--config", "config.yaml", "--tile", "7/72/37", "--run-id", "broken", env=env)
    assert proc.returncode == 0, proc.stderr
    rawr_tile = tmp_path / "rawr" / "10" / str(DATA_Z10.x) / f"{DATA_Z10.y}.zip"
    good = rawr_tile.read_bytes()
    rawr_tile.write_bytes(b"not a zip")  # a damaged RAWR tile: the meta-high part that reads it fails (bad input)
    proc = build(tmp_path, 2, "broken")
    assert proc.returncode == 2
    assert "0 missing" not in proc.stdout
    failed = [json.loads(line) for line in proc.stderr.splitlines() if '"job failed"' in line]
    assert [(f["failed_job"], f["failed_tile"]) for f in failed] == [("meta-high", "10/582/296")]
    out = tmp_path / "out" / "runs" / "broken"
    assert (out / "meta-high" / "10" / str(EMPTY_Z10.x) / f"{EMPTY_Z10.y}.json").exists()
    assert not (out / "meta-high" / "7" / "72" / "37.json").exists()
    assert not (out / "meta-low" / "7" / "72" / "37.json").exists()  # no stage runs after one that failed
    rawr_tile.write_bytes(good)
    proc = build(tmp_path, 2, "broken")
    assert proc.returncode == 0, proc.stderr[-3000:]
    # The part done before is not done again; the job names it among its parts.
    started = [json.loads(line) for line in proc.stderr.splitlines() if '"job started"' in line]
    meta_high = [(s["tile"], s.get("after_parts")) for s in started if s["job"] == "meta-high"]
    assert meta_high == [("10/582/296", None), ("7/72/37", 2)]
    assert metatiles(tmp_path) == metatiles(root)


@pytest.mark.parametrize("parts, message", [
    ("8/0/0", "--after-parts: 8/0/0 is not a part of rawr job 7/72/37"),
    ("11/1164/592", "--after-parts: 11/1164/592 is not a part of rawr job 7/72/37"),
    ("10/582/296", "--after-parts: part 10/582/296 has no completion record in run r1"),
])
def test_bad_parts_exit_2_and_write_nothing(tmp_path, db_url, parts, message):
    proc = run_cli("rawr-tile", "--config", "config.yaml", "--tile", "7/72/37", "--run-id", "r1",
                   "--after-parts", parts, env=build_env(tmp_path))
    assert proc.returncode == 2, proc.stderr
    assert message in last_error(proc)
    assert not any(names for _, _, names in os.walk(tmp_path))
