"""web/style-coverage.mjs: how many layers of a public style a set of tiles feeds, by MapLibre's filter code."""

import gzip
import json
import re
import shutil
import sqlite3
import subprocess

import mapbox_vector_tile
import mercantile
import pytest
import shapely

from tilebatch import classify, render
from tilebatch import schema as schemas
from tilebatch.tiles import Tile

from conftest import SHORTBREAD, TOP, build_env, run_cli

TOOL = TOP / "web" / "style-coverage.mjs"
REFERENCE = TOP / "tests" / "data" / "shortbread-reference" / "shortbread-helsinki.mbtiles"
# Layers of each public style the demo build fed when this test was written: it may only go up.
# Issue 10 aims at 45 of Protomaps light's 70, and 101 of colorful's 275 (the reference's figure).
TILEZEN_FLOOR = 42  # 37 before the sea and land (make water) fed `earth`; 38 before Natural Earth (make
# naturalearth) fed boundaries_country, boundaries, places_country and places_region
SHORTBREAD_FLOOR = 101  # 100 before the sea (make water) fed `water-ocean`
FIGURE_RE = re.compile(r"^style layers drawing: (\d+)/(\d+)$")


def coverage(style, tiles, *extra):
    return subprocess.run([shutil.which("node"), str(TOOL), "--style", str(style), *extra, str(tiles)],
                          capture_output=True, text=True, timeout=300)


def figure(proc) -> tuple[int, int]:
    assert proc.returncode == 0, proc.stderr
    m = FIGURE_RE.match(proc.stdout.splitlines()[-1])
    assert m, proc.stdout
    return int(m[1]), int(m[2])


def write_mbtiles(path, tiles: dict, maxzoom: int) -> None:
    """An MBTiles file of {(z, x, y): MVT bytes}, rows in TMS order as the format has them."""
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE metadata (name TEXT, value TEXT)")
    db.execute("CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, tile_data BLOB)")
    db.executemany("INSERT INTO metadata VALUES (?, ?)", [("format", "pbf"), ("maxzoom", str(maxzoom))])
    db.executemany("INSERT INTO tiles VALUES (?, ?, ?, ?)",
                   [(z, x, (1 << z) - 1 - y, data) for (z, x, y), data in tiles.items()])
    db.commit()
    db.close()


def mvt(layers: dict) -> bytes:
    """A tile of {layer: [(WKT, properties)]}."""
    return mapbox_vector_tile.encode([{"name": name, "features": [{"geometry": g, "properties": p} for g, p in feats]}
                                      for name, feats in layers.items()])


SQUARE = "POLYGON ((100 100, 1000 100, 1000 1000, 100 1000, 100 100))"


@pytest.fixture
def hand_made(tmp_path):
    """A z10 tile and a z12 tile (the top zoom), the first gzipped as exports write them."""
    path = tmp_path / "tiles.mbtiles"
    write_mbtiles(path, {
        (10, 583, 296): gzip.compress(mvt({
            "areas": [(SQUARE, {"kind": "park"})],
            "ways": [("LINESTRING (0 0, 2000 2000)", {"kind": "road"})],
            "spots": [("POINT (50 50)", {"kind": "cafe"})],
        })),
        (12, 2332, 1184): mvt({"late": [("POINT (50 50)", {"kind": "late"})]}),
    }, maxzoom=12)
    return path


def layer(id_, type_, source_layer, filter_=None, **extra):
    out = {"id": id_, "type": type_, "source": "s", "source-layer": source_layer, **extra}
    return {**out, "filter": filter_} if filter_ is not None else out


