"""What a schema makes of one row: the layers it goes into, its zoom range and its properties.

The Python side of a schema, and the final word on both paths: the RAWR path
classifies every row it reads, the PostGIS path the rows `sqlfilter` let
through. A table's rules are compiled (`rulecode`) the first time its rows are
classified and kept with the schema; a row is then a few dict lookups to find
the rules its tags can pass, and a call or two for each of those.
"""

from typing import Callable, NamedTuple

from . import rulecode
from .schema import Schema, rule_index, rules_of

# The label point of a polygon, "x y" in EPSG:3857, computed by the database
# from the whole polygon (postgis.py) and carried as a tag, so that the point is
# the same on both paths however the polygon was clipped.
LABEL_KEY = "_label"


class Match(NamedTuple):
    """What one row becomes in one layer."""

    layer: int          # index into Schema.layers
    min_zoom: int
    max_zoom: int
    geometry: str | None  # None (as it is), boundary or label
    props: dict         # in the order they are written; names starting with _ are for sorting only
    zooms: dict | None  # property -> first zoom it appears at, where later than min_zoom


class TableRule(NamedTuple):
    """A rule of one table, compiled, with what classifying needs of it and its layer."""

    layer: int          # index into Schema.layers
    zoom: Callable      # rulecode.RuleCode.zoom
    properties: Callable  # rulecode.RuleCode.properties
    last: int           # the last zoom it shows a row at
    max_zoom: int | None
    geometry: str | None
    more: bool


class TableRules(NamedTuple):
    """The rules of one table, in drawing order, compiled, and how its rows are classified."""

    rules: tuple        # TableRule, layer by layer in drawing order, each layer's rules in order
    classify: Callable[..., list[Match]]  # (tags, row_id, last_zoom) -> matches: classify for the table's rows
    matches: Callable   # (positions in rules, ascending, tags, row_id, last_zoom) -> matches of those rules alone


def table_rules(schema: Schema, table: str) -> TableRules:
    """A table's rules, compiled the first time they are asked for and kept with the schema."""
    found = schema.compiled.get(table)
    if found is None:
        found = schema.compiled[table] = _compile(schema, table)
    return found


def _compile(schema: Schema, table: str) -> TableRules:
    listed = rules_of(schema, table)
    code = rulecode.compile_rules(f"<rulecode: schema {schema.name}, table {table}>",
                                  [(layer, rule, f"layers.{layer.name}.rules[{n}]") for _, layer, rule, n in listed])
    rules = tuple(TableRule(i, c.zoom, c.properties, schema.max_zoom if rule.max_zoom is None else rule.max_zoom,
                            rule.max_zoom, rule.geometry, rule.more) for (i, _, rule, _), c in zip(listed, code))
    return TableRules(rules, *_row_classifier(schema, rules, *rule_index(schema, table)))


def classify(schema: Schema, table: str, tags: dict, row_id: int = 0, last_zoom: int | None = None) -> list[Match]:
    """What a row of `table` with these tags becomes: a Match per layer (and zoom range) it goes into.

    Within a layer the first rule that holds wins. A rule with a `max_zoom`
    wins only up to it: the rules after it are tried for the zooms above, so
    a layer can say what a row is at low and high zooms apart. A rule
    with `more` adds its feature and lets the rules after it go on (a
    polygon's label point beside the polygon). A min
    zoom beyond the schema's max zoom is the max zoom: the feature appears in
    the last tiles built rather than in none. A layer with `unless` leaves out
    the rows that went into one of those layers.

    A row is tested only against the rules its tags can make hold
    (schema.rule_index), in the order the layers and their rules come.

    `last_zoom`, the last zoom of the tiles being made (default the
    schema's), leaves out the matches and properties that appear only
    deeper, which no such tile holds: a low-zoom job makes fewer (a z7
    meta-low job's street rows make no street labels, which start at z13).
    """
    return table_rules(schema, table).classify(tags, row_id, schema.max_zoom if last_zoom is None else last_zoom)


def _row_classifier(schema: Schema, rules: tuple, index: dict, always: tuple) -> tuple[Callable, Callable]:
    """`classify` for the rows of one table, with all it needs at hand, and the rule loop it runs
    (TableRules.matches): the candidates its index finds, tried in order."""
    keys = frozenset(index)
    max_zoom = schema.max_zoom
    unless = {i: frozenset(layer.unless) for i, layer in enumerate(schema.layers) if layer.unless}
    names = [layer.name for layer in schema.layers]
    new_match = tuple.__new__  # a Match without the Python-level __new__ a NamedTuple has

    def matches(candidates, tags: dict, row_id: int, last_zoom: int = max_zoom) -> list[Match]:
        out, layer_at, done_with, deeper = [], -1, -1, False
        for p in candidates:
            layer, zoom_of, properties, last, rule_max_zoom, geometry, more = rules[p]
            if layer == done_with:
                continue
            if layer != layer_at:
                layer_at, floor = layer, 0
            zoom = zoom_of(tags)
            if zoom is None:  # its where fails, or a zoom from what the row lacks (an area of a point)
                continue
            low = zoom if zoom >= floor else floor
            if low > max_zoom:
                low = max_zoom
            if low <= last:
                if low > last_zoom:  # in no tile being made: held (without properties) for `unless` alone
                    deeper = True
                    out.append(new_match(Match, (layer, low, last, geometry, None, None)))
                else:
                    props, zooms = properties(tags, low, row_id, last_zoom)
                    out.append(new_match(Match, (layer, low, last, geometry, props, zooms)))
            if more:
                continue
            if rule_max_zoom is None:
                done_with = layer
            else:
                floor = rule_max_zoom + 1
        if len(out) > 1 and unless:  # a layer's unless names other layers: a lone match stays
            seen = {names[m.layer] for m in out}
            out = [m for m in out if m.layer not in unless or seen.isdisjoint(unless[m.layer])]
        return [m for m in out if m.props is not None] if deeper else out

    def classify_row(tags: dict, row_id: int = 0, last_zoom: int = max_zoom) -> list[Match]:
        hits = keys.intersection(tags)
        if len(hits) == 1 and not always:  # most rows: the rules are listed, in order
            (key,) = hits
            any_value, by_value = index[key]
            candidates = by_value.get(tags[key], any_value)
        elif hits:
            candidates = list(always)
            for key in hits:
                any_value, by_value = index[key]
                candidates += by_value.get(tags[key], any_value)
            candidates.sort()
        elif always:
            candidates = always
        else:
            return []
        return matches(candidates, tags, row_id, last_zoom)

    return classify_row, matches
