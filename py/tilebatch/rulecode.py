"""A schema's rules compiled to Python: the code `classify` runs for every row.

Interpreting the schema's named tuples row by row (which fields an expression
has, which test a condition makes) was most of the Python time of a job that
classifies rows. Here the rules of a table are compiled once into Python source,
each to two functions (`RuleCode`; a layer's own properties to one function
its rules call), in which every condition and expression is
straight-line code doing only what its fields ask: `{tag: name}` is
`tags.get('name')`, a `where` a chain of dict lookups and set tests. It says in
Python what `sqlfilter` says in SQL; docs/SCHEMAS.md is the language.

A row's tags map text to text (None for a NULL hstore value). The code keeps
track of what a value may be (text, a number, None, ...) as it writes the steps
of an expression, so that it tests only what can vary.
"""

import math
import re
from typing import Callable, NamedTuple

from .schema import NUMBER_PATTERN

_NUMBER = re.compile(NUMBER_PATTERN)
_TRUE, _FALSE = frozenset(("yes", "true", "1")), frozenset(("no", "false", "0"))
_NONE = type(None)
_TEXT = frozenset((str, _NONE))  # what a tag's value may be


def number(text: str) -> float | None:
    """The number a tag's text is ("12" -> 12.0, "12.5 m" -> 12.5, "1.5e+06" -> 1500000.0); None when it is
    none (schema.NUMBER_PATTERN: "1,234,567" is none), or past 2**53 (noise, not a value)."""
    if text.isdigit() and text.isascii():  # most numbers in tags: what the pattern would take whole, read faster
        value = float(text)
        return value if value <= 2 ** 53 else None
    m = _NUMBER.match(text)
    if not m:
        return None
    value = float(m.group(1))
    return value if math.isfinite(value) and abs(value) <= 2 ** 53 else None


class RuleCode(NamedTuple):
    """A rule compiled: its two functions of a row."""

    zoom: Callable[[dict], int | None]  # (tags): its min zoom for the row; None when its where fails or no zoom
    properties: Callable  # (tags, min_zoom, row_id, last_zoom): (props, zooms or None), as classify.Match holds them


def compile_rules(name: str, rules: list) -> list[RuleCode]:
    """The rules of one table compiled, in the order given.

    `rules` are (LayerSpec, Rule, where) triples, `where` naming the rule in
    the code (`layers.roads.rules[3]`); `name` names the code in tracebacks
    and profiles.
    """
    src = _Source()
    layers: dict = {}  # id(layer) -> the number of the function setting its properties, for a layer with some
    for n, (layer, rule, where) in enumerate(rules):
        if layer.props and id(layer) not in layers:
            layers[id(layer)] = len(layers)
            src.add(0, f"def layer_{len(layers) - 1}(tags, min_zoom, row_id, last_zoom, props, zooms):  "
                       f"# layers.{layer.name}.properties")
            _set(src, layer.props, {"kind"}, 1, _sorted_by(layer))  # a rule's kind is set before
        src.add(0, f"def zoom_{n}(tags):  # {where}")
        if rule.where:
            src.add(1, f"if not ({_condition(src, rule.where)}):")
            src.add(2, "return None")
        _expr(src, rule.min_zoom, 1)
        src.add(1, "return v")
        src.add(0, f"def properties_{n}(tags, min_zoom, row_id, last_zoom):  # {where}")
        _properties(src, layer, rule, layers.get(id(layer)), 1)
    scope = dict(src.names, number=number, _TRUE=_TRUE, _FALSE=_FALSE)
    exec(compile("\n".join(src.lines) + "\n", name, "exec"), scope)  # noqa: S102 (source written above)
    return [RuleCode(scope[f"zoom_{n}"], scope[f"properties_{n}"]) for n in range(len(rules))]


class _Source:
    """Python source being written, and the values it refers to by name (its globals)."""

    def __init__(self):
        self.lines: list[str] = []
        self.names: dict = {}
        self._named: dict = {}  # id(value) -> name: a set shared by many rules is bound once

    def add(self, depth: int, line: str) -> None:
        self.lines.append("    " * depth + line)

    def value(self, value) -> str:
        """Python for a value: its literal where that is exact, else a name bound to it."""
        if value is None or type(value) in (bool, int, str) or (type(value) is float and math.isfinite(value)):
            return repr(value)
        name = self._named.get(id(value))
        if name is None:
            name = self._named[id(value)] = f"_v{len(self.names)}"
            self.names[name] = value
        return name


