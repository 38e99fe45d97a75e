"""The tile pipeline against the real local PostGIS with the Helsinki extract."""

import contextlib
import json
import os

import psycopg2
import pytest

import tilebatch
from tilebatch import classify, config, metatile, postgis, rawr, rawrtile, render
from tilebatch import schema as schemas
from tilebatch.errors import BadInput
from tilebatch.kinds import KINDS, NAMES
from tilebatch.meta_low import features_at, job_tolerance
from tilebatch.store import open_store
from tilebatch.tiles import Tile, ancestor, metatile_of, tile_at

from conftest import broken_install, build_env, built_tile, counted_in_database, last_error, run_cli
from motoserver import free_port

CENTRAL = (24.945, 60.170)


def test_central_z15_tile_matches_a_direct_count(built_store, db_url):
    root, _ = built_store
    tile = tile_at(*CENTRAL, 15)
    got = built_tile(root, tile)
    assert {"buildings", "roads", "pois", "places"} <= set(got)
    buildings, roads = counted_in_database(db_url, tile)
    assert buildings > 50 and roads > 50
    assert len(got["buildings"]["features"]) == buildings
    assert len(got["roads"]["features"]) == roads
    for feature in got["roads"]["features"] + got["buildings"]["features"]:
        assert feature["properties"]["kind"]


def both_paths(name: str, tile) -> tuple[bytes, bytes]:
    """The tile as the named schema builds it from its RAWR tile (meta-high) and from PostGIS (meta-low)."""
    schema = schemas.load(schemas.schema_path(name))
    src = postgis.Tables(postgis.connect(config.load("config.yaml")), schema)
    try:
        rawr_tile = rawrtile.unpack(rawrtile.pack(rawr.build_rawr_tile(src, ancestor(tile, 10)), schema, 10)[0], schema, 10)
        keys = {t.name: t.key for t in schema.tables.values()}
        from_rawr = render.collect(schema, ((keys[name], rows) for name, rows in rawr_tile))
        from_db = features_at(src, schema, ancestor(tile, 7), [tile.z], 0.0)  # RAWR tiles' rows are whole too
    finally:
        src.conn.close()
    return render.render_tile(schema, from_rawr, tile)[0], render.render_tile(schema, from_db, tile)[0]


@pytest.mark.parametrize("name, zoom", [("tilezen", 13), ("tilezen", 16), ("shortbread", 13), ("shortbread", 14)])
def test_rawr_and_postgis_paths_agree(db_url, name, zoom):
    a, b = both_paths(name, tile_at(*CENTRAL, zoom))
    assert a, "the central tile is not empty"
    assert a == b  # byte for byte: features in the same order, whichever order the tables came in


@pytest.mark.parametrize("name", ["tilezen", "shortbread"])
def test_rows_read_a_batch_at_a_time_make_the_same_tiles(db_url, monkeypatch, name):
    """A dense tile's rows come from the database and are classified a batch at a time (postgis.FETCH_ROWS,
    render.ROWS_AT_ONCE), so that they are never all in memory: batches of a few rows give the very bytes
    that one batch of every row does."""
    schema = schemas.load(schemas.schema_path(name))
    tile = tile_at(*CENTRAL, 12)

    def metatile_at_12():
        src = postgis.Tables(postgis.connect(config.load("config.yaml")), schema)
        try:
            job = ancestor(tile, 7)
            features = features_at(src, schema, job, [tile.z], job_tolerance(schema, job, 7, schema.max_zoom))
        finally:
            src.conn.close()
        return render.render_metatile(schema, features, metatile_of(tile)[0], tile.z)

    monkeypatch.setattr(postgis, "FETCH_ROWS", 10 ** 7)
    monkeypatch.setattr(render, "ROWS_AT_ONCE", 10 ** 7)
    whole = metatile_at_12()
    monkeypatch.setattr(postgis, "FETCH_ROWS", 5)
    monkeypatch.setattr(render, "ROWS_AT_ONCE", 7)
    assert whole[1] > 100  # features, from many batches of rows
    assert metatile_at_12() == whole


