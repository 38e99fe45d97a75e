"""`tilebatch plan`: what a run over a box (default: the planet) will take, before it starts.

The jobs of each kind (a tile each, as `batch-enqueue` lists them), their
vCPU-hours and cost at a price per vCPU-hour, and the memory each kind needs.
The model is linear in the data: a job's CPU seconds and peak memory are
`base + per_row * rows`, rows being the osm2pgsql rows (points, lines,
polygons) under the job's tile, fitted per job kind (meta-low per job zoom)
to the figures `make bench` measured (bench/results.json). Batch runs a
box's few low-zoom meta-low jobs a few to a process (enqueue.job_units): such
a process pays one start-up, not one a job, and the model's "start-up" is
what each job after the first saves. Rows per z7 tile are counted in the
configured database when its data covers the box; else an assumed density is
used, and the output says so.
"""

import json
import math
import statistics
from typing import NamedTuple

from . import load, postgis
from .enqueue import build_jobs, job_units
from .errors import BadInput
from .tiles import MERCATOR_MAX_LAT, Bbox, Tile, ancestor, children, make_bbox, parse_bbox

PLANET = make_bbox(-180.0, -MERCATOR_MAX_LAT, 180.0, MERCATOR_MAX_LAT)
# A planet loaded by osm2pgsql holds roughly 1.1 billion rows (about 0.7 billion
# polygons, mostly buildings, 0.3 billion lines, 0.15 billion points); spread
# over the 16,384 z7 tiles that is about 67,000 a tile on average.
ASSUMED_ROWS_PER_Z7 = 67_000
# A dense European z7 tile (some 30,000 km² at 200 rows/km²), and a dense city's
# z10 tile (some 500 km² at 1,200 rows/km²): the largest jobs size the memory.
# rawr and meta-high hold one z10 tile's rows at a time, meta-low a z7 tile's.
ASSUMED_DENSEST_Z7 = 6_000_000
ASSUMED_DENSEST_Z10 = 600_000
START_UP = "start-up"  # the model's key for what a job process costs before its first job
# Batch memory is given with room above the predicted peak, in steps of 256 MiB.
MEMORY_MARGIN, MEMORY_STEP_MB = 1.5, 256

# The fit of bench/results.json as committed (make bench on 2 AMD EPYC cores, CPU
# of the job and of the database for it): used when no results file is given.
# Per model key: CPU seconds and peak MiB as (base, per row); START_UP's CPU base as the docstring says.
DEFAULT_MODEL = {
    "rawr": {"cpu": (0.051, 3.46e-06), "memory": (34.4, 2.65e-05)},
    "meta-high": {"cpu": (0.0867, 7.09e-06), "memory": (50.1, 0.000845)},
    "meta-low/0": {"cpu": (0.135, 1.4e-09), "memory": (46.5, 4.48e-08)},
    "meta-low/1": {"cpu": (0.134, 4.76e-09), "memory": (49.7, 1.43e-07)},
    "meta-low/2": {"cpu": (0.143, 0), "memory": (49.6, 1.45e-07)},
    "meta-low/3": {"cpu": (0.14, 3.08e-09), "memory": (49.7, 1.29e-07)},
    "meta-low/4": {"cpu": (0.14, 3.08e-09), "memory": (49.6, 2.07e-07)},
    "meta-low/5": {"cpu": (0.134, 3.21e-07), "memory": (51, 3.72e-05)},
    "meta-low/6": {"cpu": (0.135, 4.97e-07), "memory": (52.2, 5.52e-05)},
    "meta-low/7": {"cpu": (0.131, 2.43e-06), "memory": (55.1, 0.000127)},
    START_UP: {"cpu": (0.136, 0), "memory": (0, 0)},
}


class Density(NamedTuple):
    rows: dict          # z7 tile -> rows under it
    largest: int        # rows of the densest z7 tile, for memory
    largest_z10: int    # rows of the densest z10 tile, for memory
    source: str         # where the figures come from, said in the output


