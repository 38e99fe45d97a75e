"""Rendering: rows to layered features, features to MVT tiles and metatiles.

Both paths meet here. Rows (`(id, WKB, tags)`, from a RAWR tile or from
PostGIS) are classified once into per-layer feature sets with a spatial index;
each tile then takes its candidates, and clips, simplifies, moves to tile units
and snaps them to the grid in a handful of vectorised shapely calls for all its
features at once, before `mvt` encodes them all in one go (MVT 2.1, extent 4096).
"""

import itertools
from typing import Iterable, NamedTuple

import numpy as np
import shapely

from . import classify, metatile, mvt
from .schema import Schema, min_area, simplify_tolerance
from .tiles import Tile, metatile_members, tile_bounds_3857

EXTENT = mvt.EXTENT
ROWS_AT_ONCE = 2000  # rows classified at a time (collect)
BUFFER = 64  # tile units kept around each tile, so lines and labels meet across tile edges
_DRAWABLE = [shapely.GeometryType.POINT, shapely.GeometryType.LINESTRING, shapely.GeometryType.POLYGON,
             shapely.GeometryType.MULTIPOINT, shapely.GeometryType.MULTILINESTRING, shapely.GeometryType.MULTIPOLYGON]


class LayerFeatures(NamedTuple):
    """One layer's features, in the order tiles write them, indexed for many tiles."""

    geoms: np.ndarray       # shapely geometries, EPSG:3857
    min_zoom: np.ndarray
    max_zoom: np.ndarray
    area: np.ndarray        # osm2pgsql's way_area, inf where there is none
    props: mvt.Properties
    ids: np.ndarray
    tree: shapely.STRtree


class _Chunk(NamedTuple):
    """Some of a layer's features, from one batch of one table's rows: the table, then parallel arrays."""

    table: int              # the table's place in the schema: feature order does not depend on the path
    geoms: np.ndarray
    min_zoom: np.ndarray
    max_zoom: np.ndarray
    area: np.ndarray        # osm2pgsql's way_area, inf where there is none
    ids: np.ndarray
    props: np.ndarray       # dicts, as classify made them
    zooms: np.ndarray       # dicts or None


def _label_points(tags_of: list[dict], geoms: np.ndarray) -> np.ndarray:
    """Each row's label point where the database gave one (classify.LABEL_KEY), else its geometry."""
    out = geoms.copy()
    have = [i for i, tags in enumerate(tags_of) if classify.LABEL_KEY in tags]
    if have:
        xy = np.array([tags_of[i][classify.LABEL_KEY].split() for i in have], dtype=float)
        out[have] = shapely.points(xy)
    return out


def collect(schema: Schema, rows_by_table: Iterable[tuple[str, Iterable]],
            last_zoom: int | None = None) -> list[LayerFeatures | None]:
    """Classify rows into per-layer features (None for a layer with none).

    Within a layer, features are ordered by the layer's `sort` keys, then by
    table in schema order, then in the order of their rows (ids ascending):
    the same on both paths, whichever order they read the tables in.
    `last_zoom`: the features go into no tile deeper (classify leaves out
    what appears only there).
    """
    chunks = [[] for _ in schema.layers]
    last_zoom = schema.max_zoom if last_zoom is None else last_zoom
    for table, rows in rows_by_table:
        rows = iter(rows)
        # A batch of rows at a time: a row's tags and WKB are let go once its
        # features are made, so a dense tile's rows are never all held at once.
        while batch := list(itertools.islice(rows, ROWS_AT_ONCE)):
            _add_rows(schema, table, batch, chunks, last_zoom)
    return [_layer_features(layer, c) if c else None for layer, c in zip(schema.layers, chunks)]


def _shapes(wkbs: list, tags_of: list[dict], modes: set) -> dict:
    """The rows' geometries, and those of each of `modes` (boundary, label) made of them."""
    geoms = shapely.from_wkb(wkbs)
    return {None: geoms, **{mode: shapely.boundary(geoms) if mode == "boundary" else _label_points(tags_of, geoms)
                            for mode in modes}}


def _objects(items) -> np.ndarray:
    """A one-dimensional array of these objects (dicts stay whole)."""
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


