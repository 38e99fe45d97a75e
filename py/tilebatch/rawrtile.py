"""RAWR tiles: what the rawr job writes and the meta-high job reads.

A RAWR tile holds the raw rows of the source tables that touch one z10 tile
(plus a margin) and that some rule of the schema may hold for, with the tags
its rules read (postgis.Tables.rows): a zip with one member per table, each a
msgpack stream of `[id, WKB, tags]` records in id order, compressed with zstd
(the member stored as it is). The high zooms are built from these alone, with
no database. Geometry is clipped to the tile and its margin, so a
continent-sized polygon does not travel whole into every tile it touches; the
margin is wider than any tile buffer at z13..z16, so the clip never shows.

The zip's comment names the format and the choice of rows and tags (a digest
of the tables it holds, each one's condition and the tags its rules read): a
schema whose rules choose the same rows and read the same tags reads it, so a
change of kinds, properties or zooms needs no new RAWR tiles unless it changes
which rows a RAWR tile holds or reads another tag; a reader whose schema
chooses other rows or tags, or a tile of an older format, stops
(bad input: rebuilding the RAWR tile mends it) rather than make tiles without
the rows it lacks.

Apart from the job (rawr.py), so that meta-high, which never connects, does
not load the database driver.
"""

import hashlib
import io
import itertools
import json
import zipfile
from typing import Iterable, Iterator

import msgpack
import zstandard

from . import faults, sqlfilter, zips
from .errors import BadInput
from .schema import Schema, last_zoom, tags_read
from .tiles import METATILE_ZOOMS, Tile, ancestor, format_tile, tile_bounds_3857

MARGIN = 1 / 64  # of the tile's side, on each side
EXT = "zip"
_WRITE_CHUNK = 1 << 20  # bytes of packed records a member write takes
# zstd at its default level, not zip's deflate: on the densest 16x RAWR tile (10 MB
# of records) deflate's fastest level took 0.09 CPU-seconds for 4.8 MB and 0.02 to
# inflate, zstd takes 0.02 for 1.8 MB and 0.006 to decompress. A RAWR tile is read
# only by meta-high, so no other zip reader needs to know zstd.
COMPRESS_LEVEL = 3
# 2: only the rows some rule of the schema may hold for, and the zip's comment says which.
# 3: and only the tags its rules read.
# 4: members compressed with zstd.
FORMAT = 4


def rawr_box(tile: Tile) -> tuple:
    """The box a RAWR tile's rows are clipped to: the tile and its margin, EPSG:3857."""
    minx, miny, maxx, maxy = tile_bounds_3857(tile)
    pad = (maxx - minx) * MARGIN
    return minx - pad, miny - pad, maxx + pad, maxy + pad


def held_tables(schema: Schema, zoom: int) -> list[str]:
    """The keys of the tables a RAWR tile at `zoom` holds rows of: those some rule shows at the zooms built
    from it (zoom + METATILE_ZOOMS on; not the simplified sea and land, up to z7)."""
    return [key for key in sorted(schema.tables) if last_zoom(schema, key) >= zoom + METATILE_ZOOMS]


_STAMPS: dict[tuple, bytes] = {}  # (schema digest, zoom) -> its stamp: a job stamps or checks its RAWR tiles with one


def stamp(schema: Schema, zoom: int) -> bytes:
    """A RAWR zip's comment at `zoom`: the format, and which rows and tags the schema chooses (the tables
    it holds, each one's condition from sqlfilter.sql_candidates and the tags its rules read)."""
    if (schema.digest, zoom) not in _STAMPS:
        choice = [(schema.tables[key].name, sqlfilter.sql_candidates(schema, key) or "TRUE",
                   sorted(keys), prefixes) for key in held_tables(schema, zoom)
                  for keys, prefixes in [tags_read(schema, key)]]
        digest = hashlib.sha256(json.dumps(choice).encode()).hexdigest()[:16]
        _STAMPS[schema.digest, zoom] = f"tilebatch RAWR {FORMAT} rows {digest}".encode()
    return _STAMPS[schema.digest, zoom]


def pack(tables: dict[str, Iterable], schema: Schema, zoom: int) -> tuple[bytes, int]:
    """A RAWR zip at `zoom` of the tables' records (chosen by `schema`), members in name order, and how many
    records it holds.

    Records stream from the iterables into compressed members, so a job holds
    the zip, not the rows; a table with no records gets no member.
    """
    buf, count = io.BytesIO(), 0
    compressor = zstandard.ZstdCompressor(level=COMPRESS_LEVEL)
    with zipfile.ZipFile(buf, "w") as z:
        z.comment = stamp(schema, zoom)
        for name in sorted(tables):
            records = iter(tables[name])
            first = next(records, None)
            if first is None:
                continue
            # Records go to the member in chunks: zstd and zipfile pay per write,
            # and a write a record made packing a fifth slower.
            packer, chunk, size = msgpack.Packer(), [], 0
            with z.open(zips.member(name, stored=True), "w") as stored, \
                    compressor.stream_writer(stored, closefd=False) as member:
                for record in itertools.chain([first], records):
                    chunk.append(packer.pack(list(record)))
                    size += len(chunk[-1])
                    count += 1
                    if size >= _WRITE_CHUNK:
                        member.write(b"".join(chunk))
                        chunk, size = [], 0
                member.write(b"".join(chunk))
    return buf.getvalue(), count


def unpack(data: bytes, schema: Schema, zoom: int, name: str = "RAWR tile",
           hint: str = "") -> Iterator[tuple[str, Iterator]]:
    """(table name, records) for each member of a RAWR zip at `zoom` with the rows `schema` reads; records
    stream from the member.

    The zip's checksums catch any damage as a member is read, and its comment a
    tile with other rows or in another format: BadInput naming `name`, then `hint`.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            wanted = stamp(schema, zoom)
            if z.comment != wanted:
                said = z.comment.decode(errors="replace") or "nothing"
                raise BadInput(f"{name} is not a RAWR tile of format {FORMAT} with the rows schema {schema.name} "
                               f"reads ({wanted.decode()}): its comment says {said}{hint}")
            for member in z.namelist():
                # Whole, so that damage is found here (zstd's stream stops short of it):
                # zip's checksum, then zstd's frame.
                records = zstandard.ZstdDecompressor().decompressobj().decompress(z.read(member))
                yield member, msgpack.Unpacker(io.BytesIO(records), raw=False, use_list=False)
    except (zipfile.BadZipFile, zstandard.ZstdError, EOFError) as e:
        raise BadInput(f"{name} is corrupt ({faults.first_line(e)}){hint}") from None


def read_tile(store, tile: Tile, queue_zoom: int, schema: Schema) -> Iterator[tuple[str, Iterator]] | None:
    """The members of the RAWR tile at `tile` (unpack); None when there is none.

    A corrupt one, or one with other rows than the schema reads, is bad input (no retry mends it), named with the
    rawr job that rebuilds it.
    """
    key = store.tile_key(tile, EXT)
    data = store.read(key)
    if data is None:
        return None
    job = format_tile(ancestor(tile, queue_zoom))
    return unpack(data, schema, tile.z, f"RAWR tile {key} in {store.url}",
                  f": rebuild it with `tilebatch rawr-tile --tile {job}`")
