"""Tile schemas: the YAML language that says what goes into a tile, loaded and checked.

A schema (built in: `schemas/tilezen.yaml`, the default, and
`schemas/shortbread.yaml`; or a user's file) names its source tables and its
layers; each layer lists rules that turn OSM rows into features with a kind,
a zoom range and properties. `docs/SCHEMAS.md` is the language's reference.
This module reads and checks a schema into plain named tuples, and holds
what both paths read of it alike: a table's rules indexed by the tags they
test (`rule_index`) and how a tag's text reads as a number (`NUMBER_PATTERN`);
`classify` evaluates it on rows (`rulecode` compiles it to Python for that),
`sqlfilter` compiles it to SQL.

Errors name the file, the line and what is wrong (SchemaError, exit 2).
"""

import hashlib
import math
import os
import re
from typing import Any, NamedTuple

import yaml

from .errors import BadInput

BUILTIN_DIR = os.path.join(os.path.dirname(__file__), "schemas")
DEFAULT = "tilezen"
EARTH_CIRCUMFERENCE = 2 * math.pi * 6378137.0
GEOMETRIES = ("boundary", "label")
UNITS = {"m2": 1.0, "ha": 1e4, "km2": 1e6}  # way_area units, in square metres
TYPES = ("str", "int", "float", "bool")
FEATURE_VALUES = ("min_zoom", "id")
# The number a tag's text is: the whole text, but for spaces around it and a trailing "m" ("12.5 m" is 12.5:
# metres are OSM's unit of heights and elevations, which it may spell out). Anything else is no number,
# rather than the number it starts with: "1,234,567" or "12 345" is not 1 or 12, "12;15" not 12, "40 ft"
# not 40. One pattern, in the syntax Python's and PostgreSQL's regular expressions share, so that
# rulecode.number and sqlfilter's SQL read the same number. Its digits and spaces are ASCII ones, spelt
# out: Python's \d and \s take other scripts' too, PostgreSQL's do not.
NUMBER_PATTERN = r"^[ \t\n\r\f\v]*(-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)(?:[ \t\n\r\f\v]*m)?[ \t\n\r\f\v]*$"


class SchemaError(BadInput):
    """A schema file that cannot be read or does not follow the language."""


class Table(NamedTuple):
    key: str            # short name used by rules: point, line, polygon, ...
    name: str           # the database table
    geometry_column: str
    id_column: str
    tags: bool          # has an hstore `tags` column (osm2pgsql --hstore)
    optional: bool


class Expr(NamedTuple):
    """A value computed from a row's tags; every field but the one that says what it is may be None.

    const       a constant
    tags        the first of these tags that the row has (its value as text)
    any / all   a condition (Condition tuple): true or false (or None when false, if `only_true`)
    area        way_area in this many square metres a unit
    feature     a computed value of the feature: min_zoom or id
    type        str | int | float | bool: how a tag's text is read
    values      a mapping of the value (as text) to results; others give `default`
    at_least    ((threshold, result), ...): the first whose threshold the number reaches
    replace     ((old, new), ...) applied to a text value
    split/take  the text split at `split`, and `count` (how many parts) or `longest` (part length)
    default     an Expr for when the value is missing (or not in `values`)
    when        a Condition the row must meet for the value to exist
    min_zoom    the first zoom the property appears at
    """

    const: Any = None
    tags: tuple | None = None
    any: tuple | None = None
    all: tuple | None = None
    only_true: bool = False
    area: float | None = None
    feature: str | None = None
    prefix: str | None = None
    type: str = "str"
    values: dict | None = None
    at_least: tuple | None = None
    replace: tuple | None = None
    split: str | None = None
    take: str | None = None
    default: Any = None
    when: tuple | None = None
    min_zoom: int = 0


class Rule(NamedTuple):
    table: str
    where: tuple        # a condition: ((key, test), ...), all must hold
    geometry: str | None  # None (as it is), boundary or label
    kind: Expr | None
    min_zoom: Expr
    max_zoom: int | None
    props: tuple        # ((name, Expr), ...), after the layer's
    more: bool          # the rules after it are tried too (it adds a feature, it does not decide)


class LayerSpec(NamedTuple):
    name: str
    simplify_px: float
    min_area_px: float
    merge_below: int    # below this zoom, lines of equal properties in a tile are merged
    sort: tuple         # ((property, descending), ...)
    unless: tuple       # names of layers whose match keeps a row out of this one
    props: tuple        # ((name, Expr), ...) for every feature of the layer
    rules: tuple


