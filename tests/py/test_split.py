"""Queue-zoom jobs cut into parts for idle workers (split.py): the same bytes as uncut, against the real PostGIS."""

import json
import os

import pytest

from tilebatch import config, forkserver, local, schedule, split
from tilebatch.enqueue import build_jobs
from tilebatch.tiles import Tile, ancestor, format_tile, make_bbox

from conftest import TOP, build_env, last_error, metatiles, run_cli

Z7 = Tile(72, 37, 7)  # holds the Helsinki extract
# Around the extract and inside its z7 tile: two z10 tiles, one with data, one without.
BBOX = "24.8,60.1,25.1,60.2"
DATA_Z10, EMPTY_Z10 = Tile(582, 296, 10), Tile(583, 296, 10)
LOW = [ancestor(Z7, z) for z in range(7)]  # the box's meta-low jobs below the queue zoom, coarsest first


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
    assert split.parts_of("rawr", [Z7], box, 1, 7, 10) == {}
    assert split.parts_of("rawr", [Z7, Tile(72, 36, 7)], box, 2, 7, 10) == {}
    # The coarsest zoom that gives each worker a part: z8 and z9 hold the box in one tile, z10 in two.
    assert split.parts_of("meta-high", [Z7], box, 2, 7, 10) == {Z7: [DATA_Z10, EMPTY_Z10]}
    # meta-low: each z8 and z9 metatile touching the box, alone.
    assert split.parts_of("meta-low", [Z7], box, 2, 7, 10) == {Z7: [Tile(145, 74, 8), Tile(291, 148, 9)]}
    # Data in a single part: cut, it would only run one part, then the job.
    assert split.parts_of("rawr", [Z7], make_bbox(24.94, 60.165, 24.95, 60.17), 2, 7, 10) == {}


def test_meta_low_is_cut_only_for_the_workers_rawr_and_its_own_jobs_leave():
    box = make_bbox(*map(float, BBOX.split(",")))
    todo = {"rawr": [Z7], "meta-high": [Z7], "meta-low": [*LOW, Z7]}
    meta_low_parts = {Z7: [Tile(145, 74, 8), Tile(291, 148, 9)]}
    # rawr's two parts start beside meta-low's z7 job and its low-zoom jobs' processes (one a worker,
    # up to seven): only from eleven workers on are two left idle for meta-low's parts. Till then the
    # z7 job is whole, and its low-zoom jobs go in its process, before it.
    for workers, cut_meta_low in ((1, {}), (2, {}), (4, {}), (10, {}), (11, meta_low_parts)):
        parts, groups = split.cut(todo, box, workers, 7, 10)
        assert parts == {"rawr": {Z7: [DATA_Z10, EMPTY_Z10]} if workers > 1 else {},
                         "meta-high": {Z7: [DATA_Z10, EMPTY_Z10]} if workers > 1 else {},
                         "meta-low": cut_meta_low}, workers
        low_groups = split.groups_of("meta-low", LOW, 7, workers) if cut_meta_low else [LOW + [Z7]]
        assert groups == {"rawr": [], "meta-high": [], "meta-low": low_groups}, workers
    assert len(low_groups) == 7
    assert split.cut(todo, None, 16, 7, 10)[0] == {"rawr": {}, "meta-high": {}, "meta-low": {}}


def test_a_cut_build_writes_the_same_bytes_and_records(whole, tmp_path):
    root, run_id = whole
    # Eleven workers: rawr's two parts, meta-low's z7 job and its seven low-zoom ones leave two idle,
    # so meta-low is cut too.
    proc = build(tmp_path, 11, "cut")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "10 jobs run, 0 already done, 0 missing" in proc.stdout
    lines = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    stages = [(line["msg"], line["stage"]) for line in lines if line["msg"] in ("stage started", "stage done")]
    assert stages.index(("stage started", "meta-low")) < stages.index(("stage done", "rawr"))
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




