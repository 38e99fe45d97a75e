"""Tile math: parsing tiles and boxes, pyramids, children, metatiles.

Tiles are XYZ (y = 0 at the north) as `mercantile.Tile(x, y, z)` and written
`z/x/y`. Boxes are `west,south,east,north` in WGS84 degrees. A metatile of size
8 at `z/x/y` holds the 64 tiles at `z+3` beneath it; the `0/0/0` metatile also
holds zooms 0..2.
"""

import math
import re
from typing import NamedTuple

import mercantile
from mercantile import Tile

from .errors import BadInput

MAX_ZOOM = 20
QUEUE_ZOOM = 7
METATILE_ZOOMS = 3  # metatile size 8 = 2**3
MERCATOR_MAX_LAT = 85.0511287798066

_TILE_RE = re.compile(r"\s*([0-9]+)/([0-9]+)/([0-9]+)\s*\Z")


class InvalidTile(BadInput):
    """Raised for text that is not a tile within zoom 0..20."""


class InvalidBbox(BadInput):
    """Raised for text that is not a valid west,south,east,north box."""


class Bbox(NamedTuple):
    west: float
    south: float
    east: float
    north: float


def parse_tile(text: str) -> Tile:
    """The tile written `z/x/y`; InvalidTile says what is wrong otherwise."""
    m = _TILE_RE.match(str(text))
    if not m:
        raise InvalidTile(f"bad tile {text!r}: expected z/x/y with whole numbers, e.g. 7/73/37")
    z, x, y = (int(v) for v in m.groups())
    if z > MAX_ZOOM:
        raise InvalidTile(f"bad tile {text!r}: zoom {z} is above the maximum {MAX_ZOOM}")
    side = 1 << z
    if x >= side or y >= side:
        raise InvalidTile(f"bad tile {text!r}: at zoom {z}, x and y must be below {side}")
    return Tile(x, y, z)


def format_tile(tile: Tile) -> str:
    """`z/x/y`, the inverse of parse_tile."""
    return f"{tile.z}/{tile.x}/{tile.y}"


def parse_bbox(text: str) -> Bbox:
    """The box written `west,south,east,north`; InvalidBbox says what is wrong otherwise.

    A box across the antimeridian (west > east) is refused: give it as two
    boxes, one each side of 180°.
    """
    parts = str(text).split(",")
    if len(parts) != 4:
        raise InvalidBbox(f"bad bbox {text!r}: expected four numbers west,south,east,north")
    try:
        west, south, east, north = (float(p) for p in parts)
    except ValueError:
        raise InvalidBbox(f"bad bbox {text!r}: expected four numbers west,south,east,north") from None
    return make_bbox(west, south, east, north)


def make_bbox(west: float, south: float, east: float, north: float) -> Bbox:
    """A validated Bbox from four numbers (see parse_bbox)."""
    text = f"{west},{south},{east},{north}"
    if not all(math.isfinite(v) for v in (west, south, east, north)):
        raise InvalidBbox(f"bad bbox {text!r}: every value must be a finite number")
    for name, v in (("west", west), ("east", east)):
        if not -180 <= v <= 180:
            raise InvalidBbox(f"bad bbox {text!r}: {name} {v} is outside -180..180")
    for name, v in (("south", south), ("north", north)):
        if not -90 <= v <= 90:
            raise InvalidBbox(f"bad bbox {text!r}: {name} {v} is outside -90..90")
    if south >= north:
        raise InvalidBbox(f"bad bbox {text!r}: south {south} must be less than north {north}")
    if west >= east:
        raise InvalidBbox(
            f"bad bbox {text!r}: west {west} must be less than east {east}; "
            "for a box across the antimeridian give two boxes, one each side of 180"
        )
    return Bbox(west, south, east, north)


def bbox_tiles(bbox: Bbox, zoom: int) -> list[Tile]:
    """Every tile at `zoom` that touches the box, in (x, y) order."""
    south = max(bbox.south, -MERCATOR_MAX_LAT)
    north = min(bbox.north, MERCATOR_MAX_LAT)
    return sorted(mercantile.tiles(bbox.west, south, bbox.east, north, [zoom]), key=lambda t: (t.x, t.y))


def tile_at(lng: float, lat: float, zoom: int) -> Tile:
    """The tile at `zoom` that holds the point."""
    return mercantile.tile(lng, lat, zoom)


def ancestor(tile: Tile, zoom: int = QUEUE_ZOOM) -> Tile:
    """The tile at `zoom` that contains `tile`; a tile at or above `zoom` is its own."""
    return tile if tile.z <= zoom else mercantile.parent(tile, zoom=zoom)


def pyramid(top: int = 0, bottom: int = QUEUE_ZOOM - 1) -> list[Tile]:
    """Every tile of zooms top..bottom, zoom by zoom, each in (x, y) order."""
    return [Tile(x, y, z) for z in range(top, bottom + 1) for x in range(1 << z) for y in range(1 << z)]


def children(tile: Tile, zoom: int) -> list[Tile]:
    """The tiles at `zoom` beneath `tile` (itself when zoom == tile.z), in (x, y) order."""
    if zoom < tile.z:
        raise InvalidTile(f"zoom {zoom} is above tile {format_tile(tile)}")
    if zoom == tile.z:
        return [tile]
    n = 1 << (zoom - tile.z)
    return [Tile(tile.x * n + dx, tile.y * n + dy, zoom) for dx in range(n) for dy in range(n)]


def metatile_of(tile: Tile) -> tuple[Tile, str]:
    """The metatile that holds `tile`, and the tile's member name in it (`dz/dx/dy.mvt`)."""
    if tile.z < METATILE_ZOOMS:
        return Tile(0, 0, 0), f"{tile.z}/{tile.x}/{tile.y}.mvt"
    meta = mercantile.parent(tile, zoom=tile.z - METATILE_ZOOMS)
    n = 1 << METATILE_ZOOMS
    return meta, f"{METATILE_ZOOMS}/{tile.x - meta.x * n}/{tile.y - meta.y * n}.mvt"


def metatile_zooms(meta: Tile) -> range:
    """The tile zooms a metatile holds: 0..METATILE_ZOOMS for 0/0/0, else its zoom + METATILE_ZOOMS."""
    return range(0, METATILE_ZOOMS + 1) if meta.z == 0 else range(meta.z + METATILE_ZOOMS, meta.z + METATILE_ZOOMS + 1)


def metatile_members(meta: Tile) -> list[tuple[Tile, str]]:
    """Every (tile, member name) a metatile holds, the inverse of metatile_of."""
    out = []
    for dz in (z - meta.z for z in metatile_zooms(meta)):
        for t in children(meta, meta.z + dz):
            n = 1 << dz
            out.append((t, f"{dz}/{t.x - meta.x * n}/{t.y - meta.y * n}.mvt"))
    return out


def tile_bounds_3857(tile: Tile) -> tuple[float, float, float, float]:
    """The tile's box in EPSG:3857 metres (minx, miny, maxx, maxy)."""
    b = mercantile.xy_bounds(tile)
    return b.left, b.bottom, b.right, b.top