def fit(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares (base, slope) through (x, y) points, neither below zero."""
    n = len(points)
    if n == 0:
        raise BadInput("no measurements to fit")
    mx, my = sum(x for x, _ in points) / n, sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    slope = sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else (my / mx if mx else 0.0)
    slope = max(slope, 0.0)
    return max(my - slope * mx, 0.0), slope


def model_from_results(results: dict) -> dict:
    """The per-job model fitted to make bench's figures (every job there covers all of a size's rows)."""
    try:
        sizes = list(results["sizes"].values())
        points, saved = {}, []
        for r in sizes:
            ours, rows = r["tilebatch"], r["rows"]
            z10_rows = r.get("densest_z10_rows", rows)
            for kind in ("rawr", "meta-high"):
                points.setdefault(kind, []).append((rows, ours[kind]["cpu_seconds"] / ours[kind]["jobs"],
                                                    z10_rows, ours[kind]["peak_memory_mb"]))
            low = ours["meta-low"]
            for z, cpu in low["cpu_seconds_by_zoom"].items():
                peak = low.get("peak_memory_mb_by_zoom", {}).get(z, low["peak_memory_mb"])
                points.setdefault(f"meta-low/{z}", []).append((rows, cpu, rows, peak))
            # The bench runs a size's meta-low jobs as Batch does, a few to a process, and each alone
            # (one a zoom: its boxes lie within one z7 tile; another box would need its own sum).
            if low.get("processes", low["jobs"]) < low["jobs"] == len(low["cpu_seconds_by_zoom"]):
                alone = sum(low["cpu_seconds_by_zoom"].values())
                saved.append((alone - low["cpu_seconds"]) / (low["jobs"] - low["processes"]))
    except (KeyError, TypeError, AttributeError, ZeroDivisionError) as e:
        raise BadInput(f"benchmark results lack {e} (write them with make bench)") from None
    model = {key: {"cpu": fit([(x, c) for x, c, _, _ in p]), "memory": fit([(x, m) for _, _, x, m in p])}
             for key, p in points.items()}
    if saved:
        # The median of the sizes: at the largest, the saving is a small difference of large figures
        # measured once. A process's peak memory is its largest job's: a start-up has none of its own.
        model[START_UP] = {"cpu": (max(statistics.median(saved), 0.0), 0.0), "memory": (0.0, 0.0)}
    return model


def read_results(path: str) -> dict:
    """make bench's results file (bench/run.py writes it, bench/report.py prints it) as a dict."""
    try:
        with open(path, encoding="utf-8") as f:
            results = json.load(f)
    except OSError as e:
        raise BadInput(f"benchmark results {path}: {e.strerror}") from None
    except ValueError as e:
        raise BadInput(f"benchmark results {path}: not JSON ({e})") from None
    if not isinstance(results, dict):
        raise BadInput(f"benchmark results {path}: expected a JSON object")
    return results


def load_model(path: str | None) -> tuple[dict, str]:
    """The model from a results file, or the built-in one; and where it came from."""
    if path is None:
        return DEFAULT_MODEL, "built-in figures (bench/results.json as committed)"
    results = read_results(path)
    return model_from_results(results), f"{path} ({', '.join(f'{s}x' for s in results.get('sizes', {}))})"


def parse_price(text: str) -> float:
    try:
        price = float(text)
    except ValueError:
        raise BadInput(f"bad price {text!r}: expected US dollars per vCPU-hour, e.g. 0.0425") from None
    if not math.isfinite(price) or price < 0:
        raise BadInput(f"bad price {text!r}: expected a number of dollars, 0 or more")
    return price


def assumed_density(tiles: list[Tile], per_tile: int, why: str) -> Density:
    return Density({t: per_tile for t in tiles}, max(per_tile, ASSUMED_DENSEST_Z7), ASSUMED_DENSEST_Z10,
                   f"assumed {per_tile:,} rows per z7 tile (densest z7 tile {ASSUMED_DENSEST_Z7:,}, "
                   f"densest z10 tile {ASSUMED_DENSEST_Z10:,}): {why}")


