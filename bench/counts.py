"""What a set of tiles holds: tiles, features and MVT bytes, by zoom and by layer.

    .venv/bin/python -m bench.counts FILE.mbtiles      tiles tilemaker wrote
    .venv/bin/python -m bench.counts file:///path      metatiles tilebatch wrote (a store URL)

prints features per layer and zoom in the layout of the Shortbread reference's
layer-counts.txt, so the two can be put side by side (that file counts MVT
features; these count a multi-geometry as its parts, points, lines or
polygons: layer_features says why). Bytes are those of the MVT tiles
themselves, uncompressed (tilemaker gzips its tiles, tilebatch's metatile
zips deflate theirs), so both sides count the same thing.
"""

import gzip
import sqlite3
import sys
from collections import Counter
from typing import Iterable, NamedTuple

from mapbox_vector_tile.Mapbox import vector_tile_pb2

from tilebatch import config, metatile
from tilebatch.store import metatile_store
from tilebatch.tiles import metatile_members, parse_tile

POINT, LINESTRING, POLYGON = vector_tile_pb2.tile.Point, vector_tile_pb2.tile.LineString, vector_tile_pb2.tile.Polygon
MOVE_TO, CLOSE_PATH = 1, 7


class Summary(NamedTuple):
    tiles: Counter      # zoom -> tiles
    features: Counter   # (layer, zoom) -> features
    bytes: Counter      # zoom -> MVT bytes

    def total(self, lo: int = 0, hi: int = 99) -> dict:
        """Tiles, features and bytes over zooms lo..hi."""
        return {"tiles": sum(n for z, n in self.tiles.items() if lo <= z <= hi),
                "features": sum(n for (_, z), n in self.features.items() if lo <= z <= hi),
                "bytes": sum(n for z, n in self.bytes.items() if lo <= z <= hi)}


def layer_features(data: bytes) -> dict[str, int]:
    """Features per layer of one MVT tile, a multi-geometry counting as its parts.

    Producers split content into features differently: tilemaker 3 merges
    the points of a layer that have the same attributes into one MultiPoint
    feature, where the Shortbread reference build writes them one by one;
    tilebatch joins a tile's lines of equal properties into one
    MultiLineString, where tilemaker joins only neighbours. Counting points,
    lines and polygons (exterior rings) keeps the counts comparable.
    """
    tile = vector_tile_pb2.tile()
    tile.ParseFromString(data)
    return {layer.name: sum(geometry_parts(f.type, f.geometry) for f in layer.features) for layer in tile.layers}


def geometry_parts(kind: int, geometry) -> int:
    """Points, lines or polygons in one feature's MVT geometry commands.

    A point feature starts with one MoveTo whose count is its points; each
    line starts with a MoveTo. Each polygon starts with an exterior ring,
    told from a hole by its winding: that of the feature's first ring, as
    MapLibre reads them (tilemaker 3.1 winds its simplified rings against
    the MVT spec), rings with no area left aside.
    """
    if kind == POINT:
        return geometry[0] >> 3 if geometry else 0
    if kind == LINESTRING:
        return sum(1 for i in _commands(geometry) if geometry[i] & 7 == MOVE_TO)
    parts, i, first = 0, 0, 0
    x = y = x0 = y0 = area = 0  # the cursor, the ring's start, and twice its signed area so far
    while i < len(geometry):
        command, count = geometry[i] & 7, geometry[i] >> 3
        i += 1
        if command == CLOSE_PATH:
            area += (x0 - x) * (y0 + y)  # the ring's closing edge, back to its start
            first = first or area
            parts += area * first > 0
            continue
        if command == MOVE_TO:
            area = 0
        for _ in range(count):
            dx, dy = geometry[i], geometry[i + 1]
            i += 2
            nx, ny = x + ((dx >> 1) ^ -(dx & 1)), y + ((dy >> 1) ^ -(dy & 1))
            if command == MOVE_TO:
                x0, y0 = nx, ny
            else:
                area += (nx - x) * (ny + y)
            x, y = nx, ny
    return parts


def _commands(geometry):
    """Where each command of MVT geometry commands is, skipping their coordinates."""
    i = 0
    while i < len(geometry):
        yield i
        i += 1 + (2 * (geometry[i] >> 3) if geometry[i] & 7 != CLOSE_PATH else 0)


def summarize(tiles: Iterable[tuple[int, bytes]]) -> Summary:
    """The Summary of (zoom, tile bytes) pairs; empty tiles are not counted."""
    out = Summary(Counter(), Counter(), Counter())
    for z, data in tiles:
        if not data:
            continue
        raw = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
        out.tiles[z] += 1
        out.bytes[z] += len(raw)
        for layer, n in layer_features(raw).items():
            out.features[layer, z] += n
    return out


def mbtiles_tiles(path: str) -> Iterable[tuple[int, bytes]]:
    """(zoom, tile bytes) of every tile in an .mbtiles file."""
    conn = sqlite3.connect(path)
    try:
        yield from conn.execute("SELECT zoom_level, tile_data FROM tiles")
    finally:
        conn.close()


def store_tiles(store) -> Iterable[tuple[object, bytes]]:
    """(tile, MVT bytes) of every tile in a store's metatiles (RAWR tiles and run records left aside)."""
    for key in sorted(store.list()):
        if not key.endswith("." + metatile.EXT) or key.startswith(("rawr/", "runs/")):
            continue
        names = {name: tile for tile, name in metatile_members(parse_tile(key[:-len(metatile.EXT) - 1]))}
        for name, data in metatile.unpack(store.read(key)).items():
            yield names[name], data


def table(s: Summary) -> str:
    """Features per layer and zoom, with a tiles row and totals, as layer-counts.txt lays them out."""
    zooms = range(0, max(list(s.tiles) + [14]) + 1)
    layers = sorted({layer for layer, _ in s.features})
    header = "layer \\ zoom".ljust(24) + "".join(f"{f'z{z}':>8}" for z in zooms) + f"{'total':>8}"

    def row(name: str, per_zoom) -> str:
        cells = [per_zoom(z) for z in zooms]
        return f"{name:<24}" + "".join(f"{c or '.':>8}" for c in cells) + f"{sum(cells):>8}"

    lines = [header, row("(tiles)", lambda z: s.tiles[z])]
    lines += [row(layer, lambda z, layer=layer: s.features[layer, z]) for layer in layers]
    lines.append(row("total", lambda z: sum(n for (_, zz), n in s.features.items() if zz == z)))
    lines.append(row("(MVT bytes)", lambda z: s.bytes[z]))
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    where = argv[0]
    if "://" in where:
        tiles = ((t.z, data) for t, data in store_tiles(metatile_store(config.load(None, {"TILEQUEUE__store__url": where}))))
    else:
        tiles = mbtiles_tiles(where)
    print(table(summarize(tiles)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
