"""The benchmark's results as text: tables, ratios against each peer, scaling, and the targets.

Pure functions of the results dict that bench/run.py writes to bench/results.json,
so a saved results file prints the same report again (python -m bench.report FILE).
"""

import json
import sys

from tilebatch.kinds import NAMES

# Zoom ranges compared: tilebatch's job kind, tilemaker's range and PostGIS's set of tiles.
RANGES = {"high": (13, 16), "low": (0, 12), "all": (0, 16)}
RANGE_OF_KIND = {"meta-high": "high", "meta-low": "low"}
MEMORY_LIMIT_MB = 1024
SCALING_LIMIT = 1.3


def per(a: float, b: float) -> float:
    return a / b if b else float("nan")


def _table(header: list[str], rows: list[list]) -> list[str]:
    cells = [header] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in cells]


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _row(name: str, s: dict) -> list:
    return [name, s["seconds"], s["cpu_seconds"], s.get("peak_memory_mb", "-"), s["tiles"], s["features"],
            per(s["tiles"], s["cpu_seconds"]), per(s["features"], s["cpu_seconds"])]


HEADER = ["", "wall s", "CPU s", "peak MiB", "tiles", "features", "tiles/CPU-s", "features/CPU-s"]


def end_to_end(ours: dict) -> dict:
    """rawr + meta-high + meta-low as one: summed times, the largest peak, the tiles of the two renderers."""
    return {"seconds": sum(ours[k]["seconds"] for k in NAMES), "cpu_seconds": sum(ours[k]["cpu_seconds"] for k in NAMES),
            "peak_memory_mb": max(ours[k]["peak_memory_mb"] for k in NAMES),
            "tiles": ours["meta-high"]["tiles"] + ours["meta-low"]["tiles"],
            "features": ours["meta-high"]["features"] + ours["meta-low"]["features"]}


def size_section(size: str, r: dict) -> list[str]:
    ours, tm, pg = r["tilebatch"], r["tilemaker"], r["postgis"]
    threads = sorted({v["threads"] for v in tm.values()})
    rows = []
    for kind in NAMES:
        n = ours[kind]['jobs']
        rows.append(_row(f"tilebatch {kind} ({n} job{'s' * (n > 1)})", ours[kind]))
        rng = RANGE_OF_KIND.get(kind)
        if rng:
            lo, hi = RANGES[rng]
            for t in threads:
                rows.append(_row(f"  tilemaker z{lo}-{hi}, {t} thread{'s' * (t > 1)}", tm[f"{rng}-t{t}"]))
            rows.append(_row(f"  PostGIS ST_AsMVT z{lo}-{hi}, same tiles", pg[rng]))
    rows.append(_row("tilebatch end to end (3 kinds)", end_to_end(ours)))
    for t in threads:
        rows.append(_row(f"  tilemaker z0-16, {t} thread{'s' * (t > 1)}", tm[f"all-t{t}"]))
    lines = [f"== {size}x: {r['rows']:,} rows in gis_bench{size}, z7 tile {r['tile']} =="]
    lines += _table(HEADER, rows)
    lines.append("  (tilebatch: whole job processes, interpreter start included; job-only CPU s from the "
                 "completion records: " + ", ".join(f"{k} {ours[k]['job_cpu_seconds']:.3g}" for k in NAMES) + ")")
    return lines


def ratios(results: dict) -> list[str]:
    """tilebatch's throughput over each peer's, in tiles per CPU-second (above 1: tilebatch is faster)."""
    rows = []
    for size, r in results["sizes"].items():
        ours, tm, pg = r["tilebatch"], r["tilemaker"], r["postgis"]
        for kind, rng in RANGE_OF_KIND.items():
            mine = per(ours[kind]["tiles"], ours[kind]["cpu_seconds"])
            rows.append([f"{size}x {kind}", per(mine, per(tm[f"{rng}-t1"]["tiles"], tm[f"{rng}-t1"]["cpu_seconds"])),
                         per(mine, per(pg[rng]["tiles"], pg[rng]["cpu_seconds"]))])
        e2e = end_to_end(ours)
        rows.append([f"{size}x end to end (CPU s, tilemaker / tilebatch)", per(tm["all-t1"]["cpu_seconds"], e2e["cpu_seconds"]),
                     "-"])
    return ["== tilebatch over its peers: tiles per CPU-second, ratio (above 1: tilebatch does more a CPU-second) =="] + \
        _table(["", "vs tilemaker 1 thread", "vs PostGIS ST_AsMVT"], rows)


