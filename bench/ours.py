"""tilebatch's own jobs on a benchmark dataset: every job of a build, one at a time, measured.

The jobs are the very command lines `tilebatch build` and Batch run
(enqueue.build_jobs, local.job_command), pointed at the dataset's database and at a
fresh store, run one after another so that none competes with another for a
core. The counts come from the jobs' completion records.
"""

import os
import shutil

from tilebatch import config, local, records
from tilebatch.enqueue import build_jobs
from tilebatch.kinds import NAMES
from tilebatch.store import metatile_store

from . import data, measure
from .data import WORK, Dataset


def job_env(ds: Dataset) -> dict:
    """The environment that points the jobs at the dataset's database and store."""
    out = os.path.join(WORK, f"out-x{ds.size}")
    return {**os.environ, "TILEQUEUE__postgresql__dbnames": f"[{ds.dbname}]",
            "TILEQUEUE__store__url": f"file://{out}", "TILEQUEUE__rawr__sink__url": f"file://{out}/rawr"}


def store_of(ds: Dataset, config_path: str | None):
    return metatile_store(config.load(config_path, job_env(ds)))


def run(ds: Dataset, config_path: str | None, log) -> dict:
    """Per job kind: jobs, wall and CPU seconds, the jobs' own CPU, peak memory, tiles, features.

    CPU seconds are the job processes' and the database's for them (db_cpu_seconds
    says how much of it), as a tool that reads the data itself pays for both.
    meta-low also keeps CPU seconds and peak memory by job zoom (the plan's model needs them).
    """
    env = job_env(ds)
    shutil.rmtree(env["TILEQUEUE__store__url"][len("file://"):], ignore_errors=True)
    run_id = f"bench-x{ds.size}"
    store = store_of(ds, config_path)
    conn = data.admin_connection(config.load(config_path), ds.dbname)
    db_cpu = measure.DatabaseCpu(conn)
    try:
        return {kind: _run_kind(ds, kind, config_path, run_id, env, store, db_cpu, log) for kind in NAMES}
    finally:
        conn.close()


def _run_kind(ds: Dataset, kind: str, config_path: str | None, run_id: str, env: dict, store, db_cpu, log) -> dict:
    tiles = build_jobs(7, bbox=ds.bbox)[kind]
    stats = {"jobs": 0, "seconds": 0.0, "cpu_seconds": 0.0, "db_cpu_seconds": 0.0, "job_cpu_seconds": 0.0,
             "peak_memory_mb": 0.0, "tiles": 0, "features": 0}
    cpu_by_zoom, memory_by_zoom = {}, {}
    for tile in tiles:
        db_cpu.start()
        use = measure.run(local.job_command(kind, tile, config_path, run_id), env=env)
        db_seconds = db_cpu.seconds()
        if use.returncode != 0:
            raise SystemExit(f"bench: {kind} job {tile} failed:\n{use.stderr[-2000:]}")
        record = records.read_record(store, run_id, kind, tile)
        counts = record["counts"]
        stats["jobs"] += 1
        stats["seconds"] += use.seconds
        stats["cpu_seconds"] += use.cpu_seconds + db_seconds
        stats["db_cpu_seconds"] += db_seconds
        stats["job_cpu_seconds"] += record["cpu_seconds"]
        stats["peak_memory_mb"] = max(stats["peak_memory_mb"], use.peak_memory_mb)
        stats["tiles"] += counts.get("tiles", counts.get("rawr_tiles", 0))
        stats["features"] += counts.get("features", counts.get("rows", 0))
        cpu_by_zoom[str(tile.z)] = round(use.cpu_seconds + db_seconds, 3)
        memory_by_zoom[str(tile.z)] = use.peak_memory_mb
    if kind == "meta-low":
        stats["cpu_seconds_by_zoom"], stats["peak_memory_mb_by_zoom"] = cpu_by_zoom, memory_by_zoom
    out = {k: round(v, 3) if isinstance(v, float) else v for k, v in stats.items()}
    log(f"{ds.size}x {kind}: {out['jobs']} jobs, {out['cpu_seconds']} CPU s")
    return out
