"""The tile schema of layers.yaml, loaded, checked, and compiled two ways.

`classify` is the Python side (the RAWR path, and the final word on the
PostGIS path too); `sql_filter` is the SQL side, a superset filter that keeps a
z0 query over a planet from pulling rows no tile of that zoom shows. Both read
the same rules, so the two paths cannot drift apart.
"""

import math
import os
import re
from typing import NamedTuple

import yaml

from .errors import BadInput

DEFAULT_PATH = os.path.join(os.path.dirname(__file__), "layers.yaml")
EARTH_CIRCUMFERENCE = 2 * math.pi * 6378137.0
MAX_KIND_ZOOM = 30  # "never": a min_zoom above every tile zoom


class LayersError(BadInput):
    """layers.yaml holds something that is not a valid schema."""


class Table(NamedTuple):
    key: str            # short name used by rules: point, line, polygon, ...
    name: str           # the database table
    geometry_column: str
    id_column: str
    tags: bool          # has an hstore `tags` column (osm2pgsql --hstore)
    optional: bool


class Lookup(NamedTuple):
    """A constant, or a tag's value mapped through `values` (None: the value itself)."""

    constant: object
    tag: str | None
    values: dict | None
    default: object


class Rule(NamedTuple):
    table: str
    where: tuple        # ((key, frozenset of values, or None for "any but no"), ...)
    kind: Lookup
    min_zoom: Lookup


class Prop(NamedTuple):
    name: str
    tag: str
    type: str           # str | int | float


class Layer(NamedTuple):
    name: str
    simplify_px: float
    min_area_px: float
    boundary: bool      # draw polygons as their outlines
    props: tuple
    rules: tuple


class Schema(NamedTuple):
    tables: dict        # key -> Table
    layers: tuple       # Layer, in drawing order
    # For each table, the layers that draw from it, their rules for it, and the
    # tags one of those rules needs first (None: a rule needs none): what
    # classify runs for every row, so a row skips a layer none of whose rules
    # could hold without looking at them one by one.
    by_table: dict      # key -> ((layer index, Layer, rules, first keys or None), ...)


class Match(NamedTuple):
    """What one row becomes in one layer."""

    layer: int          # index into Schema.layers
    min_zoom: int
    props: dict         # kind, name, and the layer's properties


