"""The SQL side of each schema keeps every row its Python side shows, at every zoom 0..max, and every row
some rule holds for at all (RAWR tiles' rows) (real PostGIS)."""

import psycopg2
import pytest

from tilebatch import classify, config, postgis, rulecode, sqlfilter
from tilebatch import schema as schemas
from tilebatch.rawrtile import rawr_box
from tilebatch.tiles import tile_at

CENTRAL = (24.945, 60.170)  # the demo data's centre


def shown(schema, table: str, tags: dict, zoom: int) -> bool:
    area = float(tags.get("way_area", "inf"))
    return any(m.min_zoom <= zoom <= m.max_zoom and area >= schemas.min_area(schema.layers[m.layer], zoom)
               for m in classify.classify(schema, table, tags))


@pytest.mark.parametrize("name", ["tilezen", "shortbread"])
def test_sql_filter_keeps_every_row_python_shows(db_url, name, monkeypatch):
    cfg = config.load("config.yaml")  # make test's database
    schema = schemas.load(schemas.schema_path(name))
    src = postgis.Tables(postgis.connect(cfg), schema)
    box = rawr_box(tile_at(*CENTRAL, 7))
    try:
        checked = dropped = 0
        for key in src.tables:
            with monkeypatch.context() as m:
                m.setattr(sqlfilter, "sql_candidates", lambda *_: None)  # every row of the box
                every = list(postgis.Tables(src.conn, schema).rows(key, box))  # its own: Tables keeps its conditions
            candidates = {(row_id, wkb) for row_id, wkb, _ in src.rows(key, box)}
            held = [(row_id, wkb) for row_id, wkb, tags in every if classify.classify(schema, key, tags, row_id)]
            missing = [h for h in held if h not in candidates]
            assert not missing, f"{name} {key}: sql_candidates drops {len(missing)} rows a rule holds for"
            dropped += len(every) - len(candidates)
            for zoom in range(schema.max_zoom + 1):
                kept = {(row_id, wkb) for row_id, wkb, _ in src.rows(key, box, (zoom, zoom))}
                wanted = [(row_id, wkb) for row_id, wkb, tags in every if shown(schema, key, tags, zoom)]
                missing = [w for w in wanted if w not in kept]
                assert not missing, f"{name} {key} z{zoom}: SQL drops {len(missing)} rows Python shows"
                checked += len(wanted)
        assert checked > 1000 and dropped > 1000
    finally:
        src.conn.close()


@pytest.mark.parametrize("name", ["tilezen", "shortbread"])
def test_a_span_of_zooms_keeps_every_row_each_of_its_zooms_keeps(db_url, name):
    """meta-low's one query for several zooms (Tables.rows over a span): the rows of each zoom's own filter, all of them."""
    cfg = config.load("config.yaml")
    schema = schemas.load(schemas.schema_path(name))
    src = postgis.Tables(postgis.connect(cfg), schema)
    box = rawr_box(tile_at(*CENTRAL, 7))
    try:
        checked = 0
        for key in src.tables:
            for first, last in [(0, 3), (10, 12), (4, 9), (8, 14)]:
                over = {(row_id, wkb) for row_id, wkb, _ in src.rows(key, box, (first, last))}
                each = {(row_id, wkb) for zoom in range(first, last + 1) for row_id, wkb, _ in src.rows(key, box, (zoom, zoom))}
                assert each <= over, f"{name} {key} z{first}-{last}: {len(each - over)} rows dropped"
                checked += len(each)
        assert checked > 1000
    finally:
        src.conn.close()


def test_postgresql_reads_the_number_a_tag_is_as_python_does(db_url):
    """A number ladder's SQL and its Python read a tag's number with one pattern: both must take the
    same text for it (an Arabic-Indic digit or a no-break space is no number to PostgreSQL's \\d and \\s,
    though Python's take them)."""
    texts = ["12", "12 m", " 12", "\t12", "-3", "1.5e+06", "7.25", "\u0663", "\u00a012", "\u00b2", "", "yes",
             "1,5", "+4", "12.5 m", "12 m\n", "12\n", "1,234,567", "12 345", "12;15", "40 ft", "12 mm", "12\u00a0",
             "~100", "12.5m", "-3 m", "12 m "]
    conn = psycopg2.connect(db_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT substring(t FROM %s)::float8 FROM unnest(%s::text[]) WITH ORDINALITY AS u(t, i) "
                        "ORDER BY i", (schemas.NUMBER_PATTERN, texts))
            read = [v for (v,) in cur.fetchall()]
    finally:
        conn.close()
    assert read == [rulecode.number(t) for t in texts]
