"""MVT 2.1 encoding of a whole tile, its geometry in a few numpy passes.

mapbox-vector-tile turns geometry into MVT commands one coordinate at a time in
Python, which made encoding most of the cost of a tile. Here the command streams
of every feature of a tile come out of a handful of vectorised passes over all
of its coordinates at once, and properties are interned once for every tile a
set of features makes (`properties`), each tile renumbering the keys and values
it uses in numpy, and the protobuf message's bytes of all its features are
written in one more (`_features`). Decoding stays with mapbox-vector-tile.

The output is byte for byte what `mapbox_vector_tile.encode` writes for the
same layers with extent 4096, `y_coord_down` and no winding check: geometry
already in tile units (it is rounded to the grid, as there), features whose
geometry collapses to nothing on the grid left out, layer keys and values
interned in first-seen order (a bool apart from the number it equals, an int
and a float that are equal sharing one value, ints as `int_value`).
"""

import itertools
import struct
from typing import Iterable, NamedTuple, Sequence

import numpy as np
import shapely

EXTENT = 4096
VERSION = 2
MOVE_TO, LINE_TO, CLOSE_PATH = 1, 2, 7
POINT, LINESTRING, POLYGON = 1, 2, 3  # the MVT geometry types

# shapely type id -> MVT geometry type; 0 for what MVT cannot hold (LinearRing,
# GeometryCollection). Index -1 (a missing geometry) lands on the last entry.
_MVT_TYPE = np.array([POINT, LINESTRING, 0, POLYGON, POINT, LINESTRING, POLYGON, 0])
# How a path's coordinates become commands: a point feature is one MoveTo of all
# its points; a line part is MoveTo + LineTo; a ring is MoveTo + LineTo + ClosePath.
_POINTS, _LINE, _RING = 0, 1, 2
# The Value field of each property type; a subclass takes its first base class here.
_VALUE_FIELD = {bool: "bool_value", str: "string_value", int: "int_value", float: "double_value"}
_DOUBLE = struct.Struct("<d")