def test_two_builds_are_byte_identical(built_store, tmp_path):
    root, _ = built_store
    proc = run_cli("build", "--config", "config.yaml", "--run-id", "again", env=build_env(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]

    def metatiles(base):
        out = {}
        for folder, _, files in os.walk(base):
            for name in files:
                if name.endswith(".zip") and "/runs/" not in folder:
                    path = os.path.join(folder, name)
                    out[os.path.relpath(path, base)] = open(path, "rb").read()
        return out

    first, second = metatiles(root / "out"), metatiles(tmp_path / "out")
    assert len(first) > 10
    assert first == second


def test_every_metatile_zoom_is_built(built_store):
    root, _ = built_store
    store = open_store(f"file://{root}/out")
    zooms = {int(k.split("/")[0]) for k in store.list() if k.endswith(".zip")}
    assert zooms == set(range(0, 14))  # 0/0/0 and z1 too: the sea and land of the world (make water)
    for z in (4, 10, 13):
        meta = metatile_of(tile_at(*CENTRAL, z + 3))[0]
        members = metatile.unpack(store.read(metatile.key(store, meta)))
        assert all(name.startswith("3/") and name.endswith(".mvt") for name in members)


def test_completion_records(built_store):
    root, _ = built_store
    store = open_store(f"file://{root}/out")
    kinds = {k.split("/")[2] for k in store.list("runs/test-build/") if k.count("/") > 2}
    assert kinds == set(NAMES)
    z7 = tile_at(*CENTRAL, 7)
    rec = json.loads(store.read(f"runs/test-build/meta-high/7/{z7.x}/{z7.y}.json"))
    assert rec["counts"]["metatiles"] > 0 and rec["counts"]["tiles"] >= rec["counts"]["metatiles"]
    assert rec["seconds"] > 0 and rec["peak_memory_mb"] > 10 and rec["run_id"] == "test-build"
    tilezen = schemas.load(schemas.schema_path("tilezen"))
    assert rec["schema"] == {"name": "tilezen", "digest": tilezen.digest}
    assert json.loads(store.read("runs/test-build/schema.json")) == rec["schema"]
    assert rec["version"] == tilebatch.__version__


def test_a_job_with_another_schema_than_its_run_stops(built_store):
    _, env = built_store
    proc = run_cli("meta-tile-low-zoom", "--config", "config.yaml", "--tile", "0/0/0", "--run-id", "test-build",
                   env={**env, "TILEQUEUE__schema__name": "shortbread"})
    assert proc.returncode == 2
    assert "run test-build was started with schema tilezen" in last_error(proc)


def test_rerun_skips_done_jobs_and_force_redoes_them(built_store):
    root, env = built_store
    proc = run_cli("build", "--config", "config.yaml", "--run-id", "test-build", env=env)
    assert proc.returncode == 0
    assert "0 jobs run, 10 already done" in proc.stdout
    proc = run_cli("build", "--config", "config.yaml", "--run-id", "test-build", "--force", "--jobs", "2",
                   "--bbox", "24.94,60.16,24.95,60.17", env=env)
    assert proc.returncode == 0
    assert "10 jobs run, 0 already done" in proc.stdout


@pytest.mark.parametrize("kind", KINDS, ids=NAMES)
def test_a_job_over_no_data_writes_only_its_record(tmp_path, db_url, kind):
    env = build_env(tmp_path)
    proc = run_cli(kind.command, "--config", "config.yaml", "--tile", "7/0/0", "--run-id", "empty", env=env)
    assert proc.returncode == 0, proc.stderr
    written = [os.path.relpath(os.path.join(d, f), tmp_path) for d, _, fs in os.walk(tmp_path) for f in fs]
    assert sorted(written) == [f"out/runs/empty/{kind.name}/7/0/0.json", "out/runs/empty/schema.json"]


def test_an_array_childs_line_may_hold_several_jobs(tmp_path, db_url):
    """A tile list's line of several tiles: one process does each job in turn, each recorded as its own."""
    lists = tmp_path / "out" / "lists"
    lists.mkdir(parents=True)
    (lists / "low.txt").write_text("7/0/0\n0/0/0,1/1/0,2/2/1\n")
    proc = run_cli("meta-tile-low-zoom", "--config", "config.yaml", "--tile", "@lists/low.txt", "--run-id", "lines",
                   env={**build_env(tmp_path), "AWS_BATCH_JOB_ARRAY_INDEX": "1"})
    assert proc.returncode == 0, proc.stderr
    done = [json.loads(line)["tile"] for line in proc.stderr.splitlines() if '"job done"' in line]
    assert done == ["0/0/0", "1/1/0", "2/2/1"]
    records = tmp_path / "out" / "runs" / "lines" / "meta-low"
    assert sorted(os.path.relpath(os.path.join(d, f), records) for d, _, fs in os.walk(records) for f in fs) == [
        "0/0/0.json", "1/1/0.json", "2/2/1.json"]
    assert json.loads((records / "1" / "1" / "0.json").read_text())["tile"] == "1/1/0"


def test_a_processs_jobs_share_a_connection_each_in_a_transaction_of_its_own(db_url):
    """The jobs one process does in turn (postgis.job_tables) read over one connection, one backend; each
    in a transaction of its own, so a later job sees a row written after an earlier one began."""
    cfg = config.load("config.yaml")
    schema = schemas.load_schema(cfg)
    count = "SELECT count(*) FROM planet_osm_point WHERE osm_id = -424242"

    def counted(src) -> int:
        with src.conn.cursor() as cur:
            cur.execute(count)
            return cur.fetchone()[0]

    writer = psycopg2.connect(db_url)
    writer.autocommit = True
    first = postgis.job_tables(cfg, schema)
    try:
        assert counted(first) == 0
        with writer.cursor() as cur:
            cur.execute("INSERT INTO planet_osm_point (osm_id, way) "
                        "VALUES (-424242, ST_SetSRID(ST_MakePoint(0, 0), 3857))")
        assert counted(first) == 0  # the job's snapshot
        postgis.end_job(first)
        second = postgis.job_tables(cfg, schema)
        assert second is first and second.conn.get_backend_pid() == first.conn.get_backend_pid()
        assert counted(second) == 1
        postgis.end_job(second)
        other = postgis.job_tables(config.load("config.yaml"), schema)  # another configuration: its own
        assert other is not first
        other.conn.close()
    finally:
        with writer.cursor() as cur:
            cur.execute("DELETE FROM planet_osm_point WHERE osm_id = -424242")
        writer.close()
        first.conn.close()


@pytest.mark.parametrize("wkt, declared, expected", [
    # A line: Douglas-Peucker drops the bend within the tolerance.
    ("LINESTRING(0 0, 50 4, 100 0)", "LineString", "LINESTRING(0 0,100 0)"),
    # A line that collapses stays (render drops it), not NULL: its row stays in every zoom of a query.
    ("LINESTRING(0 0, 1 0, 1 1, 0 0)", "LineString", "LINESTRING(0 0,0 0)"),
    ("MULTILINESTRING((0 0, 1 0, 1 1, 0 0), (5 5, 50 5))", "MultiLineString", "MULTILINESTRING((0 0,0 0),(5 5,50 5))"),
    ("POINT(3 4)", "Point", "POINT(3 4)"),
    # A polygon keeps its topology: simplified alone, a small ring would lose a corner.
    ("POLYGON((0 0, 100 0, 100 100, 50 102, 0 100, 0 0))", "Polygon", "POLYGON((0 0,100 0,100 100,0 100,0 0))"),
    ("POLYGON((0 0, 2 0, 2 2, 0 2, 0 0))", "MultiPolygon", "POLYGON((0 0,2 0,2 2,0 2,0 0))"),
])
def test_the_database_simplifies_lines_by_douglas_peucker_and_polygons_keeping_their_topology(db_url, wkt, declared,
                                                                                               expected):
    """The same whether the column's type says what it holds (chosen once) or not (row by row)."""
    with contextlib.closing(psycopg2.connect(db_url)) as conn, conn.cursor() as cur:
        for column_type in (f"geometry({declared},3857)", "geometry(Geometry,3857)"):
            sql = postgis.simplified("g", "g", 10.0, column_type)
            cur.execute(f"SELECT ST_AsText({sql}) FROM ST_GeomFromText(%s) AS g", (wkt,))
            assert cur.fetchone()[0] == expected, column_type


def test_no_tolerance_leaves_the_geometry_as_it_is():
    assert postgis.simplified("ST_ClipByBox2D(way, box)", "way", 0.0) == "ST_ClipByBox2D(way, box)"


def test_meta_high_needs_no_database(built_store, tmp_path):
    """Nor its driver: a meta-high process does not load psycopg2 (part of every Batch job's start-up),
    here one that fails to import."""
    root, _ = built_store
    z7 = tile_at(*CENTRAL, 7)
    out = tmp_path / "out"
    env = {"TILEQUEUE__store__url": f"file://{out}", "TILEQUEUE__rawr__source__url": f"file://{root}/rawr",
           "TILEQUEUE__postgresql__port": str(free_port()), "PYTHONPATH": broken_install(tmp_path / "broken", "psycopg2")}
    proc = run_cli("meta-tile", "--config", "config.yaml", "--tile", f"7/{z7.x}/{z7.y}", "--run-id", "nodb", env=env)
    assert proc.returncode == 0, proc.stderr
    assert any(f.endswith(".zip") for _, _, fs in os.walk(out) for f in fs)


@pytest.mark.parametrize("args, env, message", [
    (["rawr-tile", "--tile", "7/999/0"], {}, "bad tile '7/999/0'"),
    (["rawr-tile", "--tile", "11/0/0"], {}, "rawr jobs run at zoom 7 (their parts at 8..10), not z11"),
    (["meta-tile", "--tile", "11/0/0"], {}, "meta-high jobs run at zooms 7..10, not z11"),
    (["meta-tile-low-zoom", "--tile", "10/0/0"], {}, "meta-low jobs run at zooms 0..7 (their parts at 8..9), not z10"),
    # Jobs in one process: a bad one stops them all before any is done.
    (["meta-tile-low-zoom", "--tile", "0/0/0,12/0/0"], {}, "meta-low jobs run at zooms 0..7"),
    (["meta-tile-low-zoom", "--tile", "0/0/0,1/2/0"], {}, "bad tile '1/2/0'"),
    (["meta-tile-low-zoom", "--tile", "0/0/0,1/0/0", "--after-parts", "8/145/74"], {},
     "--after-parts names the parts of one job, not of 2"),
    (["rawr-tile", "--tile", "7/0/0", "--run-id", "bad id!"], {}, "bad run id 'bad id!'"),
    (["meta-tile", "--tile", "@runs/x/list.txt"], {}, "needs AWS_BATCH_JOB_ARRAY_INDEX"),
    (["rawr-tile", "--tile", "7/72/37"], {"TILEQUEUE__postgresql__dbnames": "[postgres]"},
     "table planet_osm_point is missing"),
    (["build", "--bbox", "1,2,3"], {}, "bad bbox '1,2,3'"),
])
def test_bad_job_input_exits_2_and_writes_nothing(tmp_path, db_url, args, env, message):
    full = ["--run-id", "r1"] if "--run-id" not in args else []
    proc = run_cli(*args, *full, "--config", "config.yaml", env={**build_env(tmp_path), **env})
    assert proc.returncode == 2, proc.stderr
    assert message in last_error(proc)
    assert not any(files for _, _, files in os.walk(tmp_path))


def test_missing_run_id_is_bad_input(tmp_path):
    proc = run_cli("rawr-tile", "--tile", "7/0/0", env=build_env(tmp_path))
    assert proc.returncode == 2
    assert "no run id" in last_error(proc)


def test_tile_command_prints_geojson(built_store):
    _, env = built_store
    tile = tile_at(*CENTRAL, 15)
    proc = run_cli("tile", f"15/{tile.x}/{tile.y}", "--config", "config.yaml", env=env)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["type"] == "FeatureCollection"
    layers_seen = {f["layer"] for f in doc["features"]}
    assert {"buildings", "roads"} <= layers_seen
    # Properties are the tile's own, a road's OSM `layer` (-1: under the ground) among them.
    root, _ = built_store
    in_tile = built_tile(root, tile)
    assert sorted(json.dumps(f["properties"], sort_keys=True) for f in doc["features"] if f["layer"] == "roads") == \
        sorted(json.dumps(f["properties"], sort_keys=True) for f in in_tile["roads"]["features"])
    assert any(f["properties"].get("layer") == -1 for f in doc["features"] if f["layer"] == "roads")
    lng, lat = doc["features"][0]["geometry"]["coordinates"][0][0][:2] if doc["features"][0]["geometry"]["type"] == \
        "Polygon" else (CENTRAL[0], CENTRAL[1])
    assert abs(lng - CENTRAL[0]) < 0.05 and abs(lat - CENTRAL[1]) < 0.05
    assert run_cli("tile", "17/0/0", "--config", "config.yaml", env=env).returncode == 2


def test_a_meta_low_job_simplifies_in_the_database_for_its_deepest_zoom():
    """Every part of a job reads its rows simplified alike: for the deepest tile zoom of the whole job."""
    schema = schemas.load(schemas.schema_path("shortbread"))
    streets = next(layer for layer in schema.layers if layer.name == "streets")
    at = {z: schemas.simplify_tolerance(schema, streets, z) for z in range(15)}  # shortbread's: all 0.5 px
    assert job_tolerance(schema, Tile(72, 37, 7), 7, 14) == at[12]  # tiles z10..z12
    assert job_tolerance(schema, Tile(0, 0, 0), 7, 14) == at[3]  # tiles z0..z3
    assert job_tolerance(schema, Tile(36, 18, 6), 7, 14) == at[9]
    assert job_tolerance(schema, Tile(72, 37, 7), 7, 11) == at[11]  # a build to z11: its z9 metatiles left out


def test_one_look_finds_which_boxes_have_rows(db_url):
    """boxes_with_rows answers for each box in order, of the tables asked (all by default: the sea's cover
    the Arctic too)."""
    cfg = config.load("config.yaml")
    src = postgis.Tables(postgis.connect(cfg), schemas.load(schemas.schema_path("shortbread")))
    try:
        city = rawrtile.rawr_box(ancestor(tile_at(*CENTRAL, 15), 10))
        far = rawrtile.rawr_box(Tile(0, 0, 10))  # the Arctic, off the extract
        osm = ["point", "line", "polygon"]
        assert src.boxes_with_rows([city, far, city, far], osm) == [True, False, True, False]
        assert src.boxes_with_rows([city, far]) == [True, True]
        assert src.boxes_with_rows([city], ["point"]) == [True]
        assert src.boxes_with_rows([city], ["no such table"]) == [False]
        assert src.boxes_with_rows([]) == []
    finally:
        src.conn.close()


def test_rawr_tile_format(db_url, tmp_path):
    cfg = config.load("config.yaml")
    schema = schemas.load(schemas.schema_path('tilezen'))
    src = postgis.Tables(postgis.connect(cfg), schema)
    group = ancestor(tile_at(*CENTRAL, 15), 10)
    data, count = rawrtile.pack(rawr.build_rawr_tile(src, group), schema, group.z)
    unpacked = {name: list(rows) for name, rows in rawrtile.unpack(data, schema, group.z)}
    # Only the rows some rule may show from z13 on: of the points, fewer than touch the tile.
    with src.conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM planet_osm_point WHERE way && ST_MakeEnvelope(%s, %s, %s, %s, 3857)",
                    rawrtile.rawr_box(group))
        assert 0 < len(unpacked["planet_osm_point"]) < cur.fetchone()[0]
    src.conn.close()
    assert count == sum(map(len, unpacked.values()))
    # Tilezen's rows: a reader whose schema chooses other rows (or of a RAWR tile without the stamp) stops.
    shortbread = schemas.load(schemas.schema_path('shortbread'))
    with pytest.raises(BadInput, match=f"not a RAWR tile of format {rawrtile.FORMAT} with the rows schema shortbread reads .* "
                                       f"its comment says {rawrtile.stamp(schema, group.z).decode()}"):
        next(rawrtile.unpack(data, shortbread, group.z))
    # A schema that gives the same rows other kinds, properties and zooms reads the same tiles.
    edited = tmp_path / "tilezen-edited.yaml"
    text = open(schemas.schema_path('tilezen')).read()
    # (The schema's last zoom too: each table's last zoom moves, the tables a RAWR tile holds do not.)
    edited.write_text(text.replace("kind_detail", "kind_detail_edited").replace("min_zoom: 14", "min_zoom: 15")
                      .replace("\nmax_zoom: 16", "\nmax_zoom: 15"))
    assert schemas.load(str(edited)).digest != schema.digest
    assert sum(len(list(rows)) for _, rows in rawrtile.unpack(data, schemas.load(str(edited)), group.z)) == count
    # It holds the tags the rules read, and no other: one that reads another tag needs new RAWR tiles.
    for name, rows in unpacked.items():
        keys, prefixes = schemas.tags_read(schema, next(t.key for t in schema.tables.values() if t.name == name))
        assert all(k in keys or k.startswith(prefixes) or k in ("way_area", "z_order", "_label")
                   for _, _, tags in rows for k in tags), name
    assert any("name:" in k for _, _, tags in unpacked["planet_osm_point"] for k in tags)  # name:*, by its prefix
    reads_more = tmp_path / "tilezen-reads-more.yaml"
    reads_more.write_text(text.replace("{tag: wall, values:", "{tag: [wall, opening_hours], values:"))
    assert "opening_hours" in schemas.tags_read(schemas.load(str(reads_more)), "line")[0]
    with pytest.raises(BadInput, match="not a RAWR tile of format"):
        next(rawrtile.unpack(data, schemas.load(str(reads_more)), group.z))
    # The detailed sea and land, not the simplified ones: no rule shows those from z13 on.
    assert set(unpacked) == {"planet_osm_point", "planet_osm_line", "planet_osm_polygon", "water_polygons",
                             "land_polygons"}
    row_id, wkb, tags = unpacked["planet_osm_line"][0]
    assert isinstance(row_id, int) and isinstance(wkb, bytes) and isinstance(tags, dict)
    ids = [r[0] for r in unpacked["planet_osm_polygon"]]
    assert ids == sorted(ids)
    assert all("way_area" in r[2] for r in unpacked["planet_osm_polygon"])


