"""Benchmark inputs: the Helsinki extract copied N times side by side, loaded into its own database.

Copy k of the extract is moved by whole extract-widths east and south in a
square grid and given ids `id + k * ID_STRIDE`, then `osmium renumber` makes
the ids dense again (1, 2, 3, ... as in a planet, where they are dense too; a
tool may size an index by the largest id), so the N copies are one valid,
sorted .osm.pbf of N times the data inside the same z7 tile. Each size is
loaded with osm2pgsql into `gis_bench{N}`, and also written with its ways cut
down to the nodes present for tilemaker, which aborts on a missing node. Everything lands under
.tilebatch/bench/ and is skipped when already built from the same source.
"""

import math
import os
import subprocess
from typing import NamedTuple

import osmium
import psycopg2

from tilebatch import load as tilebatch_load
from tilebatch import postgis
from tilebatch.tiles import Bbox, Tile, ancestor, tile_at

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE_PBF = os.path.join(TOP, ".tilebatch", "data", "Helsinki.osm.pbf")
WORK = os.path.join(TOP, ".tilebatch", "bench")
ID_STRIDE = 10 ** 10   # above every id in the extract (checked), so copies never collide
GAP = 0.1              # of an extract's width/height left between copies
QUEUE_ZOOM = 7
RECIPE = "3"           # bump when the files come out differently, so cached ones are rebuilt


class Dataset(NamedTuple):
    size: int
    pbf: str            # the N copies
    clean_pbf: str      # the same, ways cut down to the nodes present (tilemaker's input)
    dbname: str
    bbox: Bbox
    tile: Tile          # the z7 tile holding every copy


def file_bbox(path: str) -> Bbox:
    """The box around every node of an OSM file."""
    box = osmium.io.Reader(path, osmium.osm.NOTHING).header().box()
    if not box.valid():
        raise SystemExit(f"bench: {path} has no bounding box in its header")
    return Bbox(box.bottom_left.lon, box.bottom_left.lat, box.top_right.lon, box.top_right.lat)


