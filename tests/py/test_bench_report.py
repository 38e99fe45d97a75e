"""The benchmark's pure parts: the rounds at each size, medians, the targets and the report of a small results dict.

Nothing here times anything: the figures are made up, and the report is checked
to read them as the targets say.
"""

import json
import subprocess
import sys

import mapbox_vector_tile
import pytest

from conftest import TOP

sys.path.insert(0, str(TOP))  # bench/ is beside the installed package, not in it
from bench import counts, report, run  # noqa: E402


def kind(cpu, seconds, peak, tiles, features, nbytes, jobs=1, **more):
    return {"jobs": jobs, "seconds": seconds, "cpu_seconds": cpu, "job_cpu_seconds": cpu / 2, "peak_memory_mb": peak,
            "tiles": tiles, "features": features, "bytes": nbytes, **more}


def peer(cpu, seconds, tiles, features, nbytes, threads=1):
    return {"threads": threads, "seconds": seconds, "cpu_seconds": cpu, "peak_memory_mb": 300.0, "tiles": tiles,
            "features": features, "bytes": nbytes}


def size(copies, rounds, peers=True):
    """One size's figures: tilebatch's jobs growing with the copies, and at a targets' size its peers."""
    n = copies / 16
    rawr = kind(4.0 * n, 5.0 * n, 100.0 * n, 2, int(200_000 * n), 0, rawr_bytes=int(2 ** 20 * n))
    del rawr["bytes"]
    out = {"rows": int(200_000 * n), "tile": "7/72/37", "rounds": rounds, "tilebatch": {
        "rawr": rawr,
        "meta-high": kind(8.0 * n, 9.0 * n, 200.0 * n, int(500 * n), int(100_000 * n), int(10_000_000 * n)),
        "meta-low": kind(10.0 * n, 12.0 * n, 150.0 * n, 16, int(8_000 * n), int(900_000 * n), jobs=8)}}
    if peers:
        out["tilemaker3"] = {"high-t1": peer(5.0, 5.0, 500, 90_000, 9_000_000),
                             "all-t1": peer(12.0, 12.0, 520, 98_000, 9_900_000),
                             "all-t2": peer(12.5, 7.0, 520, 98_000, 9_900_000, threads=2)}
        out["postgis"] = {"low": {"seconds": 2.0, "cpu_seconds": 4.0, "tiles": 16, "nonempty_tiles": 16,
                                  "features": 8_000, "bytes": 900_000}}
        out["build"] = {"1": kind(24.0, 30.0, 200.0, 516, 108_000, 10_900_000),
                        "2": kind(25.0, 17.0, 200.0, 516, 108_000, 10_900_000, jobs=2)}
    return out


def results(sizes):
    return {"format": report.FORMAT, "machine": {"cpu": "test", "nproc": 2, "memory_gib": 8.0, "postgis": "3",
                                                 "python": "3.11"},
            "schema": "shortbread", "ranges": {"high": [13, 14], "low": [0, 12], "all": [0, 14]},
            "peers": {"tilemaker3": "tilemaker v3.1.0 Shortbread reference"},
            "job_memory_mb": {"rawr": 8192, "meta-high": 4096, "meta-low": 2048}, "sizes": sizes}


def by_name(targets):
    return {t.name: t for t in targets}


def polygon_commands(*rings):
    """MVT commands of closed rings through their corners, one after another: MoveTo, LineTo, ClosePath each."""
    out, cursor = [], (0, 0)
    for corners in rings:
        deltas = [(x - px, y - py) for (px, py), (x, y) in zip([cursor, *corners], corners)]
        zigzag = [(d << 1) ^ (d >> 31) for delta in deltas for d in delta]
        out += [1 | 1 << 3, *zigzag[:2], 2 | (len(corners) - 1) << 3, *zigzag[2:], 7 | 1 << 3]
        cursor = corners[-1]
    return out