def _test(src: _Source, key: str, op: str, values) -> str:
    tag = f"tags.get({key!r})"
    if op == "any":
        return f"{tag} not in (None, 'no')"
    if op == "absent":
        return f"{tag} is None"
    return f"{tag} {'in' if op == 'in' else 'not in'} {src.value(values)}"


def _condition(src: _Source, condition: tuple, join: str = "and") -> str:
    """Python for a condition: whether all (or any) of its tests hold."""
    tests = [_test(src, key, op, values) for key, (op, values) in condition]
    return f" {join} ".join(tests) or ("True" if join == "and" else "False")


def _type_of(value) -> type:
    return str if isinstance(value, str) else type(value)


def _expr(src: _Source, expr, depth: int) -> frozenset:
    """Write code that sets `v` to the value of an expression (None: the row has none).

    Returns the types `v` may then have. A `when` that fails gives None,
    never the default.
    """
    if expr.when is None:
        return _value(src, expr, depth)
    src.add(depth, f"if {_condition(src, expr.when)}:")
    types = _value(src, expr, depth + 1)
    src.add(depth, "else:")
    src.add(depth + 1, "v = None")
    return types | {_NONE}


def _value(src: _Source, expr, depth: int) -> frozenset:
    types = _source(src, expr, depth)
    if str in types and (expr.replace or expr.split is not None):
        inner = _if_text(src, types, depth)
        for old, new in expr.replace or ():
            src.add(inner, f"v = v.replace({old!r}, {new!r})")
        if expr.split is not None:
            parts = f"v.split({expr.split!r})"
            src.add(inner, f"v = len({parts})" if expr.take == "count" else f"v = max(map(len, {parts}))")
            types = (types - {str}) | {int}
    if expr.values is not None:
        table = src.value(expr.values)
        if types <= _TEXT:  # its keys are text: None finds nothing
            src.add(depth, f"v = {table}.get(v)")
        else:
            src.add(depth, "if v is not None:")
            src.add(depth + 1, f"v = {table}.get(v if isinstance(v, str) else str(v))")
        types = frozenset(_type_of(r) for r in expr.values.values()) | {_NONE}
    elif expr.at_least is not None:
        src.add(depth, "if v is not None:")
        src.add(depth + 1, "n = " + ("number(v)" if types <= _TEXT else
                                     "v" if types <= {int, float, bool, _NONE} else
                                     "v if isinstance(v, (int, float)) else number(str(v))"))
        steps = " else ".join(f"{src.value(result)} if n >= {src.value(threshold)}"
                              for threshold, result in expr.at_least)
        src.add(depth + 1, f"v = None if n is None else {steps} else None")
        types = frozenset(_type_of(r) for _, r in expr.at_least) | {_NONE}
    elif expr.type != "str" and str in types:
        inner = _if_text(src, types, depth)
        if expr.type == "bool":
            src.add(inner, "v = True if v in _TRUE else False if v in _FALSE else None")
        elif expr.type == "float":
            src.add(inner, "v = number(v)")
        else:
            src.add(inner, "n = number(v)")
            src.add(inner, "v = None if n is None else int(n)")
        types = (types - {str}) | {_NONE, {"bool": bool, "float": float, "int": int}[expr.type]}
    if expr.default is not None and _NONE in types:
        src.add(depth, "if v is None:")
        types = (types - {_NONE}) | _expr(src, expr.default, depth + 1)
    return types


def _if_text(src: _Source, types: frozenset, depth: int) -> int:
    """Open a block for when `v` (which may be text) is text; the depth of its lines."""
    if types == {str}:
        return depth
    src.add(depth, "if v is not None:" if types == _TEXT else "if isinstance(v, str):")
    return depth + 1


