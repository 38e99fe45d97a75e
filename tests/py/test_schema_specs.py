"""Every built-in schema against its examples (`schemas/<name>.spec.yaml`), with no database.

An example is a row (table, OSM tags, optionally its geometry as WKT in
longitude/latitude) and what the schema must make of it: the layers it goes
into, with kind, min zoom and properties (a subset). Each example runs through
the classifier and the renderer: the feature must be in the tile at the
schema's max zoom with those properties, and in no tile below its min zoom.
"""

import glob
import os

import mapbox_vector_tile
import mercantile
import pytest
import shapely
import yaml

from tilebatch import classify, render
from tilebatch import schema as schemas
from tilebatch.tiles import Tile

SPECS = sorted(glob.glob(os.path.join(schemas.BUILTIN_DIR, "*.spec.yaml")))
# A spot in central Helsinki, and small shapes around it, for examples that give no geometry.
DEFAULT_WKT = {"point": "POINT (24.9410 60.1695)",
               "line": "LINESTRING (24.9400 60.1690, 24.9420 60.1700)",
               "polygon": "POLYGON ((24.9400 60.1690, 24.9420 60.1690, 24.9420 60.1700, 24.9400 60.1700, 24.9400 60.1690))"}


def _examples():
    for path in SPECS:
        name = os.path.basename(path)[:-len(".spec.yaml")]
        with open(path, encoding="utf-8") as f:
            for i, case in enumerate(yaml.load(f, Loader=schemas._Loader)):
                yield pytest.param(name, case, id=f"{name}-{i}-{case.get('name', '')}")


def test_every_builtin_schema_has_examples():
    builtin = {os.path.basename(p)[:-5] for p in glob.glob(os.path.join(schemas.BUILTIN_DIR, "*.yaml"))
               if not p.endswith(".spec.yaml")}
    assert {"tilezen", "shortbread"} <= builtin
    assert {os.path.basename(p)[:-len(".spec.yaml")] for p in SPECS} == builtin


def row(case: dict, table: dict):
    """(id, WKB, tags) as a source table gives them, EPSG:3857, with way_area and the label point."""
    geom = shapely.from_wkt(case.get("geometry", DEFAULT_WKT.get(case["table"], DEFAULT_WKT["polygon"])))
    geom = shapely.transform(geom, lambda c: shapely.get_coordinates(shapely.points(
        [mercantile.xy(lon, lat) for lon, lat in c])))
    tags = {str(k): str(v) for k, v in (case.get("tags") or {}).items()} if table.tags else {}
    if shapely.get_type_id(geom) in (3, 6):
        tags.setdefault("way_area", repr(float(shapely.area(geom))))
        point = shapely.point_on_surface(geom)
        tags[classify.LABEL_KEY] = f"{point.x!r} {point.y!r}"
    return case.get("id", 1), shapely.to_wkb(geom), tags, geom


def rendered(schema, table_key, one_row, tile: Tile) -> dict:
    row_id, wkb, tags, _ = one_row
    features = render.collect(schema, [(table_key, [(row_id, wkb, tags)])])
    data, _ = render.render_tile(schema, features, tile)
    return mapbox_vector_tile.decode(data) if data else {}


@pytest.mark.parametrize("schema_name, case", list(_examples()))
def test_example(schema_name, case):
    schema = schemas.load(schemas.schema_path(schema_name))
    table = schema.tables[case["table"]]
    one_row = row(case, table)
    row_id, _, tags, geom = one_row
    matches = classify.classify(schema, table.key, tags, row_id)
    got = [(schema.layers[m.layer].name, m) for m in matches]
    layer_order = [layer.name for layer in schema.layers]
    expected = sorted(case["expect"], key=lambda e: layer_order.index(e["layer"]) if e["layer"] in layer_order else -1)
    assert [n for n, _ in got] == [e["layer"] for e in expected], \
        f"layers {[n for n, _ in got]}, expected {[e['layer'] for e in expected]}"
    for (name, m), want in zip(got, expected):
        # A spot the feature covers, to pick the tiles to look in.
        spot = shapely.line_interpolate_point(shapely.boundary(geom), 0.1, normalized=True) \
            if m.geometry == "boundary" else shapely.point_on_surface(geom)
        lon, lat = mercantile.lnglat(*shapely.get_coordinates(spot)[0])
        assert ("kind" in want) <= ("kind" in m.props)
        if "kind" in want:
            assert m.props["kind"] == want["kind"]
        if "min_zoom" in want:
            assert m.min_zoom == want["min_zoom"]
        if "max_zoom" in want:
            assert m.max_zoom == want["max_zoom"]
        for key, value in (want.get("properties") or {}).items():
            assert key in m.props and m.props[key] == value and type(m.props[key]) is type(value), \
                f"{name}.{key}: {m.props.get(key)!r}, expected {value!r}"
        for key in want.get("absent", []):
            assert key not in m.props
        # Through the renderer: in the tile at the max zoom, and nowhere below the min zoom.
        top = mercantile.tile(lon, lat, m.max_zoom)
        decoded = rendered(schema, table.key, one_row, Tile(top.x, top.y, top.z))
        assert name in decoded, f"{name} missing from tile {top}"
        # Less the properties that appear only deeper than this tile (`min_zoom` of a property).
        shown = {k: v for k, v in m.props.items() if not k.startswith("_") and (m.zooms or {}).get(k, 0) <= top.z}
        features = [f for f in decoded[name]["features"] if f["properties"] == shown]
        assert features, f"no feature in {name} with {shown}"
        if want.get("geometry"):
            assert features[0]["geometry"]["type"] == want["geometry"]
        if m.min_zoom > 0:
            below = mercantile.tile(lon, lat, m.min_zoom - 1)
            assert name not in rendered(schema, table.key, one_row, Tile(below.x, below.y, below.z))


