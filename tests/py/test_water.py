"""The sea and the land (make water): in the tiles of both schemas, on both paths, and the runner's one
warning when they are missing."""

import json

import psycopg2
import pytest
import shapely
from shapely.geometry import box, shape

from tilebatch import metatile, render
from tilebatch import schema as schemas
from tilebatch.enqueue import build_jobs
from tilebatch.store import open_store
from tilebatch.tiles import Tile, make_bbox, tile_at

from conftest import build_env, built_tile, decode, run_cli
from test_pipeline import both_paths

HARBOUR_TILE = Tile(4663, 2371, 13)  # central Helsinki, the South Harbour and the sea off it
SOUTH_HARBOUR = (24.9565, 60.1635)
# Schema: the layer its sea goes into and the kind it has there (None: the layer holds only the sea),
# and the layer of its land (None: the schema has none; the map's background is the land).
SEA = {"tilezen": ("water", "ocean", "earth"), "shortbread": ("ocean", None, None)}


@pytest.fixture(params=SEA)
def build(request):
    """(schema name, root of a build of the demo data with it)."""
    if request.param == "shortbread":
        return "shortbread", request.getfixturevalue("shortbread_build")
    return "tilezen", request.getfixturevalue("built_store")[0]


def sea_features(schema: str, tile_layers: dict) -> list:
    layer, kind, _ = SEA[schema]
    return [f for f in tile_layers.get(layer, {}).get("features", []) if kind is None or f["properties"]["kind"] == kind]


def sea_share(schema: str, tile_layers: dict) -> float:
    """The share of the tile (its buffer left out) that the sea covers."""
    sea = shapely.union_all([shape(f["geometry"]) for f in sea_features(schema, tile_layers)])
    return sea.intersection(box(0, 0, render.EXTENT, render.EXTENT)).area / render.EXTENT ** 2


def source_sea_share(db_url, table: str, tile: Tile) -> float:
    with psycopg2.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT coalesce(sum(ST_Area(ST_Intersection(geom, env))), 0) / ST_Area(env) FROM "
                    f"(SELECT ST_TileEnvelope(%s, %s, %s) AS env) t LEFT JOIN {table} ON geom && env GROUP BY env",
                    (tile.z, tile.x, tile.y))
        share = cur.fetchone()[0]
    conn.close()
    return share


def test_z0_tile_shows_the_sea_and_the_land_and_stays_small(build, db_url):
    schema, root = build
    data = metatile.read_tile(open_store(f"file://{root}/out"), Tile(0, 0, 0))
    assert 0 < len(data) < 500_000
    got = decode(data)
    assert sea_features(schema, got)
    land = SEA[schema][2]
    if land:
        assert {f["properties"]["kind"] for f in got[land]["features"]} == {"earth"}
    # Natural Earth's land covers some 37% of the Pseudo-Mercator square (Antarctica stretched).
    expected = source_sea_share(db_url, "simplified_water_polygons", Tile(0, 0, 0))
    assert sea_share(schema, got) == pytest.approx(expected, abs=0.02)
    assert 0.55 < expected < 0.7


def test_the_harbour_tile_holds_the_sea_as_the_source_has_it(build, db_url):
    schema, root = build
    got = built_tile(root, HARBOUR_TILE)
    expected = source_sea_share(db_url, "water_polygons", HARBOUR_TILE)
    assert expected > 0.05
    assert sea_share(schema, got) == pytest.approx(expected, rel=0.02)
    land = SEA[schema][2]
    if land:
        assert "earth" in {f["properties"]["kind"] for f in got[land]["features"]}


@pytest.mark.parametrize("name, zoom", [("tilezen", 13), ("tilezen", 14), ("tilezen", 16), ("shortbread", 13),
                                        ("shortbread", 14)])
def test_rawr_and_postgis_paths_agree_byte_for_byte_on_the_sea(db_url, name, zoom):
    a, b = both_paths(name, tile_at(*SOUTH_HARBOUR, zoom))
    assert sea_features(name, decode(a))
    assert a == b