def _add_rows(schema: Schema, table: str, rows: list, chunks: list[list[_Chunk]], last_zoom: int) -> None:
    """Classify rows of one table and add a chunk of their features to each layer they go into, in row order.

    Rows are classified one by one; the rest is done for the batch at once:
    the matches are taken apart field by field and dealt to their layers.
    """
    classify_row = classify.table_rules(schema, table).classify
    kept, matches, row_of = [], [], []  # rows with features; their matches; each match's place in kept
    for row in rows:
        found = classify_row(row[2], row[0], last_zoom)
        if found:
            row_of += [len(kept)] * len(found)
            kept.append(row)
            matches += found
    if not kept:
        return
    row_ids, wkbs, tags_of = zip(*kept)
    layer, min_zoom, max_zoom, geometry, props, zooms = zip(*matches)
    shapes = _shapes(wkbs, tags_of, set(geometry) - {None})
    row_of, geometry = np.array(row_of), _objects(geometry)
    geoms = shapes[None][row_of]  # each match's geometry: its row's, or that drawn as a boundary, a label point
    for mode in shapes.keys() - {None}:
        these = geometry == mode
        geoms[these] = shapes[mode][row_of[these]]
    area = np.array([float(tags.get("way_area", "inf")) for tags in tags_of])[row_of]
    ids = np.array([abs(row_id) for row_id in row_ids], dtype=np.uint64)[row_of]
    layer, min_zoom, max_zoom, props, zooms = (np.array(layer), np.array(min_zoom), np.array(max_zoom),
                                               _objects(props), _objects(zooms))
    order = np.argsort(layer, kind="stable")  # layer by layer, rows in order
    cuts = np.searchsorted(layer[order], np.arange(len(schema.layers) + 1)).tolist()
    table_place = list(schema.tables).index(table)
    for i, (start, end) in enumerate(zip(cuts, cuts[1:])):
        if start < end:
            idx = order[start:end]
            chunks[i].append(_Chunk(table_place, geoms[idx], min_zoom[idx], max_zoom[idx], area[idx], ids[idx],
                                    props[idx], zooms[idx]))


def _layer_features(layer, chunks: list[_Chunk]) -> LayerFeatures:
    """The layer's features in the order tiles write them, properties interned, names starting with _ left out.

    They are interned before they are sorted: sorting reorders the interned
    pairs, and a tile numbers its keys and values afresh in the order it
    writes them.
    """
    # Table by table (a stable sort: each table's chunks stay in the order they came),
    # so features the sort keys leave tied keep their place: by table, then by row.
    chunks = sorted(chunks, key=lambda chunk: chunk.table)
    min_zoom, max_zoom, area, ids, props, zooms = (np.concatenate([getattr(chunk, field) for chunk in chunks])
                                                   for field in ("min_zoom", "max_zoom", "area", "ids", "props",
                                                                 "zooms"))
    props = mvt.properties(props, zooms)
    keys = [np.arange(len(ids))]
    for key, descending in reversed(layer.sort):  # rows without the property (or not a number) go last
        number, missing = props.numbers(key)
        keys += [-number if descending else number, missing]
    order = np.lexsort(keys)
    props = props.take(order)
    geoms = np.concatenate([chunk.geoms for chunk in chunks])[order]
    return LayerFeatures(geoms, min_zoom[order], max_zoom[order], area[order],
                         props.without([k for k in props.keys if k.startswith("_")]), ids[order],
                         shapely.STRtree(geoms))


def _to_tile_units(box: tuple):
    minx, _, maxx, maxy = box
    scale = EXTENT / (maxx - minx)

    def move(coords: np.ndarray) -> np.ndarray:
        return np.column_stack(((coords[:, 0] - minx) * scale, (maxy - coords[:, 1]) * scale))

    return move


def clip_box(tile: Tile) -> tuple:
    """The box a tile's features are clipped to: the tile and its buffer, EPSG:3857."""
    minx, miny, maxx, maxy = tile_bounds_3857(tile)
    pad = (maxx - minx) * BUFFER / EXTENT
    return minx - pad, miny - pad, maxx + pad, maxy + pad


