"""render.merge_lines: lines of equal properties (as a tile writes them) joined into the first one's feature,
all else left alone."""

import mapbox_vector_tile
import numpy as np
import pytest
import shapely

from tilebatch import mvt, render


def _layer(features: list[tuple], ids: bool = True) -> mvt.TileLayer:
    geoms = np.array([shapely.from_wkt(wkt) for wkt, _ in features], dtype=object)
    return mvt.TileLayer("roads", geoms, mvt.properties([props for _, props in features]),
                         np.arange(10, 10 + len(features), dtype=np.uint64) if ids else None)


def _decoded(layer: mvt.TileLayer) -> list[tuple]:
    ids = [None] * len(layer.geoms) if layer.ids is None else layer.ids.tolist()
    return [(shapely.normalize(g).wkt, props, i) for g, props, i in zip(layer.geoms, layer.props.dicts(), ids)]


def _read(layer: mvt.TileLayer) -> list[tuple]:
    """What a reader of the layer's tile gets: each feature's properties, every value with its type, and id.

    Typed, because True == 1 == 1.0 in Python: dicts alone would not tell them apart.
    """
    features = mapbox_vector_tile.decode(mvt.encode([layer]))[layer.name]["features"]
    return [({k: (type(v), v) for k, v in f["properties"].items()}, f.get("id")) for f in features]


def test_lines_of_equal_properties_become_the_first_ones_feature():
    primary, minor = {"kind": "primary", "name": "A"}, {"kind": "minor"}
    layer = _layer([
        ("LINESTRING (0 0, 10 0)", primary),
        ("LINESTRING (0 5, 10 5)", minor),
        ("POINT (3 3)", primary),                                     # not a line: alone
        ("LINESTRING (10 0, 20 0)", primary),                         # joins the first
        ("POLYGON ((0 0, 1 0, 1 1, 0 0))", minor),                    # not a line: alone
        ("MULTILINESTRING ((20 0, 30 0), (40 0, 50 0))", primary),    # its parts join too
        ("LINESTRING (10 5, 20 5)", minor),                           # joins the second
        ("LINESTRING (0 9, 5 9)", {"kind": "primary"}),               # other properties: alone
        ("POINT (3 3)", primary),                                     # equal to the other point: still alone
    ])
    got = _decoded(render.merge_lines(layer))
    assert got == [
        ("MULTILINESTRING ((0 0, 10 0, 20 0, 30 0), (40 0, 50 0))", primary, 10),
        ("LINESTRING (0 5, 10 5, 20 5)", minor, 11),
        ("POINT (3 3)", primary, 12),
        (shapely.normalize(shapely.from_wkt("POLYGON ((0 0, 1 0, 1 1, 0 0))")).wkt, minor, 14),
        ("LINESTRING (0 9, 5 9)", {"kind": "primary"}, 17),
        ("POINT (3 3)", primary, 18),
    ]


def test_a_layer_with_nothing_to_join_is_returned_as_it_is():
    layer = _layer([("LINESTRING (0 0, 1 0)", {"kind": "a"}), ("LINESTRING (0 1, 1 1)", {"kind": "b"}),
                    ("POINT (0 0)", {"kind": "a"}), ("POINT (0 0)", {"kind": "a"})])
    assert render.merge_lines(layer) is layer


def test_a_layer_without_ids_is_merged_and_stays_without():
    layer = _layer([("LINESTRING (0 0, 10 0)", {"kind": "a"}), ("POINT (3 3)", {"kind": "a"}),
                    ("LINESTRING (10 0, 20 0)", {"kind": "a"})], ids=False)
    merged = render.merge_lines(layer)
    assert merged.ids is None
    assert _decoded(merged) == [("LINESTRING (0 0, 10 0, 20 0)", {"kind": "a"}, None),
                                ("POINT (3 3)", {"kind": "a"}, None)]


@pytest.mark.parametrize("first, then", [(1, 1.0), (1.0, 1)])
def test_a_bool_is_not_the_number_it_equals(first, then):
    """A tile writes True as a bool, and 1 and 1.0 as one number value typed as the first of them in the
    layer (as mapbox-vector-tile does): lines of True join only each other, and lines of 1 join lines
    of 1.0, which changes nothing a reader of the tile sees."""
    layer = _layer([
        ("LINESTRING (0 0, 10 0)", {"oneway": first}),
        ("LINESTRING (0 5, 10 5)", {"oneway": True}),
        ("LINESTRING (10 0, 20 0)", {"oneway": then}),
        ("LINESTRING (10 5, 20 5)", {"oneway": True}),
    ])
    number, true = {"oneway": (type(first), first)}, {"oneway": (bool, True)}
    assert _read(layer) == [(number, 10), (true, 11), (number, 12), (true, 13)]
    merged = render.merge_lines(layer)
    assert _read(merged) == [(number, 10), (true, 11)]
    assert [shapely.normalize(g).wkt for g in merged.geoms] == ["LINESTRING (0 0, 10 0, 20 0)",
                                                                 "LINESTRING (0 5, 10 5, 20 5)"]