def _rule_rows(schema):
    """Rows made from each rule's `where` (each value it tests for, "no" for `true`, with and without the
    tags the tests after the first ask for), so that every indexed rule is reached and most are passed by."""
    for layer in schema.layers:
        for rule in layer.rules:
            for key, (op, values) in rule.where[:1] or [(None, ("always", None))]:
                firsts = [{}] if key is None else [{key: v} for v in sorted(values or ("yes", "no"))]
                for tags in firsts:
                    rest = {k: sorted(v)[0] if op_ == "in" else "yes" for k, (op_, v) in rule.where[1:]
                            if op_ in ("in", "any")}
                    for extra in ({}, rest, {**rest, "name": "N", "way_area": "12345.0"}):
                        yield rule.table, {**extra, **tags}


def _tag_rows(schema_name: str, schema) -> list[tuple[str, dict]]:
    """(table, tags) of the schema's examples, and of rows made from its rules (_rule_rows)."""
    return [(case["table"], row(case, schema.tables[case["table"]])[2]) for name, case in
            (p.values for p in _examples()) if name == schema_name] + list(_rule_rows(schema))


@pytest.mark.parametrize("schema_name", ["tilezen", "shortbread"])
def test_rule_index_classifies_as_the_linear_scan(schema_name):
    schema = schemas.load(schemas.schema_path(schema_name))
    rows = _tag_rows(schema_name, schema)
    matched = 0
    for table, tags in rows:
        got = classify.classify(schema, table, tags, 7)
        rules = classify.table_rules(schema, table)
        assert got == rules.matches(range(len(rules.rules)), tags, 7), (table, tags)  # every rule, in order
        matched += bool(got)
    assert matched > len(rows) / 2


class _Asked(dict):
    """A row's tags that note every key the compiled rules look up."""

    def __init__(self, tags):
        super().__init__(tags)
        self.asked = set()

    def get(self, key, default=None):
        self.asked.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.asked.add(key)
        return super().__getitem__(key)

    def __contains__(self, key):
        self.asked.add(key)
        return super().__contains__(key)


@pytest.mark.parametrize("schema_name", ["tilezen", "shortbread"])
def test_the_tags_a_table_reads_are_every_tag_its_rules_look_up(schema_name):
    """RAWR tiles and the rows the jobs read hold only schema.tags_read (and way_area, z_order): a key it
    missed would lose a property, a kind or a feature on both paths alike, which no test comparing the
    paths could see. Prefixed keys (Tilezen's name:*) are read by going through the row's keys."""
    schema = schemas.load(schemas.schema_path(schema_name))
    rows = _tag_rows(schema_name, schema)
    asked = 0
    for table, tags in rows:
        keys, prefixes = schemas.tags_read(schema, table)
        recorded = _Asked(tags)
        classify.classify(schema, table, recorded, 7)
        unread = {k for k in recorded.asked - keys - {"way_area", "z_order"} if not k.startswith(prefixes)}
        assert not unread, (table, tags, unread)
        asked += len(recorded.asked)
    assert asked > 3 * len(rows)  # rows the rules looked into, not only rows no rule was listed for
    if schema_name == "tilezen":
        assert any("name:" in schemas.tags_read(schema, t)[1] for t in schema.tables)


@pytest.mark.parametrize("schema_name", ["tilezen", "shortbread"])
def test_features_for_tiles_up_to_a_zoom_make_those_tiles_the_same(schema_name):
    """A low-zoom job collects its rows for tiles no deeper than its last zoom: the features and properties
    that appear only deeper are not made (fewer pairs interned, a layer none), and its tiles come out byte
    for byte the same."""
    schema = schemas.load(schemas.schema_path(schema_name))
    by_table = {}
    for n, (name, case) in enumerate(p.values for p in _examples()):
        if name == schema_name:
            row_id, wkb, tags, _ = row(case, schema.tables[case["table"]])
            by_table.setdefault(case["table"], []).append((n + 1, wkb, tags))
    everything = render.collect(schema, list(by_table.items()))
    fewer = drawn = 0
    for zoom in (8, 10, 12):
        for_zoom = render.collect(schema, list(by_table.items()), last_zoom=zoom)
        pairs = [(len(f.props.key_of), 0 if g is None else len(g.props.key_of))
                 for f, g in zip(everything, for_zoom) if f is not None]
        assert all(low <= full for full, low in pairs)
        fewer += sum(full - low for full, low in pairs)
        spot = mercantile.tile(*shapely.get_coordinates(shapely.from_wkt(DEFAULT_WKT["point"]))[0], zoom)
        for tile in [Tile(spot.x + dx, spot.y + dy, zoom) for dx in (-1, 0, 1) for dy in (-1, 0, 1)]:
            made = render.render_tile(schema, for_zoom, tile)
            assert made == render.render_tile(schema, everything, tile)
            drawn += made[1]
    assert fewer > 0 and drawn > 20
