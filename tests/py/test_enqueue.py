"""Planning an enqueue: which tiles, cut into which submissions, waiting for what (no AWS)."""

import pytest

from tilebatch.enqueue import (
    Dependency,
    as_submissions,
    build_jobs,
    depends_on,
    job_units,
    list_text,
    parse_tile_lines,
    parse_units,
    select_tiles,
)
from tilebatch.errors import BadInput
from tilebatch.tiles import Tile, bbox_tiles, children, make_bbox, parse_bbox


def test_the_planet_is_every_z7_tile_and_the_pyramid_adds_zooms_0_to_6():
    planet = select_tiles(7)
    assert len(planet) == 16_384 and {t.z for t in planet} == {7}
    full = select_tiles(7, with_pyramid=True)
    assert len(full) == 16_384 + 5_461
    assert full[0] == Tile(0, 0, 0) and full[-1] == Tile(127, 127, 7)
    assert full == sorted(full, key=lambda t: (t.z, t.x, t.y))


def test_a_bbox_gives_the_z7_tiles_touching_it_and_their_ancestors():
    box = make_bbox(24.0, 59.0, 27.0, 61.0)  # around Helsinki
    tiles = select_tiles(7, bbox=box)
    assert tiles == [Tile(72, 36, 7), Tile(72, 37, 7), Tile(73, 36, 7), Tile(73, 37, 7)]
    with_up = select_tiles(7, bbox=box, with_pyramid=True)
    assert with_up[:7] == [Tile(0, 0, 0), Tile(1, 0, 1), Tile(2, 1, 2), Tile(4, 2, 3),
                           Tile(9, 4, 4), Tile(18, 9, 5), Tile(36, 18, 6)]
    assert with_up[7:] == tiles


def test_listed_tiles_below_the_queue_zoom_stand_for_their_ancestor_once():
    text = "# expired by osm2pgsql\n14/9326/4741\n14/9327/4742\n\n10/582/296\n7/73/37  \n"
    tiles = select_tiles(7, listed=parse_tile_lines(text, "expire.txt"))
    assert tiles == [Tile(72, 37, 7), Tile(73, 37, 7)]
    # One tile is its own list; a deep one still goes at the queue zoom.
    assert select_tiles(7, tile=Tile(9326, 4741, 14)) == [Tile(72, 37, 7)]


def test_listed_tiles_above_the_queue_zoom_stand_for_their_descendants_there():
    """An expire list made at zoom 3 (EXPIRE_ZOOM=3): no rawr or meta-high job at z3, which they refuse,
    but one at each z7 tile beneath, and meta-low's pyramid over those."""
    listed = parse_tile_lines("3/4/2\n14/9326/4741\n", "expire.txt")  # the z14 tile lies under 3/4/2
    beneath = children(Tile(4, 2, 3), 7)
    assert select_tiles(7, listed=listed) == beneath
    jobs = build_jobs(7, listed=listed)
    assert jobs["rawr"] == jobs["meta-high"] == beneath
    low = [t for t in jobs["meta-low"] if t.z < 7]
    assert low == [Tile(0, 0, 0), Tile(1, 0, 1), Tile(2, 1, 2)] + [t for z in (3, 4, 5, 6) for t in children(Tile(4, 2, 3), z)]
    assert [t for t in jobs["meta-low"] if t.z == 7] == beneath


def test_a_bad_line_is_named_and_an_empty_list_refused():
    with pytest.raises(BadInput, match=r"expire.txt line 2: bad tile '7/73'"):
        parse_tile_lines("7/73/37\n7/73\n", "expire.txt")
    with pytest.raises(BadInput, match="no tiles to enqueue"):
        select_tiles(7, listed=parse_tile_lines("# nothing\n", "empty.txt"))


def singles(tiles):
    return [(t,) for t in tiles]


def test_plan_cuts_arrays_of_at_most_10000_and_sends_a_lone_tile_plain():
    subs = as_submissions("meta-low", "r1", "tb", job_units("meta-low", select_tiles(7, with_pyramid=True), 7))
    assert [(s.name, len(s.tiles), s.list_key) for s in subs] == [
        ("tb-r1-0000", 10_000, "runs/r1/meta-low/tiles-0000.txt"),
        ("tb-r1-0001", 10_000, "runs/r1/meta-low/tiles-0001.txt"),
        ("tb-r1-0002", 1_845, "runs/r1/meta-low/tiles-0002.txt"),
    ]
    assert subs[1].tile_parameter == "@runs/r1/meta-low/tiles-0001.txt"

    # 10,001 tiles: the last one alone cannot be an array job (size 2..10,000).
    tiles = select_tiles(7)[:10_001]
    last = as_submissions("rawr", "r1", "tb", singles(tiles))[-1]
    assert (last.name, last.list_key, last.tile_parameter) == ("tb-r1-7-78-16", None, "7/78/16")