def candidates(features: list[LayerFeatures | None], tiles: list[Tile]) -> list[list[np.ndarray | None]]:
    """For each tile, each layer's features whose bounding box meets the tile's clip box, in layer order.

    None for a layer with no features. One spatial index query a layer serves
    all the tiles: a metatile's 64 tiles, most of them empty where data is
    sparse, cost one query, not 64.
    """
    boxes = shapely.box(*np.array([clip_box(t) for t in tiles]).reshape(-1, 4).T)
    near = [[] for _ in tiles]
    for feats in features:
        if feats is None:
            parts = [None] * len(tiles)
        else:
            tile_of, idx = feats.tree.query(boxes)
            order = np.lexsort((idx, tile_of))
            tile_of, idx = tile_of[order], idx[order]
            cuts = np.searchsorted(tile_of, np.arange(len(tiles) + 1)).tolist()
            parts = [idx[start:end] for start, end in zip(cuts, cuts[1:])]
        for tile_near, part in zip(near, parts):
            tile_near.append(part)
    return near


_POLYGONAL = (shapely.GeometryType.POLYGON, shapely.GeometryType.MULTIPOLYGON)
_POINTS = (shapely.GeometryType.POINT, shapely.GeometryType.MULTIPOINT)
_LINES = (shapely.GeometryType.LINESTRING, shapely.GeometryType.MULTILINESTRING)
_SINGLE = (shapely.GeometryType.POINT, shapely.GeometryType.LINESTRING, shapely.GeometryType.POLYGON)
_SMALL_POLYGON = 64  # square tile units: below it, snap-rounding in full decides what is left of a polygon


def _clipped(geoms: np.ndarray, box: tuple) -> np.ndarray:
    """The geometries clipped to the box, polygons that crossed its edge in GEOS's normal form.

    Clipping rebuilds a polygon's rings from where its rings start, and a RAWR
    tile's copy of a large polygon (cut at the RAWR tile's edge) starts them
    elsewhere than the database's row: normalized, the parts, rings and first
    points are the same on both paths, and so are the simplified result and
    the tile's bytes. Only polygons crossing the edge are normalized: the
    others come out of clipping as they went in, and a line's direction is
    its meaning (one-way streets).
    """
    bounds, type_id = shapely.bounds(geoms), shapely.get_type_id(geoms)
    low, high = bounds[:, :2] - box[:2], box[2:] - bounds[:, 2:]  # each side's distance in from the box's
    crossing = ~((low >= 0).all(axis=1) & (high >= 0).all(axis=1)) & np.isin(type_id, _POLYGONAL)
    # GEOS's clip returns a copy of a geometry of one part strictly inside the box: the
    # copy costs as much as the clip of the rest, most of a tile's features, and is
    # left out. (It returns a multi-part geometry of one part as that part, so those
    # go through it.)
    cut = ~((low > 0).all(axis=1) & (high > 0).all(axis=1) & np.isin(type_id, _SINGLE))
    geoms = geoms.copy()
    geoms[cut] = shapely.clip_by_rect(geoms[cut], *box)
    if crossing.any():
        geoms[crossing] = shapely.normalize(geoms[crossing])
    return geoms


def _round_half_up(coords: np.ndarray) -> np.ndarray:
    """Coordinates rounded to whole numbers, a half up, as GEOS rounds them to a grid (java_math_round).

    `coords - floor` is exact in floating point, so the halves are those GEOS sees.
    """
    whole = np.floor(coords)
    return whole + (coords - whole >= 0.5)