def _source(src: _Source, expr, depth: int) -> frozenset:
    """Write code that sets `v` to what the expression reads, before its options; the types `v` may have."""
    if expr.tags is not None:
        first, *others = expr.tags
        src.add(depth, f"v = tags.get({first!r})")
        for tag in others:
            src.add(depth, "if v is None:")
            src.add(depth + 1, f"v = tags.get({tag!r})")
        return _TEXT
    if expr.any is not None or expr.all is not None:
        test = _condition(src, expr.any, "or") if expr.any is not None else _condition(src, expr.all)
        src.add(depth, f"v = True if {test} else {None if expr.only_true else False}")
        return frozenset((bool, _NONE) if expr.only_true else (bool,))
    if expr.area is not None:
        src.add(depth, "v = tags.get('way_area')")
        src.add(depth, "if v is not None:")
        src.add(depth + 1, f"v = float(v) / {src.value(expr.area)}")
        return frozenset((float, _NONE))
    if expr.feature is not None:
        src.add(depth, f"v = {'row_id' if expr.feature == 'id' else 'min_zoom'}")
        return frozenset((int, float))
    src.add(depth, f"v = {src.value(expr.const)}")
    return frozenset((_type_of(expr.const),))


def _properties(src: _Source, layer, rule, layer_function: int | None, depth: int) -> None:
    """Write the body of a rule's properties function: kind, the layer's properties (its layer's function,
    written once for all its rules), then the rule's."""
    zoomed = any(expr.prefix is None and expr.min_zoom > 0 for _, expr in layer.props + rule.props)
    src.add(depth, "props = {}")
    if zoomed:
        src.add(depth, "zooms = {}")
    if rule.kind is not None:
        _set_one(src, "kind", rule.kind._replace(min_zoom=0), depth, False)  # a kind has no zoom of its own
    if layer_function is not None:
        src.add(depth, f"layer_{layer_function}(tags, min_zoom, row_id, last_zoom, props, "
                       f"{'zooms' if zoomed else 'None'})")
    layer_names = {name for name, expr in layer.props if expr.prefix is None}
    any_name = any(expr.prefix is not None for _, expr in layer.props)
    _set(src, rule.props, {"kind"} | layer_names, depth, _sorted_by(layer), any_name)
    src.add(depth, f"return props, {'zooms or None' if zoomed else 'None'}")


def _sorted_by(layer) -> frozenset:
    """The properties a layer's features are sorted by: made at every zoom, as the order is."""
    return frozenset(name for name, _ in layer.sort)


def _set(src: _Source, props: tuple, seen: set, depth: int, sorted_by: frozenset, any_name: bool = False) -> None:
    """Write the code that sets properties in `props`, in order.

    A property without a value takes back one of the same name set before
    it (`seen`: the names that may have been; `any_name`: any name may have
    been, by a prefix); one that appears only from some zoom on is listed in
    `zooms` when that zoom is deeper than the feature's min zoom. One that
    appears only deeper than `last_zoom`, the last zoom of the tiles being
    made (a low-zoom job's), is not made at all, and takes back one of its
    name as it would below its zoom (unless the layer sorts by it).
    """
    seen = set(seen)
    for name, expr in props:
        if expr.prefix is not None:
            src.add(depth, f"for k in sorted(k for k in tags if k.startswith({expr.prefix!r})):")
            src.add(depth + 1, "props[k] = tags[k]")
            any_name = True
            continue
        may_be_set = any_name or name in seen
        if expr.min_zoom > 0 and name not in sorted_by:
            if may_be_set:
                src.add(depth, f"if last_zoom < {expr.min_zoom}:")
                src.add(depth + 1, f"props.pop({name!r}, None)")
                src.add(depth, "else:")
            else:
                src.add(depth, f"if last_zoom >= {expr.min_zoom}:")
            _set_one(src, name, expr, depth + 1, may_be_set)
        else:
            _set_one(src, name, expr, depth, may_be_set)
        seen.add(name)


def _set_one(src: _Source, name: str, expr, depth: int, may_be_set: bool) -> None:
    """The code setting one property (`_set`); `may_be_set`: one of its name may have been set before."""
    types = _expr(src, expr, depth)
    inner = depth
    if _NONE in types:
        src.add(depth, "if v is not None:")
        inner = depth + 1
    src.add(inner, f"props[{name!r}] = v")
    if expr.min_zoom > 0:
        src.add(inner, f"if min_zoom < {expr.min_zoom}:")
        src.add(inner + 1, f"zooms[{name!r}] = {expr.min_zoom}")
    if _NONE in types and may_be_set:
        src.add(depth, "else:")
        src.add(depth + 1, f"props.pop({name!r}, None)")
