"""make bench: every size, every job kind, beside tilemaker and PostGIS, in interleaved rounds; then a planet enqueue.

Per size, each contender (tilebatch's jobs, `tilebatch build` with 1 and 2
workers, PostGIS ST_AsMVT, each tilemaker over each zoom range and thread
count) runs once a round, the rounds one after another, so that whatever else
the machine does weighs on every contender alike; each figure is the median of
the rounds. Prints the report (bench/report.py) and writes the figures to a
results file (bench/results.json by default), which `tilebatch plan` reads for
its estimates. A benchmark reports; it does not fail on a missed target.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time
import traceback

import psycopg2

from tilebatch import config, plan, postgis
from tilebatch.errors import TilebatchError
from tilebatch.kinds import NAMES
from tilebatch.schema import build_max_zoom, load_schema
from tilebatch.tiles import METATILE_ZOOMS, children

from . import counts, data, enqueue, ours, report, st_asmvt, tilemaker

# What runs at a growth size besides tilebatch's jobs, chosen from these (--growth-peers)
PEER_KEYS = ("build", "postgis", "tilemaker3", "tilemaker")


def log(message: str) -> None:
    print(f"bench: {time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def machine(cfg: dict) -> dict:
    with open("/proc/meminfo") as f:
        mem_kb = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
    with open("/proc/cpuinfo") as f:
        cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), platform.machine())
    conn = postgis.connect(cfg)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT postgis_lib_version()")
            postgis_version = cur.fetchone()[0]
    finally:
        conn.close()
    return {"cpu": cpu, "nproc": os.cpu_count(), "memory_gib": round(mem_kb / 2 ** 20, 1),
            "postgis": postgis_version, "python": platform.python_version()}


def ranges(cfg: dict) -> dict:
    """The tile zooms compared: meta-high's (from the group zoom's first metatile down), meta-low's, the build's."""
    top, high = build_max_zoom(cfg), cfg["rawr"]["group-zoom"] + METATILE_ZOOMS
    return {"high": (high, top), "low": (0, high - 1), "all": (0, top)}


def row_counts(cfg: dict, ds: data.Dataset) -> dict:
    """The size of the data as the plan's model counts it: rows in its z7 tile and in its densest z10 tile."""
    conn = data.admin_connection(cfg, ds.dbname)
    try:
        with conn.cursor() as cur:
            return {"rows": plan.count_rows(cur, ds.tile),
                    "densest_z10_rows": max(plan.count_rows(cur, t) for t in children(ds.tile, 10))}
    finally:
        conn.close()


def median(runs: list):
    """The median of each figure over the rounds' results (nested alike); a value every round agrees on as it is.

    A result with CPU seconds also keeps every round's, for the report's spread.
    """
    first = runs[0]
    if isinstance(first, dict):
        out = {k: median([r[k] for r in runs]) for k in first}
        if "cpu_seconds" in first:
            out["cpu_seconds_rounds"] = [r["cpu_seconds"] for r in runs]
        return out
    if isinstance(first, (int, float)) and not isinstance(first, bool) and any(r != first for r in runs):
        return round(statistics.median(runs), 3)
    return first