def test_a_rawr_tile_holds_zstd_members_and_one_that_does_not_decompress_is_corrupt():
    """Each table's records are one zstd frame in a stored member, over several writes (a chunk a megabyte of
    records) and read back whole; a member that is no zstd frame, its zip checksum right, is bad input."""
    import io
    import zipfile

    schema = schemas.load(schemas.schema_path("shortbread"))
    rows = [(i, bytes(200) + i.to_bytes(4, "little"), {"highway": "residential", "name": f"street {i}"})
            for i in range(1, 20001)]  # over 4 MB of records
    data, count = rawrtile.pack({"planet_osm_line": iter(rows)}, schema, 10)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        [info] = z.infolist()
        assert info.compress_type == zipfile.ZIP_STORED and z.read(info)[:4] == b"\x28\xb5\x2f\xfd"  # zstd's magic
        assert info.file_size < 1_000_000
    [(name, records)] = list(rawrtile.unpack(data, schema, 10))
    assert (name, count) == ("planet_osm_line", len(rows)) and list(records) == rows
    garbled = io.BytesIO()
    with zipfile.ZipFile(garbled, "w") as z:
        z.comment = rawrtile.stamp(schema, 10)
        z.writestr(zipfile.ZipInfo("planet_osm_line"), b"records, not compressed")
    with pytest.raises(BadInput, match="^the tile is corrupt .*: rebuild it$"):
        list(rawrtile.unpack(garbled.getvalue(), schema, 10, "the tile", ": rebuild it"))