class Schema(NamedTuple):
    name: str
    digest: str         # of the file's bytes: what completion records and metadata carry
    path: str
    max_zoom: int
    tables: dict        # key -> Table
    layers: tuple       # LayerSpec, in drawing order
    label_tables: frozenset  # tables some rule takes label points from
    # Each table's rules compiled to Python, what classify runs for every row:
    # filled by classify.table_rules the first time it classifies a table's rows.
    compiled: dict      # key -> classify.TableRules


# --- reading YAML with line numbers ---------------------------------------

class _Map(dict):
    """A YAML mapping that remembers the line of each key (and its own)."""

    line = 0
    lines: dict


# libyaml's parser where PyYAML has it (constructor and resolver stay PyYAML's, so
# the same objects and lines): the Tilezen schema in 75 ms instead of 425.
class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag != "tag:yaml.org,2002:merge":
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key_node.value!r}",
                                                            key_node.start_mark)
                seen.add(key_node.value)
        self.flatten_mapping(node)  # YAML merge keys (<<: *names) are the way a schema shares a block
        out = _Map()
        out.line, out.lines = node.start_mark.line + 1, {}
        for key_node, value_node in node.value:  # merged keys first, so the mapping's own win
            key = self.construct_object(key_node, deep=True)
            out[key] = self.construct_object(value_node, deep=True)
            out.lines[key] = key_node.start_mark.line + 1
        return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _Loader.construct_mapping)
# OSM's values are words: `yes`, `no`, `on` stay words (YAML 1.1 would read booleans); true and false are booleans.
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                              list("tTfF"))


class _At(NamedTuple):
    """Where in the file a check looks: for its error message."""

    path: str
    line: int
    where: str

    def inside(self, mapping, key) -> "_At":
        line = mapping.lines.get(key, mapping.line) if isinstance(mapping, _Map) else self.line
        return _At(self.path, line, f"{self.where}.{key}" if self.where else str(key))

    def fail(self, message: str):
        raise SchemaError(f"{self.path}:{self.line}: {self.where}: {message}")

    def expect(self, ok: bool, message: str) -> None:
        if not ok:
            self.fail(message)


def _known(at: _At, spec: dict, keys) -> None:
    unknown = sorted(set(spec) - set(keys), key=str)
    at.expect(not unknown, f"unknown keys {unknown}; expected some of {sorted(keys)}")


# --- the schema -------------------------------------------------------------

def schema_path(name: str) -> str:
    """The file of a schema name: a built-in name, or a path to a user's YAML file."""
    if os.sep not in name and not name.endswith((".yaml", ".yml")):
        path = os.path.join(BUILTIN_DIR, f"{name}.yaml")
        if not os.path.exists(path):
            builtin = sorted(f[:-5] for f in os.listdir(BUILTIN_DIR) if f.endswith(".yaml") and "." not in f[:-5])
            raise SchemaError(f"schema.name {name!r}: no built-in schema of that name (built in: "
                              f"{', '.join(builtin)}); give a path to a YAML file for your own")
        return path
    return name


_CACHE: dict = {}


def load_schema(cfg: dict) -> Schema:
    """The schema the configuration names (`schema.name`)."""
    return load(schema_path(cfg["schema"]["name"]))


