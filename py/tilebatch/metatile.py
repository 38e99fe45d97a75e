"""Metatiles: one zip per metatile holding its finished tiles as `dz/dx/dy.mvt`.

Entries carry a fixed timestamp and are sorted by name, so the same tiles give
byte-identical zips. Empty tiles are left out (absent means empty to the
serving side), and a metatile with no tiles at all is not written: so a
metatile that is there but does not open, even an empty file, is corrupt.
"""

import io
import zipfile
import zlib

from . import faults, zips
from .errors import BadInput
from .tiles import Tile, format_tile, metatile_of

EXT = "zip"


def pack(members: dict[str, bytes]) -> bytes:
    """A zip of the non-empty members, in name order, with fixed timestamps."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name in sorted(members):
            if members[name]:
                z.writestr(zips.member(name), members[name])
    return buf.getvalue()


def unpack(data: bytes) -> dict[str, bytes]:
    """Every member of a metatile zip, by name."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return {name: z.read(name) for name in z.namelist()}


def key(store, meta: Tile) -> str:
    """The store key of the metatile at `meta`."""
    return store.tile_key(meta, EXT)


def read_members(store, meta: Tile) -> dict[str, bytes]:
    """The tiles in one metatile by member name; {} when it is not in the store (nothing there).

    A metatile that is there but not a whole zip (0 bytes included: an empty
    metatile is never written) is corrupt: BadInput naming it, and how to rebuild it.
    """
    name = key(store, meta)
    data = store.read(name)
    if data is None:
        return {}
    try:
        return unpack(data)
    except (zipfile.BadZipFile, zlib.error, EOFError) as e:
        raise BadInput(f"metatile {name} in {store.url} is corrupt ({faults.first_line(e)}): rebuild it with "
                       f"`echo {format_tile(meta)} | tilebatch rebuild --file -`") from None


def read_tile(store, tile: Tile) -> bytes:
    """One tile's MVT bytes from its metatile; b"" when the tile or its metatile is empty."""
    meta, member = metatile_of(tile)
    return read_members(store, meta).get(member, b"")
