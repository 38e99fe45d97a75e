"""The benchmark's results as text: tables, ratios against each peer, growth with the data, and the targets.

Pure functions of the results dict that bench/run.py writes to bench/results.json,
so a saved results file prints the same report again (python -m bench.report FILE).
Every figure is the median of the interleaved rounds; "CPU s" shows the
lowest and highest round beside it.
"""

import json
import sys

from tilebatch.kinds import NAMES

RANGE_OF_KIND = {"meta-high": "high", "meta-low": "low"}
PEERS = ("tilemaker3", "tilemaker")  # tilemaker3: the like-for-like one, when the run had it
TARGET_SIZE = "16"                   # the size the targets are measured at
GROWTH = ("16", "256")               # from, to: how a job grows towards a dense z7 tile
SCALING_LIMIT = 1.3                  # CPU per feature at the larger size over the smaller
MEMORY_ROOM = 1.5                    # a job's peak times this stays under its job definition's memory
# The bounds of the like-for-like targets, Shortbread on both sides.
META_HIGH_OVER_TILEMAKER = 1.2       # meta-high tiles per CPU-s, at least this times tilemaker 3's
END_TO_END_OVER_TILEMAKER = 1.5      # rawr + meta-high + meta-low CPU, at most this times tilemaker 3's
META_LOW_OVER_POSTGIS = 2.0          # meta-low CPU, at most this times ST_AsMVT's on the same tiles
BUILD_JOBS2_OVER_JOBS1 = 0.6         # tilebatch build wall time, --jobs 2 over --jobs 1


def per(a: float, b: float) -> float:
    return a / b if b else float("nan")


def _table(header: list[str], rows: list[list]) -> list[str]:
    cells = [header] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in cells]


def _fmt(value) -> str:
    if isinstance(value, float):
        if value != value:
            return "-"
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _spread(s: dict) -> str:
    rounds = s.get("cpu_seconds_rounds")
    return f"{_fmt(min(rounds))}-{_fmt(max(rounds))}" if rounds else "-"


def _row(name: str, s: dict) -> list:
    return [name, s["seconds"], s["cpu_seconds"], _spread(s), s.get("peak_memory_mb", float("nan")), s["tiles"],
            s["features"], s.get("bytes", s.get("rawr_bytes", 0)) / 1024, per(s["tiles"], s["cpu_seconds"]),
            per(s["features"], s["cpu_seconds"]), per(s.get("bytes", s.get("rawr_bytes", 0)) / 1024, s["cpu_seconds"])]


HEADER = ["", "wall s", "CPU s", "CPU min-max", "peak MiB", "tiles", "features", "KiB", "tiles/CPU-s", "features/CPU-s",
          "KiB/CPU-s"]


def end_to_end(ours: dict) -> dict:
    """rawr + meta-high + meta-low as one: summed times, the largest peak, the tiles of the two renderers."""
    return {"seconds": sum(ours[k]["seconds"] for k in NAMES), "cpu_seconds": sum(ours[k]["cpu_seconds"] for k in NAMES),
            "peak_memory_mb": max(ours[k]["peak_memory_mb"] for k in NAMES),
            **{n: ours["meta-high"][n] + ours["meta-low"][n] for n in ("tiles", "features", "bytes")}}


def _zooms(results: dict, rng: str) -> str:
    lo, hi = results["ranges"][rng]
    return f"z{lo}-{hi}"


def _peer_rows(results: dict, r: dict, rng: str) -> list[list]:
    rows = []
    for key in PEERS:
        runs = r.get(key, {})
        for name in sorted(runs, key=lambda n: runs[n]["threads"]):
            if name.startswith(rng + "-"):
                t = runs[name]["threads"]
                rows.append(_row(f"  {results['peers'][key]} {_zooms(results, rng)}, {t} thread{'s' * (t > 1)}",
                                 runs[name]))
    if rng in r.get("postgis", {}):
        rows.append(_row(f"  PostGIS ST_AsMVT {_zooms(results, rng)}, same tiles", r["postgis"][rng]))
    return rows


