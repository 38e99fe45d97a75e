"""Natural Earth's borders and labels (make naturalearth, which make test runs): the tables the loader
made, Finland and its neighbours checked against what is known of them, and the Tilezen tiles over
Helsinki that show them at zooms 0-7 only."""

import psycopg2
import pytest

from tilebatch.tiles import Tile

from conftest import built_tile

# (lon, lat) of a spot on a border, and who meets there.
BORDERS = {"Finland-Sweden (Tornio)": (24.15, 65.84), "Finland-Norway (Utsjoki)": (27.02, 69.91),
           "Finland-Russia (Vaalimaa)": (27.72, 60.57)}
UUSIMAA_TILE = Tile(36, 18, 6)  # Helsinki's z6 tile: Uusimaa and its neighbours, whose borders show from 6.7


def query(db_url, sql, *args):
    with psycopg2.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute(sql, args)
        rows = cur.fetchall()
    conn.close()
    return rows


def km_to_nearest(db_url, lon, lat, admin_level: int) -> float:
    """Kilometres from (lon, lat) to the nearest border of that level within some 250 km (None: none)."""
    (km,), = query(db_url, "SELECT min(ST_Distance(ST_Transform(geom, 4326)::geography, p::geography)) / 1000"
                           " FROM ne_boundaries, (SELECT ST_SetSRID(ST_MakePoint(%s, %s), 4326) AS p) spot"
                           " WHERE tags->'admin_level' = %s AND geom && ST_Expand(ST_Transform(p, 3857), 500000)",
                   lon, lat, str(admin_level))
    return km


@pytest.mark.parametrize("where", BORDERS)
def test_a_country_border_where_two_countries_meet(db_url, where):
    assert km_to_nearest(db_url, *BORDERS[where], 2) < 10  # Natural Earth's 1:10m is some kilometres off


def test_a_coast_is_no_border(db_url):
    # Helsinki lies on the sea, 150 km from Russia: a border from outlines would run along its shore.
    assert km_to_nearest(db_url, 24.94, 60.17, 2) > 140
    assert km_to_nearest(db_url, 24.94, 60.17, 4) > 10  # nor a region's: Uusimaa is all around


def test_region_borders_carry_natural_earth_zooms(db_url):
    zooms = query(db_url, "SELECT DISTINCT tags->'min_zoom' FROM ne_boundaries WHERE tags->'admin_level' = '4'"
                          " AND geom && ST_Transform(ST_MakeEnvelope(23.5, 59.8, 26.5, 61.3, 4326), 3857)")
    assert ("6.7",) in zooms
    assert query(db_url, "SELECT count(*) FROM ne_boundaries WHERE tags->'admin_level' = '2' AND tags ? 'min_zoom'") \
        == [(0,)]


def test_labels_with_names_inside_their_country(db_url):
    rows = dict(query(db_url, "SELECT tags->'name', ST_AsText(ST_Transform(geom, 4326)) FROM ne_places"
                              " WHERE tags->'name' IN ('Finland', 'Uusimaa', 'Lapland')"))
    lon, lat = map(float, rows["Finland"][6:-1].split())
    assert 21 < lon < 31 and 60 < lat < 68
    lon, lat = map(float, rows["Uusimaa"][6:-1].split())
    assert 23.5 < lon < 26.5 and 59.9 < lat < 61
    (tags,), = query(db_url, "SELECT hstore_to_json(tags) FROM ne_places WHERE tags->'name' = 'Uusimaa'")
    assert (tags["admin_level"], tags["name:sv"], tags["name:ru"]) == ("4", "Nyland", "Уусимаа")
    assert tags["type_en"] == "Province" and float(tags["min_label"]) == 6.7 and tags["wikidata"] == "Q5711"
    assert not {k for k in tags if k.startswith("name_")}  # Natural Earth's name_xx are name:xx


def features(tile: dict, layer: str, source="naturalearthdata.com") -> list:
    return [f["properties"] for f in tile.get(layer, {}).get("features", []) if f["properties"].get("source") == source]


def test_the_tiles_show_them_to_zoom_7(built_store):
    root = built_store[0]
    z6 = built_tile(root, UUSIMAA_TILE)
    borders = features(z6, "boundaries")
    assert {(b["kind"], b["kind_detail"]) for b in borders} == {("country", 2), ("region", 4)}
    places = {p["name"]: p for p in features(z6, "places")}
    assert places["Uusimaa"]["kind"] == "region" and places["Uusimaa"]["name:sv"] == "Nyland"
    assert places["Uusimaa"]["min_zoom"] == 6
    # At z5 the Finnish regions' borders (6.7) are not there yet; Russia's oblasts' (4) are.
    z5 = built_tile(root, Tile(18, 9, 5))
    assert {b["min_zoom"] for b in features(z5, "boundaries") if b["kind"] == "region"} == {4}
    assert "Uusimaa" not in {p["name"] for p in features(z5, "places")}
    z8 = built_tile(root, Tile(145, 74, 8))
    assert features(z8, "boundaries") == features(z8, "places") == []