def test_a_polygon_cut_by_the_tile_edge_gives_the_same_bytes_wherever_its_ring_starts():
    """A comb of sea whose two teeth cross the tile's edge: clipped, two parts, in an order that followed
    the ring's start until render normalized them (a RAWR tile's copy, cut at its own edge, starts elsewhere)."""
    tilezen = schemas.load(schemas.schema_path("tilezen"))
    x0, y0, x1, _ = render.clip_box(HARBOUR_TILE)
    comb = [(x1 - 500, y0 + 100), (x1 + 500, y0 + 100), (x1 + 500, y0 + 1000), (x1 - 500, y0 + 1000),
            (x1 - 500, y0 + 700), (x1 + 300, y0 + 700), (x1 + 300, y0 + 400), (x1 - 500, y0 + 400)]
    shapes = [shapely.Polygon(comb[k:] + comb[:k]) for k in range(len(comb))]
    shapes.append(shapely.clip_by_rect(shapes[0], x0, y0, x1 + 400, y0 + 2000))  # as a RAWR tile holds it
    tiles = set()
    for geom in shapes:
        features = render.collect(tilezen, [("water_polygons", [(1, shapely.to_wkb(geom), {})])])
        data, _ = render.render_tile(tilezen, features, HARBOUR_TILE)
        assert len(sea_features("tilezen", decode(data))[0]["geometry"]["coordinates"]) == 2
        tiles.add(data)
    assert len(tiles) == 1


def test_the_world_zoom_adds_the_meta_low_jobs_of_the_whole_world():
    helsinki = make_bbox(24.94, 60.16, 24.95, 60.17)
    alone, world = build_jobs(7, bbox=helsinki), build_jobs(7, bbox=helsinki, world_zoom=5)
    added = sorted(set(world["meta-low"]) - set(alone["meta-low"]))
    assert sorted(t.z for t in added) == [1] * 3 + [2] * 15  # z0, one z1 and one z2 tile are Helsinki's own
    assert len(world["meta-low"]) == len(set(world["meta-low"])) == len(alone["meta-low"]) + 18
    assert world["rawr"] == alone["rawr"] and world["meta-high"] == alone["meta-high"]
    assert build_jobs(7, bbox=helsinki, world_zoom=2) == alone


@pytest.fixture
def db_without_water(db_url):
    """A database with the OSM tables (empty) and none of the sea and land tables."""
    name = "tilebatch_nowater"
    admin = psycopg2.connect(db_url)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name}")
        cur.execute(f"CREATE DATABASE {name}")
    conn = psycopg2.connect(db_url.rsplit("/", 1)[0] + "/" + name)
    with conn, conn.cursor() as cur:
        cur.execute("CREATE EXTENSION postgis; CREATE EXTENSION hstore")
        for table, kind in (("point", "Point"), ("line", "LineString"), ("polygon", "Geometry")):
            cur.execute(f"CREATE TABLE planet_osm_{table} (osm_id bigint, way geometry({kind}, 3857), tags hstore,"
                        f" way_area real)")
    conn.close()
    yield name
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE {name}")
    admin.close()


def test_missing_sea_and_land_warn_once_a_run_naming_make_water(db_without_water, tmp_path):
    env = {**build_env(tmp_path), "TILEQUEUE__postgresql__dbnames": f"[{db_without_water}]"}
    proc = run_cli("build", "--config", "config.yaml", "--bbox", "24.94,60.16,24.95,60.17", "--jobs", "1",
                   "--run-id", "nowater", env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    warnings = [entry for entry in lines if entry["level"] == "warning"]
    assert len(warnings) == 1, warnings
    assert "make water" in warnings[0]["msg"]
    tilezen = schemas.load(schemas.schema_path("tilezen"))
    assert sorted(warnings[0]["tables"]) == sorted(t.name for t in tilezen.tables.values() if t.optional)
    noted = [entry for entry in lines if entry["msg"] == "optional table missing, skipped"]
    assert noted and all(entry["level"] == "info" for entry in noted)  # the jobs ran without them
