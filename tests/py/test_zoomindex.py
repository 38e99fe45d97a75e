"""meta-low's partial indexes (zoomindex): made by a load, read by the queries, the same rows (real PostGIS)."""

import re

import psycopg2
import pytest

from tilebatch import config, postgis, zoomindex
from tilebatch import schema as schemas
from tilebatch.meta_low import query_zooms
from tilebatch.rawrtile import rawr_box
from tilebatch.tiles import Tile, tile_at

from conftest import last_error, run_cli

CENTRAL = (24.945, 60.170)  # the demo data's centre
WORLD = rawr_box(Tile(0, 0, 0))


@pytest.fixture
def admin(db_url):
    """An autocommit connection to the test database; the configured schema's indexes put back after."""
    cfg = config.load("config.yaml")
    conn = psycopg2.connect(db_url)
    conn.autocommit = True
    yield conn
    schema = schemas.load_schema(cfg)
    zoomindex.ensure(conn, schema, query_zooms(cfg["batch"]["queue-zoom"], schemas.build_max_zoom(cfg, schema)))
    conn.close()


def _plan(conn, sql: str) -> str:
    with conn.cursor() as cur:
        cur.execute("EXPLAIN " + sql)
        return "\n".join(r[0] for r in cur.fetchall())


@pytest.mark.parametrize("name", ["tilezen", "shortbread"])
def test_queries_read_the_partial_indexes_and_get_the_same_rows(admin, name):
    cfg = config.load("config.yaml")
    schema = schemas.load(schemas.schema_path(name))
    spans = query_zooms(cfg["batch"]["queue-zoom"], schema.max_zoom)
    zoomindex.ensure(admin, schema, [])  # none left: the queries test the filter row by row
    with admin.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_class WHERE relkind = 'i' AND relname LIKE %s", (postgis.ZOOM_NAMES,))
        assert cur.fetchone()[0] == 0
    plain = postgis.Tables(postgis.connect(cfg), schema)
    box = rawr_box(tile_at(*CENTRAL, 7))
    simplify = {(first, last): 10.0 * last for first, last in spans}
    # The same queries as with the indexes, read before they are made.
    unindexed = {(key, span): list(plain.rows(key, box, span, simplify[span])) for key in plain.tables for span in spans}
    made = zoomindex.ensure(admin, schema, spans)
    assert made["made"] == len(zoomindex.wanted(plain, spans)) > len(spans)
    assert zoomindex.ensure(admin, schema, spans) == {"made": 0, "dropped": 0, "kept": made["made"]}
    indexed = postgis.Tables(postgis.connect(cfg), schema)
    try:
        used = 0
        for key, table in indexed.tables.items():
            for first, last in spans if table.tags else ():  # sea and land: no tags, no filter to index
                where = indexed.zoom_filter(key, first, last)
                if where is None:
                    continue
                if last < 10:  # a low zoom's query over a large box: an index of its filter's rows, not every row
                    # (its own, or one of a filter its own implies, when the planner prices them the same)
                    sql = (f"SELECT 1 FROM {table.name} WHERE {table.geometry_column} && "
                           f"ST_MakeEnvelope({', '.join(map(repr, WORLD))}, 3857) AND ({where})")
                    plan = _plan(indexed.conn, sql)
                    assert re.search(rf"Index Scan (on|using) {postgis.ZOOM_FUNCTION_PREFIX}", plan) and \
                        "Seq Scan" not in plan, \
                        f"{name} {key} z{first}-{last}: {plan}"
                    used += 1
                assert list(indexed.rows(key, box, (first, last), simplify[first, last])) == unindexed[key, (first, last)]
        assert used > 10
    finally:
        plain.conn.close()
        indexed.conn.close()


