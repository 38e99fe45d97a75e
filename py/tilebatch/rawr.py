"""The rawr job: the RAWR tiles (rawrtile.py) under one queue-zoom tile, from PostGIS."""

from typing import Iterator

from . import postgis, split
from .rawrtile import EXT, held_tables, pack, rawr_box
from .schema import load_schema
from .store import rawr_sink
from .tiles import Tile, children, format_tile


def build_rawr_tile(src: postgis.Tables, tile: Tile) -> dict[str, Iterator]:
    """The rows touching the z10 tile that some rule of the schema may hold for, by table name; each
    table's query runs as it is read.

    Only those rows (postgis.Tables.rows without zooms): a row no rule holds
    for makes no feature, and half the rows of a city are such (the nodes of
    crossings, signs and entrances, ...). A table it does not hold
    (held_tables) has no query at all.
    """
    box = rawr_box(tile)
    held = [key for key in held_tables(src.schema, tile.z) if key in src.tables]
    # A cheap look first: most z10 tiles of the planet are empty, and each
    # table's query costs the database its planning even when it finds nothing.
    if not src.has_rows(box, held):
        return {}
    return {src.tables[key].name: src.rows(key, box) for key in held}


def rawr_job(tile: Tile, cfg: dict, parts: frozenset = frozenset()) -> dict:
    """The RAWR tiles under a queue-zoom tile, or under a z8..z10 part of one; none under done `parts`."""
    sink = rawr_sink(cfg)
    schema = load_schema(cfg)
    src = postgis.Tables(postgis.connect(cfg, "rawr"), schema)
    rows, sizes = 0, {}
    try:
        for t in children(tile, cfg["rawr"]["group-zoom"]):
            if split.covered("rawr", t, parts):
                continue
            data, n = pack(build_rawr_tile(src, t), schema, t.z)
            key = sink.tile_key(t, EXT)
            if n:
                sink.write(key, data)
                rows += n
                sizes[format_tile(t)] = len(data)
            elif sink.exists(key):  # emptied since the last build: no stale rows for meta-high
                sink.delete(key)
    finally:
        src.conn.close()
    # The sizes let `missing --enqueue` cut a meta-high job over very large RAWR tiles into parts.
    return {"rawr_tiles": len(sizes), "rows": rows, "rawr_bytes": sizes}