def test_a_rows_tags_are_its_tags_column_and_its_tag_columns_with_values(db_url):
    """A tag column's value is the tag's (osm2pgsql keeps it out of the hstore, or under --hstore-all holds the
    same there); way_area and the label point (of a row a label rule may draw) come along; no key has a NULL
    value; a tag no rule reads (roof, in the hstore; access, a column) does not come. A key with a column is
    looked for in it alone: a row with it only in the hstore, which osm2pgsql never makes, is not chosen for
    it. Checked on rows made for it, in temporary tables that hide the real ones from this connection only."""
    schema = schemas.load(schemas.schema_path("shortbread"))
    conn = psycopg2.connect(db_url)  # a job's connection is read-only
    try:
        with conn.cursor() as cur:
            for table in ("planet_osm_point", "planet_osm_polygon"):
                cur.execute(f"CREATE TEMP TABLE {table} (LIKE public.{table})")
            cur.execute("INSERT INTO planet_osm_point (osm_id, way, tags, name, amenity) VALUES "
                        "(1, ST_SetSRID(ST_MakePoint(10, 10), 3857), 'name=>tagged, x=>NULL', 'column', 'cafe'), "
                        "(2, ST_SetSRID(ST_MakePoint(11, 11), 3857), NULL, NULL, 'bar'), "
                        "(4, ST_SetSRID(ST_MakePoint(12, 12), 3857), 'amenity=>pub', NULL, NULL)")
            cur.execute("INSERT INTO planet_osm_polygon (osm_id, way, tags, building, access, \"natural\", name, "
                        "way_area) VALUES "
                        "(3, ST_GeomFromText('POLYGON((0 0, 4 0, 4 2, 0 2, 0 0))', 3857), "
                        "'roof=>flat, name:en=>House', 'yes', 'private', NULL, NULL, 8), "
                        "(5, ST_GeomFromText('POLYGON((20 0, 24 0, 24 2, 20 2, 20 0))', 3857), "
                        "NULL, NULL, NULL, 'water', 'Lake', 8)")
        src = postgis.Tables(conn, schema)
        box = (0.0, 0.0, 100.0, 100.0)
        point = {row_id: tags for row_id, _, tags in src.rows("point", box)}
        polygon = {row_id: tags for row_id, _, tags in src.rows("polygon", box)}
    finally:
        conn.close()
    assert point == {1: {"name": "column", "amenity": "cafe"}, 2: {"amenity": "bar"}}
    # A building is drawn as itself in Shortbread, a lake also at its label point: only it needs one.
    assert polygon == {3: {"name:en": "House", "building": "yes", "way_area": "8"},
                       5: {"natural": "water", "name": "Lake", "way_area": "8", classify.LABEL_KEY: "22 1"}}
    assert not {"roof", "access"} & schemas.tags_read(schema, "polygon")[0]