def test_plan_refuses_a_name_batch_would_refuse():
    with pytest.raises(BadInput, match="shorten batch.job-name-prefix"):
        as_submissions("rawr", "r" * 64, "p" * 60, [(Tile(73, 37, 7),)])


def test_an_array_over_the_same_tiles_pairs_child_by_child_anything_else_waits_whole():
    tiles = select_tiles(7, with_pyramid=True)
    subs = as_submissions("meta-high", "r1", "tb", singles(tiles))
    same = [Dependency(f"rawr-{i}", list_text(s.units)) for i, s in enumerate(subs)]
    other = Dependency("other", list_text(singles(tiles[:3])))
    plain = Dependency("plain", None)
    needs = depends_on(subs, same + [other, plain])
    assert needs[1] == [{"jobId": "rawr-1", "type": "N_TO_N"}, {"jobId": "other"}, {"jobId": "plain"}]
    assert needs[2] == [{"jobId": "rawr-2", "type": "N_TO_N"}, {"jobId": "other"}, {"jobId": "plain"}]
    # Without a dependency over the same tiles, every one is waited for whole.
    assert depends_on(subs, [other])[0] == [{"jobId": "other"}]
    with pytest.raises(BadInput, match="21 dependencies for one job"):
        depends_on(subs[:1], [Dependency(f"j{i}", None) for i in range(21)])


def test_the_jobs_of_a_build_over_a_box_a_list_or_nothing():
    box = parse_bbox("24.0,59.0,27.0,61.0")
    jobs = build_jobs(7, bbox=box)
    assert jobs["rawr"] == jobs["meta-high"] == bbox_tiles(box, 7)
    assert jobs["meta-low"] == [t for z in range(8) for t in bbox_tiles(box, z)]
    listed = build_jobs(7, listed=[Tile(9340, 4741, 14), Tile(73, 37, 7)])
    assert listed["rawr"] == [Tile(72, 37, 7), Tile(73, 37, 7)]
    assert listed["meta-low"][:2] == [Tile(0, 0, 0), Tile(1, 0, 1)] and len(listed["meta-low"]) == 9
    assert build_jobs(7, listed=[]) == {"rawr": [], "meta-high": [], "meta-low": []}


def test_a_boxs_few_low_zoom_meta_low_jobs_share_batch_jobs_a_planets_do_not():
    box = parse_bbox("24.0,59.0,27.0,61.0")
    tiles = build_jobs(7, bbox=box)["meta-low"]
    low, z7 = tuple(t for t in tiles if t.z < 7), [t for t in tiles if t.z == 7]
    assert len(low) == 7 and job_units("meta-low", tiles, 7) == [low, *singles(z7)]
    assert job_units("rawr", z7, 7) == singles(z7)
    subs = as_submissions("meta-low", "r1", "tb", job_units("meta-low", tiles, 7))
    assert [len(s.units) for s in subs] == [5] and subs[0].tiles == tiles
    assert list_text(subs[0].units).splitlines()[:2] == ["0/0/0,1/1/0,2/2/1,3/4/2,4/9/4,5/18/9,6/36/18", "7/72/36"]
    assert parse_units(list_text(subs[0].units), "list") == subs[0].units
    # Alone, the unit is a plain job named by its first tile, its tiles its parameter.
    (alone,) = as_submissions("meta-low", "r1", "tb", [low])
    assert (alone.name, alone.list_key, alone.tile_parameter) == ("tb-r1-0-0-0", None, ",".join(
        f"{t.z}/{t.x}/{t.y}" for t in low))
    # A re-submission's group is in its name, so that a later round's plain job does not take it.
    assert as_submissions("meta-low", "r1", "tb", [low], "r01m0")[0].name == "tb-r1-r01m0-0-0-0"
    # A country's are work: as many units as it has z6 tiles, each with one of them, side by side on Batch.
    country = build_jobs(7, bbox=parse_bbox("5.8,47.2,15.1,55.1"))["meta-low"]
    units = [u for u in job_units("meta-low", country, 7) if u[0].z < 7]
    z6 = [t for t in country if t.z == 6]
    assert len(units) == len(z6) == 6 and sorted(t for u in units for t in u if t.z == 6) == sorted(z6)
    assert sorted(t for u in units for t in u) == sorted(t for t in country if t.z < 7)
    # A city's box, within one z7 tile: one unit, the low zooms then the z7 tile.
    city = build_jobs(7, bbox=parse_bbox("24.94,60.165,24.95,60.17"))["meta-low"]
    assert job_units("meta-low", city, 7) == [tuple(city)] and city[-1].z == 7
    planet = select_tiles(7, with_pyramid=True)
    assert job_units("meta-low", planet, 7) == singles(planet)
    # Nor a planet run's few low-zoom jobs sent again: each is a planet-sized job.
    assert job_units("meta-low", list(low), 7, run_tiles=planet) == singles(low)
    assert job_units("meta-low", list(low[3:]), 7, run_tiles=tiles) == [low[3:]]
