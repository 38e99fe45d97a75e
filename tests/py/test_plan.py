"""tilebatch plan: the jobs, vCPU-hours, cost and memory of a run, and what it refuses."""

import json

import pytest

from tilebatch import config, plan
from tilebatch.enqueue import build_jobs
from tilebatch.tiles import Tile

from conftest import TOP, last_error, run_cli

HELSINKI_INSIDE = "24.94,60.166,24.95,60.176"


def results(rows_cpu_peak):
    """A results file as make bench writes it, one size per (rows, cpu, peak)."""
    sizes = {}
    for i, (rows, cpu, peak) in enumerate(rows_cpu_peak):
        kind = {"jobs": 1, "cpu_seconds": cpu, "peak_memory_mb": peak}
        low = {**kind, "jobs": 8, "cpu_seconds_by_zoom": {str(z): cpu for z in range(8)},
               "peak_memory_mb_by_zoom": {str(z): peak for z in range(8)}}
        sizes[str(4 ** i)] = {"rows": rows, "densest_z10_rows": rows // 2, "tilebatch": {"rawr": kind, "meta-high": kind, "meta-low": low}}
    return {"sizes": sizes}


def test_fit_is_the_least_squares_line_and_never_below_zero():
    assert plan.fit([(0, 1), (10, 21), (20, 41)]) == pytest.approx((1, 2))
    assert plan.fit([(10, 5)]) == pytest.approx((0, 0.5))
    assert plan.fit([(0, 9), (10, 1)]) == pytest.approx((5, 0))


def test_a_model_is_fitted_per_kind_and_meta_low_zoom():
    model = plan.model_from_results(results([(1000, 1.5, 60), (4000, 3.0, 90)]))
    assert sorted(model) == ["meta-high", "meta-low/0", "meta-low/1", "meta-low/2", "meta-low/3", "meta-low/4",
                             "meta-low/5", "meta-low/6", "meta-low/7", "rawr"]
    assert model["rawr"]["cpu"] == pytest.approx((1.0, 0.0005))
    assert model["meta-low/3"]["memory"] == pytest.approx((50.0, 0.01))
    # rawr and meta-high memory follows the densest z10 tile (half the rows here).
    assert model["rawr"]["memory"] == pytest.approx((50.0, 0.02))


def test_the_start_up_is_what_a_process_saves_a_job_after_its_first():
    """Jobs alone cost 8 x 1.5 s; as Batch runs them, one process, 5.0 s: each after the first saved
    1.0 s. The median of the sizes: the largest's saving is a small difference of large figures."""
    sizes = results([(1000, 1.5, 60), (4000, 1.5, 60), (16000, 1.5, 60)])
    for size, grouped in zip(sizes["sizes"].values(), (5.0, 4.3, 11.9)):
        size["tilebatch"]["meta-low"].update(processes=1, cpu_seconds=grouped)
    model = plan.model_from_results(sizes)
    assert model[plan.START_UP]["cpu"] == pytest.approx((1.0, 0.0))
    assert plan.START_UP not in plan.model_from_results(results([(1000, 1.5, 60)]))  # no process counts: older


def test_a_process_pays_its_largest_job_and_the_others_less_their_start_up():
    assert plan._process_cpu([2.0], 0.5) == 2.0
    # A job the fit makes cheaper than a start-up adds nothing; it takes nothing off the others either.
    assert plan._process_cpu([3.0, 0.1, 2.0], 0.5) == pytest.approx(3.0 + 0.0 + 1.5)


def test_a_city_pays_one_start_up_for_its_meta_low_jobs():
    """A box within one z7 tile is one meta-low process on Batch (enqueue.job_units): its eight jobs pay
    one start-up; the process is the longest job."""
    model = {**plan.model_from_results(results([(1000, 1.5, 60), (4000, 3.0, 90)])),
             plan.START_UP: {"cpu": (0.5, 0.0), "memory": (0.0, 0.0)}}
    density = plan.Density({Tile(72, 37, 7): 4000}, 4000, 1000, "test")
    low = plan.estimate(plan.parse_bbox(HELSINKI_INSIDE), density, model, 1.0)["kinds"]["meta-low"]
    each = 1 + 0.0005 * 4000
    assert low["jobs"] == 8
    assert low["cpu_seconds"] == pytest.approx(8 * each - 7 * 0.5, abs=0.05)
    assert low["longest_job_seconds"] == round(8 * each - 7 * 0.5)


def test_the_committed_results_give_a_model():
    with open(TOP / "bench" / "results.json") as f:
        model = plan.model_from_results(json.load(f))
    assert all(m["cpu"][0] >= 0 and m["cpu"][1] >= 0 for m in model.values())
    # The built-in model is these figures, so that `make plan` without --results says what they say.
    assert set(model) == set(plan.DEFAULT_MODEL)
    for kind, fitted in model.items():
        for figure in ("cpu", "memory"):
            assert plan.DEFAULT_MODEL[kind][figure] == pytest.approx(fitted[figure], rel=0.01), (kind, figure)


def test_a_planet_estimate_counts_every_job_and_prices_the_cpu():
    model = plan.model_from_results(results([(1000, 1.5, 60), (4000, 3.0, 90)]))
    tiles = build_jobs(7, bbox=plan.PLANET)["rawr"]
    est = plan.estimate(plan.PLANET, plan.assumed_density(tiles, 2000, "test"), model, 0.5)
    kinds = est["kinds"]
    assert [kinds[k]["jobs"] for k in ("rawr", "meta-high", "meta-low")] == [16384, 16384, 21845]
    # rawr: 16384 jobs of 1 s + 2000 rows * 0.0005 s = 2 s each.
    assert kinds["rawr"]["cpu_seconds"] == pytest.approx(16384 * 2.0)
    assert kinds["rawr"]["cost"] == pytest.approx(16384 * 2.0 / 3600 * 0.5, abs=0.01)
    assert est["cost"] == pytest.approx(sum(k["cost"] for k in kinds.values()), abs=0.05)
    # rawr memory is that of the densest z10 tile, with a margin, in whole steps.
    peak = 50 + 0.02 * plan.ASSUMED_DENSEST_Z10
    assert kinds["rawr"]["peak_memory_mb"] == round(peak)
    assert kinds["rawr"]["memory_mb"] % plan.MEMORY_STEP_MB == 0 and kinds["rawr"]["memory_mb"] >= peak * 1.5


def test_the_rows_under_a_low_zoom_job_are_those_of_its_z7_tiles():
    model = {**plan.model_from_results(results([(1000, 1.5, 60), (4000, 3.0, 90)])),
             plan.START_UP: {"cpu": (0.5, 0.0), "memory": (0.0, 0.0)}}
    density = plan.Density({Tile(72, 37, 7): 4000, Tile(73, 37, 7): 2000}, 4000, 1000, "test")
    bbox = plan.parse_bbox("22.6,59,27,60")
    est = plan.estimate(bbox, density, model, 1.0)
    # Eight zooms of meta-low jobs; the z0..z6 ones each hold both tiles' 6000 rows, and are one process
    # (one start-up between them); each z7 job is a process of its own.
    low = est["kinds"]["meta-low"]
    assert low["jobs"] == 9
    assert low["cpu_seconds"] == pytest.approx(7 * (1 + 0.0005 * 6000) - 6 * 0.5 + (1 + 0.0005 * 4000)
                                               + (1 + 0.0005 * 2000), abs=0.05)


def test_rows_are_counted_in_the_database_when_it_covers_the_box(db_url):
    cfg = config.load()
    box = plan.parse_bbox(HELSINKI_INSIDE)
    density = plan.measured_density(cfg, box, [Tile(72, 37, 7)], 123)
    assert density.source.startswith("counted in database gis")
    assert density.rows[Tile(72, 37, 7)] > 10_000 and density.largest == density.rows[Tile(72, 37, 7)]
    assert 0 < density.largest_z10 <= density.largest


def test_the_planet_falls_back_to_an_assumed_density_and_says_so(db_url):
    proc = run_cli("plan", "--results", TOP / "bench" / "results.json", "--price", "0.05")
    assert proc.returncode == 0, proc.stderr
    assert "assumed 67,000 rows per z7 tile" in proc.stdout and "does not cover the box" in proc.stdout
    assert "rawr        16,384" in proc.stdout and "meta-low    21,845" in proc.stdout


def test_json_output_with_a_given_density():
    proc = run_cli("plan", "--bbox", HELSINKI_INSIDE, "--rows-per-z7", "5000", "--price", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    est = json.loads(proc.stdout)
    assert est["price_per_vcpu_hour"] == 2 and "given with --rows-per-z7" in est["density"]
    assert {k: v["jobs"] for k, v in est["kinds"].items()} == {"rawr": 1, "meta-high": 1, "meta-low": 8}


@pytest.mark.parametrize("args, message", [
    (["--bbox", "1,2,3"], "bad bbox '1,2,3': expected four numbers west,south,east,north"),
    (["--bbox", "10,0,5,1"], "west 10.0 must be less than east 5.0"),
    (["--price", "cheap"], "bad price 'cheap': expected US dollars per vCPU-hour, e.g. 0.0425"),
    (["--price", "-1"], "bad price '-1': expected a number of dollars, 0 or more"),
    (["--rows-per-z7", "-5"], "bad --rows-per-z7 -5: expected 0 or more"),
    (["--results", "/nonexistent.json"], "benchmark results /nonexistent.json: No such file or directory"),
])
def test_bad_input_is_one_line_and_exit_2(args, message):
    proc = run_cli("plan", *args)
    assert proc.returncode == 2 and proc.stdout == ""
    error = last_error(proc)
    assert message in error and "\n" not in error
