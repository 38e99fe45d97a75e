"""The vectorised MVT encoder writes what mapbox-vector-tile writes, byte for byte.

mapbox-vector-tile's `encode` is the reference: every tile of a real build and
hand-made and generated edge cases go through both encoders, and the bytes,
and so what they decode to, must be the same.
"""

import math

import mapbox_vector_tile
import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from tilebatch import config, metatile, mvt, postgis, rawrtile, render
from tilebatch import schema as schemas
from tilebatch.meta_low import features_at, job_tolerance
from tilebatch.store import open_store
from tilebatch.tiles import Tile, ancestor, metatile_members

REFERENCE_OPTIONS = {"extents": mvt.EXTENT, "y_coord_down": True, "check_winding_order": False}


def reference(tile_layers: list[mvt.TileLayer]) -> bytes:
    """The same layers through mapbox_vector_tile.encode."""
    return mapbox_vector_tile.encode([
        {"name": layer.name, "features": [
            {"geometry": g, "properties": p, **({"id": int(i)} if i is not None else {})}
            for g, p, i in zip(layer.geoms, layer.props.dicts(),
                               layer.ids if layer.ids is not None else [None] * len(layer.geoms))]}
        for layer in tile_layers], default_options=REFERENCE_OPTIONS)


def assert_same(tile_layers: list[mvt.TileLayer]) -> bytes:
    ours = mvt.encode(tile_layers)
    assert ours == reference(tile_layers)  # so it decodes to the same too
    return ours


def layer(name: str, wkts: list[str], props: list[dict] | None = None, ids: list[int] | None = None) -> mvt.TileLayer:
    geoms = shapely.from_wkt(wkts)
    props = props if props is not None else [{"kind": "x"}] * len(wkts)
    return mvt.TileLayer(name, geoms, mvt.properties(props), None if ids is None else np.array(ids, dtype=np.uint64))


# --- every tile of a real build ---------------------------------------------

def test_every_tile_of_the_demo_build(built_store, db_url):
    root, _ = built_store
    store = open_store(f"file://{root}/out")
    rawr_store = open_store(f"file://{root}/rawr")
    cfg = config.load("config.yaml")
    schema = schemas.load(schemas.schema_path('tilezen'))
    keys = {t.name: t.key for t in schema.tables.values()}
    src = postgis.Tables(postgis.connect(cfg), schema)
    group_zoom, queue_zoom = cfg["rawr"]["group-zoom"], cfg["batch"]["queue-zoom"]
    from_db = {}  # (area, zoom) -> features: the database is read once per zoom of a meta-low job
    checked = features = 0
    try:
        for key in sorted(k for k in store.list() if k.endswith(".zip") and not k.startswith("runs/")):
            z, x, y = (int(part) for part in key[:-len(".zip")].split("/")[-3:])
            meta = Tile(x, y, z)
            members = metatile.unpack(store.read(key))
            if meta.z >= group_zoom:  # built from its RAWR tile, as meta-high does
                data = rawr_store.read(rawr_store.tile_key(ancestor(meta, group_zoom), rawrtile.EXT))
                found = render.collect(schema, ((keys[n], rows) for n, rows in rawrtile.unpack(data, schema, group_zoom) if n in keys))
            for tile, name in metatile_members(meta):
                if meta.z < group_zoom:  # from PostGIS, zoom by zoom, as meta-low does
                    area = ancestor(meta, queue_zoom)
                    if (area, tile.z) not in from_db:
                        simplify = job_tolerance(schema, area, queue_zoom, schemas.build_max_zoom(cfg, schema))
                        from_db[area, tile.z] = features_at(src, schema, area, [tile.z], simplify)
                    found = from_db[area, tile.z]
                tile_layers = render.tile_layers(schema, found, tile)
                if not tile_layers:
                    assert name not in members
                    continue
                assert assert_same(tile_layers) == members[name]
                checked += 1
                features += sum(len(lay.geoms) for lay in tile_layers)
    finally:
        src.conn.close()
    assert checked == sum(len(metatile.unpack(store.read(k))) for k in store.list()
                          if k.endswith(".zip") and not k.startswith("runs/"))
    assert checked > 40 and features > 10000


# --- hand-made edge cases ----------------------------------------------------

@pytest.mark.parametrize("wkt", [
    "POINT (10 20)",
    "POINT (-5 4100)",
    "MULTIPOINT ((1 2), (1 2), (5 5))",  # a multipoint keeps its repeated points
    "LINESTRING (0 0, 0 0, 10 10, 10 10, 20 5)",
    "LINESTRING (3 3, 3 3, 3 3)",  # collapses: no feature
    "MULTILINESTRING ((0 0, 1 1), (5 5, 5 5), (7 7, 8 9))",  # the middle part is dropped, the cursor runs on
    "POLYGON ((0 0, 0 10, 10 10, 10 0, 0 0), (2 2, 4 2, 4 4, 2 4, 2 2))",
    "POLYGON ((0 0, 10 0, 0 0, 0 0))",  # a ring of two distinct points is still written
    "POLYGON ((0 0, 0 0, 0 0, 0 0), (2 2, 2 4, 4 4, 2 2))",  # the exterior collapses: nothing, holes included
    "POLYGON ((0 0, 0 10, 10 10, 0 0), (1 1, 1 1, 1 1, 1 1))",  # a hole that collapses is dropped
    "POLYGON ((0 0, 1 0, 1 1, 0 0, 0 0))",  # the closing point repeats: dropped first, then repeats
    "MULTIPOLYGON (((0 0, 0 0, 0 0, 0 0)), ((20 20, 20 30, 30 30, 20 20), (22 21, 25 24, 25 21, 22 21)),"
    " ((40 40, 40 50, 50 50, 40 40)))",
    "LINESTRING (1.5 2.5, 2.5 3.5, -0.5 -1.5)",  # rounded half to even, as Python's round
    "POLYGON EMPTY",
    "GEOMETRYCOLLECTION EMPTY",
])
def test_geometry_edge_cases(wkt):
    assert_same([layer("a", [wkt], ids=[7])])