def scaling(results: dict) -> list[str]:
    """CPU microseconds per feature at each size, and each size over the smallest."""
    sizes = list(results["sizes"])
    base = results["sizes"][sizes[0]]
    rows = []
    series = [(k, lambda r, k=k: r["tilebatch"][k]) for k in NAMES] + \
        [("tilemaker z0-16, 1 thread", lambda r: r["tilemaker"]["all-t1"]),
         ("PostGIS z13-16", lambda r: r["postgis"]["high"])]
    for name, pick in series:
        first = per(pick(base)["cpu_seconds"], pick(base)["features"])
        row = [name]
        for size in sizes:
            s = pick(results["sizes"][size])
            us = per(s["cpu_seconds"], s["features"])
            row += [us * 1e6, per(us, first)]
        rows.append(row)
    header = [""] + [h for size in sizes for h in (f"{size}x us/feature", f"{size}x / {sizes[0]}x")]
    return ["== Scaling: CPU microseconds per feature (rawr: per row), and against the smallest size =="] + \
        _table(header, rows)


def targets(results: dict) -> list[str]:
    """The issue's targets, each with its measured value, met or missed and by how much."""
    sizes = list(results["sizes"])
    big, small = results["sizes"][sizes[-1]], results["sizes"][sizes[0]]
    lines = [f"== Targets (at {sizes[-1]}x where it matters) =="]

    def check(name: str, value: float, limit: float, ok: bool, unit: str = "") -> None:
        verdict = "met" if ok else f"MISSED by {abs(value / limit - 1) * 100:.0f}%"
        lines.append(f"  {name}: {_fmt(value)}{unit} against {_fmt(limit)}{unit}: {verdict}")

    ours, tm = big["tilebatch"], big["tilemaker"]
    mine = per(ours["meta-high"]["tiles"], ours["meta-high"]["cpu_seconds"])
    theirs = per(tm["high-t1"]["tiles"], tm["high-t1"]["cpu_seconds"])
    check("meta-high tiles/CPU-s >= tilemaker 1 thread z13-16", mine, theirs, mine >= theirs)
    e2e = end_to_end(ours)["cpu_seconds"]
    check("end-to-end CPU s <= 2x tilemaker 1 thread z0-16", e2e, 2 * tm["all-t1"]["cpu_seconds"],
          e2e <= 2 * tm["all-t1"]["cpu_seconds"], " s")
    peak = max(ours[k]["peak_memory_mb"] for k in NAMES)
    check("peak memory of any job", peak, MEMORY_LIMIT_MB, peak < MEMORY_LIMIT_MB, " MiB")
    for kind in NAMES:
        a, b = small["tilebatch"][kind], ours[kind]
        ratio = per(per(b["cpu_seconds"], b["features"]), per(a["cpu_seconds"], a["features"]))
        check(f"{kind} CPU per feature {sizes[-1]}x / {sizes[0]}x", ratio, SCALING_LIMIT, ratio <= SCALING_LIMIT)
    if "enqueue" in results:
        e = results["enqueue"]["arrays"]
        check("planet enqueue, Batch API calls", e["by_service"].get("batch", 0), 20, e["by_service"].get("batch", 0) < 20)
        lines.append(f"  (with the S3 reads and writes of the tile lists: {e['api_calls']} requests in all)")
    return lines


def enqueue_section(e: dict) -> list[str]:
    a, p = e["arrays"], e["per_tile"]
    calls = ", ".join(f"{k} {v}" for k, v in sorted(a["by_service"].items()))
    return [f"== Planet enqueue: {e['jobs']:,} jobs (rawr 16,384 + meta-high 16,384 + meta-low 21,845) on a moto server ==",
            *_table(["", "API calls", "seconds"], [
                [f"batch-enqueue, {a['submissions']} array jobs ({calls})", a["api_calls"], a["seconds"]],
                [f"submit_job a tile (timed on {p['sampled']}, extrapolated)", p["api_calls"], p["seconds"]]])]


def machine_line(m: dict) -> str:
    return (f"machine: {m['cpu']}, {m['nproc']} cores, {m['memory_gib']} GiB; {m['tilemaker']}, "
            f"PostGIS {m['postgis']}, Python {m['python']}")


def text(results: dict) -> str:
    lines = [machine_line(results["machine"]), ""]
    for size, r in results["sizes"].items():
        lines += size_section(size, r) + [""]
    lines += ratios(results) + [""] + scaling(results) + [""]
    if "enqueue" in results:
        lines += enqueue_section(results["enqueue"]) + [""]
    lines += targets(results)
    return "\n".join(lines)


if __name__ == "__main__":
    with open(sys.argv[1] if len(sys.argv) > 1 else "bench/results.json") as f:
        print(text(json.load(f)))