def load(path: str = DEFAULT_PATH) -> Schema:
    """The schema at `path`, checked; LayersError names the first bad entry."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        raise LayersError(f"{path}: cannot read the layer schema: {e}") from None
    _expect(isinstance(doc, dict) and set(doc) == {"tables", "layers"}, path, "expected keys tables and layers")
    tables = {key: _table(path, key, spec) for key, spec in doc["tables"].items()}
    layers = tuple(_layer(path, name, spec, tables) for name, spec in doc["layers"].items())
    by_table = {key: tuple(_table_rules(i, layer, key) for i, layer in enumerate(layers)
                           if any(r.table == key for r in layer.rules))
                for key in tables}
    return Schema(tables, layers, by_table)


def _table_rules(i: int, layer: Layer, table: str) -> tuple:
    rules = tuple(r for r in layer.rules if r.table == table)
    first = None if any(not r.where for r in rules) else frozenset(r.where[0][0] for r in rules)
    return i, layer, rules, first


def _expect(ok: bool, path: str, message: str) -> None:
    if not ok:
        raise LayersError(f"{path}: {message}")


def _table(path, key, spec) -> Table:
    where = f"tables.{key}"
    _expect(isinstance(spec, dict) and isinstance(spec.get("name"), str), path, f"{where}: needs a name")
    unknown = set(spec) - {"name", "geometry_column", "id_column", "tags", "optional"}
    _expect(not unknown, path, f"{where}: unknown keys {sorted(unknown)}")
    return Table(key, spec["name"], spec.get("geometry_column", "way"), spec.get("id_column", "osm_id"),
                 bool(spec.get("tags", True)), bool(spec.get("optional", False)))


def _layer(path, name, spec, tables) -> Layer:
    where = f"layers.{name}"
    _expect(isinstance(spec, dict) and isinstance(spec.get("rules"), list), path, f"{where}: needs a list of rules")
    unknown = set(spec) - {"simplify_px", "min_area_px", "geometry", "properties", "rules"}
    _expect(not unknown, path, f"{where}: unknown keys {sorted(unknown)}")
    _expect(spec.get("geometry", "boundary") == "boundary", path, f"{where}: geometry can only be boundary")
    props = []
    for prop, p in (spec.get("properties") or {}).items():
        p = {"tag": p} if isinstance(p, str) else p
        _expect(isinstance(p, dict) and isinstance(p.get("tag"), str) and p.get("type", "str") in ("str", "int", "float"),
                path, f"{where}.properties.{prop}: expected a tag, or {{tag: t, type: int|float|str}}")
        props.append(Prop(prop, p["tag"], p.get("type", "str")))
    rules = tuple(_rule(path, f"{where}.rules[{i}]", r, tables) for i, r in enumerate(spec["rules"]))
    for number_key in ("simplify_px", "min_area_px"):
        _expect(isinstance(spec.get(number_key, 0), (int, float)), path, f"{where}.{number_key}: expected a number")
    return Layer(name, float(spec.get("simplify_px", 0)), float(spec.get("min_area_px", 0)),
                 spec.get("geometry") == "boundary", tuple(props), rules)


def _rule(path, where, spec, tables) -> Rule:
    _expect(isinstance(spec, dict), path, f"{where}: expected a mapping")
    unknown = set(spec) - {"table", "where", "kind", "min_zoom"}
    _expect(not unknown, path, f"{where}: unknown keys {sorted(unknown)}")
    _expect(spec.get("table") in tables, path, f"{where}: table must be one of {sorted(tables)}")
    conditions = []
    for key, value in (spec.get("where") or {}).items():
        if value is True:
            conditions.append((str(key), None))
        else:
            values = value if isinstance(value, list) else [value]
            _expect(all(isinstance(v, (str, int)) for v in values), path, f"{where}.where.{key}: expected words")
            conditions.append((str(key), frozenset(str(v) for v in values)))
    _expect(bool(conditions) or not tables[spec["table"]].tags, path, f"{where}: needs a where")
    _expect("kind" in spec and "min_zoom" in spec, path, f"{where}: needs kind and min_zoom")
    return Rule(spec["table"], tuple(conditions), _lookup(path, f"{where}.kind", spec["kind"], str),
                _lookup(path, f"{where}.min_zoom", spec["min_zoom"], int))


def _lookup(path, where, spec, kind) -> Lookup:
    if isinstance(spec, kind) and not isinstance(spec, bool):
        return Lookup(spec, None, None, None)
    _expect(isinstance(spec, dict) and isinstance(spec.get("tag"), str), path,
            f"{where}: expected a {kind.__name__} or {{tag: t, values: {{...}}, default: ...}}")
    values = {str(k): v for k, v in (spec.get("values") or {}).items()}
    _expect(all(isinstance(v, kind) for v in values.values()), path, f"{where}.values: expected {kind.__name__}s")
    default = spec.get("default")
    _expect(default is None or isinstance(default, kind), path, f"{where}.default: expected a {kind.__name__}")
    _expect(kind is str or default is not None, path, f"{where}: a zoom lookup needs a default")
    return Lookup(None, spec["tag"], values if "values" in spec else None, default)


# --- the Python side ------------------------------------------------------

def _holds(conditions, tags: dict) -> bool:
    for key, values in conditions:
        value = tags.get(key)
        if value is None or (values is None and value == "no") or (values is not None and value not in values):
            return False
    return True


def _resolve(lookup: Lookup, tags: dict):
    if lookup.tag is None:
        return lookup.constant
    value = tags.get(lookup.tag)
    if lookup.values is None:
        return value if value is not None else lookup.default
    return lookup.values.get(value, lookup.default)


_NUMBER = re.compile(r"^\s*(-?\d+(?:\.\d+)?)")


def _typed(value: str, type_: str):
    if type_ == "str":
        return value
    m = _NUMBER.match(value)
    if not m:
        return None
    number = float(m.group(1))
    # Past 2**53 a tag is no height or population but noise, and would not fit an MVT value.
    if not math.isfinite(number) or abs(number) > 2 ** 53:
        return None
    return number if type_ == "float" else int(number)


def classify(schema: Schema, table: str, tags: dict) -> list[Match]:
    """What a row of `table` with these tags becomes: one Match per layer whose rule holds.

    The first rule of a layer that holds wins, so a layer lists its specific
    rules before its general ones.
    """
    out = []
    for i, layer, rules, first in schema.by_table[table]:
        if first is not None and first.isdisjoint(tags):
            continue
        for rule in rules:
            if _holds(rule.where, tags):
                props = {"kind": _resolve(rule.kind, tags)}
                if "name" in tags:
                    props["name"] = tags["name"]
                for p in layer.props:
                    if p.tag in tags:
                        value = _typed(tags[p.tag], p.type)
                        if value is not None:
                            props[p.name] = value
                out.append(Match(i, _resolve(rule.min_zoom, tags), props))
                break
    return out


def tile_size_m(zoom: int) -> float:
    """The side of a tile at `zoom`, in EPSG:3857 metres."""
    return EARTH_CIRCUMFERENCE / (1 << zoom)


def simplify_tolerance(layer: Layer, zoom: int) -> float:
    """The layer's simplification tolerance at `zoom`, in metres."""
    return layer.simplify_px * tile_size_m(zoom) / 256