def count_rows(cur, tile: Tile) -> int:
    """The osm2pgsql rows (points, lines, polygons) touching a tile."""
    env = "ST_TileEnvelope(%(z)s, %(x)s, %(y)s)"
    cur.execute(f"SELECT (SELECT count(*) FROM planet_osm_point WHERE way && {env})"
                f" + (SELECT count(*) FROM planet_osm_line WHERE way && {env})"
                f" + (SELECT count(*) FROM planet_osm_polygon WHERE way && {env})",
                {"z": tile.z, "x": tile.x, "y": tile.y})
    return cur.fetchone()[0]


def measured_density(cfg: dict, bbox: Bbox, tiles: list[Tile], per_tile: int) -> Density:
    """Rows per z7 tile counted in the database when its data covers the box, else assumed."""
    try:
        extent = load.data_extent(cfg)
    except BadInput as e:
        return assumed_density(tiles, per_tile, f"no database to count in ({e})")
    if not (extent.west <= bbox.west and extent.south <= bbox.south
            and bbox.east <= extent.east and bbox.north <= extent.north):
        return assumed_density(tiles, per_tile, "the database's data does not cover the box")
    conn = postgis.connect(cfg)
    rows, largest_z10 = {}, 0
    try:
        with conn.cursor() as cur:
            for t in tiles:
                rows[t] = count_rows(cur, t)
                if rows[t]:
                    largest_z10 = max(largest_z10, *(count_rows(cur, c) for c in children(t, cfg["rawr"]["group-zoom"])))
    finally:
        conn.close()
    db = cfg["postgresql"]["dbnames"][0]
    return Density(rows, max(rows.values(), default=0), largest_z10,
                   f"counted in database {db}: {sum(rows.values()):,} rows")


def _process_cpu(jobs: list[float], start_up: float) -> float:
    """The CPU seconds of a process doing jobs of these CPU seconds (each as if alone) in turn: its largest
    job, and each other one less the start-up it does not pay (a fitted job cheaper than that costs nothing
    more, not less)."""
    return min(max(jobs), start_up) + sum(max(cpu - start_up, 0.0) for cpu in jobs)


def estimate(bbox: Bbox, density: Density, model: dict, price: float, queue_zoom: int = 7) -> dict:
    """Jobs, CPU seconds, vCPU-hours, cost and memory per job kind for a run over `bbox`."""
    jobs = build_jobs(queue_zoom, bbox=bbox)
    under = {}
    for t, r in density.rows.items():
        for z in range(queue_zoom + 1):
            a = ancestor(t, z)
            under[a] = under.get(a, 0) + r
    start_up = model.get(START_UP, {"cpu": (0.0, 0.0)})["cpu"][0]
    out = {}
    for kind, tiles in jobs.items():
        cpu, peak, longest = 0.0, 0.0, 0.0
        for unit in job_units(kind, tiles, queue_zoom):
            cost, cost_densest = [], []
            for t in unit:
                m = model[f"meta-low/{t.z}" if kind == "meta-low" else kind]
                rows = under.get(t, 0)
                cost.append(m["cpu"][0] + m["cpu"][1] * rows)
                # The longest job and the memory are those of the densest tile (an
                # assumed density spreads rows evenly, but cities are not even).
                densest = max(rows, density.largest) if t.z == queue_zoom else rows
                cost_densest.append(m["cpu"][0] + m["cpu"][1] * densest)
                # A rawr or meta-high job holds one z10 tile's rows at a time, a
                # meta-low job the rows of its whole tile.
                mem_rows = density.largest_z10 if kind != "meta-low" else densest
                peak = max(peak, m["memory"][0] + m["memory"][1] * mem_rows)
            cpu += _process_cpu(cost, start_up)
            longest = max(longest, _process_cpu(cost_densest, start_up))
        hours = cpu / 3600
        out[kind] = {"jobs": len(tiles), "cpu_seconds": round(cpu, 1), "vcpu_hours": round(hours, 3),
                     "cost": round(hours * price, 2), "longest_job_seconds": round(longest),
                     "peak_memory_mb": round(peak),
                     "memory_mb": MEMORY_STEP_MB * math.ceil(peak * MEMORY_MARGIN / MEMORY_STEP_MB)}
    total_hours = sum(v["vcpu_hours"] for v in out.values())
    return {"bbox": list(bbox), "price_per_vcpu_hour": price, "kinds": out, "vcpu_hours": round(total_hours, 3),
            "cost": round(total_hours * price, 2), "density": density.source}


