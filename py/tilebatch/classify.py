"""What a schema makes of one row: the layers it goes into, its zoom range and its properties.

The Python side of a schema, and the final word on both paths: the RAWR path
classifies every row it reads, the PostGIS path the rows `sqlfilter` let
through. Pure functions of the schema and a row's tags.
"""

import math
import re
from typing import NamedTuple

from .schema import Expr, LayerSpec, Rule, Schema

# The label point of a polygon, "x y" in EPSG:3857, computed by the database
# from the whole polygon (postgis.py) and carried as a tag, so that the point is
# the same on both paths however the polygon was clipped.
LABEL_KEY = "_label"
_NUMBER = re.compile(r"^\s*(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)")
_TRUE, _FALSE = frozenset(("yes", "true", "1")), frozenset(("no", "false", "0"))


class Match(NamedTuple):
    """What one row becomes in one layer."""

    layer: int          # index into Schema.layers
    min_zoom: int
    max_zoom: int
    geometry: str | None  # None (as it is), boundary or label
    props: dict         # in the order they are written; names starting with _ are for sorting only
    zooms: dict | None  # property -> first zoom it appears at, where later than min_zoom


def holds(condition: tuple, tags: dict) -> bool:
    """Whether every test of a condition holds for these tags."""
    for key, (op, values) in condition:
        value = tags.get(key)
        if op == "in":
            ok = value in values
        elif op == "any":
            ok = value is not None and value != "no"
        elif op == "absent":
            ok = value is None
        else:  # not
            ok = value not in values
        if not ok:
            return False
    return True


def number(text: str) -> float | None:
    """The number a tag's text starts with ("12 m" -> 12.0, "1.5e+06" -> 1500000.0); None when none, or past
    2**53 (noise, not a value)."""
    if text.isdigit() and text.isascii():  # most numbers in tags: what the pattern would take whole, read faster
        value = float(text)
        return value if value <= 2 ** 53 else None
    m = _NUMBER.match(text)
    if not m:
        return None
    value = float(m.group(1))
    return value if math.isfinite(value) and abs(value) <= 2 ** 53 else None


def _typed(value, type_: str):
    if not isinstance(value, str) or type_ == "str":
        return value
    if type_ == "bool":
        return True if value in _TRUE else False if value in _FALSE else None
    n = number(value)
    if n is None:
        return None
    return n if type_ == "float" else int(n)


def _source(expr: Expr, tags: dict, feature: dict | None):
    if expr.any is not None:
        hit = any(holds((test,), tags) for test in expr.any)
        return True if hit else None if expr.only_true else False
    if expr.all is not None:
        hit = holds(expr.all, tags)
        return True if hit else None if expr.only_true else False
    if expr.area is not None:
        area = tags.get("way_area")
        return None if area is None else float(area) / expr.area
    if expr.feature is not None:
        return (feature or {})[expr.feature]
    return expr.const


def evaluate(expr: Expr, tags: dict, feature: dict | None = None):
    """The value of an expression for a row (None: the row has none)."""
    if expr.when is not None and not holds(expr.when, tags):
        return None
    if expr.tags is not None:  # most expressions: the first tag present, read here without a call
        for tag in expr.tags:
            value = tags.get(tag)
            if value is not None:
                break
    else:
        value = _source(expr, tags, feature)
    if isinstance(value, str):
        for old, new in expr.replace or ():
            value = value.replace(old, new)
        if expr.split is not None:
            parts = value.split(expr.split)
            value = len(parts) if expr.take == "count" else max(len(p) for p in parts)
    if value is not None:
        if expr.values is not None:
            value = expr.values.get(value if isinstance(value, str) else str(value))
        elif expr.at_least is not None:
            n = value if isinstance(value, (int, float)) else number(str(value))
            value = next((result for threshold, result in expr.at_least if n is not None and n >= threshold), None)
        else:
            value = _typed(value, expr.type)
    if value is None and expr.default is not None:
        return evaluate(expr.default, tags, feature)
    return value


def _properties(layer: LayerSpec, rule: Rule, tags: dict, feature: dict) -> tuple[dict, dict | None]:
    props, zooms = {}, None
    if rule.kind is not None:
        kind = evaluate(rule.kind, tags, feature)
        if kind is not None:
            props["kind"] = kind
    for name, expr in layer.props + rule.props:
        if expr.prefix is not None:
            for key in sorted(k for k in tags if k.startswith(expr.prefix)):
                props[key] = tags[key]
            continue
        value = evaluate(expr, tags, feature)
        if value is None:
            props.pop(name, None)
            continue
        props[name] = value
        if expr.min_zoom > feature["min_zoom"]:
            zooms = zooms or {}
            zooms[name] = expr.min_zoom
    return props, zooms


def classify(schema: Schema, table: str, tags: dict, row_id: int = 0) -> list[Match]:
    """What a row of `table` with these tags becomes: a Match per layer (and zoom range) it goes into.

    Within a layer the first rule that holds wins. A rule with a `max_zoom`
    wins only up to it: the rules after it are tried for the zooms above, so
    a layer can say what a row is at low zooms and at high zooms apart. A rule
    with `more` adds its feature and lets the rules after it go on (a
    polygon's label point beside the polygon). A min
    zoom beyond the schema's max zoom is the max zoom: the feature appears in
    the last tiles built rather than in none. A layer with `unless` leaves out
    the rows that went into one of those layers.

    A row is tested only against the rules whose first test its tags can pass
    (schema.TableRules), in the order the layers and their rules come.
    """
    table_rules = schema.by_table[table]
    index = table_rules.index
    candidates = list(table_rules.always)
    for pair in tags.items():
        candidates += index.get(pair, ())
        candidates += index.get(pair[0], ())
    candidates.sort()  # layer by layer in drawing order, each layer's rules in order
    out, layer_at, done_with = [], -1, -1
    for at, n in candidates:
        if at == done_with:
            continue
        i, layer, rules = table_rules.layers[at]
        if at != layer_at:
            layer_at, floor = at, 0
        rule = rules[n]
        if not holds(rule.where, tags):
            continue
        zoom = evaluate(rule.min_zoom, tags)
        if zoom is None:  # a zoom from what the row lacks (an area of a point): not this rule's row
            continue
        top = schema.max_zoom if rule.max_zoom is None else rule.max_zoom
        low = min(max(zoom, floor), schema.max_zoom)
        if low <= top:
            props, zooms = _properties(layer, rule, tags, {"min_zoom": low, "id": row_id})
            out.append(Match(i, low, top, rule.geometry, props, zooms))
        if rule.more:
            continue
        if rule.max_zoom is None:
            done_with = at
        else:
            floor = rule.max_zoom + 1
    if any(schema.layers[m.layer].unless for m in out):
        names = {schema.layers[m.layer].name for m in out}
        out = [m for m in out if names.isdisjoint(schema.layers[m.layer].unless)]
    return out
