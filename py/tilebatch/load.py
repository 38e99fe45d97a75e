"""`tilebatch load`: an OSM extract into PostGIS with osm2pgsql, replacing the last load only when it worked.

osm2pgsql (`--slim --hstore`, so change files can be applied later) writes
into a schema of its own; only when it has finished are its tables and
functions moved over those of the previous load, in one transaction that also
writes the record of what is loaded (table `tilebatch_load`: file name,
sha256, bounds, time, flat-nodes file). A failed or interrupted load leaves
the previous one as it was, and a file that is not OSM data is refused before
the database is touched.
"""

import bz2
import contextlib
import gzip
import hashlib
import math
import os
import re
import subprocess
import tempfile
import time
from typing import NamedTuple

import psycopg2

from . import faults, log, postgis
from .errors import BadInput, JobFailed
from .tiles import Bbox, make_bbox

STAGING = "tilebatch_staging"
RECORD = "tilebatch_load"
OSM_TABLES = ("planet_osm_point", "planet_osm_line", "planet_osm_polygon")
# The flat-nodes file takes 8 bytes for every node id up to the highest (~100 GB
# today) whatever the extract; the nodes table takes about ten times the PBF's
# size. They break even near a 10 GB PBF (osm2pgsql recommends the file for the
# planet and extracts the size of Europe).
FLAT_NODES_ABOVE_MB = 10_000
# osm2pgsql's rule of thumb for its node cache: the PBF's size or 75% of the
# memory, whichever is smaller (the rest is the database's).
CACHE_SHARE = 0.75
_SNIFF = 4096


class Loaded(NamedTuple):
    """The record of the file a database holds."""

    file: str
    sha256: str
    bytes: int
    bounds: Bbox
    loaded_at: str
    flat_nodes: str | None


def osm_format(path: str) -> str:
    """`pbf`, `xml`, `xml.gz` or `xml.bz2`: what the file holds; BadInput for anything that is not OSM data."""
    try:
        with open(path, "rb") as f:
            head = f.read(_SNIFF)
    except OSError as e:
        raise BadInput(f"cannot read {path}: {e.strerror}") from None
    # A PBF starts with the length of its first blob header, whose type is OSMHeader.
    if head[4:15] == b"\x0a\x09OSMHeader":
        return "pbf"
    opener, fmt = {b"\x1f\x8b": (gzip.open, "xml.gz"), b"BZ": (bz2.open, "xml.bz2")}.get(head[:2], (None, "xml"))
    if opener is not None:
        try:
            with opener(path, "rb") as f:
                head = f.read(_SNIFF)
        except (OSError, EOFError, ValueError):
            raise BadInput(f"{path} is not an OSM file: compressed, but not readable as {fmt[4:]}") from None
    root = _xml_root(head)
    if root == "osmChange":
        raise BadInput(f"{path} is an OSM change file: apply it with make update CHANGES={path}")
    if root != "osm":
        raise BadInput(f"{path} is not an OSM file: expected an .osm.pbf or OSM XML (.osm, .osm.gz, .osm.bz2)")
    return fmt


def _xml_root(head: bytes) -> str | None:
    """The name of the first element of an XML document's start, None if it does not look like XML."""
    text = head.decode("utf-8", "replace").lstrip("\ufeff \t\r\n")
    text = re.sub(r"^<\?xml[^>]*\?>|<!--.*?-->", "", text, flags=re.S).lstrip()
    m = re.match(r"<([A-Za-z][\w.-]*)", text)
    return m.group(1) if m else None


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def available_mb() -> int:
    """The memory the kernel says is available for new work, in MiB."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024
    raise JobFailed("cannot tell the available memory: no MemAvailable in /proc/meminfo")


def cache_mb(file_bytes: int, free_mb: int, flat_nodes: bool) -> int:
    """osm2pgsql's node cache (-C): none with a flat-nodes file, where it does not help."""
    if flat_nodes:
        return 0
    return max(1, min(math.ceil(file_bytes / 2**20), int(free_mb * CACHE_SHARE)))


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def extent(cur, schema: str | None = None) -> Bbox | None:
    """The box around every row of the tables the tiles read, in WGS84; None when they hold none."""
    prefix = f"{_identifier(schema)}." if schema else ""
    union = " UNION ALL ".join(f"SELECT way FROM {prefix}{t}" for t in OSM_TABLES)
    cur.execute("SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM ("
                f" SELECT ST_Transform(ST_SetSRID(ST_Extent(way), 3857), 4326) AS e FROM ({union}) rows) extent")
    box = cur.fetchone()
    return None if box[0] is None else make_bbox(*box)