def min_area(layer: Layer, zoom: int) -> float:
    """The smallest polygon area the layer keeps at `zoom`, in square metres."""
    return layer.min_area_px * (tile_size_m(zoom) / 256) ** 2


# --- the SQL side ---------------------------------------------------------

def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def hstore_tag(key: str) -> str:
    """SQL for one tag's value, from the hstore `tags` column."""
    return f"tags->{_quote(key)}"


def _sql_lookup_zoom(lookup: Lookup, tag_sql) -> str:
    if lookup.tag is None:
        return str(lookup.constant)
    cases = " ".join(f"WHEN {_quote(v)} THEN {z}" for v, z in sorted(lookup.values.items()))
    return f"(CASE {tag_sql(lookup.tag)} {cases} ELSE {lookup.default} END)"


def _sql_where(conditions, tag_sql) -> str:
    parts = []
    for key, values in conditions:
        if values is None:
            parts.append(f"{tag_sql(key)} <> 'no'")
        else:
            parts.append(f"{tag_sql(key)} IN ({', '.join(_quote(v) for v in sorted(values))})")
    return " AND ".join(parts) or "TRUE"


def sql_filter(schema: Schema, table: str, zoom: int, tag_sql=hstore_tag) -> str | None:
    """A WHERE clause keeping every row of `table` some layer shows at `zoom`.

    `tag_sql(key)` is the SQL of a tag's value (and of `way_area`): by default
    from the hstore `tags`; source.py reads osm2pgsql's own columns where it
    has them, so the filter needs no merged tags for the rows it drops.
    None when no rule of any layer can show a row of this table at this zoom.
    It may keep a little more than classify does (a row that matches an
    earlier, later-appearing rule too); classify has the final word.
    """
    clauses = []
    for layer in schema.layers:
        area = min_area(layer, zoom)
        for rule in layer.rules:
            if rule.table != table:
                continue
            if rule.min_zoom.tag is None and rule.min_zoom.constant > zoom:
                continue
            parts = [_sql_where(rule.where, tag_sql)]
            if rule.min_zoom.tag is not None:
                parts.append(f"{_sql_lookup_zoom(rule.min_zoom, tag_sql)} <= {zoom}")
            if area > 0 and schema.tables[table].tags:
                parts.append(f"coalesce(({tag_sql('way_area')})::float8, 'Infinity') >= {area!r}")
            clauses.append("(" + " AND ".join(parts) + ")")
    return " OR ".join(clauses) if clauses else None
