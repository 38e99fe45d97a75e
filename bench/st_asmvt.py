"""PostGIS alone: the tiles tilebatch built, each rendered by one SQL query with ST_AsMVT.

This is what a user would write instead of a pipeline: per tile and layer,
the rows the schema shows at that zoom (the same filters, sqlfilter.sql_filter,
read from osm2pgsql's tag columns as tilebatch reads them, merged tags built
only for the rows kept), cut with ST_AsMVTGeom and encoded
with ST_AsMVT, the layers concatenated into one tile. Every tile tilebatch
wrote in the zoom range is rendered once; the CPU counted is the database
backend's (from /proc) plus this process's.
"""

import time

from tilebatch import postgis, sqlfilter
from tilebatch.schema import Expr, LayerSpec, Schema, load_schema

from . import counts, measure
from .data import Dataset

EXTENT, BUFFER = 4096, 64


def _quote(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def _value_sql(expr: Expr | None) -> str:
    """SQL for a kind or property that is a constant or a tag (looked up); NULL for what a hand-written query
    would leave out."""
    if expr is None:
        return "NULL"
    if expr.tags is None:
        return _quote(expr.const) if expr.const is not None and expr.any is None and expr.all is None else "NULL"
    value = f"coalesce({', '.join(f'tags->{_quote(t)}' for t in expr.tags)})"
    default = _value_sql(expr.default)
    if expr.values is None:
        return f"coalesce({value}, {default})"
    cases = " ".join(f"WHEN {_quote(v)} THEN {_quote(k)}" for v, k in sorted(expr.values.items()))
    return f"(CASE {value} {cases} ELSE {default} END)"


_GEOMETRY = {"boundary": "ST_Boundary(g)", "label": "ST_PointOnSurface(g)", None: "g"}


def _layer_rows_sql(schema: Schema, layer: LayerSpec, table_key: str, zoom: int) -> str | None:
    """The rows of one table in one layer at `zoom`, as (id, kind, properties..., geom)."""
    # compiled={}: the compiled rules kept with a schema are those of its own layers.
    alone = lambda rules: schema._replace(layers=(layer._replace(rules=rules),), compiled={})  # noqa: E731
    where = sqlfilter.sql_filter(alone(layer.rules), table_key, zoom)
    if where is None:
        return None
    kinds, geoms = [], []
    for rule in layer.rules:
        rule_where = sqlfilter.sql_filter(alone((rule,)), table_key, zoom) if rule.table == table_key else None
        if rule_where is not None:
            kinds.append(f"WHEN {rule_where} THEN {_value_sql(rule.kind)}")
            geoms.append(f"WHEN {rule_where} THEN {_GEOMETRY[rule.geometry]}")
    props = "".join(f", {_value_sql(e)} AS \"{name}\"" for name, e in layer.props
                    if e.prefix is None and not name.startswith("_"))
    return (f"SELECT id, (CASE {' '.join(kinds)} END) AS kind{props},"
            f" ST_AsMVTGeom((CASE {' '.join(geoms)} END), ST_TileEnvelope(%(z)s, %(x)s, %(y)s), {EXTENT}, {BUFFER},"
            f" true) AS geom FROM rows_{table_key} WHERE {where}")


def tile_sql(schema: Schema, src: postgis.Tables, zoom: int) -> str:
    """One query returning the MVT bytes of a tile at `zoom` (parameters z, x, y).

    Each table's rows in the tile (and its buffer) that some layer shows at
    `zoom` are read once, filtered on osm2pgsql's tag columns as tilebatch
    filters them (sqlfilter.sql_filter with the Tables' tag SQL), their tags
    merged once for the rows kept, then shared by every layer (MATERIALIZED),
    as a careful hand-written tile query would.
    """
    ctes, keys = [], []
    for key, table in src.tables.items():
        where = sqlfilter.sql_filter(schema, key, zoom, src._tag_sql(key))
        if where is None:
            continue
        keys.append(key)
        ctes.append(f"rows_{key} AS MATERIALIZED (SELECT {table.id_column} AS id, {table.geometry_column} AS g,"
                    f" {src._tags_expression(key)} AS tags FROM {table.name} WHERE {table.geometry_column} &&"
                    f" ST_TileEnvelope(%(z)s, %(x)s, %(y)s, margin => {BUFFER / EXTENT}) AND ({where}))")
    parts = []
    for layer in schema.layers:
        rows = [sql for key in keys if (sql := _layer_rows_sql(schema, layer, key, zoom))]
        if rows:
            union = " UNION ALL ".join(rows)
            parts.append(f"coalesce((SELECT ST_AsMVT(q, {_quote(layer.name)}, {EXTENT}, 'geom', 'id')"
                         f" FROM ({union}) q WHERE geom IS NOT NULL), ''::bytea)")
    if not parts:
        return "SELECT ''::bytea"
    return f"WITH {', '.join(ctes)} SELECT " + " || ".join(parts)


def run(ds: Dataset, cfg: dict, tiles: list) -> dict:
    """Seconds, CPU seconds, tiles, features and MVT bytes of rendering `tiles` with ST_AsMVT."""
    schema = load_schema(cfg)
    conn = postgis.connect({**cfg, "postgresql": {**cfg["postgresql"], "dbnames": [ds.dbname]}})
    src = postgis.Tables(conn, schema)
    out = []
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            pid = cur.fetchone()[0]
            queries = {z: tile_sql(schema, src, z) for z in sorted({t.z for t in tiles})}
            cpu0, own0, started = measure.proc_cpu(pid), time.process_time(), time.monotonic()
            for t in tiles:
                cur.execute(queries[t.z], {"z": t.z, "x": t.x, "y": t.y})
                out.append(bytes(cur.fetchone()[0]))
            seconds = time.monotonic() - started
            cpu = measure.proc_cpu(pid) - cpu0 + time.process_time() - own0
    finally:
        conn.close()
    built = counts.summarize((t.z, d) for t, d in zip(tiles, out)).total()
    return {"seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3), "tiles": len(tiles),
            "nonempty_tiles": built["tiles"], "features": built["features"], "bytes": built["bytes"]}