def text(est: dict, model_source: str) -> str:
    lines = [f"run over {','.join(f'{v:g}' for v in est['bbox'])} at ${est['price_per_vcpu_hour']:g} per vCPU-hour",
             f"  data: {est['density']}", f"  model: {model_source}", "",
             f"  {'job kind':<10}{'jobs':>8}{'vCPU-hours':>13}{'cost $':>11}{'longest job s':>15}"
             f"{'peak MiB':>10}{'give it MiB':>13}"]
    for kind, v in est["kinds"].items():
        lines.append(f"  {kind:<10}{v['jobs']:>8,}{v['vcpu_hours']:>13,.2f}{v['cost']:>11,.2f}"
                     f"{v['longest_job_seconds']:>15,}{v['peak_memory_mb']:>10,}{v['memory_mb']:>13,}")
    lines.append(f"  {'total':<10}{sum(v['jobs'] for v in est['kinds'].values()):>8,}"
                 f"{est['vcpu_hours']:>13,.2f}{est['cost']:>11,.2f}")
    return "\n".join(lines)


def plan_command(args, cfg) -> int:
    bbox = parse_bbox(args.bbox) if args.bbox is not None else PLANET
    price = parse_price(args.price)
    if args.rows_per_z7 is not None and args.rows_per_z7 < 0:
        raise BadInput(f"bad --rows-per-z7 {args.rows_per_z7}: expected 0 or more")
    model, model_source = load_model(args.results)
    queue_zoom = cfg["batch"]["queue-zoom"]
    tiles = build_jobs(queue_zoom, bbox=bbox)["rawr"]
    per_tile = args.rows_per_z7 if args.rows_per_z7 is not None else ASSUMED_ROWS_PER_Z7
    if args.rows_per_z7 is not None:
        density = assumed_density(tiles, per_tile, "given with --rows-per-z7")
    else:
        density = measured_density(cfg, bbox, tiles, per_tile)
    est = estimate(bbox, density, model, price, queue_zoom)
    print(json.dumps(est) if args.json else text(est, model_source))
    return 0


def add_commands(sub, common) -> None:
    p = sub.add_parser("plan", parents=[common],
                       help="estimate a run: jobs, vCPU-hours, cost and memory per job kind",
                       description="Estimate a run over a box (default: the planet) before it starts: the jobs "
                                   "of each kind, their vCPU-hours, the cost at a price per vCPU-hour and the "
                                   "memory each kind needs, from the figures make bench measured.")
    p.add_argument("--bbox", help="west,south,east,north (default: the planet)")
    p.add_argument("--price", default="0.0425", help="US dollars per vCPU-hour (default 0.0425)")
    p.add_argument("--results", help="make bench's figures, e.g. bench/results.json (default: built-in ones)")
    p.add_argument("--rows-per-z7", dest="rows_per_z7", type=int,
                   help=f"assume this many osm2pgsql rows per z7 tile instead of counting "
                        f"(default when the database does not cover the box: {ASSUMED_ROWS_PER_Z7:,})")
    p.add_argument("--json", action="store_true", help="print the estimate as one JSON object")
    p.set_defaults(func=plan_command)
