"""Rows from the osm2pgsql PostGIS database, as `(id, WKB, tags)` for both paths.

One connection per process (`job_tables`), a transaction per job. A row's tags are the hstore `tags` merged with the
tag columns osm2pgsql keeps apart under `--hstore`, plus `way_area` for
polygons, so a rule sees every tag whichever way the database was loaded.
"""

import hashlib
import random
from typing import Iterable, Iterator, NamedTuple

import psycopg2

from . import faults, log, sqlfilter
from .classify import LABEL_KEY
from .errors import BadInput, JobFailed
from .schema import Schema, Table, tags_read

# Columns osm2pgsql adds that are not OSM tags.
NOT_TAGS = ("osm_id", "way", "tags", "z_order", "way_area")
# ... of which these are handed on as tags: rules may read and sort by them.
PSEUDO_TAGS = ("way_area", "z_order")
# Rows a round trip to the database brings.
FETCH_ROWS = 2000
# The names of zoomindex's functions and indexes.
ZOOM_FUNCTION_PREFIX = "tilebatch_zoom_"


class ZoomFunction(NamedTuple):
    """A zoom filter as an SQL function (zoomindex): its name, table, parameters (column, type), body."""

    name: str
    table: str
    params: tuple
    predicate: str

    @property
    def call(self) -> str:
        """The function called on a row's columns: its partial index's predicate."""
        return f"{self.name}({', '.join(_identifier(c) for c, _ in self.params)})"


# LIKE pattern of the zoom functions' names (and their indexes': the same names).
ZOOM_NAMES = ZOOM_FUNCTION_PREFIX.replace("_", r"\_") + "%"


def connection_params(cfg: dict, section: str = "postgresql") -> list[dict]:
    """Every (host, database) to try, in the order to try them.

    The hosts are shuffled so that jobs spread over read replicas. The rawr job
    reads `rawr.postgresql`, each unset key falling back to `postgresql`.
    """
    base = cfg["postgresql"]
    own = cfg["rawr"]["postgresql"] if section == "rawr" else {}
    pick = lambda key, fallback: own.get(key) if own.get(key) is not None else fallback  # noqa: E731
    hosts = pick("host", base["host"])
    hosts = list(hosts) if isinstance(hosts, list) else [hosts]
    random.shuffle(hosts)
    dbnames = [own["dbname"]] if own.get("dbname") else base["dbnames"]
    return [{"host": h, "port": pick("port", base["port"]), "dbname": d, "user": pick("user", base["user"]),
             "password": pick("password", base["password"]), "connect_timeout": base["connect-timeout"]}
            for h in hosts for d in dbnames]


def where(params: dict) -> str:
    """The database that connection `params` name, as messages show it: host:port/database (libpq's
    defaults where unset), never the user or the password."""
    return f"{params.get('host') or 'localhost'}:{params.get('port') or 5432}/{params.get('dbname') or ''}"


def connect(cfg: dict, section: str = "postgresql"):
    """A connection to the first host that answers.

    JobFailed when none does (down, refusing, timing out, full: a retry may
    find one); BadInput when every host refused the settings themselves (no
    such database or role, authentication failed).
    """
    problems = []
    for params in connection_params(cfg, section):
        shown = where(params)
        try:
            # JIT off: a low-zoom query over a large box is priced high enough for
            # PostgreSQL to compile its zoom filter with LLVM, which costs more CPU
            # (~0.6 s a process a query) than the scan it speeds up (~0.1 s).
            # cursor_tuple_fraction 1: rows are read through a cursor (`rows`) and
            # all of them, so it is planned as the plain query. No parallel workers:
            # a job is one process a core beside other jobs, and a parallel plan
            # spends CPU for wall time (it also priced a partial index of zoomindex
            # above a parallel scan of the whole table). work_mem 16 MB: `rows` sorts
            # a table's rows in a box, and in the default 4 MB the densest 16x RAWR
            # tile's sorts went to disk, 8% of the database's CPU for it (a
            # connection runs one such query at a time).
            conn = psycopg2.connect(**params, application_name="tilebatch",
                                    options="-c jit=off -c cursor_tuple_fraction=1 -c max_parallel_workers_per_gather=0"
                                            " -c work_mem=16MB")
            # Read-only transactions: the server-side cursors of `rows` live in one,
            # and a job reads one snapshot of the data (`end_job` ends it).
            conn.set_session(readonly=True, isolation_level="REPEATABLE READ")
            return conn
        except psycopg2.Error as e:
            problems.append(faults.db_error(shown, e))
            log.warning("database unreachable, trying the next", database=shown)
    cls = BadInput if all(isinstance(p, BadInput) for p in problems) else JobFailed
    raise cls("cannot connect to the database: " + "; ".join(map(str, problems)))


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _table_columns(cur, names: list[str]) -> dict[str, dict[str, str] | None]:
    """Each table's columns by name, with their types as PostgreSQL writes them (`geometry(Point,3857)`);
    None for a table the database lacks.

    From the catalog (information_schema's view costs the server ~10 ms a table a
    job), for all the tables in one query: each job asks, and a query a table cost
    it a round trip and a plan each.
    """
    cur.execute("SELECT n.name, a.attname, format_type(a.atttypid, a.atttypmod) FROM unnest(%s::text[]) AS n(name) "
                "LEFT JOIN pg_attribute a ON a.attrelid = to_regclass(n.name) AND a.attnum > 0 AND NOT a.attisdropped",
                (names,))
    found: dict[str, dict[str, str]] = {}
    for name, column, data_type in cur.fetchall():
        if column is not None:
            found.setdefault(name, {})[column] = data_type
    return {name: found.get(name) for name in names}


