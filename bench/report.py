"""The benchmark's results as text: tables, ratios against each peer, growth with the data, and the targets.

    .venv/bin/python -m bench.report [bench/results.json]

Pure functions of the results dict that bench/run.py writes to bench/results.json,
so a saved results file prints the same report again. Every figure is the
median of its size's interleaved rounds; "CPU s" shows the lowest and highest
round beside it.
"""

import sys
from typing import NamedTuple

from tilebatch.errors import BadInput
from tilebatch.kinds import NAMES
from tilebatch.plan import read_results

# The layout of the results file; bench/run.py writes it, this reads only it.
# Bump it when a figure the report reads moves or changes meaning.
FORMAT = 2

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
BUILD_JOBS2_OVER_TILEMAKER = 1.0     # tilebatch build --jobs 2 wall time over tilemaker 3's with 2 threads
ENQUEUE_BATCH_CALLS = 20             # Batch API calls of a planet enqueue, fewer than this


class BadResults(Exception):
    """A results file this report cannot read (one line, naming what is wrong)."""


def per(a: float, b: float) -> float:
    return a / b if b else float("nan")


def _table(header: list[str], rows: list[list]) -> list[str]:
    cells = [header] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    return ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
            for r in cells]


def _fmt(value) -> str:
    if isinstance(value, float):
        if value != value:
            return "-"
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _spread(s: dict) -> str:
    rounds = s.get("cpu_seconds_rounds")
    return f"{_fmt(min(rounds))}-{_fmt(max(rounds))}" if rounds else "-"


def _bytes(s: dict) -> int:
    """MVT bytes, or for rawr its RAWR zips' bytes."""
    return s.get("bytes", s.get("rawr_bytes", 0))


