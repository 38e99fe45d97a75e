"""A schema compiled to SQL: the rows of a table that some layer may show at a zoom.

The PostGIS path filters in the database with it, so a z0 query over a planet
pulls only what a z0 map shows. It is a superset of what `classify` keeps
(classify has the final word): whatever it cannot say in SQL, it lets through.
"""

from .schema import NUMBER_PATTERN, Expr, Schema, min_area, rule_index


def quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def hstore_tag(key: str) -> str:
    """SQL for one tag's value, from the hstore `tags` column."""
    return f"tags->{quote(key)}"


def _test(key: str, op: str, values, tag_sql) -> str:
    tag = tag_sql(key)
    listed = ", ".join(quote(v) for v in sorted(values or ()))
    if op == "any":
        return f"({tag} <> 'no') IS TRUE"
    if op == "absent":
        return f"{tag} IS NULL"
    if op == "not":
        return f"({tag} IS NULL OR {tag} NOT IN ({listed}))"
    return f"({tag} IN ({listed})) IS TRUE"


def condition_sql(condition: tuple, tag_sql) -> str:
    return " AND ".join(_test(key, op, values, tag_sql) for key, (op, values) in condition) or "TRUE"


def _number_sql(expr: Expr, tag_sql) -> str:
    """SQL for the number an expression reads: way_area in its unit, or the number its tag is (NULL when none)."""
    if expr.area is not None:
        return f"(({tag_sql('way_area')})::float8 / {expr.area!r})"
    return f"(substring(coalesce({', '.join(tag_sql(t) for t in expr.tags)}) from {quote(NUMBER_PATTERN)}))::float8"


def _zoom_sql(expr: Expr, tag_sql) -> str | None:
    """SQL for a min zoom, or None when it cannot be said in SQL (then every zoom may show the row)."""
    if expr.tags is None and expr.area is None:
        return str(expr.const) if isinstance(expr.const, int) and expr.when is None else None
    default = _zoom_sql(expr.default, tag_sql) if expr.default is not None else None
    if default is None or expr.when is not None or expr.replace or expr.split:
        return None
    if expr.values is not None and expr.tags:
        cases = " ".join(f"WHEN {quote(v)} THEN {z}" for v, z in sorted(expr.values.items()))
        return f"(CASE coalesce({', '.join(tag_sql(t) for t in expr.tags)}) {cases} ELSE {default} END)"
    if expr.at_least is not None:
        number = _number_sql(expr, tag_sql)
        cases = " ".join(f"WHEN {number} >= {t!r} THEN {z}" for t, z in expr.at_least)
        return f"(CASE {cases} ELSE {default} END)"
    return None


def lowest_zoom(expr: Expr) -> int:
    """The lowest min zoom an expression can give (0 when it cannot be told)."""
    if expr.tags is None and expr.area is None:
        return expr.const if isinstance(expr.const, int) and not isinstance(expr.const, bool) else 0
    results = list(expr.values.values()) if expr.values is not None else \
        [r for _, r in expr.at_least] if expr.at_least is not None else None
    if results is None or not all(isinstance(r, int) for r in results):
        return 0
    return min(results + ([lowest_zoom(expr.default)] if expr.default is not None else []))


def _ladder_sql(expr: Expr, zoom: int, max_zoom: int, tag_sql) -> str | None:
    """A number ladder's "min zoom <= zoom" as one comparison: the number reaches the lowest
    threshold whose zoom is no deeper (a superset when the ladder is not monotonic)."""
    if expr.at_least is None or expr.when is not None or expr.default is None or \
            min(lowest_zoom(expr.default), max_zoom) <= zoom:
        return None
    thresholds = [t for t, r in expr.at_least if isinstance(r, int) and min(r, max_zoom) <= zoom]
    if not thresholds:
        return "FALSE"
    return f"{_number_sql(expr, tag_sql)} >= {min(thresholds)!r}"


def sql_filter(schema: Schema, table: str, zoom: int, tag_sql=hstore_tag, to_zoom: int | None = None) -> str | None:
    """A WHERE clause keeping every row of `table` some layer shows at `zoom` (at any of `zoom`..`to_zoom`).

    `tag_sql(key)` is the SQL of a tag's value (and of `way_area`): by default
    from the hstore `tags`; postgis.py reads osm2pgsql's own columns where it
    has them, so the filter needs no merged tags for the rows it drops.
    None when no rule of any layer can show a row of this table at these zooms.
    Over several zooms a rule is tested once, at its most lenient (its min zoom
    against the last, its area against the smallest), not once a zoom.
    """
    to_zoom = zoom if to_zoom is None else to_zoom
    clauses = []
    for layer in schema.layers:
        area = min_area(layer, to_zoom)  # the smallest of the span: it shrinks as the zoom grows
        for rule in layer.rules:
            if rule.table != table or (rule.max_zoom is not None and rule.max_zoom < zoom):
                continue
            if min(lowest_zoom(rule.min_zoom), schema.max_zoom) > to_zoom:
                continue
            parts = [condition_sql(rule.where, tag_sql)]
            ladder = _ladder_sql(rule.min_zoom, to_zoom, schema.max_zoom, tag_sql)
            min_zoom = _zoom_sql(rule.min_zoom, tag_sql) if rule.min_zoom.const is None and ladder is None else None
            if ladder is not None:
                parts.append(ladder)
            elif min_zoom is not None:
                parts.append(f"LEAST({min_zoom}, {schema.max_zoom}) <= {to_zoom}")
            if area > 0 and schema.tables[table].tags:
                parts.append(f"coalesce(({tag_sql('way_area')})::float8, 'Infinity') >= {area!r}")
            clauses.append("(" + " AND ".join(parts) + ")")
    return " OR ".join(clauses) if clauses else None


def sql_candidates(schema: Schema, table: str, tag_sql=hstore_tag) -> str | None:
    """A WHERE clause keeping every row of `table` some rule may hold for, at any zoom.

    A rule holds only for a row that passes each of its tests, and classify
    looks it up by one of them (schema.rule_index): the rows with one of
    the tags those ask for. Cheaper than sql_filter (a test a key) and nearly
    as selective at the high zooms, where most rules show their rows. None
    when some rule may hold whatever a row's tags.
    """
    index, always = rule_index(schema, table)
    if always:
        return None
    present = sorted(key for key, (any_value, _) in index.items() if any_value)
    tests = [f"{tag_sql(key)} IS NOT NULL" for key in present]
    tests += [_test(key, "in", by_value, tag_sql) for key, (any_value, by_value) in sorted(index.items())
              if not any_value]
    return " OR ".join(tests) or "FALSE"


def sql_label_rows(schema: Schema, table: str, tag_sql=hstore_tag) -> str:
    """A WHERE clause keeping every row of `table` some rule may draw at its label point (`geometry:
    label`): the rows that need one."""
    tests = [condition_sql(rule.where, tag_sql) for layer in schema.layers for rule in layer.rules
             if rule.table == table and rule.geometry == "label"]
    return " OR ".join(f"({test})" for test in tests) or "FALSE"