def test_label_points_come_for_polygons_not_points(db_url):
    """Shortbread takes label points from both tables: a polygon's from the database, a point's is the
    point itself (render takes it from the geometry), so the point table's rows carry none; nor does a
    polygon that no rule draws at its label point."""
    schema = schemas.load(schemas.schema_path('shortbread'))
    assert {"point", "polygon"} <= schema.label_tables
    src = postgis.Tables(postgis.connect(config.load("config.yaml")), schema)
    try:
        tables = rawr.build_rawr_tile(src, ancestor(tile_at(*CENTRAL, 15), 10))
        rows = {name: list(records) for name, records in tables.items()}
    finally:
        src.conn.close()
    assert rows["planet_osm_point"] and not any(classify.LABEL_KEY in r[2] for r in rows["planet_osm_point"])
    # A polygon's comes when a rule may draw the row at its label point, and only then: not for most buildings.
    labelled = [classify.LABEL_KEY in tags for _, _, tags in rows["planet_osm_polygon"]]
    drawn = [any(m.geometry == "label" for m in classify.classify(schema, "polygon", tags))
             for _, _, tags in rows["planet_osm_polygon"]]
    assert all(has or not needs for has, needs in zip(labelled, drawn)) and any(drawn)
    assert sum(labelled) < len(labelled) / 2