def test_a_boxs_few_low_zoom_meta_low_jobs_are_a_process_a_worker():
    assert split.groups_of("meta-low", [Z7, *reversed(LOW)], 7) == [LOW]
    # Dealt finest first, so that each worker gets a share of the larger ones; each coarsest first.
    assert split.groups_of("meta-low", LOW, 7, 2) == [[LOW[0], LOW[2], LOW[4], LOW[6]], [LOW[1], LOW[3], LOW[5]]]
    assert split.groups_of("meta-low", LOW, 7, 16) == [[t] for t in reversed(LOW)]
    assert split.groups_of("rawr", [Z7], 7) == split.groups_of("meta-high", [Z7], 7) == []
    assert split.groups_of("meta-low", [Z7, Tile(0, 0, 0)], 7) == []  # one alone shares nothing
    # A country's low zooms are work enough for every worker: each its own process.
    many = [Tile(x, y, 6) for x in range(4) for y in range(5)] + LOW[:6]
    assert split.groups_of("meta-low", many, 7) == []


def meta_low_metatiles(root) -> dict:
    return {k: v for k, v in metatiles(root).items() if k.startswith("out/") and int(k.split("/")[1]) < 10}


def test_a_build_runs_the_low_zoom_jobs_in_the_z7_jobs_process_writing_what_they_write_alone(whole, tmp_path,
                                                                                               monkeypatch):
    root, run_id = whole
    for key, value in build_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(TOP)
    started, start = [], forkserver.Server.start
    monkeypatch.setattr(forkserver.Server, "start",
                        lambda self, cmd: started.append(cmd[cmd.index("--tile") + 1]) or start(self, cmd))
    box = make_bbox(*map(float, BBOX.split(",")))
    runner = local.Runner(config.load("config.yaml"), "config.yaml", "grouped", 1, quiet=True, split_within=box)
    runner.run({"meta-low": build_jobs(7, bbox=box)["meta-low"]})
    assert started == [",".join(map(format_tile, [*LOW, Z7]))]  # the small jobs first, then the z7 job
    assert sorted(runner.ran) == sorted(("meta-low", t) for t in [*LOW, Z7])
    for tile in LOW:  # each recorded as a job of its own
        assert record(tmp_path, "grouped", "meta-low", tile)["counts"] == record(root, run_id, "meta-low", tile)["counts"]
    assert meta_low_metatiles(tmp_path) == meta_low_metatiles(root) != {}


def test_a_failed_job_of_a_group_leaves_it_and_those_after_it_missing_until_a_rerun(whole, tmp_path):
    root, _ = whole
    blocked = tmp_path / "out" / "2" / "2" / "1.zip"
    blocked.mkdir(parents=True)  # the z2 job cannot write its metatile: bad output, no retry mends it
    proc = build(tmp_path, 1, "group")
    assert proc.returncode == 2
    failed = [json.loads(line) for line in proc.stderr.splitlines() if '"job failed"' in line]
    assert {(f["failed_job"], f["failed_tile"]) for f in failed} == {("meta-low", "2/2/1")}
    assert "cannot write 2/2/1.zip" in failed[0]["reason"]
    recorded = {t for t in LOW if (tmp_path / "out" / "runs" / "group" / "meta-low" / str(t.z) / str(t.x)
                                   / f"{t.y}.json").exists()}
    assert recorded == set(LOW[:2])  # those before it are done; those after it did not run
    blocked.rmdir()
    proc = build(tmp_path, 1, "group")
    assert proc.returncode == 0, proc.stderr[-3000:]
    started = [json.loads(line)["tile"] for line in proc.stderr.splitlines() if '"job started"' in line]
    assert [t for t in started if int(t.split("/")[0]) < 7] == [format_tile(t) for t in LOW[2:]]
    assert metatiles(tmp_path) == metatiles(root)


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
    assert (out / "meta-low" / "7" / "72" / "37.json").exists()  # it reads only the database: it ran
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