def test_a_multi_geometry_counts_as_its_parts_and_a_hole_does_not():
    tile = mapbox_vector_tile.encode([{"name": "a", "features": [
        {"geometry": "MULTIPOINT(1 1, 2 2, 3 3)", "properties": {}},
        {"geometry": "MULTILINESTRING((0 0, 10 10), (20 20, 30 30))", "properties": {}},
        {"geometry": "LINESTRING(0 0, 10 10)", "properties": {}}]}, {"name": "b", "features": [
        {"geometry": "MULTIPOLYGON(((0 0, 100 0, 100 100, 0 100, 0 0), (10 10, 20 10, 20 20, 10 20, 10 10)),"
                     " ((200 200, 300 200, 300 300, 200 200)))", "properties": {}},
        {"geometry": "POLYGON((0 0, 100 0, 100 100, 0 100, 0 0), (10 10, 20 10, 20 20, 10 20, 10 10),"
                     " (30 30, 40 30, 40 40, 30 30))", "properties": {}}]}])
    assert counts.layer_features(tile) == {"a": 3 + 2 + 1, "b": 2 + 1}


@pytest.mark.parametrize("winding", [1, -1])
def test_polygons_are_told_from_holes_by_the_first_rings_winding_either_way(winding):
    outer, other = [(0, 0), (90, 0), (90, 90), (0, 90)], [(100, 100), (110, 100), (110, 110)]  # wound alike
    hole = [(10, 10), (10, 20), (20, 20)]  # wound against them
    geometry = polygon_commands(outer[::winding], hole[::winding], other[::winding])
    assert counts.geometry_parts(counts.POLYGON, geometry) == 2


def test_targets_at_16x_read_the_peers_and_growth_reads_256x():
    ts = by_name(report.targets(results({"16": size(16, 3), "256": size(256, 1, peers=False)})))
    high = ts["16x meta-high tiles/CPU-s over tilemaker v3.1.0 Shortbread reference's, 1 thread, z13-14"]
    # 500 tiles in 8 CPU-s against 500 in 5: 0.625 of tilemaker's rate, where 1.2 is the target.
    assert high.measured == pytest.approx(0.625) and high.op == ">=" and high.met is False
    assert high.verdict == "MISSED by 48%"
    features = ts["16x meta-high features z13-14, at least tilemaker v3.1.0 Shortbread reference's"]
    assert (features.measured, features.bound, features.met) == (100_000, 90_000, True)
    e2e = ts["16x rawr + meta-high + meta-low CPU s over tilemaker v3.1.0 Shortbread reference's, 1 thread, z0-14"]
    assert e2e.measured == pytest.approx(22.0 / 12.0) and e2e.met is False
    low = ts["16x meta-low CPU s over PostGIS ST_AsMVT's, same tiles z0-12"]
    assert low.measured == pytest.approx(2.5) and low.met is False
    assert ts["16x tilebatch build wall s, --jobs 2 over --jobs 1"].measured == pytest.approx(17 / 30)
    assert ts["16x tilebatch build wall s, --jobs 2 over --jobs 1"].met is True
    versus = ts["16x tilebatch build --jobs 2 wall s over tilemaker v3.1.0 Shortbread reference's with 2 threads, z0-14"]
    assert versus.measured == pytest.approx(17 / 7) and versus.met is False
    # Everything grows 16 times, features too: CPU per feature stays put.
    assert ts["meta-high CPU per feature, 256x over 16x"].measured == pytest.approx(1.0)
    # 256x: meta-high's 3,200 MiB with 1.5x room is more than 4,096; meta-low's 2,400 MiB alone is.
    memory = {k: ts[f"{k} peak MiB at 256x, with 1.5x room under its job definition's"] for k in ("rawr", "meta-high",
                                                                                                  "meta-low")}
    assert [m.met for m in memory.values()] == [True, False, False]
    assert memory["rawr"].bound == pytest.approx(8192 / 1.5)
    assert ts["planet enqueue, Batch API calls"].verdict == "not measured"


def test_a_run_without_256x_or_tilemaker_3_says_what_it_did_not_measure():
    sizes = {"1": size(1, 3), "16": size(16, 3)}
    del sizes["16"]["tilemaker3"]
    ts = report.targets({**results(sizes), "peers": {}})
    unmeasured = [t for t in ts if t.met is None]
    assert {t.figures for t in unmeasured} == {"no tilemaker 3 run at 16x (TILEMAKER=path/to/tilemaker)",
                                               "needs sizes 16 and 256 (BENCH_SIZES)", "no enqueue in this run"}
    assert len(unmeasured) == 1 + 2 + 1 + 1 + 3 + 1  # rate, features, bytes, end to end, build vs tilemaker, growth
    assert all(t.verdict == "not measured" for t in unmeasured)
    # The memory targets read the largest size there is.
    assert all(t.name.endswith("at 16x, with 1.5x room under its job definition's") for t in ts if "peak MiB" in t.name)


