"""make bench: every size, every job kind, beside tilemaker and PostGIS, then a planet enqueue.

Prints the report (bench/report.py) and writes the figures to a results file
(bench/results.json by default), which `tilebatch plan` reads for its
estimates. A benchmark reports; it does not fail on a missed target.
"""

import argparse
import json
import os
import platform
import subprocess
import sys

import psycopg2

from tilebatch import config, plan, source
from tilebatch.tiles import children

from . import data, enqueue, ours, postgis, report, tilemaker


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def machine(cfg: dict) -> dict:
    with open("/proc/meminfo") as f:
        mem_kb = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
    with open("/proc/cpuinfo") as f:
        cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), platform.machine())
    version = subprocess.run(["tilemaker", "--help"], capture_output=True, text=True).stdout.splitlines()[:1]
    conn = source.connect(cfg)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT postgis_lib_version()")
            postgis_version = cur.fetchone()[0]
    finally:
        conn.close()
    return {"cpu": cpu, "nproc": os.cpu_count(), "memory_gib": round(mem_kb / 2 ** 20, 1),
            "tilemaker": (version or ["tilemaker"])[0], "postgis": postgis_version, "python": platform.python_version()}


def row_counts(cfg: dict, ds: data.Dataset) -> dict:
    """The size of the data as the plan's model counts it: rows in its z7 tile and in its densest z10 tile."""
    conn = data.admin_connection(cfg, ds.dbname)
    try:
        with conn.cursor() as cur:
            return {"rows": plan.count_rows(cur, ds.tile),
                    "densest_z10_rows": max(plan.count_rows(cur, t) for t in children(ds.tile, 10))}
    finally:
        conn.close()


def bench_size(cfg: dict, config_path: str | None, size: int, threads: list[int]) -> dict:
    ds = data.ensure(cfg, size, log)
    log(f"{size}x: tilebatch jobs")
    mine = ours.run(ds, config_path, log)
    tiles = postgis.built_tiles(ours.store_of(ds, config_path))
    log(f"{size}x: PostGIS ST_AsMVT over the same {len(tiles)} tiles")
    pg = {rng: postgis.run(ds, cfg, [t for t in tiles if lo <= t.z <= hi]) for rng, (lo, hi) in report.RANGES.items()
          if rng != "all"}
    tm = {}
    for rng, (lo, hi) in report.RANGES.items():
        for t in threads:
            log(f"{size}x: tilemaker z{lo}-{hi}, {t} thread(s)")
            tm[f"{rng}-t{t}"] = tilemaker.run(ds, lo, hi, t)
    return {**row_counts(cfg, ds), "tile": f"{ds.tile.z}/{ds.tile.x}/{ds.tile.y}",
            "tilebatch": mine, "tilemaker": tm, "postgis": pg}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    p.add_argument("--config", default=None, help="config.yaml of the jobs (database server, metatile settings)")
    p.add_argument("--sizes", default="1,4,16", help="copies of the extract, comma-separated (default 1,4,16)")
    p.add_argument("--threads", default="1,2", help="tilemaker thread counts, comma-separated (default 1,2)")
    p.add_argument("--enqueue-sample", type=int, default=500,
                   help="tiles submitted one by one to time the one-job-a-tile enqueue (default 500)")
    p.add_argument("--results", default=os.path.join(data.TOP, "bench", "results.json"),
                   help="where to write the figures (default bench/results.json)")
    args = p.parse_args(argv)
    try:
        sizes = [int(s) for s in args.sizes.split(",")]
        threads = [int(t) for t in args.threads.split(",")]
    except ValueError:
        p.error("--sizes and --threads take whole numbers, comma-separated")
    cfg = config.load(args.config)
    try:
        results = {"machine": machine(cfg), "sizes": {}}
        for size in sizes:
            results["sizes"][str(size)] = bench_size(cfg, args.config, size, threads)
    except psycopg2.OperationalError as e:
        raise SystemExit(f"bench: database: {str(e).strip().splitlines()[0]} (is bin/localdb running?)")
    log("planet enqueue against a moto server")
    results["enqueue"] = enqueue.run(args.config, args.enqueue_sample)
    with open(args.results + ".tmp", "w") as f:
        json.dump(results, f, indent=1, sort_keys=False)
        f.write("\n")
    os.replace(args.results + ".tmp", args.results)
    print(report.text(results))
    log(f"figures written to {os.path.relpath(args.results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
