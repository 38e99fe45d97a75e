"""tilebatch's own jobs on a benchmark dataset: every job of a build, one process at a time, measured.

The jobs are the very command lines Batch runs for the dataset's box
(enqueue.build_jobs, enqueue.job_units, local.job_command): a process a Batch
job, so meta-low's eight are one (the bench's boxes lie within one z7 tile),
and each of them runs alone once more, as a planet's do, for `make plan`'s
figures by zoom. They are pointed at the dataset's database and at a fresh
store, run one after another so that none competes with another for a core. rawr's counts (RAWR tiles, rows, RAWR bytes) come from the jobs'
completion records; the tiles, features and MVT bytes of meta-high and
meta-low are counted in the store afterwards (bench.counts), as the peers'
output is.
"""

import os
import shutil
import sys

from tilebatch import config, local, records
from tilebatch.enqueue import build_jobs, job_units, unit_text
from tilebatch.kinds import NAMES
from tilebatch.store import metatile_store

from . import counts, data, measure
from .data import WORK, Dataset


def job_env(ds: Dataset) -> dict:
    """The environment that points the jobs at the dataset's database and store."""
    out = os.path.join(WORK, f"out-x{ds.size}")
    return {**os.environ, "TILEQUEUE__postgresql__dbnames": f"[{ds.dbname}]",
            "TILEQUEUE__store__url": f"file://{out}", "TILEQUEUE__rawr__sink__url": f"file://{out}/rawr"}


def store_of(ds: Dataset, config_path: str | None):
    return metatile_store(config.load(config_path, job_env(ds)))


def run(ds: Dataset, config_path: str | None, ranges: dict, log) -> dict:
    """Per job kind: jobs, wall and CPU seconds, the jobs' own CPU, peak memory, tiles, features, bytes.

    CPU seconds are the job processes' and the database's for them (db_cpu_seconds
    says how much of it), as a tool that reads the data itself pays for both.
    meta-low also keeps CPU seconds and peak memory by job zoom, each job run alone
    once more (the plan's model needs them). `ranges` are the tile zooms of meta-high ("high") and meta-low ("low").
    """
    env = job_env(ds)
    shutil.rmtree(env["TILEQUEUE__store__url"][len("file://"):], ignore_errors=True)
    run_id = f"bench-x{ds.size}"
    cfg = config.load(config_path)
    store = store_of(ds, config_path)
    conn = data.admin_connection(cfg, ds.dbname)
    db_cpu = measure.DatabaseCpu(conn)
    try:
        out = {kind: _run_kind(ds, kind, cfg, config_path, run_id, env, store, db_cpu) for kind in NAMES}
    finally:
        conn.close()
    built = counts.summarize((t.z, d) for t, d in counts.store_tiles(store))
    for kind, rng in (("meta-high", "high"), ("meta-low", "low")):
        out[kind].update(built.total(*ranges[rng]))
    for kind in NAMES:
        log(f"{ds.size}x {kind}: {out[kind]['jobs']} jobs, {out[kind]['cpu_seconds']} CPU s")
    return out