def read_record(cur) -> Loaded | None:
    """What `tilebatch load` last loaded into this database; None when it loaded nothing there."""
    cur.execute("SELECT to_regclass(%s) IS NOT NULL", (RECORD,))
    if not cur.fetchone()[0]:
        return None
    cur.execute(f"SELECT * FROM {RECORD}")
    names = [d.name for d in cur.description]
    row = cur.fetchone()
    if row is None or "sha256" not in names:  # an older record without what is asked for here
        return None
    r = dict(zip(names, row))
    return Loaded(r["file"], r["sha256"], r["bytes"], Bbox(r["west"], r["south"], r["east"], r["north"]),
                  r["loaded_at"].isoformat(timespec="seconds"), r["flat_nodes"])


def data_extent(cfg: dict) -> Bbox:
    """The box around every row the configured database holds, in WGS84 (not the load record's
    bounds: an update may have added rows beyond them)."""
    conn = postgis.connect(cfg)
    try:
        with conn.cursor() as cur:
            box = extent(cur)
    except psycopg2.Error as e:  # a missing table (exit 2), a broken connection or a timeout (exit 1)
        raise faults.db_error("cannot find the data's extent", e) from None
    finally:
        conn.close()
    if box is None:
        raise BadInput("the database has no rows: load an extract first (make load PBF=…, or make demo-data)")
    return box


class Target(NamedTuple):
    """Where a load goes: what libpq and osm2pgsql connect with, and a name to show (no password)."""

    conninfo: str
    env: dict
    shown: str


def target(cfg: dict, database_url: str | None) -> Target:
    """The database to load into: `database_url`, else the configured one (a single host: loads need the primary).

    The password goes to libpq and osm2pgsql in PGPASSWORD, never on a command
    line (`ps` shows those) nor in a message: what is shown is host, port and
    database.
    """
    if database_url:
        try:
            params = psycopg2.extensions.parse_dsn(database_url)
        except psycopg2.ProgrammingError:  # libpq's reason quotes the text it could not read: the password too
            raise BadInput("--database-url is neither a postgresql:// URI nor key=value settings") from None
        # An @ or / left unescaped in a URI's password splits it elsewhere: part of
        # the password would become the host, port or database, and be shown.
        rest = database_url.partition("://")[2].partition("?")[0]
        userinfo, at, _ = rest.rpartition("@")
        if rest.count("@") > 1 or at and "/" in userinfo:
            raise BadInput("--database-url cannot be read as user:password@host:port/database: "
                           "write an @ or / in the user or password as %40 or %2F")
        password = params.pop("password", None)
        log.hide(password)
        params.setdefault("connect_timeout", cfg["postgresql"]["connect-timeout"])
        return Target(psycopg2.extensions.make_dsn(**params), {"PGPASSWORD": password} if password else {},
                      postgis.where(params))
    if isinstance(cfg["postgresql"]["host"], list) and len(cfg["postgresql"]["host"]) > 1:
        raise BadInput("postgresql.host lists several hosts (read replicas): give the primary's --database-url")
    p = postgis.connection_params(cfg)[0]
    conninfo = psycopg2.extensions.make_dsn(**{k: v for k, v in p.items() if k != "password"})
    return Target(conninfo, {"PGPASSWORD": p["password"]} if p["password"] else {}, postgis.where(p))