def size_section(results: dict, size: str) -> list[str]:
    r = results["sizes"][size]
    ours = r["tilebatch"]
    rows = []
    for kind in NAMES:
        n = ours[kind]["jobs"]
        rows.append(_row(f"tilebatch {kind} ({n} job{'s' * (n > 1)})", ours[kind]))
        if kind in RANGE_OF_KIND:
            rows += _peer_rows(results, r, RANGE_OF_KIND[kind])
    rows.append(_row("tilebatch end to end (3 kinds)", end_to_end(ours)))
    rows += _peer_rows(results, r, "all")
    for jobs, b in sorted(r.get("build", {}).items()):
        rows.append(_row(f"tilebatch build --jobs {jobs}", b))
    lines = [f"== {size}x: {r['rows']:,} rows in gis_bench{size}, z7 tile {r['tile']} =="]
    lines += _table(HEADER, rows)
    lines.append("  (rawr: RAWR tiles, rows and RAWR zip bytes; the others: MVT tiles, features and uncompressed "
                 "MVT bytes. tilebatch: whole job processes, interpreter start included, and the database's CPU "
                 "for them; job-only CPU s from the completion records: "
                 + ", ".join(f"{k} {ours[k]['job_cpu_seconds']:.3g}" for k in NAMES) + ")")
    return lines


def ratios(results: dict) -> list[str]:
    """tilebatch's throughput over each peer's, in tiles per CPU-second (above 1: tilebatch is faster)."""
    peers = [k for k in PEERS if k in results["peers"]]
    rows = []
    for size, r in results["sizes"].items():
        ours = r["tilebatch"]
        for kind, rng in list(RANGE_OF_KIND.items()) + [("end to end", "all")]:
            mine = end_to_end(ours) if kind == "end to end" else ours[kind]
            row = [f"{size}x {kind} ({_zooms(results, rng)})"]
            for key in peers:
                theirs = r.get(key, {}).get(f"{rng}-t1")
                row.append(per(per(mine["tiles"], mine["cpu_seconds"]), per(theirs["tiles"], theirs["cpu_seconds"]))
                           if theirs else float("nan"))
            pg = r.get("postgis", {}).get(rng)
            row.append(per(per(mine["tiles"], mine["cpu_seconds"]), per(pg["tiles"], pg["cpu_seconds"]))
                       if pg else float("nan"))
            rows.append(row)
    header = [""] + [f"vs {results['peers'][k]}, 1 thread" for k in peers] + ["vs PostGIS ST_AsMVT"]
    return ["== tilebatch over its peers: tiles per CPU-second, ratio (above 1: tilebatch does more a CPU-second) =="] + \
        _table(header, rows)


def growth(results: dict) -> list[str]:
    """Per job kind and size: CPU, wall, peak memory, RAWR bytes, and CPU per feature against the base size."""
    sizes = list(results["sizes"])
    base = GROWTH[0] if GROWTH[0] in sizes else sizes[0]
    rows = []
    for kind in NAMES:
        first = results["sizes"][base]["tilebatch"][kind]
        first_us = per(first["cpu_seconds"], first["features"])
        for size in sizes:
            s = results["sizes"][size]["tilebatch"][kind]
            us = per(s["cpu_seconds"], s["features"])
            rawr_mib = s["rawr_bytes"] / 2 ** 20 if "rawr_bytes" in s else float("nan")
            rows.append([f"{kind} {size}x", s["cpu_seconds"], s["seconds"], s["peak_memory_mb"], rawr_mib,
                         s["features"], us * 1e6, per(us, first_us)])
    header = ["", "CPU s", "wall s", "peak MiB", "RAWR MiB", "features", "CPU us/feature", f"/ {base}x"]
    return [f"== Growth with the data: each job kind at each size (rawr: features are rows), against {base}x =="] + \
        _table(header, rows)


def enqueue_section(e: dict) -> list[str]:
    a, p = e["arrays"], e["per_tile"]
    calls = ", ".join(f"{k} {v}" for k, v in sorted(a["by_service"].items()))
    return [f"== Planet enqueue: {e['jobs']:,} jobs (rawr 16,384 + meta-high 16,384 + meta-low 21,845) on a moto server ==",
            *_table(["", "API calls", "seconds"], [
                [f"batch-enqueue, {a['submissions']} array jobs ({calls})", a["api_calls"], a["seconds"]],
                [f"submit_job a tile (timed on {p['sampled']}, extrapolated)", p["api_calls"], p["seconds"]]])]


