"""A small store of real metatiles, for tests that need tiles but not a whole build.

Every tile is a real MVT (mapbox_vector_tile) whose feature names its own
coordinates, so a tile served or exported in the wrong place cannot pass for
the right one. Some members are left out: they are the empty tiles.
"""

import mapbox_vector_tile

from tilebatch import metatile
from tilebatch.tiles import Tile, metatile_members

# Central Helsinki: the z13 metatile holds z16 tiles over it.
METATILES = (Tile(0, 0, 0), Tile(9, 4, 4), Tile(4663, 2370, 13), Tile(4663, 2371, 13))


def encode(tile: Tile, layer: str = "places") -> bytes:
    """A one-feature tile whose `name` is the tile's own z/x/y."""
    name = f"{tile.z}/{tile.x}/{tile.y}"
    return mapbox_vector_tile.encode(
        [{"name": layer, "features": [{"geometry": "POINT(2048 2048)", "properties": {"kind": "locality", "name": name}}]}],
        default_options={"extents": 4096})


def fill(store) -> dict[Tile, bytes]:
    """Write the metatiles to `store`; every non-empty tile they hold, by tile."""
    expected = {}
    for meta in METATILES:
        members = {}
        for i, (tile, name) in enumerate(metatile_members(meta)):
            if i % 3 != 2:  # every third tile stays empty
                members[name] = expected[tile] = encode(tile)
        store.write(metatile.key(store, meta), metatile.pack(members))
    return expected


def empty_tile(meta: Tile = METATILES[2]) -> Tile:
    """A tile inside a stored metatile that holds nothing."""
    return [t for i, (t, _) in enumerate(metatile_members(meta)) if i % 3 == 2][0]