def _on_grid(geoms: np.ndarray, to_tile) -> np.ndarray:
    """The geometries moved into tile units by `to_tile` (a coordinate function) and put on the tile's
    integer grid.

    Every geometry is rounded point by point as it is moved, in one pass of
    its coordinates. That is all a point or a line needs (a line keeps a
    point it now repeats, which tiles do not write); a line that collapses to
    a point is snap-rounded, which leaves it empty. Snap-rounding a polygon in
    full, so that no ring crosses another on the grid, costs ten times as
    much and is seldom needed: a polygon that rounding point by point leaves
    valid and of some size keeps that; the rest (rings that cross or
    collapse, slivers, polygons of a few grid squares, which collapse rather
    than stay as a triangle of the grid) are moved again and snap-rounded in
    full. Simplifying a polygon with holes (the ocean around islands) can
    leave a hole crossing its shell, which snapping cannot take: only then
    are the invalid ones mended first, so tiles that never needed it cost
    nothing more. A multi-point is snap-rounded too: that drops the points
    it comes to repeat.
    """
    out = shapely.transform(geoms, lambda coords: _round_half_up(to_tile(coords)))
    type_id = shapely.get_type_id(geoms)
    multipoint = type_id == shapely.GeometryType.MULTIPOINT
    out[multipoint] = shapely.set_precision(out[multipoint], 1.0)
    lines = np.flatnonzero(np.isin(type_id, _LINES))
    collapsed = lines[shapely.length(out[lines]) == 0]
    out[collapsed] = shapely.set_precision(shapely.transform(geoms[collapsed], to_tile), 1.0)
    polygonal = np.flatnonzero(np.isin(type_id, _POLYGONAL))
    redo = shapely.area(out[polygonal]) < _SMALL_POLYGON  # redone whatever they are: only the others are checked
    redo[~redo] = ~shapely.is_valid(out[polygonal[~redo]])
    if redo.any():
        polygons = shapely.transform(geoms[polygonal[redo]], to_tile)
        try:
            out[polygonal[redo]] = shapely.set_precision(polygons, 1.0)
        except shapely.errors.GEOSException:
            bad = ~shapely.is_valid(polygons)
            polygons[bad] = shapely.make_valid(polygons[bad], method="structure", keep_collapsed=False)
            out[polygonal[redo]] = shapely.set_precision(polygons, 1.0)
    return out


def tile_layers(schema: Schema, features: list[LayerFeatures | None], tile: Tile,
                near: list[np.ndarray | None] | None = None) -> list[mvt.TileLayer]:
    """The layers of one tile, ready to encode: geometry clipped, simplified, in tile units.

    `near` is the tile's `candidates` when they are already known. Only layers
    with features are listed. Geometry that clipping leaves empty, or turns
    into a collection, is left out.
    """
    box = clip_box(tile)
    near = near if near is not None else candidates(features, [tile])[0]
    picked, tolerance = [], []
    for i, (layer, feats, idx) in enumerate(zip(schema.layers, features, near)):
        if feats is None or not len(idx):
            continue
        idx = idx[(feats.min_zoom[idx] <= tile.z) & (feats.max_zoom[idx] >= tile.z)
                  & (feats.area[idx] >= min_area(layer, tile.z))]
        if len(idx):
            picked.append((i, idx))
            tolerance.append(np.full(len(idx), simplify_tolerance(schema, layer, tile.z)))
    if not picked:
        return []
    geoms = _clipped(np.concatenate([features[i].geoms[idx] for i, idx in picked]), box)
    # A point has nothing to simplify, nor has a layer without a tolerance at this
    # zoom. A line is simplified by Douglas-Peucker, a fifth of the cost of
    # keeping its topology, which only a polygon needs (a line that comes to
    # cross itself draws the same; a ring must not). Douglas-Peucker keeps a
    # line's ends, so a line of two points (a third of a city's at z14) would
    # come out as itself (a multi-line of one part as that part, which a tile
    # writes alike), and is left as it is.
    type_id, tolerance = shapely.get_type_id(geoms), np.concatenate(tolerance)
    simplified = (tolerance > 0) & (shapely.get_num_coordinates(geoms) > 2)
    for shaped, keep_topology in ((simplified & np.isin(type_id, _LINES), False),
                                  (simplified & np.isin(type_id, _POLYGONAL), True)):
        geoms[shaped] = shapely.simplify(geoms[shaped], tolerance[shaped], preserve_topology=keep_topology)
    geoms = _on_grid(geoms, _to_tile_units(tile_bounds_3857(tile)))
    type_id = shapely.get_type_id(geoms)
    polygonal = np.isin(type_id, _POLYGONAL)  # orienting another geometry would copy it
    geoms[polygonal] = shapely.orient_polygons(geoms[polygonal], exterior_cw=False)
    keep = ~shapely.is_empty(geoms) & np.isin(type_id, _DRAWABLE)
    out, offset = [], 0
    for i, idx in picked:
        feats, n = features[i], len(idx)
        kept = keep[offset:offset + n]
        if kept.any():
            idx = idx[kept]
            layer = mvt.TileLayer(schema.layers[i].name, geoms[offset:offset + n][kept],
                              feats.props.take(idx, tile.z), feats.ids[idx])
            out.append(merge_lines(layer) if tile.z < schema.layers[i].merge_below else layer)
        offset += n
    return out