def _row(name: str, s: dict) -> list:
    return [name, s["seconds"], s["cpu_seconds"], _spread(s), s.get("peak_memory_mb", float("nan")), s["tiles"],
            s["features"], _bytes(s) / 1024, per(s["tiles"], s["cpu_seconds"]),
            per(s["features"], s["cpu_seconds"]), per(_bytes(s) / 1024, s["cpu_seconds"])]


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
        n, processes = ours[kind]["jobs"], ours[kind].get("processes", ours[kind]["jobs"])
        apart = f", {processes} process{'es' * (processes > 1)}" if processes != n else ""
        rows.append(_row(f"tilebatch {kind} ({n} job{'s' * (n > 1)}{apart})", ours[kind]))
        if kind in RANGE_OF_KIND:
            rows += _peer_rows(results, r, RANGE_OF_KIND[kind])
    rows.append(_row("tilebatch end to end (3 kinds)", end_to_end(ours)))
    rows += _peer_rows(results, r, "all")
    for jobs, b in sorted(r.get("build", {}).items()):
        rows.append(_row(f"tilebatch build --jobs {jobs}", b))
    rounds = r["rounds"]
    lines = [f"== {size}x: {r['rows']:,} rows in gis_bench{size}, z7 tile {r['tile']}, "
             f"{rounds} round{'s' * (rounds > 1)} =="]
    lines += _table(HEADER, rows)
    lines.append("  (rawr: RAWR tiles, rows and RAWR zip bytes; the others: MVT tiles, features and uncompressed "
                 "MVT bytes. tilebatch: whole processes, one a Batch job (enqueue.job_units: a box's few "
                 "meta-low jobs share them), interpreter start included, and the database's CPU for them; "
                 "job-only CPU s from the completion records: "
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
            if any(v == v for v in row[1:]):  # a size without peers (a growth size) has no row
                rows.append(row)
    header = [""] + [f"vs {results['peers'][k]}, 1 thread" for k in peers] + ["vs PostGIS ST_AsMVT"]
    return ["== tilebatch over its peers: tiles per CPU-second, ratio (above 1: tilebatch does more a CPU-second) =="] + \
        _table(header, rows)


def growth(results: dict) -> list[str]:
    """Per job kind and size: CPU, wall, peak memory, RAWR bytes, CPU per feature, and each against the base size."""
    sizes = list(results["sizes"])
    base = GROWTH[0] if GROWTH[0] in sizes else sizes[0]
    rows = []
    for kind in NAMES:
        first = results["sizes"][base]["tilebatch"][kind]
        for size in sizes:
            s = results["sizes"][size]["tilebatch"][kind]
            us = per(s["cpu_seconds"], s["features"]) * 1e6
            rawr_mib = s["rawr_bytes"] / 2 ** 20 if "rawr_bytes" in s else float("nan")
            rows.append([f"{kind} {size}x", s["cpu_seconds"], s["seconds"], s["peak_memory_mb"], rawr_mib,
                         s["features"], us, per(s["cpu_seconds"], first["cpu_seconds"]),
                         per(s["seconds"], first["seconds"]), per(s["peak_memory_mb"], first["peak_memory_mb"]),
                         per(s.get("rawr_bytes", 0), first.get("rawr_bytes", 0)),
                         per(us, per(first["cpu_seconds"], first["features"]) * 1e6)])
    x = f"/ {base}x"
    header = ["", "CPU s", "wall s", "peak MiB", "RAWR MiB", "features", "CPU us/feature",
              f"CPU {x}", f"wall {x}", f"peak {x}", f"RAWR {x}", f"CPU/feature {x}"]
    return [f"== Growth with the data: each job kind at each size (rawr: features are rows), and against {base}x =="] + \
        _table(header, rows)


def enqueue_section(e: dict) -> list[str]:
    a, p = e["arrays"], e["per_tile"]
    calls = ", ".join(f"{k} {v}" for k, v in sorted(a["by_service"].items()))
    return [f"== Planet enqueue: {e['jobs']:,} jobs (rawr 16,384 + meta-high 16,384 + meta-low 21,845) on a moto server ==",
            *_table(["", "API calls", "seconds"], [
                [f"batch-enqueue, {a['submissions']} array jobs ({calls})", a["api_calls"], a["seconds"]],
                [f"submit_job a tile (timed on {p['sampled']}, extrapolated)", p["api_calls"], p["seconds"]]])]


class Target(NamedTuple):
    name: str
    measured: float | None  # None: this run did not measure it (`figures` says why)
    op: str                 # how measured must compare with bound: ">=", "<=" or "<"
    bound: float
    figures: str            # what measured is made of

    @property
    def met(self) -> bool | None:
        if self.measured is None:
            return None
        return {">=": self.measured >= self.bound, "<=": self.measured <= self.bound,
                "<": self.measured < self.bound}[self.op]

    @property
    def verdict(self) -> str:
        if self.met is None:
            return "not measured"
        return "met" if self.met else f"MISSED by {abs(self.measured / self.bound - 1) * 100:.0f}%"


def _ratio(name: str, mine: float, theirs: float, op: str, bound: float, unit: str) -> Target:
    return Target(name, per(mine, theirs), op, bound, f"{_fmt(mine)} against {_fmt(theirs)} {unit}")


def _missing(name: str, op: str, bound: float, why: str) -> Target:
    return Target(name, None, op, bound, why)


def targets(results: dict) -> list[Target]:
    """Every target, measured or said not to be: the like-for-like ones at 16x, growth 16x -> 256x, memory."""
    sizes = list(results["sizes"])
    at = TARGET_SIZE if TARGET_SIZE in sizes else sizes[-1]
    r = results["sizes"][at]
    ours = r["tilebatch"]
    high, low, every = (_zooms(results, k) for k in ("high", "low", "all"))
    peer = results["peers"].get("tilemaker3", "tilemaker 3")
    tm, pg, build = r.get("tilemaker3", {}), r.get("postgis", {}), r.get("build", {})
    no_tm = f"no {peer} run at {at}x (TILEMAKER=path/to/tilemaker)"
    out = []

    name = f"{at}x meta-high tiles/CPU-s over {peer}'s, 1 thread, {high}"
    if "high-t1" in tm:
        rate = lambda s: per(s["tiles"], s["cpu_seconds"])  # noqa: E731
        out.append(_ratio(name, rate(ours["meta-high"]), rate(tm["high-t1"]), ">=", META_HIGH_OVER_TILEMAKER,
                          "tiles/CPU-s"))
    else:
        out.append(_missing(name, ">=", META_HIGH_OVER_TILEMAKER, no_tm))
    for what in ("features", "bytes"):
        name = f"{at}x meta-high {what} {high}, at least {peer}'s"
        out.append(Target(name, ours["meta-high"][what], ">=", tm["high-t1"][what], f"{what} written")
                   if "high-t1" in tm else _missing(name, ">=", float("nan"), no_tm))
    name = f"{at}x rawr + meta-high + meta-low CPU s over {peer}'s, 1 thread, {every}"
    out.append(_ratio(name, end_to_end(ours)["cpu_seconds"], tm["all-t1"]["cpu_seconds"], "<=",
                      END_TO_END_OVER_TILEMAKER, "CPU s") if "all-t1" in tm
               else _missing(name, "<=", END_TO_END_OVER_TILEMAKER, no_tm))
    name = f"{at}x meta-low CPU s over PostGIS ST_AsMVT's, same tiles {low}"
    out.append(_ratio(name, ours["meta-low"]["cpu_seconds"], pg["low"]["cpu_seconds"], "<=", META_LOW_OVER_POSTGIS,
                      "CPU s") if "low" in pg else _missing(name, "<=", META_LOW_OVER_POSTGIS, f"no ST_AsMVT run at {at}x"))
    name = f"{at}x tilebatch build wall s, --jobs 2 over --jobs 1"
    out.append(_ratio(name, build["2"]["seconds"], build["1"]["seconds"], "<=", BUILD_JOBS2_OVER_JOBS1, "wall s")
               if "1" in build and "2" in build else _missing(name, "<=", BUILD_JOBS2_OVER_JOBS1, f"no build run at {at}x"))
    name = f"{at}x tilebatch build --jobs 2 wall s over {peer}'s with 2 threads, {every}"
    if "2" in build and "all-t2" in tm:
        out.append(_ratio(name, build["2"]["seconds"], tm["all-t2"]["seconds"], "<=", BUILD_JOBS2_OVER_TILEMAKER,
                          "wall s"))
    else:
        out.append(_missing(name, "<=", BUILD_JOBS2_OVER_TILEMAKER,
                            no_tm if "all-t2" not in tm else f"no build run at {at}x"))
    small, large = GROWTH
    for kind in NAMES:
        name = f"{kind} CPU per feature, {large}x over {small}x"
        if small in sizes and large in sizes:
            a, b = (results["sizes"][s]["tilebatch"][kind] for s in GROWTH)
            us = lambda s: per(s["cpu_seconds"], s["features"]) * 1e6  # noqa: E731
            out.append(_ratio(name, us(b), us(a), "<=", SCALING_LIMIT, "CPU us/feature"))
        else:
            out.append(_missing(name, "<=", SCALING_LIMIT, f"needs sizes {small} and {large} (BENCH_SIZES)"))
    big = max(sizes, key=int)
    for kind in NAMES:
        limit = results["job_memory_mb"][kind]
        out.append(Target(f"{kind} peak MiB at {big}x, with {MEMORY_ROOM}x room under its job definition's",
                          results["sizes"][big]["tilebatch"][kind]["peak_memory_mb"], "<", limit / MEMORY_ROOM,
                          f"job definition {limit:,} MiB / {MEMORY_ROOM}"))
    name = "planet enqueue, Batch API calls"
    if "enqueue" in results:
        e = results["enqueue"]["arrays"]
        out.append(Target(name, e["by_service"].get("batch", 0), "<", ENQUEUE_BATCH_CALLS,
                          f"{e['api_calls']} requests in all with the S3 reads and writes of the tile lists"))
    else:
        out.append(_missing(name, "<", ENQUEUE_BATCH_CALLS, "no enqueue in this run"))
    return out


def targets_section(results: dict) -> list[str]:
    ts = targets(results)
    met = sum(t.met is True for t in ts)
    missed = sum(t.met is False for t in ts)
    rows = [[t.name, float("nan") if t.measured is None else t.measured, f"{t.op} {_fmt(t.bound)}"] for t in ts]
    table = _table(["", "measured", "target"], rows)
    width = max(len(t.verdict) for t in ts)
    return [f"== Targets (schema {results['schema']}): {met} met, {missed} missed, {len(ts) - met - missed} not measured ==",
            table[0]] + [f"{line}  {t.verdict:<{width}}  ({t.figures})" for line, t in zip(table[1:], ts)]


def heading(results: dict) -> list[str]:
    m = results["machine"]
    rounds = ", ".join(f"{s}x {r['rounds']}" for s, r in results["sizes"].items())
    return [f"machine: {m['cpu']}, {m['nproc']} cores, {m['memory_gib']} GiB; PostGIS {m['postgis']}, "
            f"Python {m['python']}",
            f"tilebatch schema {results['schema']}; peers: " + "; ".join(results["peers"].values()),
            f"every figure the median of its size's interleaved rounds ({rounds})"]


def text(results: dict) -> str:
    lines = heading(results) + [""]
    for size in results["sizes"]:
        lines += size_section(results, size) + [""]
    lines += ratios(results) + [""] + growth(results) + [""]
    if "enqueue" in results:
        lines += enqueue_section(results["enqueue"]) + [""]
    lines += targets_section(results)
    return "\n".join(lines)


def load(path: str) -> dict:
    """A results file in the format this report reads."""
    try:
        results = read_results(path)
    except BadInput as e:
        raise BadResults(str(e)) from None
    if results.get("format") != FORMAT:
        raise BadResults(f"{path} is in results format {results.get('format', 'none')}, this report reads "
                         f"format {FORMAT}: make bench writes a fresh one")
    return results


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        print(__doc__.splitlines()[2].strip(), file=sys.stderr)
        return 2
    path = argv[0] if argv else "bench/results.json"
    try:
        print(text(load(path)))
    except BadResults as e:
        print(f"bench.report: {e}", file=sys.stderr)
        return 2
    except (KeyError, TypeError, ValueError, IndexError) as e:
        print(f"bench.report: {path} lacks a figure the report needs ({type(e).__name__}: {e})", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