def contenders(cfg: dict, config_path: str | None, ds: data.Dataset, rngs: dict, threads: list[int],
               profiles: list) -> list[tuple[tuple, object]]:
    """(where its figures go in the size's results, a function that runs it once) for every contender."""
    built = []  # the tiles tilebatch built, for PostGIS to render: set by tilebatch's first round

    def tilebatch_jobs():
        out = ours.run(ds, config_path, rngs, log)
        built[:] = [t for t, _ in counts.store_tiles(ours.store_of(ds, config_path))]
        return out

    def postgis_run(lo, hi):
        log(f"{ds.size}x: PostGIS ST_AsMVT over the same tiles, z{lo}-{hi}")
        return st_asmvt.run(ds, cfg, [t for t in built if lo <= t.z <= hi])

    def tilemaker_run(profile, lo, hi, t):
        log(f"{ds.size}x: {profile.key} z{lo}-{hi}, {t} thread(s)")
        return tilemaker.run(profile, ds, lo, hi, t)

    out = [(("tilebatch",), tilebatch_jobs)]
    out += [(("build", str(jobs)), lambda jobs=jobs: ours.build(ds, config_path, jobs, log)) for jobs in (1, 2)]
    out += [(("postgis", rng), lambda lo=lo, hi=hi: postgis_run(lo, hi))
            for rng, (lo, hi) in rngs.items() if rng != "all"]
    # Each thread count over the whole build (the wall-time target reads 2); the stages with the fewest, as
    # the per-stage comparisons read them.
    out += [((p.key, f"{rng}-t{t}"), lambda p=p, lo=lo, hi=hi, t=t: tilemaker_run(p, lo, hi, t))
            for p in profiles for rng, (lo, hi) in rngs.items() for t in (threads if rng == "all" else threads[:1])]
    return out


def interleaved(items: list, rounds: int) -> dict:
    """Run every item once a round, forwards in even rounds and backwards in odd ones; the medians, nested by path.

    The first item runs first in the first round (PostGIS renders the tiles it built).
    """
    got = {path: [] for path, _ in items}
    for r in range(rounds):
        log(f"round {r + 1} of {rounds}")
        for path, run in items if r % 2 == 0 else items[::-1]:
            got[path].append(run())
    out = {}
    for path, runs in got.items():
        *parents, leaf = path
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = median(runs)
    return out


def bench_size(cfg: dict, config_path: str | None, size: int, rngs: dict, threads: list[int], profiles: list,
               rounds: int, peers: set[str]) -> dict:
    """Every contender at one size: tilebatch's jobs and those of `peers` (PEER_KEYS), `rounds` interleaved rounds."""
    ds = data.ensure(cfg, size, log)
    log(f"{size}x: {rounds} round(s) of tilebatch's jobs" + "".join(f", {p}" for p in PEER_KEYS if p in peers))
    items = [(path, run) for path, run in contenders(cfg, config_path, ds, rngs, threads, profiles)
             if path[0] == "tilebatch" or path[0] in peers]
    figures = interleaved(items, rounds)
    return {**row_counts(cfg, ds), "tile": f"{ds.tile.z}/{ds.tile.x}/{ds.tile.y}", "rounds": rounds, **figures}


def schedule(sizes: list[int], rounds: int, rounds_up_to: int, growth_rounds: int,
             growth_peers: set[str]) -> dict[int, tuple[int, set[str]]]:
    """Per size, its rounds and the peers run beside tilebatch's jobs.

    Sizes up to `rounds_up_to` hold the like-for-like targets: every peer, `rounds`
    rounds. The sizes above it show how the jobs grow: `growth_rounds` rounds of
    tilebatch's jobs and of `growth_peers` only, so that a dense z7 tile does not
    take hours of peers' runs no target reads.
    """
    return {s: (rounds, set(PEER_KEYS)) if s <= rounds_up_to else (growth_rounds, growth_peers) for s in sizes}