def merge_lines(layer: mvt.TileLayer) -> mvt.TileLayer:
    """The layer with its lines of equal properties merged: one feature each, where its first one was.

    At low zooms a road is dozens of ways with the same properties; one
    feature of joined lines draws the same, labels better, and costs a
    fraction of the bytes. Points and polygons stay as they are; a merged
    feature keeps the id of its first way.
    """
    props, n = layer.props, len(layer.geoms)
    # Each feature's pairs (key, value group) as one row of numbers, padded; a feature
    # that is no line ends its row with its own index, so it stays alone.
    counts = np.diff(props.offsets)
    pairs = props.key_of.astype(np.int64) * (int(props.group.max(initial=0)) + 1) + props.group[props.value_of]
    width = int(counts.max(initial=0))
    rows = np.full((n, width + 1), -1, dtype=np.int64)
    rows[np.repeat(np.arange(n), counts), np.arange(len(pairs)) - np.repeat(props.offsets[:-1], counts)] = pairs
    alone = ~np.isin(shapely.get_type_id(layer.geoms), _LINES)
    rows[alone, width] = np.flatnonzero(alone)
    # Equal rows side by side, each run in feature order (lexsort is stable; np.unique's
    # rows are ten times slower), numbered in the order of their first features.
    ranked = np.lexsort(rows.T[::-1])
    starts = np.ones(n, dtype=bool)
    starts[1:] = (rows[ranked[1:]] != rows[ranked[:-1]]).any(axis=1)
    if starts.all():
        return layer
    firsts = np.sort(ranked[starts])  # merged features where their first ones were
    group = np.empty(n, dtype=np.int64)
    group[ranked] = np.searchsorted(firsts, ranked[starts])[np.cumsum(starts) - 1]
    geoms = layer.geoms[firsts].copy()
    several = np.bincount(group, minlength=len(firsts)) > 1
    members = np.argsort(group, kind="stable")  # group by group, each in feature order
    members = members[several[group[members]]]
    parts, part_of = shapely.get_parts(layer.geoms[members], return_index=True)
    merged_of = (np.cumsum(several) - 1)[group[members]][part_of]
    geoms[several] = shapely.line_merge(shapely.multilinestrings(parts, indices=merged_of))
    return mvt.TileLayer(layer.name, geoms, props.take(firsts), None if layer.ids is None else layer.ids[firsts])


def render_tile(schema: Schema, features: list[LayerFeatures | None], tile: Tile,
                near: list[np.ndarray | None] | None = None) -> tuple[bytes, int]:
    """The MVT bytes of one tile and its feature count; b"" when nothing falls in it."""
    tile_layers_ = tile_layers(schema, features, tile, near)
    if not tile_layers_:
        return b"", 0
    return mvt.encode(tile_layers_), sum(len(layer.geoms) for layer in tile_layers_)


def render_metatile(schema: Schema, features: list[LayerFeatures | None], meta: Tile,
                    zoom: int | None = None) -> tuple[dict[str, bytes], int]:
    """The non-empty tiles of a metatile by member name, and their feature count.

    `zoom` limits it to the members at that tile zoom (the 0/0/0 metatile holds
    four zooms, each built from its own zoom's rows on the PostGIS path).
    """
    wanted = [(tile, name) for tile, name in metatile_members(meta) if zoom is None or tile.z == zoom]
    members, count = {}, 0
    for (tile, name), near in zip(wanted, candidates(features, [tile for tile, _ in wanted])):
        data, n = render_tile(schema, features, tile, near)
        if data:
            members[name] = data
            count += n
    return members, count


def write_metatile(store, meta: Tile, members: dict[str, bytes]) -> bool:
    """Write a metatile that has any tiles; an empty one is not written (absent means empty).

    A metatile that has become empty since an earlier build is deleted, so a
    rebuild never leaves stale tiles behind.
    """
    key = metatile.key(store, meta)
    if not members:
        if store.exists(key):
            store.delete(key)
        return False
    store.write(key, metatile.pack(members))
    return True