def test_the_report_prints_every_section_and_one_line_a_target():
    text = report.text(results({"1": size(1, 3), "16": size(16, 3), "256": size(256, 1, peers=False)}))
    assert "every figure the median of its size's interleaved rounds (1x 3, 16x 3, 256x 1)" in text
    assert "== 256x: 3,200,000 rows in gis_bench256, z7 tile 7/72/37, 1 round ==" in text
    assert "  tilemaker v3.1.0 Shortbread reference z13-14, 1 thread" in text
    targets = text.split("== Targets (schema shortbread): ")[1].splitlines()
    assert targets[0] == "7 met, 6 missed, 1 not measured =="
    assert len(targets) == 2 + 14  # the counts, the header, a line a target
    line = next(t for t in targets if t.startswith("16x meta-low CPU s over PostGIS"))
    assert " ".join(line.split()).endswith("z0-12 2.5 <= 2 MISSED by 25% (10.0 against 4 CPU s)")
    growth = text.split("== Growth with the data")[1].split("\n\n")[0].splitlines()
    assert growth[0].endswith("and against 16x ==")
    rawr256 = next(g for g in growth if g.startswith("rawr 256x")).split()
    # CPU, wall, peak and RAWR bytes all 16 times 16x's; CPU per feature the same.
    assert rawr256[-5:] == ["16.0", "16.0", "16.0", "16.0", "1"]
    # A growth size without peers has no row in the ratios against them.
    ratios = text.split("== tilebatch over its peers")[1].split("\n\n")[0]
    assert "16x meta-high" in ratios and "256x" not in ratios


def test_sizes_up_to_the_targets_get_every_peer_and_the_rounds_above_them_the_growth_rounds():
    assert run.schedule([1, 16, 256], 3, 16, 1, {"tilemaker3"}) == {
        1: (3, set(run.PEER_KEYS)), 16: (3, set(run.PEER_KEYS)), 256: (1, {"tilemaker3"})}


def test_the_median_of_the_rounds_keeps_each_rounds_cpu():
    got = run.median([{"cpu_seconds": 3.0, "tiles": 5, "x": {"seconds": 1.0}},
                      {"cpu_seconds": 1.0, "tiles": 5, "x": {"seconds": 2.0}},
                      {"cpu_seconds": 2.0, "tiles": 5, "x": {"seconds": 9.0}}])
    assert got == {"cpu_seconds": 2.0, "tiles": 5, "x": {"seconds": 2.0}, "cpu_seconds_rounds": [3.0, 1.0, 2.0]}


def report_cli(path):
    return subprocess.run([sys.executable, "-m", "bench.report", str(path)], capture_output=True, text=True, cwd=TOP,
                          timeout=60)


def test_the_report_reads_a_saved_run_and_refuses_an_older_format_in_one_line(tmp_path):
    saved = tmp_path / "results.json"
    saved.write_text(json.dumps(results({"16": size(16, 3)})))
    proc = report_cli(saved)
    assert proc.returncode == 0, proc.stderr
    assert "== Targets (schema shortbread)" in proc.stdout
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"machine": {}, "sizes": {"16": size(16, 3)}}))
    for path, message in [(old, f"{old} is in results format none, this report reads format {report.FORMAT}: "
                                "make bench writes a fresh one"),
                          (tmp_path / "none.json", f"benchmark results {tmp_path / 'none.json'}: No such file or directory")]:
        proc = report_cli(path)
        assert (proc.returncode, proc.stdout, proc.stderr) == (2, "", f"bench.report: {message}\n")


def test_the_database_cpu_of_a_job_is_counted_once_its_backends_are_reaped(db_url):
    """A backend's CPU comes from its postmaster once it has exited: a connection that worked a quarter of a
    second and closed counts for that much, measured as soon as it closed."""
    import psycopg2

    from bench import measure

    own = psycopg2.connect(db_url)
    own.autocommit = True
    try:
        cpu = measure.DatabaseCpu(own)
        cpu.start()
        job = psycopg2.connect(db_url)
        with job.cursor() as cur:
            cur.execute("SELECT sum(sqrt(i)) FROM generate_series(1, 4000000) AS i")
        job.close()
        assert cpu.seconds() >= 0.1
    finally:
        own.close()
