"""The meta-low job: metatiles z0..z9 (tiles z0..z12) straight from PostGIS.

A job at z0..z6 renders its own metatile; a job at the queue zoom (7) also its
z8 and z9 children, 21 metatiles. Rows are fetched once per tile zoom for the
whole job, filtered and simplified in the database for that zoom, so a z0 job
over a planet pulls only what a z0..z3 map shows.
"""

from . import render, source
from .errors import BadInput
from .rawr import rawr_box
from .schema import Schema, build_max_zoom, load_schema, simplify_tolerance
from .store import metatile_store
from .tiles import METATILE_ZOOMS, Tile, children, metatile_members

# Tiles from this zoom on are also built from RAWR tiles (group zoom 10 + 3). The
# database simplifies only below it, so the zooms both paths build agree.
RAWR_RENDER_ZOOM = 13


def features_at(src: source.Source, schema: Schema, area: Tile, zoom: int) -> list:
    """The features of every layer at tile zoom `zoom` over the tile `area`, from the database."""
    box = rawr_box(area)
    tolerances = [simplify_tolerance(layer, zoom) for layer in schema.layers if layer.simplify_px > 0]
    simplify = min(tolerances) if tolerances and zoom < RAWR_RENDER_ZOOM else 0.0
    return render.collect(schema, ((key, src.rows(key, box, zoom, simplify)) for key in src.tables))


def job_metatiles(tile: Tile, queue_zoom: int, max_zoom: int) -> list[Tile]:
    """The metatiles a meta-low job renders: none whose tiles lie beyond the build's max zoom."""
    if tile.z < queue_zoom:
        return [tile] if tile.z == 0 or tile.z + METATILE_ZOOMS <= max_zoom else []
    return [m for z in range(tile.z, tile.z + METATILE_ZOOMS) if z + METATILE_ZOOMS <= max_zoom
            for m in children(tile, z)]


def meta_low_job(tile: Tile, cfg: dict) -> dict:
    queue_zoom = cfg["batch"]["queue-zoom"]
    if tile.z > queue_zoom:
        raise BadInput(f"meta-low jobs run at zooms 0..{queue_zoom}, not z{tile.z}")
    schema = load_schema(cfg)
    metas = job_metatiles(tile, queue_zoom, build_max_zoom(cfg, schema))
    src = source.Source(source.connect(cfg), schema)
    out = metatile_store(cfg)
    members = {meta: {} for meta in metas}
    counts = {"metatiles": 0, "tiles": 0, "features": 0}
    try:
        zooms = sorted({t.z for meta in metas for t, _ in metatile_members(meta)})
        for zoom in zooms:
            features = features_at(src, schema, tile, zoom)
            for meta in metas:
                tiles, n = render.render_metatile(schema, features, meta, zoom)
                members[meta].update(tiles)
                counts["features"] += n
    finally:
        src.conn.close()
    for meta in metas:
        if render.write_metatile(out, meta, members[meta]):
            counts["metatiles"] += 1
            counts["tiles"] += len(members[meta])
    return counts

