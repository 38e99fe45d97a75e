"""The meta-low job: metatiles z0..z9 (tiles z0..z12) straight from PostGIS.

A job at z0..z6 renders its own metatile; a job at the queue zoom (7) also its
z8 and z9 children, 21 metatiles. Rows are fetched once for all the tile zooms
of the whole job (a z7 job's 10..12), filtered in the database for them and
simplified there for the deepest, so a z0 job over a planet pulls only what a
z0..z3 map shows, and a row is read and classified once, not once a zoom; each
tile simplifies its features for its own zoom after. They come and are
classified a batch at a time (postgis.Tables.rows, render.collect): a dense z7
tile holds its features in memory, never all its rows. A job at z8 or z9 is a
part of its z7 job (split.py): its one metatile, from rows clipped as the z7
job clips them.
"""

from . import postgis, render
from .rawrtile import rawr_box
from .schema import Schema, build_max_zoom, load_schema, simplify_tolerance
from .store import metatile_store
from .tiles import METATILE_ZOOMS, Tile, ancestor, children, metatile_zooms

# Tiles from this zoom on are also built from RAWR tiles (group zoom 10 + 3). The
# database simplifies only below it, so the zooms both paths build agree.
RAWR_RENDER_ZOOM = 13


def features_at(src: postgis.Tables, schema: Schema, area: Tile, zooms: list[int], simplify: float,
                job_area: Tile | None = None) -> list:
    """The features of every layer at tile zooms `zooms` (ascending) over the tile `area`, from the database:
    one query a table, so a row some of them show is read and classified once; its geometry simplified
    there by `simplify` metres (job_tolerance). Rows are clipped (and simplified after) to the box of
    `job_area` when given: the queue-zoom job's own tile when `area` is a part of it, so a part's rows
    are those its whole job would have."""
    box, clip = rawr_box(area), rawr_box(job_area or area)
    return render.collect(schema, ((key, src.rows(key, box, (zooms[0], zooms[-1]), simplify, clip))
                                   for key in src.tables), zooms[-1])


def job_tolerance(schema: Schema, job: Tile, queue_zoom: int, max_zoom: int) -> float:
    """What the database simplifies the rows of the meta-low job at `job` (z0..z7) by, in metres: the
    deepest tile zoom it renders needs the finest, and each tile simplifies its features for its own
    zoom after. 0 from RAWR_RENDER_ZOOM on, where RAWR tiles hold the rows whole.

    One geometry a row for all the job's zooms, the same whichever part of the job
    reads them. A geometry a zoom, each simplified in the database, cost it 60%
    more CPU for the 16x z7 job (0.19 against 0.12 s) and the job 13% more
    (0.53 against 0.47), for tiles that differed by a few vertices at z10 and
    z11 (and 3 of their 1,308 features at z10).
    """
    deepest = max(tile_zooms(job_metatiles(job, queue_zoom, max_zoom)), default=0)
    tolerances = [simplify_tolerance(schema, layer, deepest) for layer in schema.layers if layer.simplify_px > 0]
    return min(tolerances) if tolerances and deepest < RAWR_RENDER_ZOOM else 0.0


def job_metatiles(tile: Tile, queue_zoom: int, max_zoom: int) -> list[Tile]:
    """The metatiles a meta-low job renders (a queue-zoom job also those of its z8 and z9 children, a
    part at z8 or z9 its own): none whose tiles lie beyond the build's max zoom."""
    if tile.z != queue_zoom:
        return [tile] if tile.z == 0 or tile.z + METATILE_ZOOMS <= max_zoom else []
    return [m for z in range(tile.z, tile.z + METATILE_ZOOMS) if z + METATILE_ZOOMS <= max_zoom
            for m in children(tile, z)]


def tile_zooms(metas: list[Tile]) -> dict[int, list[Tile]]:
    """The tile zooms of these metatiles, ascending, each with those of them that hold tiles at it.

    A meta-low job queries its tile's rows for the span of its metatiles'
    zooms, first to last (meta_low_job), and zoomindex indexes those spans
    (query_zooms): both find the zooms here, so that the indexes serve the
    queries.
    """
    return {zoom: [m for m in metas if zoom in metatile_zooms(m)]
            for zoom in sorted(set().union(*map(metatile_zooms, metas)))}


def query_zooms(queue_zoom: int, max_zoom: int) -> list[tuple[int, int]]:
    """The zooms (first, last) a job at each zoom 0..queue_zoom queries its whole tile's rows for (zoomindex
    indexes them): z0 0..3, then one zoom a job zoom, the queue zoom's three."""
    spans = set()
    for z in range(queue_zoom + 1):
        zooms = list(tile_zooms(job_metatiles(Tile(0, 0, z), queue_zoom, max_zoom)))
        if zooms:
            spans.add((zooms[0], zooms[-1]))
    return sorted(spans)


def _render(schema: Schema, features: list, zoom: int, members: dict) -> int:
    """Render the tiles at `zoom` of the metatiles in `members` (metatile -> its tiles, added to) from
    `features`; their feature count."""
    count = 0
    for meta, tiles in members.items():
        rendered, n = render.render_metatile(schema, features, meta, zoom)
        tiles.update(rendered)
        count += n
    return count


def meta_low_job(tile: Tile, cfg: dict, parts: frozenset = frozenset()) -> dict:
    """The metatiles of a z0..z7 tile, or one z8/z9 metatile as a part of its z7 job; none of done `parts`."""
    queue_zoom = cfg["batch"]["queue-zoom"]
    schema = load_schema(cfg)
    max_zoom = build_max_zoom(cfg, schema)
    every = job_metatiles(tile, queue_zoom, max_zoom)
    metas = [m for m in every if m not in parts]
    job_area = ancestor(tile, queue_zoom)
    simplify = job_tolerance(schema, job_area, queue_zoom, max_zoom)
    src = postgis.job_tables(cfg, schema)
    out = metatile_store(cfg)
    members = {meta: {} for meta in metas}
    counts = {"metatiles": 0, "tiles": 0, "features": 0}
    try:
        at_zoom, every_at_zoom = tile_zooms(metas), tile_zooms(every)
        # The rows of the whole tile for every zoom at which it renders all its
        # metatiles, in one query: a row is read and classified once for all of
        # them. Where parts took some of its metatiles at a zoom, the rows of
        # each one left instead (mostly where there is no data: one cheap look for all first).
        whole = [z for z, at in at_zoom.items() if len(at) == len(every_at_zoom[z])]
        if whole:
            features = features_at(src, schema, tile, whole, simplify, job_area)
            for zoom in whole:
                counts["features"] += _render(schema, features, zoom, {m: members[m] for m in at_zoom[zoom]})
            del features  # before the parts' features, if any, come
        left = [(zoom, meta) for zoom in at_zoom if zoom not in whole for meta in at_zoom[zoom]]
        for (zoom, meta), has_rows in zip(left, src.boxes_with_rows([rawr_box(meta) for _, meta in left])):
            if has_rows:
                features = features_at(src, schema, meta, [zoom], simplify, job_area)
                counts["features"] += _render(schema, features, zoom, {meta: members[meta]})
    finally:
        postgis.end_job(src)
    for meta in metas:
        if render.write_metatile(out, meta, members[meta]):
            counts["metatiles"] += 1
            counts["tiles"] += len(members[meta])
    return counts