def test_features_are_written_in_order_with_a_fresh_cursor_each():
    wkts = ["LINESTRING (100 100, 200 200)", "POINT (5 5)", "LINESTRING (1 1, 1 1)",
            "MULTIPOLYGON (((0 0, 0 9, 9 9, 9 0, 0 0)), ((20 20, 20 29, 29 29, 20 20)))", "POINT (6 6)"]
    assert_same([layer("a", wkts, ids=[1, 2, 3, 4, 5])])


def test_layers_empty_or_not():
    data = assert_same([layer("one", ["LINESTRING (3 3, 3 3)"]), layer("two", []),
                        layer("three", ["POINT (1 1)", "POLYGON EMPTY"], ids=[0, 2 ** 64 - 1])])
    decoded = mapbox_vector_tile.decode(data)
    assert [len(decoded[n]["features"]) for n in ("one", "two", "three")] == [0, 0, 1]
    assert mvt.encode([]) == reference([]) == b""


@pytest.mark.parametrize("props", [
    [{"n": -5}, {"n": 2 ** 63 - 1}, {"n": -2 ** 63}, {"n": 0}],
    [{"f": 1.5}, {"f": -0.0}, {"f": 0.0}, {"f": 1e308}, {"f": math.inf}, {"f": math.nan}],
    [{"b": True}, {"b": 1}, {"b": False}, {"b": 0}, {"b": True}],  # a bool is not the number it equals
    [{"x": 1}, {"x": 1.0}, {"y": 1.0}, {"y": 1}],  # an int and an equal float share one value, as there
    [{"s": "1"}, {"s": 1}, {"s": ""}, {"s": "ö"}],
    # the lengths of a Value and its string, one byte up to 127, two from 128
    [{"s": "x" * 125}, {"s": "x" * 126}, {"s": "ö" * 63}, {"s": "x" * 127}, {"s": "x" * 300}],
    [{"kind": "a", "none": None, 3: "x", "list": [1]}, {"kind": "a"}],  # unusable pairs are left out
    [{}, {"kind": "b"}, {}],
])
def test_property_types_and_interning(props):
    wkts = [f"POINT ({i} {i})" for i in range(len(props))]
    assert_same([layer("a", wkts, props, ids=list(range(len(props))))])


def test_values_are_numbered_per_tile_and_layer():
    """Properties interned once serve many tiles; each tile numbers (and types) its values itself."""
    props = mvt.properties([{"kind": "a", "v": 1.0, "z": 0.0}, {"kind": "b", "v": 1, "z": -0.0}, {"kind": "c", "w": 2}])
    geoms = shapely.points([[1, 1], [2, 2], [3, 3]])
    a = mvt.TileLayer("a", geoms[1:], props.take(np.array([1, 2])), None)
    b = mvt.TileLayer("b", geoms[::-1], props.take(np.array([2, 1, 0])), None)
    data = assert_same([a, b])
    decoded = mapbox_vector_tile.decode(data)["a"]["features"][0]["properties"]
    assert decoded == {"kind": "b", "v": 1, "z": 0.0} and math.copysign(1, decoded["z"]) == -1


def test_bad_input():
    with pytest.raises(ValueError, match="unique"):
        mvt.encode([layer("a", []), layer("a", [])])
    with pytest.raises(ValueError, match="LinearRing"):
        mvt.encode([layer("a", ["LINEARRING (0 0, 0 1, 1 1, 0 0)"])])


# --- generated geometries ----------------------------------------------------

# Mostly a few distinct values, so points repeat and rings collapse; halves test rounding.
coordinate = st.one_of(st.integers(0, 3), st.integers(-100, 4200), st.integers(-20, 20).map(lambda v: v / 2))
point = st.tuples(coordinate, coordinate)
line = st.lists(point, min_size=2, max_size=8)
ring = st.lists(point, min_size=3, max_size=8).map(lambda pts: pts + pts[:1])
polygon = st.tuples(ring, st.lists(ring, max_size=2)).map(lambda r: shapely.Polygon(r[0], r[1]))
geometry = st.one_of(
    point.map(shapely.Point),
    st.lists(point, min_size=1, max_size=5).map(shapely.MultiPoint),
    line.map(shapely.LineString),
    st.lists(line, min_size=1, max_size=3).map(shapely.MultiLineString),
    polygon,
    st.lists(polygon, min_size=1, max_size=3).map(shapely.MultiPolygon),
)
value = st.one_of(st.text(max_size=3), st.integers(-2 ** 63, 2 ** 63 - 1), st.floats(), st.booleans(), st.none())
feature = st.tuples(geometry, st.dictionaries(st.sampled_from(["a", "b", "c"]), value, max_size=3))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(feature, max_size=12), min_size=1, max_size=3))
def test_generated_layers(layers_features):
    assert_same([mvt.TileLayer(f"layer{i}", np.array([g for g, _ in features], dtype=object),
                           mvt.properties([p for _, p in features]), np.arange(len(features), dtype=np.uint64))
                 for i, features in enumerate(layers_features)])
