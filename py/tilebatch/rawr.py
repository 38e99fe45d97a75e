"""RAWR tiles and the rawr job.

A RAWR tile holds the raw rows of every source table that touch one z10 tile
(plus a margin): a zip with one member per table, each a msgpack stream of
`[id, WKB, tags]` records in id order. The high zooms are built from these
alone, with no database. Geometry is clipped to the tile and its margin, so a
continent-sized polygon does not travel whole into every tile it touches; the
margin is wider than any tile buffer at z13..z16, so the clip never shows.
"""

import io
import zipfile
from typing import Iterator

import msgpack

from . import layers, source
from .errors import BadInput
from .jobs import add_job_command
from .store import rawr_sink
from .tiles import Tile, children, format_tile, tile_bounds_3857

MARGIN = 1 / 64  # of the tile's side, on each side
EXT = "zip"
_EPOCH = (1980, 1, 1, 0, 0, 0)


def rawr_box(tile: Tile) -> tuple:
    """The box a RAWR tile's rows are clipped to: the tile and its margin, EPSG:3857."""
    minx, miny, maxx, maxy = tile_bounds_3857(tile)
    pad = (maxx - minx) * MARGIN
    return minx - pad, miny - pad, maxx + pad, maxy + pad


def pack(tables: dict[str, list]) -> bytes:
    """A RAWR zip of the non-empty tables' records, members in name order."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name in sorted(tables):
            if tables[name]:
                packer = msgpack.Packer()
                info = zipfile.ZipInfo(name, _EPOCH)
                info.compress_type = zipfile.ZIP_DEFLATED
                z.writestr(info, b"".join(packer.pack(list(r)) for r in tables[name]))
    return buf.getvalue()


def unpack(data: bytes) -> Iterator[tuple[str, Iterator]]:
    """(table name, records) for each member of a RAWR zip; records stream from the member."""
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        for name in z.namelist():
            yield name, (tuple(r) for r in msgpack.Unpacker(io.BytesIO(z.read(name)), raw=False))


def build_rawr_tile(src: source.Source, tile: Tile) -> dict[str, list]:
    """Every row of every table touching the z10 tile, by table name."""
    box = rawr_box(tile)
    return {t.name: list(src.rows(key, box)) for key, t in src.tables.items()}


def rawr_job(tile: Tile, cfg: dict) -> dict:
    if tile.z != cfg["batch"]["queue-zoom"]:
        raise BadInput(f"rawr jobs run at the queue zoom {cfg['batch']['queue-zoom']}, not at z{tile.z}")
    sink = rawr_sink(cfg)
    src = source.Source(source.connect(cfg, "rawr"), layers.load())
    rows, sizes = 0, {}
    try:
        for t in children(tile, cfg["rawr"]["group-zoom"]):
            tables = build_rawr_tile(src, t)
            n = sum(len(r) for r in tables.values())
            key = sink.tile_key(t, EXT)
            if n:
                data = pack(tables)
                sink.write(key, data)
                rows += n
                sizes[format_tile(t)] = len(data)
            elif sink.exists(key):  # emptied since the last build: no stale rows for meta-high
                sink.delete(key)
    finally:
        src.conn.close()
    # The sizes let `missing --enqueue` cut a meta-high job over very large RAWR tiles into parts.
    return {"rawr_tiles": len(sizes), "rows": rows, "rawr_bytes": sizes}


def add_commands(sub, common) -> None:
    add_job_command(sub, common, "rawr-tile", "rawr", "rawr job: the z10 RAWR tiles under one z7 tile", rawr_job)