def targets(results: dict) -> list[str]:
    """The targets, each with its measured value, met or missed and by how much."""
    sizes = list(results["sizes"])
    at = TARGET_SIZE if TARGET_SIZE in sizes else sizes[-1]
    r = results["sizes"][at]
    ours = r["tilebatch"]
    lines = [f"== Targets (schema {results['schema']}, {at}x unless said) =="]

    def check(name: str, value: float, limit: float, ok: bool, unit: str = "") -> None:
        verdict = "met" if ok else f"MISSED by {abs(value / limit - 1) * 100:.0f}%"
        lines.append(f"  {name}: {_fmt(value)}{unit} against {_fmt(limit)}{unit}: {verdict}")

    tm = r.get("tilemaker3")
    high, low, every = (_zooms(results, k) for k in ("high", "low", "all"))
    if tm:
        peer = results["peers"]["tilemaker3"]
        mine = per(ours["meta-high"]["tiles"], ours["meta-high"]["cpu_seconds"])
        theirs = per(tm["high-t1"]["tiles"], tm["high-t1"]["cpu_seconds"])
        check(f"meta-high tiles/CPU-s >= {META_HIGH_OVER_TILEMAKER}x {peer} 1 thread {high}", mine,
              META_HIGH_OVER_TILEMAKER * theirs, mine >= META_HIGH_OVER_TILEMAKER * theirs)
        for what in ("features", "bytes"):
            check(f"meta-high {what} {high} >= {peer}'s", ours["meta-high"][what], tm["high-t1"][what],
                  ours["meta-high"][what] >= tm["high-t1"][what])
        e2e = end_to_end(ours)["cpu_seconds"]
        bound = END_TO_END_OVER_TILEMAKER * tm["all-t1"]["cpu_seconds"]
        check(f"end-to-end CPU s <= {END_TO_END_OVER_TILEMAKER}x {peer} 1 thread {every}", e2e, bound, e2e <= bound, " s")
    else:
        lines.append("  (no tilemaker 3 in this run: give TILEMAKER=path/to/tilemaker for the like-for-like targets)")
    pg = r["postgis"]["low"]["cpu_seconds"]
    low_cpu = ours["meta-low"]["cpu_seconds"]
    check(f"meta-low CPU s <= {META_LOW_OVER_POSTGIS}x PostGIS ST_AsMVT {low}", low_cpu, META_LOW_OVER_POSTGIS * pg,
          low_cpu <= META_LOW_OVER_POSTGIS * pg, " s")
    build = r.get("build", {})
    if "1" in build and "2" in build:
        one, two = build["1"]["seconds"], build["2"]["seconds"]
        check(f"build wall s --jobs 2 <= {BUILD_JOBS2_OVER_JOBS1}x --jobs 1", two, BUILD_JOBS2_OVER_JOBS1 * one,
              two <= BUILD_JOBS2_OVER_JOBS1 * one, " s")
        if tm and "all-t2" in tm:
            check(f"build wall s --jobs 2 <= {results['peers']['tilemaker3']} 2 threads {every}", two,
                  tm["all-t2"]["seconds"], two <= tm["all-t2"]["seconds"], " s")
    big = sizes[-1]
    if GROWTH[0] in sizes and GROWTH[1] in sizes:
        small, large = (results["sizes"][s]["tilebatch"] for s in GROWTH)
        for kind in NAMES:
            a, b = small[kind], large[kind]
            ratio = per(per(b["cpu_seconds"], b["features"]), per(a["cpu_seconds"], a["features"]))
            check(f"{kind} CPU per feature {GROWTH[1]}x / {GROWTH[0]}x", ratio, SCALING_LIMIT, ratio <= SCALING_LIMIT)
    for kind in NAMES:
        peak, limit = results["sizes"][big]["tilebatch"][kind]["peak_memory_mb"], results["job_memory_mb"][kind]
        check(f"{kind} peak memory at {big}x, {MEMORY_ROOM}x room, under its job definition's",
              peak * MEMORY_ROOM, limit, peak * MEMORY_ROOM < limit, " MiB")
    if "enqueue" in results:
        e = results["enqueue"]["arrays"]
        check("planet enqueue, Batch API calls", e["by_service"].get("batch", 0), 20, e["by_service"].get("batch", 0) < 20)
        lines.append(f"  (with the S3 reads and writes of the tile lists: {e['api_calls']} requests in all)")
    return lines


def heading(results: dict) -> list[str]:
    m = results["machine"]
    return [f"machine: {m['cpu']}, {m['nproc']} cores, {m['memory_gib']} GiB; PostGIS {m['postgis']}, "
            f"Python {m['python']}",
            f"tilebatch schema {results['schema']}; peers: " + "; ".join(results["peers"].values()),
            f"every figure the median of {results['rounds']} interleaved round{'s' * (results['rounds'] > 1)}"]


def text(results: dict) -> str:
    lines = heading(results) + [""]
    for size in results["sizes"]:
        lines += size_section(results, size) + [""]
    lines += ratios(results) + [""] + growth(results) + [""]
    if "enqueue" in results:
        lines += enqueue_section(results["enqueue"]) + [""]
    lines += targets(results)
    return "\n".join(lines)


if __name__ == "__main__":
    with open(sys.argv[1] if len(sys.argv) > 1 else "bench/results.json") as f:
        print(text(json.load(f)))
