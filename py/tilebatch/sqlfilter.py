"""A schema compiled to SQL: the rows of a table that some layer may show at a zoom.

The PostGIS path filters in the database with it, so a z0 query over a planet
pulls only what a z0 map shows. It is a superset of what `classify` keeps
(classify has the final word): whatever it cannot say in SQL, it lets through.
"""

from .schema import Expr, Schema, min_area


def quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def hstore_tag(key: str) -> str:
    """SQL for one tag's value, from the hstore `tags` column."""
    return f"tags->{quote(key)}"


def _test(key: str, op: str, values, tag_sql) -> str:
    tag = tag_sql(key)
    listed = ", ".join(quote(v) for v in sorted(values or ()))
    if op == "any":
        return f"{tag} <> 'no'"
    if op == "absent":
        return f"{tag} IS NULL"
    if op == "not":
        return f"({tag} IS NULL OR {tag} NOT IN ({listed}))"
    return f"{tag} IN ({listed})"


def condition_sql(condition: tuple, tag_sql) -> str:
    return " AND ".join(_test(key, op, values, tag_sql) for key, (op, values) in condition) or "TRUE"


def _zoom_sql(expr: Expr, tag_sql) -> str | None:
    """SQL for a min zoom, or None when it cannot be said in SQL (then every zoom may show the row)."""
    if expr.tags is None and expr.area is None:
        return str(expr.const) if isinstance(expr.const, int) and expr.when is None else None
    default = _zoom_sql(expr.default, tag_sql) if expr.default is not None else None
    if default is None or expr.when is not None or expr.replace or expr.split:
        return None
    value = f"coalesce({', '.join(tag_sql(t) for t in expr.tags)})" if expr.tags else \
        f"(({tag_sql('way_area')})::float8 / {expr.area!r})"
    if expr.values is not None and expr.tags:
        cases = " ".join(f"WHEN {quote(v)} THEN {z}" for v, z in sorted(expr.values.items()))
        return f"(CASE {value} {cases} ELSE {default} END)"
    if expr.at_least is not None:
        number = value if expr.area is not None else f"(substring({value} from '^\\s*(-?\\d+(?:\\.\\d+)?(?:[eE][-+]?\\d+)?)'))::float8"
        cases = " ".join(f"WHEN {number} >= {t!r} THEN {z}" for t, z in expr.at_least)
        return f"(CASE {cases} ELSE {default} END)"
    return None


def sql_filter(schema: Schema, table: str, zoom: int, tag_sql=hstore_tag) -> str | None:
    """A WHERE clause keeping every row of `table` some layer shows at `zoom`.

    `tag_sql(key)` is the SQL of a tag's value (and of `way_area`): by default
    from the hstore `tags`; source.py reads osm2pgsql's own columns where it
    has them, so the filter needs no merged tags for the rows it drops.
    None when no rule of any layer can show a row of this table at this zoom.
    """
    clauses = []
    for layer in schema.layers:
        area = min_area(layer, zoom)
        for rule in layer.rules:
            if rule.table != table or (rule.max_zoom is not None and rule.max_zoom < zoom):
                continue
            if isinstance(rule.min_zoom.const, int) and min(rule.min_zoom.const, schema.max_zoom) > zoom:
                continue
            parts = [condition_sql(rule.where, tag_sql)]
            min_zoom = _zoom_sql(rule.min_zoom, tag_sql) if rule.min_zoom.const is None else None
            if min_zoom is not None:
                parts.append(f"LEAST({min_zoom}, {schema.max_zoom}) <= {zoom}")
            if area > 0 and schema.tables[table].tags:
                parts.append(f"coalesce(({tag_sql('way_area')})::float8, 'Infinity') >= {area!r}")
            clauses.append("(" + " AND ".join(parts) + ")")
    return " OR ".join(clauses) if clauses else None
