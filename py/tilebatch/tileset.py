"""What a store holds, seen from outside: its metatiles, their tiles, and the description a map needs.

`serve` and `export` publish the same description (TileJSON's bounds, center,
zooms and `vector_layers`), worked out once here: the deepest metatiles (and
any lying elsewhere) give the bounds, their tiles the center, the metatiles'
zooms the zoom range. Tiles come out in PMTiles tile-id order (zoom, then
Hilbert curve), which is also a good order for any other consumer.
"""

import math
import re
from typing import Iterator, NamedTuple

import mercantile
from pmtiles.tile import zxy_to_tileid

from . import metatile
from .errors import BadInput
from .schema import Schema, layer_fields
from .tiles import METATILE_ZOOMS, Tile, metatile_members

ATTRIBUTION = "© OpenStreetMap contributors"
_META_KEY_RE = re.compile(r"(?:^|/)(\d+)/(\d+)/(\d+)\." + re.escape(metatile.EXT) + r"$")
# At most this many metatiles are read to find the middle of the data (data_center).
CENTER_METATILES = 16


class Description(NamedTuple):
    bounds: tuple[float, float, float, float]   # west, south, east, north
    center: tuple[float, float, int] | None    # lon, lat, zoom
    minzoom: int
    maxzoom: int


def metatiles(store) -> list[Tile]:
    """Every metatile in the store, in tile-id order.

    A key counts only if it is exactly where the store would put that
    metatile, so RAWR tiles or exports kept under the same root are not taken
    for metatiles.
    """
    found = []
    for key in store.list():
        m = _META_KEY_RE.search(key)
        if m:
            z, x, y = (int(v) for v in m.groups())
            if x < (1 << z) and y < (1 << z) and metatile.key(store, Tile(x, y, z)) == key:
                found.append(Tile(x, y, z))
    return sorted(found, key=_tile_id)


def _tile_id(tile: Tile) -> int:
    return zxy_to_tileid(tile.z, tile.x, tile.y)


def describe(store, metas: list[Tile], center: bool = True) -> Description:
    """Bounds, center and zoom range of the tiles in these metatiles; BadInput if there are none.
    `center` False leaves the center out (None): finding it reads metatiles.

    The bounds are the deepest metatiles' and those of any metatile lying
    wholly outside them: a map asks only for tiles meeting the bounds, and every
    ancestor of the data meets the data's box, but the low zooms of a world
    built besides the data (`build --world`: its sea and land) lie elsewhere.
    The center and its zoom are the data's.
    """
    if not metas:
        raise BadInput("the store holds no metatiles: build some tiles first (make demo, or tilebatch build)")
    deepest = max(m.z for m in metas)
    deep = [m for m in metas if m.z == deepest]
    deep_box = _box(deep)
    elsewhere = [m for m in metas if not _meets(mercantile.bounds(m), deep_box)]
    west, south, east, north = _box(deep + elsewhere)
    minzoom = min(0 if m.z == 0 else m.z + METATILE_ZOOMS for m in metas)
    maxzoom = deepest + METATILE_ZOOMS
    if not center:
        return Description((west, south, east, north), None, minzoom, maxzoom)
    # The zoom at which the data spans about two tiles: all of it in view.
    span = max(deep_box[2] - deep_box[0], 1e-9)
    zoom = min(max(int(math.log2(720 / span)), minzoom), maxzoom)
    lon, lat = data_center(store, metas)
    return Description((west, south, east, north), (lon, lat, zoom), minzoom, maxzoom)


DENSE_FRACTION = 64  # a tile this many times smaller than the largest holds no more than sea or land


def data_center(store, metas: list[Tile]) -> tuple[float, float]:
    """Where the data is: the middle of the tiles that hold something, at the deepest zoom whose
    metatiles number at most CENTER_METATILES (so a few reads, and to a tile of that zoom).

    The bounds of the metatiles themselves can reach far beyond the data (a
    z13 metatile is 64 z16 tiles), so their middle may be off it.
    """
    by_zoom: dict[int, list[Tile]] = {}
    for m in metas:
        by_zoom.setdefault(m.z, []).append(m)
    zoom = max((z for z, ms in by_zoom.items() if len(ms) <= CENTER_METATILES), default=min(by_zoom))
    sized = [(mercantile.bounds(t), len(members[name])) for m in by_zoom[zoom][:CENTER_METATILES]
             for members in [_members_or_none(store, m)]
             for t, name in metatile_members(m) if t.z == m.z + METATILE_ZOOMS and name in members]
    # Tiles of open sea or bare land around an extract (make water) hold a polygon or two: a
    # small fraction of the bytes of a tile of the extract's streets and buildings.
    dense = max((size for _, size in sized), default=0) / DENSE_FRACTION
    boxes = [box for box, size in sized if size >= dense]
    if not boxes:  # every tile of those metatiles is shallower: the metatiles' own middle
        boxes = [mercantile.bounds(m) for m in by_zoom[zoom]]
    return ((min(b.west for b in boxes) + max(b.east for b in boxes)) / 2,
            (min(b.south for b in boxes) + max(b.north for b in boxes)) / 2)


def _members_or_none(store, meta: Tile) -> dict[str, bytes]:
    """A metatile's members; {} for a broken one, which says nothing of where the data is
    (reading its tiles reports it)."""
    try:
        return metatile.read_members(store, meta)
    except BadInput:
        return {}


def _meets(b: mercantile.LngLatBbox, box: tuple) -> bool:
    return b.west < box[2] and b.east > box[0] and b.south < box[3] and b.north > box[1]


def _box(metas: list[Tile]) -> tuple[float, float, float, float]:
    boxes = [mercantile.bounds(m) for m in metas]
    return (min(b.west for b in boxes), min(b.south for b in boxes),
            max(b.east for b in boxes), max(b.north for b in boxes))


def vector_layers(desc: Description, schema: Schema) -> list[dict]:
    """TileJSON `vector_layers`: one entry per layer of the schema, with its fields."""
    return [{"id": layer.name, "fields": layer_fields(layer), "minzoom": desc.minzoom, "maxzoom": desc.maxzoom}
            for layer in schema.layers]


def schema_metadata(schema: Schema) -> dict:
    """Which schema the tiles follow, as TileJSON and export metadata carry it."""
    return {"name": schema.name, "digest": schema.digest}


def tiles(store, metas) -> Iterator[tuple[Tile, bytes]]:
    """(tile, MVT bytes) for every non-empty tile of these metatiles, given in tile-id order as `metatiles` lists them.

    Tile ids run zoom by zoom along a Hilbert curve, and the tiles under one
    metatile are a contiguous stretch of it; so metatiles taken in tile-id
    order, each one's tiles sorted, give every tile in order with only one
    metatile in memory.
    """
    for meta in metas:
        members = metatile.read_members(store, meta)
        for tile, name in sorted(metatile_members(meta), key=lambda tn: _tile_id(tn[0])):
            if members.get(name):
                yield tile, members[name]