# Each layer tries one rule of the definition; True: it draws from the hand-made tiles.
DEFINITION = [
    (layer("fill-areas", "fill", "areas"), True),
    (layer("fill-ways", "fill", "ways"), False),               # a line has no area to fill
    (layer("line-areas", "line", "areas"), True),              # a polygon's outline
    (layer("extrusion-areas", "fill-extrusion", "areas"), True),
    (layer("heatmap-areas", "heatmap", "areas"), False),       # heatmaps: points only
    (layer("circle-ways", "circle", "ways"), True),
    (layer("symbol-spots", "symbol", "spots"), True),
    (layer("along-spots", "symbol", "spots", layout={"symbol-placement": "line"}), False),
    (layer("along-ways", "symbol", "ways", layout={"symbol-placement": "line"}), True),
    (layer("park", "fill", "areas", ["==", ["get", "kind"], "park"]), True),
    (layer("forest", "fill", "areas", ["==", ["get", "kind"], "forest"]), False),
    (layer("legacy-type", "line", "ways", ["==", "$type", "LineString"]), True),
    (layer("minzoom-10.5", "fill", "areas", minzoom=10.5), True),  # MapLibre builds z10 tiles for it
    (layer("minzoom-11", "fill", "areas", minzoom=11), False),      # z10 is not the top zoom
    (layer("zoom-below-11", "circle", "spots", ["<", ["zoom"], 11]), True),
    (layer("zoom-from-11", "circle", "spots", [">=", ["zoom"], 11]), False),
    (layer("overzoomed", "circle", "late", minzoom=18), True),      # the top zoom's tiles at z18
    (layer("overzoomed-filter", "circle", "late", [">=", ["zoom"], 20]), True),
    (layer("maxzoom-12", "circle", "late", maxzoom=12), False),     # maxzoom is exclusive
    (layer("absent", "fill", "nowhere"), False),
]


def test_each_rule_of_the_definition(hand_made, tmp_path):
    style = tmp_path / "style.json"
    style.write_text(json.dumps({
        "version": 8, "sources": {"s": {"type": "vector", "tiles": ["http://127.0.0.1/{z}/{x}/{y}.mvt"]}},
        "layers": [{"id": "background", "type": "background"}] + [spec for spec, _ in DEFINITION]}))
    proc = coverage(style, hand_made, "--missing")
    missing = {line.split("\t")[0] for line in proc.stdout.splitlines()[:-1]}
    assert missing == {spec["id"] for spec, draws in DEFINITION if not draws}
    assert figure(proc) == (sum(draws for _, draws in DEFINITION), len(DEFINITION))


def test_the_reference_shortbread_build_feeds_101_of_colorful():
    # The figure published with the reference build: the definition is the same one.
    assert figure(coverage("versatiles-colorful", REFERENCE)) == (101, 275)


def measure(env, style, tmp_path) -> tuple[int, int]:
    """The figure of a build, exported as a user would; pytest -s shows it and the layers that draw nothing."""
    out = tmp_path / "build.mbtiles"
    proc = run_cli("export", "--config", "config.yaml", out, env=env)
    assert proc.returncode == 0, proc.stderr
    proc = coverage(style, out, "--missing")
    drawing, total = figure(proc)
    print(proc.stdout)
    assert len(proc.stdout.splitlines()) - 1 == total - drawing
    return drawing, total


def test_the_demo_build_and_protomaps_light(built_store, tmp_path):
    drawing, total = measure(built_store[1], "protomaps-light", tmp_path)
    assert total == 70 and drawing >= TILEZEN_FLOOR


# Hand-made OSM rows, one of each thing a Protomaps light layer draws: (table, WKT in metres east and
# north of a spot in Helsinki, tags). The demo extract lacks most of them (no motorway, no airport, ...).
SQUARE_M = "POLYGON ((0 0, 300 0, 300 300, 0 300, 0 0))"
ROAD_M = "LINESTRING (0 0, 400 60)"
PROTOMAPS_ROWS = [
    ("land_polygons", "POLYGON ((-9000 -9000, 9000 -9000, 9000 9000, -9000 9000, -9000 -9000))", {}),
    ("polygon", "POLYGON ((-8000 -8000, 8000 -8000, 8000 8000, -8000 8000, -8000 -8000))",
     {"boundary": "administrative", "admin_level": "2", "name": "Suomi"}),
    ("polygon", "POLYGON ((-7000 -7000, 7000 -7000, 7000 7000, -7000 7000, -7000 -7000))",
     {"boundary": "administrative", "admin_level": "4", "name": "Uusimaa"}),
    *[("polygon", SQUARE_M, {key: value, "name": value}) for key, value in [
        ("leisure", "park"), ("leisure", "playground"), ("amenity", "hospital"), ("landuse", "industrial"),
        ("amenity", "school"), ("natural", "beach"), ("tourism", "zoo"), ("aeroway", "aerodrome"),
        ("aeroway", "runway"), ("highway", "pedestrian"), ("man_made", "pier"), ("natural", "water"),
        ("building", "yes")]],
    *[("line", ROAD_M, {"highway": highway, "name": highway, "oneway": "yes", "ref": "E18", **structure})
      for highway in ("motorway", "motorway_link", "primary", "residential", "footway")
      for structure in ({}, {"bridge": "yes"}, {"tunnel": "yes"})],
    *[("line", ROAD_M, tags) for tags in (
        {"highway": "service"}, {"railway": "rail"}, {"aeroway": "runway"}, {"aeroway": "taxiway"},
        {"man_made": "pier"}, {"waterway": "river", "name": "Vantaanjoki"}, {"waterway": "stream", "name": "Oja"})],
    *[("point", "POINT (100 100)", tags) for tags in (
        {"addr:housenumber": "1"}, {"natural": "bay", "name": "Lahti"}, {"place": "island", "name": "Saari"},
        {"amenity": "restaurant", "name": "Ravintola"}, {"place": "country", "name": "Suomi"},
        {"place": "state", "name": "Uusimaa"}, {"place": "city", "name": "Helsinki"},
        {"place": "suburb", "name": "Kluuvi"})],
]


