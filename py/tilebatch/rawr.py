"""The rawr job: the RAWR tiles (rawrtile.py) under one queue-zoom tile, from PostGIS."""

from typing import Iterator

from . import postgis, split
from .rawrtile import EXT, held_tables, pack, rawr_box
from .schema import load_schema
from .store import rawr_sink
from .tiles import Tile, children, format_tile


def _held(src: postgis.Tables, zoom: int) -> list[str]:
    """The keys of the tables a RAWR tile at `zoom` holds (held_tables) that the database has."""
    return [key for key in held_tables(src.schema, zoom) if key in src.tables]


def build_rawr_tile(src: postgis.Tables, tile: Tile, has_rows: bool | None = None) -> dict[str, Iterator]:
    """The rows touching the z10 tile that some rule of the schema may hold for, by table name; each
    table's query runs as it is read.

    Only those rows (postgis.Tables.rows without zooms): a row no rule holds
    for makes no feature, and half the rows of a city are such (the nodes of
    crossings, signs and entrances, ...). A table it does not hold
    (held_tables) has no query at all.

    A cheap look first, unless `has_rows` says what it found (rawr_job looks
    for all its tiles at once): most z10 tiles of the planet are empty, and
    each table's query costs the database its planning even when it finds nothing.
    """
    box, held = rawr_box(tile), _held(src, tile.z)
    if not (src.boxes_with_rows([box], held)[0] if has_rows is None else has_rows):
        return {}
    return {src.tables[key].name: src.rows(key, box) for key in held}


def rawr_job(tile: Tile, cfg: dict, parts: frozenset = frozenset()) -> dict:
    """The RAWR tiles under a queue-zoom tile, or under a z8..z10 part of one; none under done `parts`."""
    sink = rawr_sink(cfg)
    schema = load_schema(cfg)
    src = postgis.Tables(postgis.connect(cfg, "rawr"), schema)
    rows, sizes = 0, {}
    try:
        group_zoom = cfg["rawr"]["group-zoom"]
        tiles = [t for t in children(tile, group_zoom) if not split.covered("rawr", t, parts)]
        for t, has_rows in zip(tiles, src.boxes_with_rows([rawr_box(t) for t in tiles], _held(src, group_zoom))):
            data, n = pack(build_rawr_tile(src, t, has_rows), schema, t.z)
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

