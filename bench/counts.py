"""What a set of tiles holds: tiles, features and MVT bytes, by zoom and by layer.

    .venv/bin/python -m bench.counts FILE.mbtiles      tiles tilemaker wrote
    .venv/bin/python -m bench.counts file:///path      metatiles tilebatch wrote (a store URL)

prints features per layer and zoom in the layout of the Shortbread reference's
layer-counts.txt, so the two can be put side by side. Bytes are those of the
MVT tiles themselves, uncompressed (tilemaker gzips its tiles, tilebatch's
metatile zips deflate theirs), so both sides count the same thing; features
count a MultiPoint as its points (layer_features says why).
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

POINT = vector_tile_pb2.tile.Point


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
    """Features per layer of one MVT tile, a MultiPoint counting as its points, without decoding geometry.

    tilemaker 3 merges the points of a layer that have the same attributes
    into one MultiPoint feature; the reference build and tilebatch write them
    one by one. Counting points keeps the counts comparable: a point
    feature's geometry starts with one MoveTo whose count is its points.
    """
    tile = vector_tile_pb2.tile()
    tile.ParseFromString(data)
    return {layer.name: sum(f.geometry[0] >> 3 if f.type == POINT and f.geometry else 1 for f in layer.features)
            for layer in tile.layers}


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