def test_a_list_of_hosts_falls_back_to_one_that_answers(db_url, capfd):
    cfg = config.load("config.yaml", environ={**os.environ, "TILEQUEUE__postgresql__host": "[127.0.0.2, 127.0.0.1]"})
    for _ in range(40):  # the order is shuffled: both orders come up (all but surely)
        conn = postgis.connect(cfg)
        assert conn.info.host == "127.0.0.1"
        conn.close()
    assert "database unreachable, trying the next" in capfd.readouterr().err
    assert {p["host"] for p in postgis.connection_params(cfg)} == {"127.0.0.1", "127.0.0.2"}
    rawr_cfg = config.load("config.yaml", environ={"TILEQUEUE__rawr__postgresql__host": "replica",
                                                   "TILEQUEUE__rawr__postgresql__dbname": "rawrdb"})
    assert [(p["host"], p["dbname"], p["port"]) for p in postgis.connection_params(rawr_cfg, "rawr")] == \
        [("replica", "rawrdb", rawr_cfg["postgresql"]["port"])]


@pytest.mark.parametrize("value, kept", [("12", 12), ("12.5 m", 12.5), ("9" * 400, None), ("1e30", None), ("1.5e+03", 1500),
                                         ("tall", None), (str(2 ** 60), None)])
def test_numeric_properties_keep_only_sane_numbers(value, kept):
    schema = schemas.load(schemas.schema_path('tilezen'))
    [match] = [m for m in classify.classify(schema, "polygon", {"building": "yes", "height": value})]
    assert match.props.get("height") == kept


