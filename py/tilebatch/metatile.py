"""Metatiles: one zip per metatile holding its finished tiles as `dz/dx/dy.mvt`.

Entries carry a fixed timestamp and are sorted by name, so the same tiles give
byte-identical zips. Empty tiles are left out (absent means empty to the
serving side), and a metatile with no tiles at all is not written.
"""

import io
import zipfile

from .tiles import Tile, metatile_of

EXT = "zip"
_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can carry


def pack(members: dict[str, bytes]) -> bytes:
    """A zip of the non-empty members, in name order, with fixed timestamps."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name in sorted(members):
            if members[name]:
                info = zipfile.ZipInfo(name, _EPOCH)
                info.compress_type = zipfile.ZIP_DEFLATED
                info.external_attr = 0o644 << 16
                z.writestr(info, members[name])
    return buf.getvalue()


def unpack(data: bytes) -> dict[str, bytes]:
    """Every member of a metatile zip, by name."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {name: z.read(name) for name in z.namelist()}


def key(store, meta: Tile) -> str:
    """The store key of the metatile at `meta`."""
    return store.tile_key(meta, EXT)


def read_tile(store, tile: Tile) -> bytes:
    """One tile's MVT bytes from its metatile; b"" when the tile or its metatile is empty."""
    meta, member = metatile_of(tile)
    data = store.read(key(store, meta))
    return unpack(data).get(member, b"") if data else b""