def missing_optional_tables(conn, schema: Schema) -> list[str]:
    """The schema's optional tables (sea and land polygons) the database lacks."""
    optional = [t.name for t in schema.tables.values() if t.optional]
    try:
        with conn.cursor() as cur:
            return [name for name, columns in _table_columns(cur, optional).items() if columns is None]
    except psycopg2.Error as e:
        raise faults.db_error("database: looking for the optional tables", e) from None


class Tables:
    """The schema's tables in one database: which exist, and their rows by box."""

    def __init__(self, conn, schema: Schema):
        self.conn, self.schema = conn, schema
        self.tables: dict[str, Table] = {}
        self._columns: dict[str, dict[str, str]] = {}  # table key -> {column: data type, with its modifier}
        self._wheres: dict[tuple, str | None] = {}  # (table key, zooms) -> the rows' condition (`_where`)
        self._reads: dict[str, tuple] = {}  # table key -> the tags its rows hand on (`_read`)
        self._arrays: dict[str, str] = {}  # table key -> the SQL of its rows' tags (`_tags_array`)
        try:
            self._find_tables(conn, schema)
        except psycopg2.Error as e:
            raise faults.db_error("database: reading the tables' columns", e) from None

    def _find_tables(self, conn, schema: Schema) -> None:
        with conn.cursor() as cur:
            columns = _table_columns(cur, [table.name for table in schema.tables.values()])
        for table in schema.tables.values():
            if columns[table.name] is None:
                if table.optional:  # the run warns once (local.warn_missing_tables), not every job
                    log.info("optional table missing, skipped", table=table.name)
                    continue
                raise BadInput(f"table {table.name} is missing from the database "
                               f"(load it with osm2pgsql --slim --hstore)")
            self.tables[table.key] = table
            self._columns[table.key] = columns[table.name]

    def _tag_sql(self, table_key: str, read: set | None = None):
        """SQL for one tag's value in this table: its own column where osm2pgsql made one, else the hstore.
        The columns it reads are added to `read`, when given.

        The column alone: osm2pgsql fills a key's column wherever the key is
        set, and the hstore holds it only under --hstore-all, then with the
        same value. Looking there too cost a tenth of the database's CPU for a
        RAWR tile (a row no rule holds for misses every column a filter tests).
        """
        columns, has_tags = self._columns[table_key], self.tables[table_key].tags
        read = set() if read is None else read

        def tag(key: str) -> str:
            if key in columns and (key not in NOT_TAGS or key in PSEUDO_TAGS):
                read.add(key)
                return f"{_identifier(key)}::text"
            if not has_tags:
                return "NULL::text"
            read.add("tags")
            return sqlfilter.hstore_tag(key)

        return tag

    def _read(self, table_key: str) -> tuple[frozenset, tuple]:
        """The tags rows of this table hand on: those the schema's rules read (keys, key prefixes), and
        those always there (PSEUDO_TAGS, the label point)."""
        if table_key not in self._reads:
            keys, prefixes = tags_read(self.schema, table_key)
            self._reads[table_key] = keys | {*PSEUDO_TAGS, LABEL_KEY}, prefixes
        return self._reads[table_key]

    def _tag_pairs(self, table_key: str, read: bool = False) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """The (key, SQL value) pairs of a row's tags besides its tags column: those of the tag columns (`read`:
        the ones the schema reads), and those always there (way_area, z_order; the label point, from the
        whole polygon so that it is the same point whichever tile clipped it, NULL in a row no label rule
        may draw)."""
        columns = self._columns[table_key]
        keys, prefixes = self._read(table_key) if read else (None, ())
        tag_columns = [(c, _identifier(c)) for c in sorted(c for c, t in columns.items() if t == "text" and c not in NOT_TAGS)
                       if keys is None or c in keys or c.startswith(prefixes)]
        always = [(c, f"{c}::text") for c in PSEUDO_TAGS if c in columns]
        if table_key in self.schema.label_tables and not self._points_only(table_key):
            # Only for the rows a label rule may draw: finding a point on a surface was a
            # third of the database's time for a city's polygons, most of them buildings.
            point = f"ST_PointOnSurface({self.tables[table_key].geometry_column})"
            labelled = sqlfilter.sql_label_rows(self.schema, table_key, self._tag_sql(table_key))
            always.append((LABEL_KEY, f"CASE WHEN {labelled} THEN ST_X({point})::text || ' ' || ST_Y({point})::text END"))
        return tag_columns, always

    def _tags_expression(self, table_key: str) -> str:
        """All of a row's tags as one hstore: the tags column, the tag columns, and way_area (for a query
        that needs an hstore, as the ST_AsMVT benchmark peer's does; jobs read `_tags_array`).

        A NULL column leaves the hstore's value for that key (no row osm2pgsql makes has both).
        """
        if not self.tables[table_key].tags:
            return "''::hstore"
        tag_columns, always = self._tag_pairs(table_key)
        parts = ["coalesce(tags, ''::hstore)"]
        parts += [f"(CASE WHEN {value} IS NULL THEN ''::hstore ELSE hstore({sqlfilter.quote(key)}, {value}) END)"
                  for key, value in tag_columns]
        parts += [f"hstore({sqlfilter.quote(key)}, {value})" for key, value in always]
        return " || ".join(parts)

    def _tags_array(self, table_key: str) -> str:
        """`_tags_expression` as a flat text[] of keys and values, a later pair taking a key from an earlier
        one, a NULL value none (the client drops it), less the tags no rule reads (most of them).

        A tag column adds its pair only where it has a value: osm2pgsql makes
        some 70 columns, nearly all NULL in any row, and NULL-valued pairs cost
        the database and the client 5x the rest of the row (rawr reads every
        row). An array, not the hstore merged of them: merging hstores was 60%
        of the database's time for a RAWR tile.

        The tags column gives the pairs of the keys read that have no column
        of their own (a column's value is the key's: `_tag_sql`), and only in
        rows that hold one of them, most rows none: its other pairs
        (addresses, names in other languages, ...) were most of what the
        database sent for a row, and the client parsed and dropped. A key
        prefix (Tilezen's `name:`) is no key to look for: then all its pairs come.

        Made once a table: a job queries a table for each of its tiles with it.
        """
        if table_key not in self._arrays:
            self._arrays[table_key] = self._tags_array_sql(table_key)
        return self._arrays[table_key]

    def _tags_array_sql(self, table_key: str) -> str:
        if not self.tables[table_key].tags:
            return "ARRAY[]::text[]"
        tag_columns, always = self._tag_pairs(table_key, read=True)
        keys, prefixes = self._read(table_key)
        own = sorted(keys - {key for key, _ in tag_columns + always})
        if prefixes:
            hstore = "coalesce(hstore_to_array(tags), ARRAY[]::text[])"
        elif own:
            wanted = f"ARRAY[{', '.join(map(sqlfilter.quote, own))}]"
            hstore = f"(CASE WHEN tags ?| {wanted} THEN hstore_to_array(slice(tags, {wanted})) ELSE ARRAY[]::text[] END)"
        else:
            hstore = "ARRAY[]::text[]"
        # A NULL column's key is NULL too, and array_remove takes out both.
        present = ", ".join(f"CASE WHEN {value} IS NULL THEN NULL ELSE {sqlfilter.quote(key)} END, {value}"
                            for key, value in tag_columns)
        pairs = ", ".join(f"{sqlfilter.quote(key)}, {value}" for key, value in always)
        return (hstore + (f" || array_remove(ARRAY[{present}]::text[], NULL)" if present else "")
                + (f" || ARRAY[{pairs}]::text[]" if pairs else ""))

    def _points_only(self, table_key: str) -> bool:
        """Whether the table's geometry column holds only points (osm2pgsql's point table).

        A point's label point is the point itself, which render takes from the
        geometry when the row has no label tag: the database need not compute it
        for every row, nor the rows carry it (a fifth of a RAWR tile's tags).
        """
        return self._columns[table_key][self.tables[table_key].geometry_column].startswith("geometry(Point,")

    def zoom_filter(self, table_key: str, first: int, last: int, read: set | None = None) -> str | None:
        """The SQL keeping the rows of a table some layer shows at any of zooms `first`..`last` (sqlfilter);
        None when none can. The columns it reads are added to `read`, when given.

        A query has the filter itself, whether or not zoomindex made the
        partial index of these zooms: PostgreSQL inlines the call of the zoom
        function (zoom_function) that is the index's predicate, finds it the
        same as this, the function's body, and reads the index.
        """
        return sqlfilter.sql_filter(self.schema, table_key, first, self._tag_sql(table_key, read), last)

    def zoom_function(self, table_key: str, first: int, last: int) -> "ZoomFunction | None":
        """The zoom filter as an SQL function of the columns it reads, named by a digest of its table and
        predicate (zooms with the same filter share it); zoomindex makes it, with its index. None when no
        row can be shown."""
        read = set()
        predicate = self.zoom_filter(table_key, first, last, read)
        if predicate is None:
            return None
        name = self.tables[table_key].name
        digest = hashlib.sha256(f"{name}\n{predicate}".encode()).hexdigest()[:12]
        return ZoomFunction(ZOOM_FUNCTION_PREFIX + digest, name,
                            tuple((c, self._columns[table_key][c]) for c in sorted(read)), predicate)

    def boxes_with_rows(self, boxes: list[tuple], keys: Iterable[str] | None = None) -> list[bool]:
        """For each box (EPSG:3857), whether any table (of `keys`, default all) has a row touching it: one
        cheap query on the spatial indexes for all the boxes (a rawr job looks at its 64 z10 tiles, most of
        the planet's empty: a query a box cost a round trip and a plan each)."""
        tables = [self.tables[k] for k in (self.tables if keys is None else keys) if k in self.tables]
        if not tables or not boxes:
            return [False] * len(boxes)
        envelope = "ST_MakeEnvelope(b.minx, b.miny, b.maxx, b.maxy, 3857)"
        sql = ("SELECT " + " OR ".join(f"EXISTS (SELECT 1 FROM {t.name} WHERE {t.geometry_column} && {envelope})"
                                       for t in tables) +
               " FROM unnest(%s::float8[], %s::float8[], %s::float8[], %s::float8[]) WITH ORDINALITY"
               " AS b(minx, miny, maxx, maxy, i) ORDER BY i")
        try:
            with self.conn.cursor() as cur:
                cur.execute(sql, [list(side) for side in zip(*boxes)])
                return [found for (found,) in cur.fetchall()]
        except psycopg2.Error as e:
            raise faults.db_error("database query failed", e) from None

    def _where(self, table_key: str, zooms: tuple[int, int] | None) -> str | None:
        """The condition of `rows`: the zoom filter of zooms `zooms[0]`..`zooms[1]`, or with none the
        rows some rule may hold for; None when no row can be shown. Made once a table and span: a job queries
        a table for each of its tiles with the same one (rawr 64 times)."""
        key = (table_key, zooms)
        if key not in self._wheres:
            if zooms is not None:
                self._wheres[key] = self.zoom_filter(table_key, *zooms)
            else:
                self._wheres[key] = sqlfilter.sql_candidates(self.schema, table_key, self._tag_sql(table_key)) or "TRUE"
        return self._wheres[key]

    def rows(self, table_key: str, box: tuple, zooms: tuple[int, int] | None = None,
             simplify: float = 0.0, clip: tuple | None = None) -> Iterator[tuple]:
        """The rows of a table touching `box` (EPSG:3857), clipped to it, in a fixed order (id first):
        (id, WKB, tags), the geometry simplified in the database by `simplify` metres (0: not at all).

        `clip`, a box holding `box`, clips instead: a part of a job gets its rows
        as the whole job would, the ones it needs of them.

        With `zooms` (first, last), only the rows some layer shows at any of
        them (zoom_filter: meta-low, one query for several zooms, so a row and
        its tags are read, filtered and sorted once, not once a zoom); without,
        the rows some rule may hold for at any zoom (sqlfilter.sql_candidates:
        RAWR). The filter reads osm2pgsql's tag columns directly, so the merged
        tags are built only for the rows it keeps.

        A row's tags are those the schema's rules read (`tags_read`), and
        way_area, z_order and the label point: no other can change a feature,
        and more than half of a city's tag pairs are others (addresses, names
        in other languages, opening hours, ...), which a RAWR tile would carry,
        pack and unpack for nothing.
        """
        table = self.tables.get(table_key)
        if table is None:
            return
        where = self._where(table_key, zooms)
        if where is None:
            return
        envelope = "ST_MakeEnvelope(%(minx)s, %(miny)s, %(maxx)s, %(maxy)s, 3857)"
        clip_envelope = "ST_MakeEnvelope(%(clip_minx)s, %(clip_miny)s, %(clip_maxx)s, %(clip_maxy)s, 3857)"
        clipped = f"ST_ClipByBox2D({table.geometry_column}, {clip_envelope})"
        declared = self._columns[table_key][table.geometry_column]
        geom = f"ST_AsBinary({simplified(clipped, table.geometry_column, simplify, declared)})"
        keys, prefixes = self._read(table_key)
        # Several rows can share an id (a relation's lines, a split way): geometry
        # and tags order them, so every build reads rows in the same order.
        order = [table.id_column, table.geometry_column] + (["tags"] if table.tags else [])
        sql = (f"SELECT {table.id_column}, {geom}, {self._tags_array(table_key)}"
               f" FROM {table.name} WHERE {table.geometry_column} && {envelope} AND ({where})"
               f" ORDER BY {', '.join(order)}")
        params = {**dict(zip(("minx", "miny", "maxx", "maxy"), box)),
                  **dict(zip(("clip_minx", "clip_miny", "clip_maxx", "clip_maxy"), clip or box))}
        try:
            # A server-side cursor, read FETCH_ROWS rows at a time: a dense
            # tile's rows never sit in this process all at once.
            with self.conn.cursor(name=f"rows_{table_key}") as cur:
                cur.itersize = FETCH_ROWS
                cur.execute(sql, params)
                for row_id, wkb, flat in cur:
                    if wkb is None:
                        continue
                    it = iter(flat)
                    yield row_id, bytes(wkb), {k: v for k, v in zip(it, it) if v is not None and (
                        k in keys or prefixes and k.startswith(prefixes))}
        except psycopg2.Error as e:
            raise faults.db_error(f"database query on {table.name} failed", e) from None


