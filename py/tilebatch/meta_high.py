"""The meta-high job: metatiles z10..z13 (tiles z13..z16) from RAWR tiles alone.

No database connection at all. It works through its z10 RAWR tiles one at a
time and lets each go before reading the next, so its memory is that of one
RAWR tile whatever the size of the job.
"""

from . import rawrtile, render, split
from .schema import build_max_zoom, load_schema
from .store import metatile_store, rawr_source
from .tiles import METATILE_ZOOMS, Tile, children


def meta_high_job(tile: Tile, cfg: dict, parts: frozenset = frozenset()) -> dict:
    group_zoom = cfg["rawr"]["group-zoom"]
    queue_zoom = cfg["batch"]["queue-zoom"]
    schema = load_schema(cfg)
    table_keys = {t.name: t.key for t in schema.tables.values()}
    rawr_store, out = rawr_source(cfg), metatile_store(cfg)
    last_meta_zoom = build_max_zoom(cfg, schema) - METATILE_ZOOMS
    counts = {"rawr_tiles_read": 0, "metatiles": 0, "tiles": 0, "features": 0}
    for group in children(tile, group_zoom):
        if split.covered("meta-high", group, parts):
            continue
        members = rawrtile.read_tile(rawr_store, group, queue_zoom, schema)
        if members is None:
            continue
        features = render.collect(schema, ((table_keys[name], records)
                                           for name, records in members if name in table_keys))
        counts["rawr_tiles_read"] += 1
        for zoom in range(group_zoom, last_meta_zoom + 1):
            for meta in children(group, zoom):
                members, n = render.render_metatile(schema, features, meta)
                if render.write_metatile(out, meta, members):
                    counts["metatiles"] += 1
                    counts["tiles"] += len(members)
                    counts["features"] += n
    return counts

