"""`tilebatch export`: every built tile of the store in one file, PMTiles or MBTiles.

One file is what a map host or a phone app wants. Both formats hold the tiles
gzip-compressed (MBTiles' `pbf` format requires it; for PMTiles the header
says so), and the metadata a map needs: bounds, center, zoom range,
attribution and `vector_layers`. The file is written beside its destination
under a temporary name and renamed at the end, so a failed export leaves
nothing half-written; an interrupted or terminated one removes its temporary
file, and one killed outright leaves it to be swept by a later export.
"""

import glob
import gzip
import json
import os
import sqlite3
import tempfile

from tqdm import tqdm

from . import __version__, faults, log, records, runs, tileset
from .errors import BadInput, JobFailed
from .schema import Schema, load_schema
from .store import TEMP_PREFIX, metatile_store, remove_stale

FORMATS = ("pmtiles", "mbtiles")


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)  # mtime 0: the same tiles give the same file


def _metadata(desc: tileset.Description, schema: Schema) -> dict:
    return {"name": "tilebatch", "attribution": tileset.ATTRIBUTION, "generator": f"tilebatch {__version__}",
            "vector_layers": tileset.vector_layers(desc, schema), "schema": tileset.schema_metadata(schema)}


def write_pmtiles(path: str, tiles, desc: tileset.Description, meta: dict) -> None:
    """A PMTiles v3 file of `tiles` ((tile, MVT bytes) in tile-id order, so it is clustered)."""
    from pmtiles.tile import Compression, TileType, zxy_to_tileid
    from pmtiles.writer import Writer

    west, south, east, north = desc.bounds
    lon, lat, zoom = desc.center
    header = {"tile_type": TileType.MVT, "tile_compression": Compression.GZIP,
              "min_lon_e7": int(west * 1e7), "min_lat_e7": int(south * 1e7),
              "max_lon_e7": int(east * 1e7), "max_lat_e7": int(north * 1e7),
              "center_zoom": zoom, "center_lon_e7": int(lon * 1e7), "center_lat_e7": int(lat * 1e7)}
    with open(path, "wb") as f:
        writer = Writer(f)
        for tile, data in tiles:
            writer.write_tile(zxy_to_tileid(tile.z, tile.x, tile.y), _gzip(data))
        writer.finalize(header, meta)


def write_mbtiles(path: str, tiles, desc: tileset.Description, meta: dict) -> None:
    """An MBTiles 1.3 file of `tiles`; rows are TMS (y = 0 at the south), hence the flip."""
    lon, lat, zoom = desc.center
    rows = {"name": meta["name"], "format": "pbf", "type": "baselayer",
            "description": "OpenStreetMap vector tiles built by tilebatch",
            "attribution": meta["attribution"], "generator": meta["generator"],
            "bounds": ",".join(f"{v:.6f}" for v in desc.bounds),
            "center": f"{lon:.6f},{lat:.6f},{zoom}", "minzoom": str(desc.minzoom), "maxzoom": str(desc.maxzoom),
            "json": json.dumps({"vector_layers": meta["vector_layers"], "schema": meta["schema"]})}
    db = sqlite3.connect(path)
    try:
        # No rollback journal: the file is temporary until renamed, so a failed
        # export is thrown away whole (a journal grew to hundreds of MB beside it).
        db.executescript("""
            PRAGMA journal_mode = OFF;
            PRAGMA synchronous = OFF;
            PRAGMA application_id = 0x4d504258;  -- 'MPBX', the MBTiles magic number
            CREATE TABLE metadata (name TEXT, value TEXT);
            CREATE UNIQUE INDEX name ON metadata (name);
            CREATE TABLE tiles (zoom_level INTEGER, tile_column INTEGER, tile_row INTEGER, tile_data BLOB);
            CREATE UNIQUE INDEX tile_index ON tiles (zoom_level, tile_column, tile_row);
        """)
        db.executemany("INSERT INTO metadata VALUES (?, ?)", sorted(rows.items()))
        db.executemany("INSERT INTO tiles VALUES (?, ?, ?, ?)",
                       ((t.z, t.x, (1 << t.z) - 1 - t.y, _gzip(data)) for t, data in tiles))
        db.commit()
    finally:
        db.close()


WRITERS = {"pmtiles": write_pmtiles, "mbtiles": write_mbtiles}


def export(store, schema: Schema, fmt: str, out: str) -> int:
    """Write every tile of `store`, built with `schema`, to `out` in format `fmt`; the number of tiles written."""
    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder):
        raise BadInput(f"cannot export to {out}: folder {folder} does not exist")
    metas = tileset.metatiles(store)
    desc = tileset.describe(store, metas)
    count = 0

    def counted(tiles):
        nonlocal count
        for item in tiles:
            count += 1
            yield item

    remove_stale(glob.glob(os.path.join(glob.escape(folder), f"{TEMP_PREFIX}*.{fmt}*")))
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=TEMP_PREFIX, suffix="." + fmt)
        os.close(fd)
    except OSError as e:
        raise faults.os_error(f"cannot export to {out}", e) from None
    try:
        # The bar counts metatiles: their number is known before any is read.
        bar = tqdm(metas, desc=f"export {fmt}", unit="metatile", disable=None)
        WRITERS[fmt](tmp, counted(tileset.tiles(store, bar)), desc, _metadata(desc, schema))
        bar.close()
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except OSError as e:
        raise faults.os_error(f"cannot export to {out}", e) from None
    except sqlite3.Error as e:  # "database or disk is full", an I/O error: the world, not the input
        raise JobFailed(f"cannot export to {out}: {faults.first_line(e)}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return count


def _format(args) -> str:
    fmt = args.format or os.path.splitext(args.out)[1].lstrip(".").lower()
    if fmt not in FORMATS:
        raise BadInput(f"cannot tell the format of {args.out}: give --format pmtiles or --format mbtiles")
    return fmt


def _warn_unfinished(store, latest: str, group_zoom: int) -> None:
    """A warning when the store's latest run still lacks jobs: the file would have holes where they go."""
    missing = {s.job: len(s.missing) for s in runs.run_states(store, latest, group_zoom) if s.missing}
    if missing:
        log.warning("the latest run is not finished: its missing tiles are not in the file",
                    run_id=latest, missing=missing, see=f"tilebatch missing --run-id {latest}")


def _export(args, cfg) -> int:
    fmt = _format(args)
    store, schema = metatile_store(cfg), load_schema(cfg)
    run_ids = runs.run_ids(store)
    records.check_store_schema(store, schema, run_ids)
    if run_ids:
        _warn_unfinished(store, run_ids[-1], cfg["rawr"]["group-zoom"])
    count = export(store, schema, fmt, args.out)
    log.info("export done", store=store.url, out=args.out, format=fmt, tiles=count,
             bytes=os.path.getsize(args.out))
    return 0


def add_commands(sub, common) -> None:
    p = sub.add_parser("export", parents=[common],
                       help="write every built tile into one PMTiles or MBTiles file",
                       description="Write every built tile of the store into one PMTiles or MBTiles file, "
                                   "gzip-compressed, with bounds, center, zooms, attribution and vector_layers.")
    p.add_argument("--format", choices=FORMATS, default=None,
                   help="pmtiles or mbtiles (default: from OUT's extension)")
    p.add_argument("out", metavar="OUT", help="the file to write, e.g. helsinki.pmtiles")
    p.set_defaults(func=_export)