def job_memory(text: str) -> dict:
    """`rawr=8192,meta-high=4096,meta-low=2048` as {kind: MiB}."""
    out = dict(part.split("=", 1) for part in text.split(",") if part)
    if set(out) != set(NAMES):
        raise ValueError(text)
    return {k: int(out[k]) for k in NAMES}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    p.add_argument("--config", default=None, help="config.yaml of the jobs (database server, metatile settings)")
    p.add_argument("--schema", default="", help="the tile schema tilebatch builds (schema.name); empty: the config's own")
    p.add_argument("--sizes", default="1,16,256", help="copies of the extract, comma-separated (default 1,16,256)")
    p.add_argument("--rounds", type=int, default=3,
                   help="interleaved rounds of every contender at the sizes up to --rounds-up-to (default 3)")
    p.add_argument("--rounds-up-to", type=int, default=16,
                   help="the largest size with --rounds rounds of every contender (default 16, the targets' size)")
    p.add_argument("--growth-rounds", type=int, default=1,
                   help="rounds at the sizes above --rounds-up-to (default 1)")
    p.add_argument("--growth-peers", default="",
                   help=f"what runs there besides tilebatch's jobs, comma-separated from {','.join(PEER_KEYS)} "
                   "(default: nothing else)")
    p.add_argument("--threads", default="1,2", help="tilemaker thread counts over the whole build, comma-separated; "
                   "the stages alone with the first (default 1,2)")
    p.add_argument("--tilemaker", default="",
                   help="a tilemaker 3 binary to run the Shortbread reference profile with; empty: that peer is left out")
    p.add_argument("--tilemaker-profile", default="", help="the directory of the Shortbread reference's "
                   "config.json and process.lua (shortbread-tiles/shortbread-tilemaker)")
    p.add_argument("--job-memory", default="rawr=8192,meta-high=4096,meta-low=2048",
                   help="MiB each job kind's job definition gives it (config.mk), for the memory targets")
    p.add_argument("--enqueue-sample", type=int, default=500,
                   help="tiles submitted one by one to time the one-job-a-tile enqueue (default 500)")
    p.add_argument("--results", default=os.path.join(data.TOP, "bench", "results.json"),
                   help="where to write the figures (default bench/results.json)")
    args = p.parse_args(argv)
    try:
        sizes = [int(s) for s in args.sizes.split(",")]
        threads = sorted(int(t) for t in args.threads.split(","))
    except ValueError:
        p.error("--sizes and --threads take whole numbers, comma-separated")
    try:
        memory = job_memory(args.job_memory)
    except ValueError:
        p.error("--job-memory takes rawr=MiB,meta-high=MiB,meta-low=MiB")
    if args.rounds < 1 or args.growth_rounds < 1:
        p.error("--rounds and --growth-rounds take 1 or more")
    growth_peers = {k for k in args.growth_peers.split(",") if k}
    if not growth_peers <= set(PEER_KEYS):
        p.error(f"--growth-peers takes some of {','.join(PEER_KEYS)}, comma-separated")
    if args.schema:
        # The jobs, and every configuration this process loads, build this schema.
        os.environ["TILEQUEUE__schema__name"] = args.schema
    try:
        cfg = config.load(args.config)
        rngs, schema = ranges(cfg), load_schema(cfg).name
    except TilebatchError as e:
        raise SystemExit(f"bench: {e}")
    profiles = [tilemaker.openmaptiles()]
    peers = {"tilemaker": f"{tilemaker.version('tilemaker')} OpenMapTiles example"}
    if args.tilemaker:
        profiles.insert(0, tilemaker.shortbread(args.tilemaker, os.path.abspath(args.tilemaker_profile)))
        peers = {"tilemaker3": f"{tilemaker.version(args.tilemaker)} Shortbread reference", **peers}
    try:
        results = {"format": report.FORMAT, "machine": machine(cfg), "schema": schema,
                   "ranges": rngs, "peers": peers, "job_memory_mb": memory, "sizes": {}}
        per_size = schedule(sizes, args.rounds, args.rounds_up_to, args.growth_rounds, growth_peers)
        for size, (rounds, size_peers) in per_size.items():
            results["sizes"][str(size)] = bench_size(cfg, args.config, size, rngs, threads, profiles, rounds, size_peers)
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


def unexpected(e: Exception) -> str:
    """One line for an error nobody foresaw: what, and the line of code it came from."""
    where = traceback.extract_tb(e.__traceback__)[-1]
    return f"bench: unexpected {type(e).__name__}: {e} (at {os.path.relpath(where.filename)}:{where.lineno})"


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # noqa: BLE001 - a benchmark of an hour ends in one line, not a traceback
        print(unexpected(e), file=sys.stderr)
        sys.exit(1)