def load(path: str) -> Schema:
    """The schema in the file at `path`, checked; SchemaError names the file, line and problem."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise SchemaError(f"{path}: cannot read the schema: {e.strerror}") from None
    cached = _CACHE.get(path)
    if cached is not None and cached[0] == data:
        return cached[1]
    try:
        doc = yaml.load(data.decode("utf-8"), Loader=_Loader)  # noqa: S506 (a SafeLoader)
    except UnicodeDecodeError:
        raise SchemaError(f"{path}: not UTF-8 text") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise SchemaError(f"{path}{line}: not valid YAML: {getattr(e, 'problem', None) or e}") from None
    schema = _schema(path, data, doc)
    _CACHE[path] = (data, schema)
    return schema


def _schema(path: str, data: bytes, doc) -> Schema:
    at = _At(path, 1, "")
    at.expect(isinstance(doc, dict), "expected a mapping with tables and layers")
    # Top-level keys starting with a dot hold blocks that layers share through YAML anchors.
    _known(at, {k: v for k, v in doc.items() if not str(k).startswith(".")}, ("name", "max_zoom", "tables", "layers"))
    name = doc.get("name", os.path.splitext(os.path.basename(path))[0])
    at.inside(doc, "name").expect(isinstance(name, str) and bool(name), "expected a word")
    max_zoom = doc.get("max_zoom", 16)
    at.inside(doc, "max_zoom").expect(_is_int(max_zoom) and 3 <= max_zoom <= 16, "expected a zoom in 3..16")
    for key in ("tables", "layers"):
        at.inside(doc, key).expect(isinstance(doc.get(key), dict) and bool(doc[key]), "expected a mapping")
    tables = {key: _table(at.inside(doc, "tables").inside(doc["tables"], key), key, spec)
              for key, spec in doc["tables"].items()}
    layers = tuple(_layer(at.inside(doc, "layers").inside(doc["layers"], name_), name_, spec, tables, max_zoom)
                   for name_, spec in doc["layers"].items())
    names = [layer.name for layer in layers]
    for layer in layers:
        for other in layer.unless:
            at.expect(other in names and names.index(other) != names.index(layer.name),
                      f"layers.{layer.name}.unless: {other!r} is not another layer")
    label_tables = frozenset(r.table for layer in layers for r in layer.rules if r.geometry == "label")
    digest = hashlib.sha256(data).hexdigest()[:16]
    return Schema(name, digest, path, max_zoom, tables, layers, label_tables, {})


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _table(at: _At, key, spec) -> Table:
    at.expect(isinstance(spec, dict) and isinstance(spec.get("name"), str), "needs a name")
    _known(at, spec, ("name", "geometry_column", "id_column", "tags", "optional"))
    return Table(str(key), spec["name"], spec.get("geometry_column", "way"), spec.get("id_column", "osm_id"),
                 bool(spec.get("tags", True)), bool(spec.get("optional", False)))


def _layer(at: _At, name, spec, tables, max_zoom) -> LayerSpec:
    at.expect(isinstance(spec, dict) and isinstance(spec.get("rules"), list) and bool(spec["rules"]),
              "needs a list of rules")
    _known(at, spec, ("simplify_px", "min_area_px", "merge_below", "geometry", "sort", "unless", "properties",
                      "rules"))
    at.inside(spec, "merge_below").expect(_is_int(spec.get("merge_below", 0)) and spec.get("merge_below", 0) >= 0,
                                          "expected a zoom")
    for key in ("simplify_px", "min_area_px"):
        at.inside(spec, key).expect(_is_number(spec.get(key, 0)) and spec.get(key, 0) >= 0,
                                    "expected a number of pixels, 0 or more")
    geometry = spec.get("geometry")
    at.inside(spec, "geometry").expect(geometry is None or geometry in GEOMETRIES, f"expected one of {GEOMETRIES}")
    sort = []
    for item in _words(at.inside(spec, "sort"), spec.get("sort", [])):
        sort.append((item.lstrip("-"), item.startswith("-")))
    unless = tuple(_words(at.inside(spec, "unless"), spec.get("unless", [])))
    props = _props(at.inside(spec, "properties"), spec.get("properties"))
    rules = tuple(_rule(_At(at.path, getattr(r, "line", at.line), f"{at.where}.rules[{i}]"), r, tables, geometry,
                        max_zoom)
                  for i, r in enumerate(spec["rules"]))
    prop_names = {n for n, _ in props} | {n for r in rules for n, _ in r.props} | {"kind"}
    for key, _ in sort:
        at.inside(spec, "sort").expect(key in prop_names, f"sorts by {key!r}, which no rule or property sets")
    return LayerSpec(str(name), float(spec.get("simplify_px", 0)), float(spec.get("min_area_px", 0)),
                 spec.get("merge_below", 0), tuple(sort), unless, props, rules)


def _words(at: _At, value) -> list:
    value = [value] if isinstance(value, str) else value
    at.expect(isinstance(value, list) and all(isinstance(v, str) and v for v in value), "expected words")
    return value


def _rule(at: _At, spec, tables, layer_geometry, max_zoom) -> Rule:
    at.expect(isinstance(spec, dict), "expected a mapping")
    _known(at, spec, ("table", "where", "geometry", "kind", "min_zoom", "max_zoom", "more", "properties"))
    at.inside(spec, "more").expect(isinstance(spec.get("more", False), bool), "expected true or false")
    at.inside(spec, "table").expect(spec.get("table") in tables, f"table must be one of {sorted(tables)}")
    table = tables[spec["table"]]
    where = _condition(at.inside(spec, "where"), spec.get("where") or {})
    at.expect(bool(where) or not table.tags, "needs a where (a table with tags matches no row without one)")
    geometry = spec.get("geometry", layer_geometry)
    at.inside(spec, "geometry").expect(geometry is None or geometry in GEOMETRIES, f"expected one of {GEOMETRIES}")
    at.expect("min_zoom" in spec, "needs a min_zoom")
    kind = None
    if "kind" in spec:
        kind_spec = spec["kind"]
        kind = Expr(const=kind_spec) if isinstance(kind_spec, str) else _expr(at.inside(spec, "kind"), kind_spec)
    min_zoom = _expr(at.inside(spec, "min_zoom"), spec["min_zoom"], zoom=True)
    rule_max = spec.get("max_zoom")
    at.inside(spec, "max_zoom").expect(rule_max is None or (_is_int(rule_max) and 0 <= rule_max <= max_zoom),
                                       f"expected a zoom in 0..{max_zoom}")
    return Rule(table.key, where, geometry, kind, min_zoom, rule_max,
                _props(at.inside(spec, "properties"), spec.get("properties")), spec.get("more", False))


def _condition(at: _At, spec) -> tuple:
    """A mapping of tag tests, as ((key, (op, values)), ...): all must hold.

    A test is `true` (any value but "no"), `false` (no such tag), a word or a
    list of words (one of them), or {not: words} (absent, or none of them).
    """
    at.expect(isinstance(spec, dict), "expected a mapping of tag: test")
    out = []
    for key, value in spec.items():
        here = at.inside(spec, key)
        if value is True:
            out.append((str(key), ("any", None)))
        elif value is False:
            out.append((str(key), ("absent", None)))
        elif isinstance(value, dict):
            _known(here, value, ("not",))
            out.append((str(key), ("not", _values(here, value.get("not")))))
        else:
            out.append((str(key), ("in", _values(here, value))))
    return tuple(out)


def _values(at: _At, value) -> frozenset:
    values = value if isinstance(value, list) else [value]
    at.expect(bool(values) and all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in values),
              "expected a word or a list of words")
    return frozenset(str(v) for v in values)


def _props(at: _At, spec) -> tuple:
    if spec is None:
        return ()
    at.expect(isinstance(spec, dict), "expected a mapping of property: value")
    out = []
    for name, value in spec.items():
        here = at.inside(spec, name)
        here.expect(isinstance(name, str) and bool(name), "a property name must be a word")
        if name.endswith("*"):
            here.expect(isinstance(value, dict) and set(value) == {"prefix"} and isinstance(value["prefix"], str),
                        "a name ending in * takes {prefix: text}: every tag starting with it, under its own key")
            out.append((name, Expr(prefix=value["prefix"])))
        else:
            out.append((name, _expr(here, {"tag": value} if isinstance(value, str) else value)))
    return tuple(out)


_EXPR_KEYS = ("const", "tag", "any", "all", "only_true", "area", "feature", "type", "values", "at_least",
              "replace", "split", "take", "default", "when", "min_zoom")


def _expr(at: _At, spec, zoom: bool = False) -> Expr:
    """An expression: a constant number or bool, or a mapping (see Expr)."""
    if not isinstance(spec, dict):
        at.expect(_is_number(spec) or isinstance(spec, bool) or (isinstance(spec, str) and not zoom),
                  "expected a constant or a mapping (tag, const, any, all, area, feature, ...)")
        if zoom:
            at.expect(_is_int(spec) and 0 <= spec, "expected a zoom (0 or more)")
        return Expr(const=spec)
    _known(at, spec, _EXPR_KEYS)
    sources = [k for k in ("const", "tag", "any", "all", "area", "feature") if k in spec]
    at.expect(len(sources) == 1, "needs exactly one of const, tag, any, all, area, feature")
    fields: dict = {}
    if "const" in spec:
        fields["const"] = spec["const"]
    if "tag" in spec:
        tags = spec["tag"] if isinstance(spec["tag"], list) else [spec["tag"]]
        at.inside(spec, "tag").expect(bool(tags) and all(isinstance(t, str) and t for t in tags),
                                      "expected a tag or a list of tags (the first present wins)")
        fields["tags"] = tuple(tags)
    for key in ("any", "all"):
        if key in spec:
            fields[key] = _condition(at.inside(spec, key), spec[key])
            fields["only_true"] = bool(spec.get("only_true", False))
    if "area" in spec:
        at.inside(spec, "area").expect(spec["area"] in UNITS, f"expected a unit: {sorted(UNITS)}")
        fields["area"] = UNITS[spec["area"]]
    if "feature" in spec:
        at.inside(spec, "feature").expect(spec["feature"] in FEATURE_VALUES, f"expected one of {FEATURE_VALUES}")
        at.inside(spec, "feature").expect(not zoom, "a min zoom cannot read the feature's own values")
        fields["feature"] = spec["feature"]
    type_ = spec.get("type", "int" if zoom else "str")
    at.inside(spec, "type").expect(type_ in TYPES, f"expected one of {TYPES}")
    fields["type"] = type_
    if "values" in spec:
        at.inside(spec, "values").expect(isinstance(spec["values"], dict), "expected a mapping of value: result")
        fields["values"] = {str(k): _result(at.inside(spec["values"], k), v, zoom)
                            for k, v in spec["values"].items()}
    if "at_least" in spec:
        steps = spec["at_least"]
        at.inside(spec, "at_least").expect(
            isinstance(steps, list) and all(isinstance(s, list) and len(s) == 2 and _is_number(s[0]) for s in steps),
            "expected a list of [threshold, result] pairs")
        fields["at_least"] = tuple((float(t), _result(at.inside(spec, "at_least"), r, zoom)) for t, r in steps)
    if "replace" in spec:
        pairs = spec["replace"]
        at.inside(spec, "replace").expect(
            isinstance(pairs, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in pairs.items()),
            "expected a mapping of text: replacement")
        fields["replace"] = tuple(pairs.items())
    if "split" in spec or "take" in spec:
        at.inside(spec, "split").expect(isinstance(spec.get("split"), str) and spec.get("take") in ("count", "longest"),
                                        "split: text needs take: count | longest")
        fields["split"], fields["take"] = spec["split"], spec["take"]
    if "default" in spec:
        fields["default"] = _expr(at.inside(spec, "default"), spec["default"], zoom)
    elif zoom and "tag" in spec:
        at.fail("a zoom read from a tag needs a default")
    if "when" in spec:
        fields["when"] = _condition(at.inside(spec, "when"), spec["when"])
    if "min_zoom" in spec:
        at.inside(spec, "min_zoom").expect(_is_int(spec["min_zoom"]) and spec["min_zoom"] >= 0, "expected a zoom")
        fields["min_zoom"] = spec["min_zoom"]
    return Expr(**fields)


def _result(at: _At, value, zoom: bool):
    if zoom:
        at.expect(_is_int(value) and value >= 0, "expected a zoom")
    else:
        at.expect(isinstance(value, (str, int, float, bool)), "expected a word, number or boolean")
    return value


# --- per zoom ------------------------------------------------------------------

def tile_size_m(zoom: int) -> float:
    """The side of a tile at `zoom`, in EPSG:3857 metres."""
    return EARTH_CIRCUMFERENCE / (1 << zoom)


def simplify_tolerance(schema: Schema, layer: LayerSpec, zoom: int) -> float:
    """The layer's simplification tolerance at `zoom`, in metres; 0 at the schema's max zoom.

    Clients draw the max zoom's tiles overzoomed, four zooms deeper and more:
    what a tile there leaves out shows (a building's corner, half a pixel at
    z14, is eight pixels at z18). So it is not simplified, as tilemaker's
    Shortbread configuration does not simplify z14; rounding to the tile's
    grid is all it loses.
    """
    return 0.0 if zoom >= schema.max_zoom else layer.simplify_px * tile_size_m(zoom) / 256


def min_area(layer: LayerSpec, zoom: int) -> float:
    """The smallest polygon area the layer keeps at `zoom`, in square metres."""
    return layer.min_area_px * (tile_size_m(zoom) / 256) ** 2


def last_zoom(schema: Schema, table: str) -> int:
    """The last zoom any rule shows a row of `table` at; -1 when none reads it."""
    return max((schema.max_zoom if rule.max_zoom is None else rule.max_zoom
                for layer in schema.layers for rule in layer.rules if rule.table == table), default=-1)


def build_max_zoom(cfg: dict, schema: Schema | None = None) -> int:
    """The deepest tile zoom a build makes: `metatile.max-zoom`, by default the schema's max zoom."""
    schema = schema or load_schema(cfg)
    wanted = cfg["metatile"]["max-zoom"]
    if wanted is None:
        return schema.max_zoom
    if not 3 <= wanted <= schema.max_zoom:
        raise SchemaError(f"metatile.max-zoom {wanted}: the {schema.name} schema builds zooms 3..{schema.max_zoom}")
    return wanted