def run_in_order(sched: schedule.Schedule, workers: int, fail: set = frozenset()) -> list[list[tuple]]:
    """Drive a schedule as the runner does, each task ending in the order it started (`fail`: those that
    fail): the (kind, tile, part) started at each step."""
    steps, running = [], []
    while len(sched):
        start = sched.take(workers - len(running))
        steps.append([(t.kind, format_tile(t.tile), t.part) for t in start])
        running += start
        task = running.pop(0)
        sched.finished(task, (task.kind, task.tile) not in fail)
    return steps


def test_meta_low_takes_the_workers_rawr_and_meta_high_leave_idle():
    cut = {"rawr": {Z7: [DATA_Z10, EMPTY_Z10]}, "meta-high": {Z7: [DATA_Z10, EMPTY_Z10]},
           "meta-low": {Z7: [Tile(145, 74, 8)]}}
    todo = {"rawr": [Z7], "meta-high": [Z7], "meta-low": [Tile(0, 0, 0), Z7]}
    steps = run_in_order(schedule.Schedule(todo, cut), workers=3)
    # Rawr's parts first, and meta-low's first task beside them on the third worker.
    assert steps[0] == [("rawr", "10/582/296", True), ("rawr", "10/583/296", True), ("meta-low", "8/145/74", True)]
    # The first rawr part done, the meta-high part over it starts, the other rawr part still running.
    assert steps[1] == [("meta-high", "10/582/296", True)]
    order = {(k, t): i for i, step in enumerate(steps) for k, t, _ in step}
    # Each job after its parts, and after the next kind's parts (rawr's z7 job leaves meta-high's largest
    # part waiting for nothing); meta-high's over the rest of the z7 tile after rawr's.
    assert order[("rawr", "7/72/37")] > order[("meta-high", "10/583/296")] > order[("rawr", "10/583/296")]
    assert order[("meta-high", "7/72/37")] > max(order[("rawr", "7/72/37")], order[("meta-high", "10/583/296")])
    assert order[("meta-low", "7/72/37")] > order[("meta-low", "8/145/74")]
    # One worker: the same order; a job cut into parts after the next kind's parts and whole jobs.
    one = [(k, t) for s in run_in_order(schedule.Schedule(todo, cut), workers=1) for k, t, _ in s]
    assert one == [("rawr", "10/582/296"), ("rawr", "10/583/296"), ("meta-high", "10/582/296"),
                   ("meta-high", "10/583/296"), ("rawr", "7/72/37"), ("meta-low", "8/145/74"),
                   ("meta-low", "0/0/0"), ("meta-high", "7/72/37"), ("meta-low", "7/72/37")]


def test_meta_high_waits_for_rawr_over_its_area_only():
    a, b = Tile(72, 37, 7), Tile(73, 37, 7)
    todo = {"rawr": [a, b], "meta-high": [a, b]}
    steps = run_in_order(schedule.Schedule(todo, {}), workers=2)
    assert steps[:2] == [[("rawr", "7/72/37", False), ("rawr", "7/73/37", False)], [("meta-high", "7/72/37", False)]]
    # A job cut into parts: its area is what they leave.
    job = schedule.Task("rawr", Z7, (DATA_Z10, EMPTY_Z10))
    assert not schedule.overlap(job, schedule.Task("meta-high", DATA_Z10, part=True))
    assert schedule.overlap(job, schedule.Task("meta-high", Tile(581, 296, 10), part=True))
    assert schedule.overlap(job, schedule.Task("meta-high", Z7, (DATA_Z10, EMPTY_Z10)))


def test_a_failed_part_drops_its_job_and_what_reads_its_kind():
    cut = {"rawr": {Z7: [DATA_Z10, EMPTY_Z10]}}
    todo = {"rawr": [Z7], "meta-high": [Z7], "meta-low": [Z7]}
    sched = schedule.Schedule(todo, cut)
    steps = run_in_order(sched, workers=2, fail={("rawr", DATA_Z10)})
    started = [(k, t) for step in steps for k, t, _ in step]
    # meta-low reads only the database: it runs still; rawr's job and meta-high never start.
    assert started == [("rawr", "10/582/296"), ("rawr", "10/583/296"), ("meta-low", "7/72/37")]
    assert sched.failed_kinds == {"rawr", "meta-high"}
