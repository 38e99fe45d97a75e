"""Where a job's time goes: each job kind run in this process under cProfile, on one benchmark size.

    .venv/bin/python -m bench.profile [--config config.yaml] [--size 16] [--top 15]

Needs the size built and its rawr job run once (make bench does both). Prints,
per job kind, the functions with the most time of their own, and the time
spent in each area of the code (database, shapely, MVT encoding, ...).
"""

import argparse
import cProfile
import os
import pstats
import sys
from unittest import mock

from tilebatch import cli, config, local
from tilebatch.enqueue import build_jobs
from tilebatch.kinds import NAMES

from . import data, ours

# Where a function's own time is counted, by its file and name (first match wins;
# built-in methods have no file but name their type, e.g. psycopg2's cursor).
AREAS = (("psycopg2", "database (psycopg2, waiting on PostGIS)"), ("shapely", "geometry (shapely/GEOS)"),
         ("tilebatch/postgis", "rows to Python (tilebatch.postgis)"), ("google._upb", "MVT encoding (protobuf)"),
         ("mapbox_vector_tile", "MVT encoding (mapbox-vector-tile)"), ("tilebatch/mvt", "MVT encoding (tilebatch.mvt)"),
         ("msgpack", "RAWR (de)serialising (msgpack)"), ("zipfile", "zip (metatiles, RAWR tiles)"),
         ("zlib", "zip (metatiles, RAWR tiles)"), ("tilebatch/classify", "classifying rows (classify)"),
         ("rulecode", "classifying rows (classify)"),  # rulecode.py, and the code it compiles
         ("tilebatch/", "tilebatch, other"), ("numpy", "numpy"))


def area_of(filename: str, function: str) -> str:
    where = f"{filename}:{function}"
    return next((name for key, name in AREAS if key in where), "other (Python, imports)")


def profile_job(kind: str, tile, config_path: str | None, run_id: str, env: dict) -> pstats.Stats:
    argv = local.job_command(kind, tile, config_path, run_id)[1:]  # the subcommand on; cli.main takes no program name
    prof = cProfile.Profile()
    with mock.patch.dict(os.environ, {k: v for k, v in env.items() if k.startswith("TILEQUEUE__")}):
        prof.enable()
        code = cli.main(argv)
        prof.disable()
    if code != 0:
        raise SystemExit(f"bench: {kind} {tile} exited {code}")
    return pstats.Stats(prof)


def summary(stats: pstats.Stats, top: int) -> list[str]:
    total = stats.total_tt
    areas = {}
    rows = []
    for (filename, line, name), (_, _, tottime, cumtime, _) in stats.stats.items():
        area = area_of(filename, name)
        areas[area] = areas.get(area, 0.0) + tottime
        rows.append((tottime, cumtime, f"{os.path.basename(filename)}:{line}({name})"))
    lines = [f"  {share / total * 100:5.1f}%  {area}" for area, share in sorted(areas.items(), key=lambda a: -a[1])
             if share >= total / 1000]
    lines.append(f"  top {top} functions by own time (s own, s cumulative):")
    lines += [f"    {own:7.3f} {cum:7.3f}  {where}" for own, cum, where in sorted(rows, reverse=True)[:top]]
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.splitlines()[0])
    p.add_argument("--config", default=None)
    p.add_argument("--size", type=int, default=16)
    p.add_argument("--top", type=int, default=15)
    args = p.parse_args(argv)
    cfg = config.load(args.config)
    ds = data.ensure(cfg, args.size, lambda m: print(f"bench: {m}", file=sys.stderr))
    env = ours.job_env(ds)
    run_id = f"profile-x{args.size}"
    for kind in NAMES:
        for tile in build_jobs(7, bbox=ds.bbox)[kind][-1:]:  # meta-low: its z7 job, the one that does the most
            stats = profile_job(kind, tile, args.config, run_id, env)
            print(f"== {kind} {tile.z}/{tile.x}/{tile.y} at {args.size}x: {stats.total_tt:.2f} s profiled ==")
            print("\n".join(summary(stats, args.top)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