def test_a_load_drops_the_indexes_of_another_filter(admin):
    cfg = config.load("config.yaml")
    schema = schemas.load(schemas.schema_path("shortbread"))
    spans = query_zooms(cfg["batch"]["queue-zoom"], schema.max_zoom)
    zoomindex.ensure(admin, schema, spans)
    with admin.cursor() as cur:
        stale = postgis.ZOOM_FUNCTION_PREFIX + "000000000000"
        cur.execute(f"CREATE OR REPLACE FUNCTION {stale}(highway text) RETURNS boolean LANGUAGE sql IMMUTABLE "
                    "AS $$ SELECT highway = 'motorway' $$")
        cur.execute(f"CREATE INDEX {stale} ON planet_osm_line USING gist (way) WHERE {stale}(highway)")
        assert zoomindex.ensure(admin, schema, spans)["dropped"] == 1
        cur.execute("SELECT count(*) FROM pg_class WHERE relname = %s", (stale,))
        assert cur.fetchone()[0] == 0


def _analyze_as_autovacuum(conn, table: str) -> None:
    """ANALYZE with only pg_catalog on the search_path, as autovacuum runs it (and PostgreSQL 17 every ANALYZE)."""
    with conn.cursor() as cur:
        cur.execute("SET search_path = pg_catalog")
        try:
            cur.execute(f"ANALYZE public.{table}")
        finally:
            cur.execute("RESET search_path")


def test_autovacuum_can_analyze_the_tables_and_a_load_replaces_a_function_that_it_could_not(admin):
    cfg = config.load("config.yaml")
    schema = schemas.load(schemas.schema_path("shortbread"))
    spans = query_zooms(cfg["batch"]["queue-zoom"], schema.max_zoom)
    zoomindex.ensure(admin, schema, spans)
    functions = zoomindex.wanted(postgis.Tables(admin, schema), spans)
    for table in {f.table for f in functions.values()}:
        _analyze_as_autovacuum(admin, table)
    # One made as before: its body a string, parsed in the search_path of whoever runs it.
    old = next(f for f in functions.values() if "tags->" in f.predicate)
    params = ", ".join(f"{postgis._identifier(c)} {t}" for c, t in old.params)
    with admin.cursor() as cur:
        cur.execute(f"DROP FUNCTION {old.name} CASCADE")
        cur.execute(f"CREATE FUNCTION {old.name}({params}) RETURNS boolean LANGUAGE sql IMMUTABLE "
                    f"AS $$ SELECT {old.predicate} $$")
        cur.execute(f"CREATE INDEX {old.name} ON {old.table} USING gist (way) WHERE {old.call}")
    with pytest.raises(psycopg2.errors.UndefinedFunction, match="operator does not exist"):
        _analyze_as_autovacuum(admin, old.table)
    assert zoomindex.ensure(admin, schema, spans) == {"made": 1, "dropped": 1, "kept": len(functions) - 1}
    _analyze_as_autovacuum(admin, old.table)


def test_zoom_indexes_command_makes_them_in_a_database_loaded_elsewhere(admin, db_url):
    """The Batch runbook loads with osm2pgsql itself: `tilebatch zoom-indexes` makes what a load would."""
    cfg = config.load("config.yaml")
    schema = schemas.load_schema(cfg)
    spans = query_zooms(cfg["batch"]["queue-zoom"], schemas.build_max_zoom(cfg, schema))
    zoomindex.ensure(admin, schema, [])
    made = run_cli("zoom-indexes", "--config", "config.yaml", "--database-url", db_url)
    assert made.returncode == 0, made.stderr
    wanted = len(zoomindex.wanted(postgis.Tables(admin, schema), spans))
    assert zoomindex.ensure(admin, schema, spans) == {"made": 0, "dropped": 0, "kept": wanted}
    again = run_cli("zoom-indexes", "--config", "config.yaml", "--database-url", db_url)
    assert again.returncode == 0 and '"made": 0' in again.stderr
    down = run_cli("zoom-indexes", "--config", "config.yaml", "--database-url", "postgresql://127.0.0.1:9/gis")
    assert down.returncode == 1 and "cannot connect to the database" in last_error(down)
