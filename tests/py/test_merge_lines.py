"""render.merge_lines: lines of equal properties joined into the first one's feature, all else left alone."""

import numpy as np
import shapely

from tilebatch import mvt, render


def _layer(features: list[tuple]) -> mvt.TileLayer:
    geoms = np.array([shapely.from_wkt(wkt) for wkt, _ in features], dtype=object)
    return mvt.TileLayer("roads", geoms, mvt.properties([props for _, props in features]),
                         np.arange(10, 10 + len(features), dtype=np.uint64))


def _decoded(layer: mvt.TileLayer) -> list[tuple]:
    return [(shapely.normalize(g).wkt, props, int(i)) for g, props, i in zip(layer.geoms, layer.props.dicts(), layer.ids)]


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