def _field_type(expr: Expr) -> str:
    results = [expr.const] if expr.tags is None and expr.any is None and expr.all is None else []
    if expr.values is not None:
        results = list(expr.values.values())
    elif expr.at_least is not None:
        results = [r for _, r in expr.at_least]
    if expr.any is not None or expr.all is not None or expr.type == "bool" or \
            (results and all(isinstance(r, bool) for r in results)):
        return "Boolean"
    numeric = expr.area is not None or expr.feature is not None or expr.split is not None or \
        expr.type in ("int", "float") or (results and all(isinstance(r, (int, float)) for r in results))
    return "Number" if numeric else "String"


def layer_fields(layer: LayerSpec) -> dict:
    """TileJSON's fields of a layer: each property it may write, String, Number or Boolean."""
    fields = {"kind": "String"} if any(r.kind is not None for r in layer.rules) else {}
    for name, expr in layer.props + tuple(p for r in layer.rules for p in r.props):
        if expr.prefix is None and not name.startswith("_"):
            fields.setdefault(name, _field_type(expr))
    return fields


# --- a table's rules, by the tags they test -----------------------------------

def rules_of(schema: Schema, table: str) -> list[tuple[int, LayerSpec, Rule, int]]:
    """A table's rules in the order a row is tried against them, the order their positions count in:
    (the layer's index, the layer, the rule, the rule's index in the layer)."""
    return [(i, layer, rule, n) for i, layer in enumerate(schema.layers)
            for n, rule in enumerate(layer.rules) if rule.table == table]