def _run_kind(ds: Dataset, kind: str, cfg: dict, config_path: str | None, run_id: str, env: dict, store,
              db_cpu) -> dict:
    queue_zoom = cfg["batch"]["queue-zoom"]
    units = job_units(kind, build_jobs(queue_zoom, bbox=ds.bbox)[kind], queue_zoom)
    stats = {"jobs": 0, "processes": 0, "seconds": 0.0, "cpu_seconds": 0.0, "db_cpu_seconds": 0.0,
             "job_cpu_seconds": 0.0, "peak_memory_mb": 0.0}
    if kind == "rawr":
        stats.update(tiles=0, features=0, rawr_bytes=0)
    cpu_by_zoom, memory_by_zoom = {}, {}
    for unit in units:
        use, db_seconds, unit_records = _run_unit(kind, unit, config_path, run_id, env, store, db_cpu)
        stats["jobs"] += len(unit)
        stats["processes"] += 1
        stats["seconds"] += use.seconds
        stats["cpu_seconds"] += use.cpu_seconds + db_seconds
        stats["db_cpu_seconds"] += db_seconds
        stats["job_cpu_seconds"] += sum(record["cpu_seconds"] for record in unit_records)
        stats["peak_memory_mb"] = max(stats["peak_memory_mb"], use.peak_memory_mb)
        if kind == "rawr":
            for record in unit_records:
                stats["tiles"] += record["counts"]["rawr_tiles"]
                stats["features"] += record["counts"]["rows"]
                stats["rawr_bytes"] += sum(record["counts"]["rawr_bytes"].values())
        if kind == "meta-low":
            # The plan's model wants each zoom's job as a planet's runs: alone (not in the figures above).
            for tile in unit:
                alone, alone_db = ((use, db_seconds) if len(unit) == 1 else
                                   _run_unit(kind, (tile,), config_path, run_id, env, store, db_cpu)[:2])
                cpu_by_zoom[str(tile.z)] = round(alone.cpu_seconds + alone_db, 3)
                memory_by_zoom[str(tile.z)] = alone.peak_memory_mb
    if kind == "meta-low":
        stats["cpu_seconds_by_zoom"], stats["peak_memory_mb_by_zoom"] = cpu_by_zoom, memory_by_zoom
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in stats.items()}


def _run_unit(kind: str, unit: tuple, config_path: str | None, run_id: str, env: dict, store, db_cpu):
    """One process doing the jobs of `unit`: its use (measure.run), the database's CPU for it, and the jobs'
    completion records."""
    db_cpu.start()
    use = measure.run(local.job_command(kind, unit[0], config_path, run_id, more=list(unit[1:])), env=env)
    db_seconds = db_cpu.seconds()
    if use.returncode != 0:
        raise SystemExit(f"bench: {kind} job {unit_text(unit)} failed:\n{use.stderr[-2000:]}")
    return use, db_seconds, [records.read_record(store, run_id, kind, tile) for tile in unit]


def build(ds: Dataset, config_path: str | None, jobs: int, log) -> dict:
    """`tilebatch build --jobs N` over the dataset into a fresh store: wall and CPU seconds (its job
    processes' and the database's), the largest process's peak memory, tiles, features and MVT bytes."""
    out = os.path.join(WORK, f"out-x{ds.size}-build")
    shutil.rmtree(out, ignore_errors=True)
    env = {**job_env(ds), "TILEQUEUE__store__url": f"file://{out}", "TILEQUEUE__rawr__sink__url": f"file://{out}/rawr"}
    cmd = [os.path.join(os.path.dirname(sys.executable), "tilebatch"), "build", "--jobs", str(jobs),
           "--run_id", f"bench-x{ds.size}-build", "--bbox", ",".join(repr(v) for v in ds.bbox)]
    if config_path:
        cmd += ["--config", config_path]
    conn = data.admin_connection(config.load(config_path), ds.dbname)
    try:
        db_cpu = measure.DatabaseCpu(conn)
        db_cpu.start()
        use = measure.run(cmd, env=env)
        db_seconds = db_cpu.seconds()
    finally:
        conn.close()
    if use.returncode != 0:
        raise SystemExit(f"bench: tilebatch build --jobs {jobs} failed:\n{use.stderr[-2000:]}")
    built = counts.summarize((t.z, d) for t, d in counts.store_tiles(metatile_store(config.load(config_path, env))))
    log(f"{ds.size}x build --jobs {jobs}: {use.seconds} s")
    return {"jobs": jobs, "seconds": use.seconds, "cpu_seconds": round(use.cpu_seconds + db_seconds, 3),
            "db_cpu_seconds": db_seconds, "peak_memory_mb": use.peak_memory_mb, **built.total()}