def test_rawr_tiles_are_byte_identical_across_query_plans(db_url):
    """Rows sharing an id (a relation's lines) must come in the same order whatever the plan:
    one build reads them in the table's order (a sequential scan), the other in the spatial index's."""
    cfg = config.load("config.yaml")
    group = ancestor(tile_at(*CENTRAL, 15), 10)
    packed = []
    for settings in ("SET enable_indexscan = off; SET enable_bitmapscan = off", "SET enable_seqscan = off"):
        src = postgis.Tables(postgis.connect(cfg), schemas.load(schemas.schema_path('tilezen')))
        with src.conn.cursor() as cur:
            cur.execute(settings)
            cur.execute("SELECT count(*) FROM (SELECT osm_id FROM planet_osm_line GROUP BY osm_id HAVING count(*) > 1) d")
            assert cur.fetchone()[0] > 0  # the demo data has rows sharing an id
        packed.append(rawrtile.pack(rawr.build_rawr_tile(src, group), src.schema, group.z))
        src.conn.close()
    assert packed[0] == packed[1]


def test_clipping_leaves_out_only_what_gets_a_copy_of_itself():
    """Geometries of one part strictly inside the box are not clipped (GEOS would copy them): the result is
    what clipping everything makes, crossing polygons normalized."""
    import shapely
    box = (0.0, 0.0, 100.0, 100.0)
    wkts = ["POINT (50 50)", "LINESTRING (10 10, 90 20)", "POLYGON ((10 10, 20 10, 20 20, 10 10))",
            "POLYGON ((5 5, 95 5, 95 95, 5 95, 5 5), (20 20, 30 20, 30 30, 20 20))",
            "LINESTRING (0 10, 0 90)", "LINESTRING (10 100, 90 100)",  # along an edge: clipping drops them
            "POLYGON ((0 0, 50 0, 50 50, 0 0))",                         # touches the edge
            "MULTIPOINT ((50 50))", "MULTILINESTRING ((10 10, 20 20))",   # one part: clipping takes it out
            "MULTIPOLYGON (((10 10, 20 10, 20 20, 10 10)))",
            "MULTIPOLYGON (((10 10, 20 10, 20 20, 10 10)), ((30 30, 40 30, 40 40, 30 30)))",
            "LINESTRING (-10 50, 50 50)", "POLYGON ((50 50, 150 50, 150 150, 50 150, 50 50))", "POINT (150 50)",
            "POLYGON EMPTY", None]
    geoms = shapely.from_wkt(wkts)
    expected = shapely.clip_by_rect(geoms, *box)
    expected[12] = shapely.normalize(expected[12])
    got = render._clipped(geoms.copy(), box)
    assert list(shapely.to_wkt(got)) == list(shapely.to_wkt(expected))
    assert shapely.equals_identical(got[:12], expected[:12]).all()
    assert got[0] is geoms[0] and got[7] is not geoms[7]  # left out, and clipped


def _points_kept(zoom: int, table: str, layer: str, shapes: dict[int, tuple[str, dict]]) -> dict[int, int]:
    """The points each of `shapes` (id: (WKT in metres from the corner of a Shortbread tile at `zoom`,
    tags)) keeps in that tile's `layer`, by id."""
    import shapely
    import shapely.affinity

    from tilebatch.tiles import tile_bounds_3857

    schema = schemas.load(schemas.schema_path("shortbread"))
    tile = tile_at(*CENTRAL, zoom)
    x, y = tile_bounds_3857(tile)[:2]
    rows = [(row_id, shapely.to_wkb(shapely.affinity.translate(shapely.from_wkt(wkt), x, y)), tags)
            for row_id, (wkt, tags) in shapes.items()]
    [drawn] = [found for found in render.tile_layers(schema, render.collect(schema, [(table, rows)]), tile)
               if found.name == layer]
    return dict(zip(drawn.ids.tolist(), shapely.get_num_coordinates(drawn.geoms).tolist()))


# Five streets: two straight ones of two points, two with a bend of 1 m, one with a bend of 50 m (all
# of other kinds: none merge).
STREETS = {1: ("LINESTRING (100 100, 900 100)", {"highway": "residential"}),
           2: ("LINESTRING (100 300, 500 301, 900 300)", {"highway": "service"}),
           3: ("LINESTRING (100 600, 500 650, 900 600)", {"highway": "tertiary"}),
           4: ("MULTILINESTRING ((100 800, 500 801, 900 800))", {"highway": "unclassified"}),
           5: ("MULTILINESTRING ((100 1000, 900 1000))", {"highway": "track"})}


def test_a_tile_simplifies_every_line_but_those_of_two_points():
    """tile_layers leaves a line of two points as it is; a longer one is simplified (a bend under the z13
    tolerance of the streets layer, ~9.6 m, goes; one of 50 m stays), a multi-line of one part too."""
    assert _points_kept(13, "line", "streets", STREETS) == {1: 2, 2: 2, 3: 3, 4: 2, 5: 2}