def tags_read(schema: Schema, table: str) -> tuple[frozenset, tuple]:
    """The tags a table's rules read (its `where` tests, kinds, zooms and properties, its layers'
    properties): (keys, key prefixes, as a property of every `name:*` reads them). No other tag of a
    row can change a feature, so a RAWR tile holds only these."""
    keys, prefixes = set(), set()

    def expr(e) -> None:
        if isinstance(e, Expr):
            keys.update([*(e.tags or ()), *(["way_area"] if e.area is not None else [])])
            keys.update(key for test in (e.any, e.all, e.when) for key, _ in test or ())
            prefixes.update([e.prefix] if e.prefix else [])
            expr(e.default)

    for _, layer, rule, _ in rules_of(schema, table):
        keys.update(key for key, _ in rule.where)
        for e in (rule.kind, rule.min_zoom, *(e for _, e in layer.props + rule.props)):
            expr(e)
    return frozenset(keys), tuple(sorted(prefixes))


def rule_index(schema: Schema, table: str) -> tuple[dict, tuple]:
    """Which of a table's rules a row's tags can make hold (no code compiled): (index, always).

    Both paths read it: classify tries a row only against these rules, and
    sqlfilter.sql_candidates keeps only the rows with one of these tags.
    A rule holds only for a row that passes every test of its `where`, so
    it is listed under one of them: a `key: value(s)` test (the one with the
    fewest values) where it has one, for a row with one of those values of
    that key, else a `key: true` test, for a row with that key. `index`
    lists, for each key, the rules the key lets through whatever its value,
    and for each value those and the rules the value lets through
    (key -> ((position, ...), {value: (position, ...)})). `always` lists the
    rules no tag rules out (no `where`, or only `false` and `not` tests).
    Rules are listed by their positions among the table's, in order.
    """
    wheres = [rule.where for _, _, rule, _ in rules_of(schema, table)]
    by_key, always = {}, []
    for p, where in enumerate(wheres):
        tests = [test for test in where if test[1][0] == "in"] or [test for test in where if test[1][0] == "any"]
        if not tests:
            always.append(p)
            continue
        key, (op, values) = min(tests, key=lambda test: len(test[1][1] or ()))
        any_value, by_value = by_key.setdefault(key, ([], {}))
        if op == "any":
            any_value.append(p)
        for value in values or ():
            by_value.setdefault(value, []).append(p)
    index = {key: (tuple(any_value), {value: tuple(sorted(any_value + ps)) for value, ps in by_value.items()})
             for key, (any_value, by_value) in by_key.items()}
    return index, tuple(always)