def _connect(t: Target):
    try:
        conn = psycopg2.connect(t.conninfo, application_name="tilebatch-load",
                                password=t.env.get("PGPASSWORD") or None)
    except psycopg2.Error as e:  # bad settings (exit 2), or the server down or busy (exit 1)
        raise faults.db_error(f"cannot connect to the database {t.shown}", e) from None
    conn.autocommit = True
    return conn


@contextlib.contextmanager
def _database(t: Target, doing: str):
    """A connection to the target, closed after; a database error on it said in one line (faults.db_error:
    no right to create a schema is bad input, a dropped connection a failure a retry may mend)."""
    conn = _connect(t)
    try:
        yield conn
    except psycopg2.Error as e:
        raise faults.db_error(f"{doing} in {t.shown}", e) from None
    finally:
        conn.close()


def osm2pgsql_command(t: Target, path: str, cache: int, flat_nodes: str | None) -> list[str]:
    """The osm2pgsql command line of a load into the staging schema."""
    cmd = ["osm2pgsql", "--create", "--slim", "--hstore", "--log-level=warn", f"--cache={cache}",
           f"--middle-schema={STAGING}", f"--output-pgsql-schema={STAGING}", "-d", t.conninfo]
    if flat_nodes:
        cmd.append(f"--flat-nodes={flat_nodes}")
    return cmd + [path]