def test_the_max_zoom_and_a_layer_without_a_tolerance_are_not_simplified():
    """Clients overzoom the schema's max zoom: its tiles keep a street's bend of 1 m, and a building's
    point on a straight wall (a node it shares with its neighbour), which simplifying by 0 would drop."""
    assert _points_kept(14, "line", "streets", STREETS) == {1: 2, 2: 3, 3: 3, 4: 3, 5: 2}
    building = {1: ("POLYGON ((100 100, 150 100, 200 100, 200 200, 100 200, 100 100))", {"building": "yes"})}
    assert _points_kept(14, "polygon", "buildings", building) == {1: 6}
    schema = schemas.load(schemas.schema_path("shortbread"))
    assert schemas.simplify_tolerance(schema, schema.layers[0], 13) > 0
    assert schemas.simplify_tolerance(schema, schema.layers[0], 14) == 0


def test_what_tile_layers_leaves_out_would_be_a_copy():
    """tile_layers does not simplify a line of two points, nor orient what is no polygon: GEOS would return
    them as they are. (Should a GEOS upgrade change that, tiles would change: this says where.)"""
    import numpy as np
    import shapely

    from tilebatch import mvt

    lines = shapely.from_wkt(["LINESTRING (0 0, 100 1)", "LINESTRING (5 5, 5 5)", "LINESTRING (0 0, 1e-9 0)"])
    assert shapely.equals_identical(shapely.simplify(lines, 50.0, preserve_topology=False), lines).all()
    # A multi-line of one part of two points comes out as that part, which a tile writes as the same feature.
    multi = shapely.from_wkt("MULTILINESTRING ((0 0, 100 1))")
    assert shapely.equals_identical(shapely.simplify(multi, 50.0, preserve_topology=False), lines[0])
    written = [mvt.encode([mvt.TileLayer("l", np.array([g], dtype=object), mvt.properties([{}]), None)])
               for g in (multi, lines[0])]
    assert written[0] == written[1]
    others = shapely.from_wkt(["POINT (1 2)", "MULTIPOINT ((1 2), (3 4))", "LINESTRING (0 0, 1 1, 0 1)",
                               "MULTILINESTRING ((0 0, 1 1), (2 2, 3 1))", "POINT EMPTY"])
    assert shapely.equals_identical(shapely.orient_polygons(others, exterior_cw=False), others).all()


def test_points_are_rounded_as_geos_rounds_them_to_the_grid():
    import numpy as np
    import shapely
    values = np.array([-2.5, -2.4, -2.6, -0.5, 0.5, 1.5, 2.5, 0.49999999999999994, 4095.5, -64.5, 1e6 + 0.5, 7.0])
    points = shapely.points(values, values[::-1])
    assert shapely.equals_identical(render._on_grid(points, lambda coords: coords),
                                    shapely.set_precision(points, 1.0)).all()
    assert list(render._round_half_up(values)) != list(np.round(values))  # numpy rounds a half to even


def test_snapping_rounds_polygons_and_snap_rounds_only_those_that_need_it():
    import shapely
    wkts = ["POLYGON ((10.2 10.2, 40.4 10.2, 40.4 40.4, 10.2 40.4, 10.2 10.2))",      # rounds point by point
            "POLYGON ((100 100, 100.3 100.1, 100.1 100.4, 100 100))",                  # under a grid square
            "POLYGON ((2658.2 51.1, 2655.1 -64.2, 2657.9 53.2, 2658.2 51.1))",         # a sliver, valid rounded
            # a hole that rounding would push across its shell
            "POLYGON ((0.6 0, 100 0, 100 100, 0.6 100, 0.6 0), (0.9 10, 50 10, 50 90, 0.9 90, 0.9 10))",
            "LINESTRING (500.2 500.2, 600.7 600.7)", "LINESTRING (700.1 700.1, 700.2 700.2)", "POINT (5.5 6.4)"]
    full = shapely.set_precision(shapely.from_wkt(wkts), 1.0)
    got = render._on_grid(shapely.from_wkt(wkts), lambda coords: coords)
    assert got[0].equals(shapely.from_wkt("POLYGON ((10 10, 40 10, 40 40, 10 40, 10 10))"))
    # Snap-rounded in full, both collapse (rounded point by point, the sliver would stay).
    assert got[1].is_empty and got[2].is_empty and full[1].is_empty and full[2].is_empty
    assert got[3].is_valid and got[3].equals(full[3])
    assert list(got[4:].astype(str)) == list(full[4:].astype(str))
    assert got[5].is_empty
    # A line is rounded point by point: a point it repeats stays, and is not written.
    line = shapely.from_wkt(["LINESTRING (0 0, 10.2 0, 10.4 0.1, 20 0)"])
    assert render._on_grid(line, lambda coords: coords)[0].wkt == "LINESTRING (0 0, 10 0, 10 0, 20 0)"