class Properties(NamedTuple):
    """Features' properties, interned once for any number of tiles.

    Feature i holds the pairs `offsets[i]:offsets[i + 1]`, pair j being key
    `keys[key_of[j]]` with value `values[value_of[j]]`, a (Value field, value).
    A tile numbers its own keys and values afresh; `group` gives, per value,
    which values it shares a number with there: equal ones, as in a dict, but a
    bool apart from the number it equals (so 1 and 1.0 share one, as they do in
    mapbox-vector-tile, and the first in the tile decides its type).
    """

    keys: list
    values: list
    group: np.ndarray
    key_of: np.ndarray
    value_of: np.ndarray
    offsets: np.ndarray
    zoom_of: np.ndarray     # per pair: the first tile zoom that holds it

    def take(self, rows: np.ndarray, zoom: int | None = None) -> "Properties":
        """The properties of features `rows`, in that order; at `zoom`, only the pairs it holds."""
        starts = self.offsets[rows]
        counts = self.offsets[np.asarray(rows) + 1] - starts
        offsets = np.zeros(len(starts) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        pairs = _ranges(starts, counts)
        taken = self._replace(key_of=self.key_of[pairs], value_of=self.value_of[pairs], zoom_of=self.zoom_of[pairs],
                              offsets=offsets)
        if zoom is not None and len(pairs) and taken.zoom_of.max() > zoom:
            return taken._only(taken.zoom_of <= zoom)
        return taken

    def without(self, keys) -> "Properties":
        """The properties less the pairs of these keys."""
        gone = [k for k, key in enumerate(self.keys) if key in keys]
        return self._only(~np.isin(self.key_of, gone)) if gone else self

    def _only(self, kept: np.ndarray) -> "Properties":
        """The properties with only the pairs where `kept` is true."""
        features = len(self.offsets) - 1
        counts = np.bincount(np.repeat(np.arange(features), np.diff(self.offsets))[kept], minlength=features)
        offsets = np.zeros(features + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        return self._replace(key_of=self.key_of[kept], value_of=self.value_of[kept], zoom_of=self.zoom_of[kept],
                             offsets=offsets)

    def numbers(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """Each feature's value of property `key` as a float (0 where none), and where it has no number."""
        features = len(self.offsets) - 1
        number, missing = np.zeros(features), np.ones(features, dtype=bool)
        if key in self.keys:
            numeric = [field in ("int_value", "double_value") for field, _ in self.values]
            as_float = np.array([float(v) if ok else 0.0 for ok, (_, v) in zip(numeric, self.values)])
            pairs = np.flatnonzero(self.key_of == self.keys.index(key))
            pairs = pairs[np.array(numeric, dtype=bool)[self.value_of[pairs]]]
            feature = np.searchsorted(self.offsets, pairs, side="right") - 1
            number[feature] = as_float[self.value_of[pairs]]
            missing[feature] = False
        return number, missing

    def dicts(self) -> list[dict]:
        """Each feature's properties as a dict again (to hand the same features to another encoder)."""
        keys = [self.keys[k] for k in self.key_of.tolist()]
        values = [self.values[v][1] for v in self.value_of.tolist()]
        bounds = self.offsets.tolist()
        return [dict(zip(keys[start:end], values[start:end])) for start, end in zip(bounds, bounds[1:])]


class TileLayer(NamedTuple):
    """One layer of a tile: features as parallel sequences."""

    name: str
    geoms: Sequence          # shapely geometries in tile units, y down, polygons in MVT winding
    props: Properties
    ids: np.ndarray | None   # feature ids (uint64), or None for none


def properties(dicts: Iterable[dict], zooms: Iterable[dict | None] | None = None) -> Properties:
    """The interned properties of features given as dicts.

    Keys must be str and values str, int, float or bool; other pairs are left
    out, as mapbox-vector-tile leaves them out. `zooms`, one per feature,
    gives the first zoom of properties that tiles below it leave out.
    """
    keys, table, group, groups, key_of, value_of, offsets, zoom_of = {}, [], [], {}, [], [], [0], []
    # Values by their Value field, each field's by value (a float by its bits: -0.0 == 0.0, yet each is
    # written as it is): one lookup a pair in the types properties have, and no tuple made for it.
    numbers = {field: {} for field in _VALUE_FIELD.values()}
    strings, ints, bools = numbers["string_value"], numbers["int_value"], numbers["bool_value"]
    for d, z in zip(dicts, itertools.repeat(None) if zooms is None else zooms):
        for k, v in d.items():
            cls = v.__class__
            if cls is str:
                field, found, by = "string_value", strings, v
            elif cls is bool:
                field, found, by = "bool_value", bools, v
            elif cls is int:
                field, found, by = "int_value", ints, v
            else:
                field = _VALUE_FIELD.get(cls) or next((f for t, f in _VALUE_FIELD.items() if isinstance(v, t)), None)
                if field is None:
                    continue
                found, by = numbers[field], _DOUBLE.pack(v) if field == "double_value" else v
            key = keys.get(k)
            if key is None:  # only str keys are there: another is left out here
                if not isinstance(k, str):
                    continue
                key = keys[k] = len(keys)
            key_of.append(key)
            number = found.get(by)
            if number is None:
                number = found[by] = len(table)
                table.append((field, v))
                group.append(groups.setdefault((v,) if field == "bool_value" else v, len(groups)))
            value_of.append(number)
            zoom_of.append(z.get(k, 0) if z else 0)
        offsets.append(len(key_of))
    return Properties(list(keys), table, np.array(group, dtype=np.int64), np.array(key_of, dtype=np.int64),
                      np.array(value_of, dtype=np.int64), np.array(offsets, dtype=np.int64),
                      np.array(zoom_of, dtype=np.int64))


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The positions start, start + 1, ... (count of them) of each range, one range after the other."""
    return np.arange(counts.sum()) + np.repeat(starts - (np.cumsum(counts) - counts), counts)


def encode(layers: Sequence[TileLayer], extent: int = EXTENT) -> bytes:
    """The MVT bytes of a tile holding `layers`, in order (a layer with no features too)."""
    names = [layer.name for layer in layers]
    if not all(names) or len(set(names)) != len(names):
        raise ValueError(f"layer names must be unique and not empty: {names}")
    sizes = np.array([len(layer.geoms) for layer in layers], dtype=np.int64)
    geoms = np.concatenate([np.asarray(layer.geoms, dtype=object) for layer in layers] or [np.empty(0, object)])
    types, offsets, commands = geometry_commands(geoms)
    bounds = np.zeros(len(layers) + 1, dtype=np.int64)
    np.cumsum(sizes, out=bounds[1:])
    drawn = np.flatnonzero(offsets[1:] > offsets[:-1])
    split = np.searchsorted(drawn, bounds).tolist()  # layer l draws drawn[split[l]:split[l + 1]]
    props = [layer.props.take(drawn[a:b] - first) for layer, a, b, first in zip(layers, split, split[1:], bounds)]
    layer_keys, layer_values, tags, tag_offsets = _number(props)
    has_id = np.zeros(len(drawn), dtype=bool)
    ids = np.zeros(len(drawn), dtype=np.uint64)
    for layer, a, b, first in zip(layers, split, split[1:], bounds):
        if layer.ids is not None:
            has_id[a:b] = True
            ids[a:b] = layer.ids[drawn[a:b] - first]
    features, feature_ends = _features(ids, has_id, types[drawn], tags, tag_offsets, commands,
                                       offsets[drawn], offsets[drawn + 1])
    ends = np.concatenate([[0], feature_ends])[split].tolist()
    out = []
    for layer, start, end, keys, values in zip(layers, ends, ends[1:], layer_keys, layer_values):
        body = [_field(1, layer.name.encode()), features[start:end].tobytes()]
        body += [_field(3, key.encode()) for key in keys]
        body += [_value(field, value) for field, value in values]
        body.append(bytes((5 << 3,)) + _varint(extent) + bytes((15 << 3,)) + _varint(VERSION))
        out.append(_field(3, b"".join(body)))
    return b"".join(out)


# Writing the protobuf wire format here, rather than filling vector_tile_pb2's
# messages feature by feature, lets every feature's bytes of a tile come out of
# one numpy pass: filling the messages cost more than making the geometry. The
# bytes are those protobuf writes: fields in number order, repeated integers
# packed, an unset field left out.
_LEN, _VARINT_FIELDS = 2, {"bool_value": 7, "int_value": 4}


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # a negative int64 as protobuf writes it: its 64-bit two's complement
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(number: int, data: bytes) -> bytes:
    """A length-delimited field: a message, a string or bytes."""
    return _varint(number << 3 | _LEN) + _varint(len(data)) + data


def _value(field: str, value) -> bytes:
    """A layer's `values` field: a Value message. A short string's, most of a tile's values, is written in one
    go: each tile writes its own values, so a city's street names are written again and again."""
    if field == "string_value":
        data = value.encode()
        if len(data) < 0x7E:  # both lengths one byte
            return bytes((4 << 3 | _LEN, len(data) + 2, 1 << 3 | _LEN, len(data))) + data
        message = _field(1, data)
    elif field == "double_value":
        message = bytes((3 << 3 | 1,)) + _DOUBLE.pack(value)
    else:
        message = _varint(_VARINT_FIELDS[field] << 3) + _varint(int(value))
    return _field(4, message)


# The least number a varint of each size from two bytes on holds.
_VARINT_LEAST = np.array([1 << 7 * k for k in range(1, 10)], dtype=np.uint64)


def _varint_sizes(v: np.ndarray) -> np.ndarray:
    """The size in bytes of each unsigned 64-bit integer as a varint."""
    return np.searchsorted(_VARINT_LEAST, v, side="right") + 1


def _varints(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative integers as consecutive varints: (the bytes, each one's size)."""
    size = _varint_sizes(v)
    out = np.empty(int(size.sum()), dtype=np.uint8)
    # Byte by byte, each pass over only the numbers that have another: most have one.
    at, rest, left = np.cumsum(size) - size, v, size
    while len(rest):
        more = left > 1
        out[at] = (rest & np.uint64(0x7F)) | (more * np.uint64(0x80))
        at, rest, left = at[more] + 1, rest[more] >> np.uint64(7), left[more] - 1
    return out, size


def _features(ids, has_id, types, tags, tag_offsets, commands, starts, ends) -> tuple[np.ndarray, np.ndarray]:
    """Every feature of a tile as a layer's `features` field: (their bytes one after another, each one's end).

    A feature is [id] [tags] type geometry, each a varint or a packed run of
    varints, so the whole tile is one stream of varints: field keys, lengths
    (summed from the sizes of what they hold) and values, written in one pass.
    """
    n = len(types)
    n_tags, n_geom = np.diff(tag_offsets), ends - starts
    tag_of, geom_of = np.repeat(np.arange(n), n_tags), np.repeat(np.arange(n), n_geom)
    geometry = commands[_ranges(starts, n_geom)]
    tags, geometry = tags.astype(np.uint64), geometry.astype(np.uint64)
    tags_len = np.bincount(tag_of, weights=_varint_sizes(tags), minlength=n).astype(np.int64)
    geom_len = np.bincount(geom_of, weights=_varint_sizes(geometry), minlength=n).astype(np.int64)
    has_tags = n_tags > 0
    length = (has_id * (1 + _varint_sizes(ids)) + has_tags * (1 + _varint_sizes(tags_len.astype(np.uint64)) + tags_len)
              + 2 + 1 + _varint_sizes(geom_len.astype(np.uint64)) + geom_len)
    count = 2 + 2 * has_id + has_tags * (2 + n_tags) + 2 + 2 + n_geom
    at = np.cumsum(count) - count
    tokens = np.empty(int(count.sum()), dtype=np.uint64)

    def put(where, key, value):
        tokens[where], tokens[where + 1] = key, value

    put(at, 2 << 3 | _LEN, length)
    at = at + 2
    put(at[has_id], 1 << 3, ids[has_id])
    at += 2 * has_id
    put(at[has_tags], 2 << 3 | _LEN, tags_len[has_tags])
    tokens[at[tag_of] + 2 + np.arange(len(tag_of)) - tag_offsets[tag_of]] = tags
    at += has_tags * (2 + n_tags)
    put(at, 3 << 3, types)
    at += 2
    put(at, 4 << 3 | _LEN, geom_len)
    tokens[at[geom_of] + 2 + np.arange(len(geom_of)) - (np.cumsum(n_geom) - n_geom)[geom_of]] = geometry
    data, size = _varints(tokens)
    return data, np.cumsum(size)[np.cumsum(count) - 1] if n else np.zeros(0, dtype=np.int64)


def _number(props: list[Properties]) -> tuple[list, list, np.ndarray, np.ndarray]:
    """Each layer's keys and values, numbered afresh in order of first appearance, and every feature's tags.

    Returns (keys of each layer, (field, value)s of each layer, tags,
    tag offsets), the features of all layers one after the other. All layers
    are numbered in one pass: each takes its own range of numbers (a table has
    no more value groups than values), and as a layer's pairs all come before
    the next layer's, first appearances come layer after layer.
    """
    pairs = np.zeros(len(props) + 1, dtype=np.int64)
    np.cumsum([len(p.key_of) for p in props], out=pairs[1:])
    key_base, value_base = (np.cumsum([0] + [len(t) for t in tables]) for tables in
                            ([p.keys for p in props], [p.values for p in props]))
    empty = [np.empty(0, dtype=np.int64)]
    key_id = np.concatenate([p.key_of + base for p, base in zip(props, key_base)] + empty)
    value_id = np.concatenate([p.value_of + base for p, base in zip(props, value_base)] + empty)
    group_id = np.concatenate([p.group[p.value_of] + base for p, base in zip(props, value_base)] + empty)
    key_first, key_number = _first_seen(key_id)
    value_first, value_number = _first_seen(group_id)
    key_split, value_split = np.searchsorted(key_first, pairs), np.searchsorted(value_first, pairs)
    layer_of = np.repeat(np.arange(len(props)), np.diff(pairs))
    tags = np.empty(2 * len(key_id), dtype=np.int64)
    tags[0::2] = key_number - key_split[layer_of]
    tags[1::2] = value_number - value_split[layer_of]
    keys = [[p.keys[k] for k in (key_id[key_first[a:b]] - base).tolist()]
            for p, a, b, base in zip(props, key_split, key_split[1:], key_base)]
    values = [[p.values[v] for v in (value_id[value_first[a:b]] - base).tolist()]
              for p, a, b, base in zip(props, value_split, value_split[1:], value_base)]
    tag_offsets = np.concatenate([p.offsets[:-1] + first for p, first in zip(props, pairs)] + [pairs[-1:]])
    return keys, values, tags, 2 * tag_offsets


def _first_seen(numbers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Numbers renumbered 0, 1, ... in order of first appearance: (where each first appears, the new numbers).

    The numbers are positions in property tables, so an array as long as the
    largest of them is small, and faster than sorting them.
    """
    n = len(numbers)
    first = np.full(numbers.max(initial=-1) + 1, n)
    np.minimum.at(first, numbers, np.arange(n))
    present = np.flatnonzero(first < n)
    order = np.argsort(first[present])
    renumbered = np.empty(len(first), dtype=np.int64)
    renumbered[present[order]] = np.arange(len(present))
    return first[present[order]], renumbered[numbers]


def geometry_commands(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every geometry's MVT type and command integers, as (types, offsets, commands).

    Geometry i's commands are `commands[offsets[i]:offsets[i + 1]]`; none for a
    missing or empty geometry, or one whose every part collapses on the grid.
    The cursor runs on across the parts of a geometry and starts at 0 for each.
    As in mapbox-vector-tile: ring closing points are not written; a point
    repeating the one before it in a line or ring is dropped; a line or ring
    left with fewer than two points is dropped, and a polygon with its exterior;
    the points of a multipoint are all written as they are.
    """
    type_id = shapely.get_type_id(geoms)
    types = _MVT_TYPE[type_id]
    unsupported = (types == 0) & (type_id >= 0) & ~shapely.is_empty(geoms)
    if unsupported.any():
        raise ValueError(f"cannot encode a {geoms[unsupported][0].geom_type} in a vector tile")
    paths, path_geom, kind, polygon = _paths(geoms, types)
    order = np.argsort(path_geom, kind="stable")  # geometry by geometry, parts in order
    paths, path_geom, kind, polygon = paths[order], path_geom[order], kind[order], polygon[order]
    coords, of_path = shapely.get_coordinates(paths, return_index=True)
    x, y = (np.rint(coords[:, axis]).astype(np.int64) for axis in (0, 1))

    first = _starts(of_path)
    last = np.ones_like(first)
    last[:-1] = first[1:]
    coord_kind = kind[of_path]
    repeated = ~first & (coord_kind != _POINTS)
    repeated[1:] &= (x[1:] == x[:-1]) & (y[1:] == y[:-1])
    keep = ~(repeated | (last & (coord_kind == _RING)))

    n = np.bincount(of_path[keep], minlength=len(paths))
    ok = n >= np.where(kind == _POINTS, 1, 2)
    ring = kind == _RING
    exterior = ring & _starts(polygon)
    polygon_ok = np.zeros(polygon.max(initial=-1) + 1, dtype=bool)
    polygon_ok[polygon[exterior]] = ok[exterior]
    ok[ring] &= polygon_ok[polygon[ring]]
    n = np.where(ok, n, 0)
    keep &= ok[of_path]

    x, y, of_path = x[keep], y[keep], of_path[keep]
    geom_starts = _starts(path_geom[of_path])
    zx, zy = (_zigzag_deltas(v, geom_starts) for v in (x, y))

    size = np.where(kind == _POINTS, 1 + 2 * n, 2 * n + 2 + ring) * ok
    start = np.cumsum(size) - size
    rank = np.arange(len(of_path)) - (np.cumsum(n) - n)[of_path]
    slot = start[of_path] + np.where((kind[of_path] == _POINTS) | (rank == 0), 1 + 2 * rank, 2 + 2 * rank)
    commands = np.empty(size.sum(), dtype=np.int64)
    commands[slot] = zx
    commands[slot + 1] = zy
    commands[start[ok]] = np.where(kind == _POINTS, n << 3, 1 << 3)[ok] | MOVE_TO
    drawn = ok & (kind != _POINTS)
    commands[start[drawn] + 3] = ((n[drawn] - 1) << 3) | LINE_TO
    closed = ok & ring
    commands[start[closed] + size[closed] - 1] = (1 << 3) | CLOSE_PATH

    offsets = np.zeros(len(geoms) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(np.bincount(path_geom, weights=size, minlength=len(geoms)).astype(np.int64))
    return types, offsets, commands


def _paths(geoms: np.ndarray, types: np.ndarray):
    """The paths of the geometries: (path geometries, geometry index, kind, polygon number or -1).

    A point geometry is one path; a line geometry one per part; a polygon
    geometry one per ring, exterior first, rings numbered by their polygon.
    """
    point = np.flatnonzero(types == POINT)
    line = np.flatnonzero(types == LINESTRING)
    area = np.flatnonzero(types == POLYGON)
    parts, part_of = shapely.get_parts(geoms[line], return_index=True)
    polygons, polygon_of = shapely.get_parts(geoms[area], return_index=True)
    rings, ring_of = shapely.get_rings(polygons, return_index=True)
    return (np.concatenate([geoms[point], parts, rings]),
            np.concatenate([point, line[part_of], area[polygon_of[ring_of]]]),
            np.repeat([_POINTS, _LINE, _RING], [len(point), len(parts), len(rings)]),
            np.concatenate([np.full(len(point) + len(parts), -1), ring_of]))


def _zigzag_deltas(v: np.ndarray, resets: np.ndarray) -> np.ndarray:
    """Each value less the one before it (less 0 where the cursor resets), zig-zag encoded."""
    before = np.zeros_like(v)
    before[1:] = v[:-1]
    before[resets] = 0
    delta = v - before
    return (delta << 1) ^ (delta >> 63)


def _starts(group: np.ndarray) -> np.ndarray:
    """Where a run of equal values begins in `group`."""
    out = np.ones(len(group), dtype=bool)
    out[1:] = group[1:] != group[:-1]
    return out