def _swap(conn, loaded: Loaded) -> None:
    """Move the staging schema's tables and functions over the current ones and write the record, all at once."""
    with conn:  # one transaction: readers see the old load or the new one, never a mix
        with conn.cursor() as cur:
            cur.execute("SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                        " WHERE n.nspname = %s AND c.relkind IN ('r', 'v', 'm', 'S', 'p')", (STAGING,))
            tables = [r[0] for r in cur.fetchall()]
            cur.execute("SELECT p.proname, pg_get_function_identity_arguments(p.oid) FROM pg_proc p"
                        " JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = %s", (STAGING,))
            functions = cur.fetchall()
            for name in tables:
                cur.execute(f"DROP TABLE IF EXISTS {_identifier(name)} CASCADE")
            for name, args in functions:
                cur.execute(f"DROP FUNCTION IF EXISTS {_identifier(name)}({args}) CASCADE")
            for name in tables:
                cur.execute(f"ALTER TABLE {_identifier(STAGING)}.{_identifier(name)} SET SCHEMA {_current(cur)}")
            for name, args in functions:
                cur.execute(f"ALTER FUNCTION {_identifier(STAGING)}.{_identifier(name)}({args}) "
                            f"SET SCHEMA {_current(cur)}")
            cur.execute(f"DROP SCHEMA {_identifier(STAGING)}")
            cur.execute(f"DROP TABLE IF EXISTS {RECORD}")
            cur.execute(f"CREATE TABLE {RECORD} (file text NOT NULL, sha256 text NOT NULL, bytes bigint NOT NULL,"
                        " west float8, south float8, east float8, north float8,"
                        " loaded_at timestamptz NOT NULL DEFAULT now(), flat_nodes text)")
            cur.execute(f"INSERT INTO {RECORD} (file, sha256, bytes, west, south, east, north, flat_nodes)"
                        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                        (loaded.file, loaded.sha256, loaded.bytes, *loaded.bounds, loaded.flat_nodes))


def _current(cur) -> str:
    cur.execute("SELECT current_schema()")
    return _identifier(cur.fetchone()[0])


def _drop_staging(conn) -> None:
    with conn.cursor() as cur:
        cur.execute(f"DROP SCHEMA IF EXISTS {_identifier(STAGING)} CASCADE")


def load(cfg: dict, path: str, database_url: str | None = None, force: bool = False,
         flat_nodes_above_mb: int = FLAT_NODES_ABOVE_MB, flat_nodes_dir: str = ".tilebatch",
         cache: int | None = None) -> Loaded | None:
    """Load the OSM file at `path`; the new record, or None when that very file is loaded already."""
    fmt = osm_format(path)
    size = os.path.getsize(path)
    sha = file_sha256(path)
    t = target(cfg, database_url)
    name = os.path.basename(path)
    log.bind(file=name)
    with _database(t, "load") as conn:
        with conn.cursor() as cur:
            previous = read_record(cur)
        if previous and previous.sha256 == sha and not force:
            print(f"load: {name} is loaded already in {t.shown} (since {previous.loaded_at}); "
                  "FORCE=1 (--force) loads it again", flush=True)
            _zoom_indexes(conn, cfg)  # for a schema configured since, or a load from before them
            return None
        flat_nodes = None
        if size > flat_nodes_above_mb * 2**20:
            os.makedirs(flat_nodes_dir, exist_ok=True)
            stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
            flat_nodes = os.path.abspath(os.path.join(flat_nodes_dir, f"flat-nodes-{stamp}.bin"))
        if cache is None:
            cache = cache_mb(size, available_mb(), flat_nodes is not None)
        loaded = _load_staged(conn, t, path, fmt, cache, flat_nodes,
                              lambda bounds: Loaded(name, sha, size, bounds, "", flat_nodes))
        _zoom_indexes(conn, cfg)
    if previous and previous.flat_nodes and previous.flat_nodes != flat_nodes:
        _remove(previous.flat_nodes)
    log.info("loaded", database=t.shown, bytes=size, sha256=sha, bounds=list(loaded.bounds),
             cache_mb=cache, flat_nodes=flat_nodes)
    return loaded


def _zoom_indexes(conn, cfg: dict) -> None:
    """The partial indexes of meta-low's queries for the configured schema (zoomindex)."""
    from . import meta_low, zoomindex  # numpy and shapely come with meta_low: only a load needs them here
    from .schema import build_max_zoom, load_schema

    schema = load_schema(cfg)
    spans = meta_low.query_zooms(cfg["batch"]["queue-zoom"], build_max_zoom(cfg, schema))
    log.info("zoom indexes", **zoomindex.ensure(conn, schema, spans))


def _load_staged(conn, t: Target, path: str, fmt: str, cache: int, flat_nodes: str | None,
                 record) -> Loaded:
    """osm2pgsql into the staging schema, then the swap with `record(bounds)`; on any failure the
    staging schema goes and the old load stays."""
    log.info("loading", database=t.shown, format=fmt, cache_mb=cache, flat_nodes=flat_nodes)
    _drop_staging(conn)  # what an earlier killed load left
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE EXTENSION IF NOT EXISTS postgis; CREATE EXTENSION IF NOT EXISTS hstore")
            cur.execute(f"CREATE SCHEMA {_identifier(STAGING)}")
        with tempfile.TemporaryDirectory(prefix="tilebatch-load-") as tmp:
            # osm2pgsql tells formats by the file name: give it one that says what the file holds.
            named = os.path.join(tmp, {"pbf": "input.osm.pbf", "xml": "input.osm", "xml.gz": "input.osm.gz",
                                       "xml.bz2": "input.osm.bz2"}[fmt])
            os.symlink(os.path.abspath(path), named)
            proc = subprocess.run(osm2pgsql_command(t, named, cache, flat_nodes), env={**os.environ, **t.env})
        if proc.returncode != 0:
            raise JobFailed(f"osm2pgsql failed (exit {proc.returncode}, see above); the previous load is unchanged")
        with conn.cursor() as cur:
            bounds = extent(cur, STAGING)
        if bounds is None:
            raise BadInput(f"{path} holds nothing the tiles show (no points, lines or polygons); "
                           "the previous load is unchanged")
        _swap(conn, record(bounds))
    except BaseException:
        with contextlib.suppress(psycopg2.Error):  # on a dead connection: what went wrong first is the error
            _drop_staging(conn)
        if flat_nodes:
            _remove(flat_nodes)
        raise
    with conn.cursor() as cur:
        return read_record(cur)


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _load(args, cfg) -> int:
    loaded = load(cfg, args.file, args.database_url, args.force, args.flat_nodes_above_mb, args.flat_nodes_dir,
                  args.cache)
    if loaded:
        w, s, e, n = loaded.bounds
        print(f"load: {loaded.file} loaded ({loaded.bytes / 2**20:.1f} MiB, sha256 {loaded.sha256[:12]}…), "
              f"bounds {w:.5f},{s:.5f},{e:.5f},{n:.5f}", flush=True)
    return 0


def _zoom_indexes_command(args, cfg) -> int:
    with _database(target(cfg, args.database_url), "making the zoom indexes") as conn:
        _zoom_indexes(conn, cfg)
    return 0


def _loaded(args, cfg) -> int:
    t = target(cfg, args.database_url)
    with _database(t, "reading the load record") as conn, conn.cursor() as cur:
        record = read_record(cur)
    if args.field:
        print(_shown(record, args.field))
        return 0
    if record is None:
        print(f"nothing loaded with tilebatch load in {t.shown}")
        return 0
    for field in Loaded._fields:
        print(f"{field}: {_shown(record, field)}")
    return 0


def _shown(record: Loaded | None, field: str) -> str:
    """One field of a record as printed: bounds as w,s,e,n; empty for none."""
    value = getattr(record, field) if record else None
    if field == "bounds" and value:
        return ",".join(f"{v:.7f}" for v in value)
    return "" if value is None else str(value)


def add_commands(sub, common) -> None:
    p = sub.add_parser("load", parents=[common],
                       help="load an OSM extract (.osm.pbf, .osm[.gz|.bz2]) into PostGIS with osm2pgsql",
                       description="Load an OSM extract with osm2pgsql --slim --hstore. The previous load is "
                                   "replaced only when this one succeeds; a file already loaded is skipped.")
    p.add_argument("file", metavar="FILE", help="the extract, e.g. berlin-latest.osm.pbf")
    p.add_argument("--database-url", dest="database_url",
                   help="the database to load into (default: the configured postgresql one)")
    p.add_argument("--force", action="store_true", help="load the file even when it is the one loaded")
    p.add_argument("--flat-nodes-above-mb", dest="flat_nodes_above_mb", type=int, default=FLAT_NODES_ABOVE_MB,
                   help=f"keep node locations in a flat file, not a table, for files above this many MiB "
                        f"(default {FLAT_NODES_ABOVE_MB})")
    p.add_argument("--flat-nodes-dir", dest="flat_nodes_dir", default=".tilebatch",
                   help="the folder of the flat-nodes file (default .tilebatch)")
    p.add_argument("--cache", type=int, default=None,
                   help="osm2pgsql's node cache in MiB (default: the file's size or 75%% of the free memory, "
                        "whichever is smaller; 0 with a flat-nodes file)")
    p.set_defaults(func=_load)
    p = sub.add_parser("zoom-indexes", parents=[common],
                       help="make meta-low's zoom indexes for the configured schema (a load makes them)",
                       description="Make the partial indexes meta-low's low-zoom queries read, for the configured "
                                   "schema, in a database loaded with osm2pgsql outside tilebatch load (tilebatch "
                                   "load makes them itself); drop those of another schema. Made already: nothing "
                                   "to do. Without them meta-low reads the same rows, testing every one.")
    p.add_argument("--database-url", dest="database_url",
                   help="the database to index (default: the configured postgresql one)")
    p.set_defaults(func=_zoom_indexes_command)
    p = sub.add_parser("loaded", parents=[common], help="what tilebatch load last loaded: file, sha256, bounds, time",
                       description="Print the record of the extract the database holds, one field a line.")
    p.add_argument("--database-url", dest="database_url",
                   help="the database to ask (default: the configured postgresql one)")
    p.add_argument("--field", choices=Loaded._fields, help="print only this field's value (empty when none)")
    p.set_defaults(func=_loaded)