def test_the_tilezen_schema_feeds_every_protomaps_light_layer_given_the_data(tmp_path):
    """All but `landcover`, Protomaps' own layer that Tilezen does not have."""
    schema = schemas.load(schemas.schema_path("tilezen"))
    x0, y0 = mercantile.xy(24.945, 60.170)
    rows, spots = {}, []
    for i, (table, wkt, tags) in enumerate(PROTOMAPS_ROWS, start=1):
        geom = shapely.affinity.translate(shapely.from_wkt(wkt), x0 + (i % 8) * 500, y0 + (i // 8) * 500)
        tags = dict(tags)
        if geom.geom_type == "Polygon" and schema.tables[table].tags:
            point = shapely.point_on_surface(geom)
            tags.update(way_area=repr(geom.area), **{classify.LABEL_KEY: f"{point.x!r} {point.y!r}"})
        rows.setdefault(table, []).append((i, shapely.to_wkb(geom), tags))
        spots.append(mercantile.lnglat(*shapely.point_on_surface(geom).coords[0]))
    features = render.collect(schema, rows.items())
    tiles = {}
    for z in range(schema.max_zoom + 1):
        for t in {mercantile.tile(lon, lat, z) for lon, lat in spots}:
            data, _ = render.render_tile(schema, features, Tile(t.x, t.y, t.z))
            if data:
                tiles[(t.z, t.x, t.y)] = data
    write_mbtiles(tmp_path / "tiles.mbtiles", tiles, schema.max_zoom)
    proc = coverage("protomaps-light", tmp_path / "tiles.mbtiles", "--missing")
    assert [line.split("\t")[0] for line in proc.stdout.splitlines()[:-1]] == ["landcover"]
    assert figure(proc) == (69, 70)


def test_the_shortbread_demo_build_and_versatiles_colorful(shortbread_build, tmp_path):
    drawing, total = measure({**build_env(shortbread_build), **SHORTBREAD}, "versatiles-colorful", tmp_path)
    assert total == 275 and drawing >= SHORTBREAD_FLOOR


def test_bad_input_is_one_line_and_exit_2(hand_made, tmp_path):
    bad_filter = tmp_path / "bad-filter.json"
    bad_filter.write_text(json.dumps({"version": 8, "sources": {}, "layers": [
        layer("frob", "fill", "areas", ["frob", 1])]}))
    corrupt = tmp_path / "corrupt.mbtiles"
    write_mbtiles(corrupt, {(3, 4, 2): gzip.compress(b"\x1f\x8bnot a tile")}, maxzoom=3)
    cases = [
        (("versatiles-colorful", tmp_path / "nothing.mbtiles"), "cannot read"),
        (("versatiles-colorful", TOOL), "is not an MBTiles file"),
        (("no-such-style", hand_made), "cannot read the style no-such-style"),
        ((bad_filter, hand_made), 'style layer "frob": bad filter'),
        (("protomaps-light", corrupt), "tile 3/4/2 in"),
    ]
    for (style, tiles), message in cases:
        proc = coverage(style, tiles)
        assert (proc.returncode, proc.stdout) == (2, ""), proc
        assert proc.stderr.startswith("style-coverage: ") and message in proc.stderr, proc.stderr
        assert len(proc.stderr.splitlines()) == 1
    proc = subprocess.run([shutil.which("node"), str(TOOL)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "usage:" in proc.stderr