def grid(size: int, box: Bbox) -> list[tuple[float, float]]:
    """The (dlon, dlat) of each copy: a square grid going east and south from the original."""
    side = math.ceil(math.sqrt(size))
    step_x = (box.east - box.west) * (1 + GAP)
    step_y = (box.north - box.south) * (1 + GAP)
    return [((k % side) * step_x, -(k // side) * step_y) for k in range(size)]


def grid_bbox(size: int, box: Bbox) -> Bbox:
    offsets = grid(size, box)
    return Bbox(box.west + min(dx for dx, _ in offsets), box.south + min(dy for _, dy in offsets),
                box.east + max(dx for dx, _ in offsets), box.north + max(dy for _, dy in offsets))


def z7_tile(box: Bbox) -> Tile:
    """The one z7 tile holding the whole box; an error when the copies spill out of it."""
    corners = {ancestor(tile_at(lon, lat, 16), QUEUE_ZOOM) for lon in (box.west, box.east)
               for lat in (box.south, box.north)}
    if len(corners) != 1:
        raise SystemExit(f"bench: the copies span z7 tiles {sorted(corners)}; use fewer copies")
    return corners.pop()


def write_copies(src: str, out: str, size: int) -> None:
    """Write `size` shifted copies of `src` with new ids to `out`, sorted by type then id."""
    box = file_bbox(src)
    offsets = grid(size, box)
    header = osmium.io.Header()
    header.add_box(osmium.osm.Box(*_corners(grid_bbox(size, box))))
    tmp = out + ".copies.osm.pbf"
    writer = osmium.SimpleWriter(tmp, header=header, overwrite=True)
    try:
        # osm2pgsql wants nodes, then ways, then relations, each by id: a pass per type and copy.
        for entity in (osmium.osm.NODE, osmium.osm.WAY, osmium.osm.RELATION):
            for k, (dx, dy) in enumerate(offsets):
                shift = k * ID_STRIDE
                for obj in osmium.FileProcessor(src, entity):
                    if obj.id >= ID_STRIDE:
                        raise SystemExit(f"bench: id {obj.id} in {src} is above {ID_STRIDE}")
                    writer.add(_moved(obj, shift, dx, dy))
    finally:
        writer.close()
    subprocess.run(["osmium", "renumber", "--no-progress", "-O", tmp, "-o", out], check=True)
    os.remove(tmp)


def _corners(box: Bbox):
    return osmium.osm.Location(box.west, box.south), osmium.osm.Location(box.east, box.north)


def _moved(obj, shift: int, dx: float, dy: float):
    if obj.is_node():
        loc = obj.location
        return obj.replace(id=obj.id + shift, location=osmium.osm.Location(loc.lon + dx, loc.lat + dy))
    if obj.is_way():
        return obj.replace(id=obj.id + shift, nodes=[n.ref + shift for n in obj.nodes])
    return obj.replace(id=obj.id + shift, members=[(m.type, m.ref + shift, m.role) for m in obj.members])


def clean_for_tilemaker(pbf: str, out: str) -> None:
    """`pbf` with each way cut down to the nodes the file holds, as osm2pgsql reads it.

    tilemaker aborts on a way that names a missing node, and an extract cuts
    ways at its edge. osm2pgsql builds such a way from the nodes it has, so
    tilemaker gets the same: a way keeps its nodes that are present, and goes
    only when fewer than two are left (osm2pgsql makes nothing of those either).
    """
    present = osmium.index.IdSet()
    for node in osmium.FileProcessor(pbf, osmium.osm.NODE):
        present.set(node.id)
    tmp = out + ".tmp.osm.pbf"
    writer = osmium.SimpleWriter(tmp, header=osmium.io.Reader(pbf, osmium.osm.NOTHING).header(), overwrite=True)
    try:
        for obj in osmium.FileProcessor(pbf):
            if obj.is_way():
                refs = [n.ref for n in obj.nodes if n.ref in present]
                if len(refs) < 2:
                    continue
                if len(refs) < len(obj.nodes):
                    obj = obj.replace(nodes=refs)
            writer.add(obj)
    finally:
        writer.close()
    os.replace(tmp, out)


def admin_connection(cfg: dict, dbname: str):
    """A read-write autocommit connection to `dbname` on the configured server."""
    params = postgis.connection_params(cfg)[0]
    conn = psycopg2.connect(**{**params, "dbname": dbname}, application_name="tilebatch-bench")
    conn.autocommit = True
    return conn


def database_url(cfg: dict, dbname: str) -> str:
    p = postgis.connection_params(cfg)[0]
    return f"postgresql://{p['user']}@{p['host']}:{p['port']}/{dbname}"


def create_database(cfg: dict, dbname: str) -> None:
    """Make `dbname` on the configured server unless it is there."""
    admin = admin_connection(cfg, "postgres")
    try:
        with admin.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,))
            if cur.fetchone() is None:
                cur.execute(f'CREATE DATABASE "{dbname}"')
    finally:
        admin.close()


def load(cfg: dict, pbf: str, dbname: str, log) -> None:
    """Load `pbf` into `dbname` as make load does (which skips it when it holds it already)."""
    create_database(cfg, dbname)
    log(f"loading {os.path.basename(pbf)} into {dbname} unless it is there")
    tilebatch_load.load(cfg, pbf, database_url(cfg, dbname), flat_nodes_dir=WORK)


def ensure(cfg: dict, size: int, log) -> Dataset:
    """The dataset of `size` copies, built and loaded if it is not yet."""
    if not os.path.exists(SOURCE_PBF):
        raise SystemExit(f"bench: {SOURCE_PBF} is missing; run make demo-data")
    os.makedirs(WORK, exist_ok=True)
    stem = os.path.join(WORK, f"helsinki-x{size}")
    pbf, clean = stem + ".osm.pbf", stem + "-clean.osm.pbf"
    stamp = stem + ".source-sha256"
    source_sha = RECIPE + ":" + tilebatch_load.file_sha256(SOURCE_PBF)
    fresh = os.path.exists(stamp) and open(stamp).read() == source_sha
    if not (fresh and os.path.exists(pbf) and os.path.exists(clean)):
        log(f"writing {size} copies of the extract to {os.path.relpath(pbf, TOP)}")
        write_copies(SOURCE_PBF, pbf, size)
        clean_for_tilemaker(pbf, clean)
        with open(stamp, "w") as f:
            f.write(source_sha)
    box = file_bbox(pbf)
    dbname = f"gis_bench{size}"
    load(cfg, pbf, dbname, log)
    return Dataset(size, pbf, clean, dbname, box, z7_tile(box))
