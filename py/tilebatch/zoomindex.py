"""Partial indexes for meta-low's queries: the rows a zoom shows, found without testing every row.

A low-zoom job's box covers much of the data (a z3 job's an eighth of a
continent) and its zoom filter keeps a sliver of it, so PostgreSQL would test
the filter on every row in the box. A partial GiST index on the geometry whose
predicate is that filter holds only the rows it keeps, and PostgreSQL reads it
instead when the query has the same predicate. A filter is too large to be an
index predicate itself (PostgreSQL keeps one in a catalog row of 8 kB), so the
predicate is a call of an SQL function holding it (postgis.ZoomFunction).
PostgreSQL inlines the call, finds it the same as the query's filter, which
is the function's body (postgis.Tables.zoom_filter), and reads the index.
`tilebatch load` makes them for the configured schema, one an OSM table and
span of zooms meta-low queries (meta_low.query_zooms), and drops those of
another schema, an older filter or an older form of function. Queries run
the same without them, only slower.
"""

import psycopg2

from . import faults, log, postgis
from .postgis import ZoomFunction
from .schema import Schema


def wanted(src: postgis.Tables, spans: list[tuple[int, int]]) -> dict[str, ZoomFunction]:
    """The zoom functions (and indexes, of the same names) for these spans of zooms, by name."""
    out = {}
    for key, table in src.tables.items():
        if not table.tags:  # sea, land, borders: no tags to filter by
            continue
        for first, last in spans:
            function = src.zoom_function(key, first, last)
            if function is not None:
                out[function.name] = function
    return out


def _ddl(function: ZoomFunction, geometry_column: str) -> list[str]:
    params = ", ".join(f"{postgis._identifier(c)} {t}" for c, t in function.params)
    # IMMUTABLE, not STRICT, one expression: what PostgreSQL inlines (and an index predicate
    # needs). A RETURN body is parsed once, here: a body given as a string is parsed each
    # time the function runs, in the caller's search_path, and autovacuum's ANALYZE (and
    # from PostgreSQL 17 every VACUUM, ANALYZE and REINDEX) has only pg_catalog on it,
    # where hstore's -> is not: it failed on every table with such an index.
    return [f"CREATE OR REPLACE FUNCTION {function.name}({params}) RETURNS boolean LANGUAGE sql IMMUTABLE "
            f"RETURN {function.predicate}",
            f"CREATE INDEX IF NOT EXISTS {function.name} ON {function.table} USING gist ({geometry_column}) "
            f"WHERE {function.call}"]


def ensure(conn, schema: Schema, spans: list[tuple[int, int]]) -> dict:
    """Make the functions and indexes these spans want that are missing, drop this project's others; counts.

    `conn` in autocommit: each index is made in a transaction of its own, so a
    load interrupted half-way keeps those it made, and the next makes the rest.
    """
    src = postgis.Tables(conn, schema)
    functions = wanted(src, spans)
    columns = {t.name: t.geometry_column for t in src.tables.values()}
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT proname, prosqlbody IS NULL FROM pg_proc WHERE proname LIKE %s", (postgis.ZOOM_NAMES,))
            found = cur.fetchall()  # a function with a string body (made before RETURN ones) is stale too
            stale = sorted(({name for name, _ in found} - set(functions)) | {name for name, string in found if string})
            for name in stale:  # its index goes with it
                cur.execute(f"DROP FUNCTION IF EXISTS {name} CASCADE")
            cur.execute("SELECT relname FROM pg_class WHERE relkind = 'i' AND relname LIKE %s", (postgis.ZOOM_NAMES,))
            made = sorted(set(functions) - {r[0] for r in cur.fetchall()})
            for name in made:
                log.info("making a partial index for meta-low's queries", index=name, table=functions[name].table)
                for statement in _ddl(functions[name], columns[functions[name].table]):
                    cur.execute(statement)
    except psycopg2.Error as e:
        raise faults.db_error("database: making the zoom indexes", e) from None
    return {"made": len(made), "dropped": len(stale), "kept": len(functions) - len(made)}