def simplified(geometry: str, column: str, tolerance: float, declared: str = "geometry") -> str:
    """SQL simplifying `geometry` (made of `column`, of type `declared` as PostgreSQL writes it:
    `geometry(LineString,3857)`) by `tolerance` metres; itself for 0.

    A polygon keeps its topology (its rings must not cross). Lines are
    simplified by Douglas-Peucker, as render.tile_layers simplifies them
    after: a line that comes to cross itself draws the same, and keeping its
    topology costs a round trip through GEOS, most of a low-zoom query's
    time on a city's roads. A line shorter than the tolerance is kept
    (preserveCollapsed), as topology-preserving simplification keeps it: a NULL
    would drop its row from every zoom of the query. Points stay as they are.
    What a column's type allows is chosen here, once; only a column of any
    geometry (osm2pgsql's polygons and multipolygons) is looked at row by row.
    """
    shape = declared.removeprefix("geometry(").split(",")[0].lower().removeprefix("multi")
    if tolerance <= 0 or shape == "point":
        return geometry
    t = repr(float(tolerance))
    lines, polygons = f"ST_Simplify({geometry}, {t}, true)", f"ST_SimplifyPreserveTopology({geometry}, {t})"
    if shape == "linestring":
        return lines
    if shape == "polygon":
        return polygons
    return f"CASE WHEN ST_Dimension({column}) < 2 THEN {lines} ELSE {polygons} END"


_shared: dict = {}  # the configuration, and the tables over the connection its jobs share (job_tables)


def job_tables(cfg: dict, schema: Schema) -> Tables:
    """The schema's tables over the connection this process's jobs share, made by the first of them.

    A process may do several jobs in turn (a box's low-zoom meta-low jobs,
    enqueue.job_units): a new connection costs the database a backend and
    its catalog caches, about as much CPU as such a job's queries. Each job
    reads in a transaction of its own, which `end_job` ends, so each sees
    the data as it is when it starts, as a job alone would.
    """
    tables = _shared.get("tables")
    if _shared.get("cfg") is not cfg or tables is None or tables.schema is not schema or tables.conn.closed:
        if tables is not None:
            tables.conn.close()  # another configuration's or schema's: not to be left open
        _shared.update(cfg=cfg, tables=Tables(connect(cfg), schema))
    return _shared["tables"]


def end_job(tables: Tables) -> None:
    """End a job's reading: its transaction rolled back (it wrote nothing), the connection kept for the next
    job; closed if that fails, and the next job connects again."""
    try:
        tables.conn.rollback()
    except psycopg2.Error:
        tables.conn.close()
