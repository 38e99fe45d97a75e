"""Your own area: an extract the demo does not use, loaded with make load, built with make build.

The extract is the Helsinki one moved to Buenos Aires with pyosmium, its ids
renumbered from 1 (so a flat-nodes file, forced on here, stays small). It goes
into a database of its own, so the other tests keep the demo data.
"""

import gzip
import os
import re
import subprocess

import osmium
import psycopg2
import pytest

from tilebatch import load
from tilebatch.tiles import tile_at

from conftest import TOP, built_tile, counted_in_database, last_error, run_cli

DB = "gis_own_area_test"
SHIFT = (-83.3, -94.8)  # degrees: Helsinki's centre lands near (-58.36, -34.63)
HELSINKI = TOP / ".tilebatch/data/Helsinki.osm.pbf"


def shifted_copy(src, out, dlon: float, dlat: float) -> None:
    """`src` moved by (dlon, dlat), each kind of object numbered 1, 2, 3, ... in file order."""
    ids: dict[str, dict[int, int]] = {"n": {}, "w": {}, "r": {}}

    def new_id(kind: str, old: int) -> int:
        # A reference to an object the extract lacks still needs an id of its own.
        return ids[kind].setdefault(old, len(ids[kind]) + 1)

    kinds = {osmium.osm.NODE: "n", osmium.osm.WAY: "w", osmium.osm.RELATION: "r"}
    for kind in kinds:  # first every object, in order, so that the new ids keep the file sorted
        for obj in osmium.FileProcessor(str(src), kind):
            new_id(kinds[kind], obj.id)
    writer = osmium.SimpleWriter(str(out), overwrite=True)
    try:
        for obj in osmium.FileProcessor(str(src)):
            if obj.is_node():
                loc = obj.location
                writer.add(obj.replace(id=new_id("n", obj.id),
                                       location=osmium.osm.Location(loc.lon + dlon, loc.lat + dlat)))
            elif obj.is_way():
                writer.add(obj.replace(id=new_id("w", obj.id), nodes=[new_id("n", n.ref) for n in obj.nodes]))
            else:
                writer.add(obj.replace(id=new_id("r", obj.id),
                                       members=[(m.type, new_id(m.type, m.ref), m.role) for m in obj.members]))
    finally:
        writer.close()


def db_url(dbname: str = DB) -> str:
    url = subprocess.run([str(TOP / "bin/localdb"), "url"], capture_output=True, text=True, check=True).stdout
    return url.strip().rsplit("/", 1)[0] + "/" + dbname


def make(*args, env, timeout=600):
    """`make ARGS` in the checkout as a user runs it, with `env` on top of the environment."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    return subprocess.run(["make", "--no-print-directory", "-C", str(TOP), *args], capture_output=True, text=True,
                          env={**full, **env}, timeout=timeout)


def bin_load(*args, env):
    full = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    return subprocess.run([str(TOP / "bin/load"), *map(str, args)], capture_output=True, text=True,
                          env={**full, **env}, timeout=600)


def record(dbname: str = DB):
    with psycopg2.connect(db_url(dbname)) as conn, conn.cursor() as cur:
        found = load.read_record(cur)
        cur.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s", (load.STAGING,))
        assert cur.fetchone()[0] == 0, "the staging schema is left behind"
    conn.close()
    return found


def polygons(dbname: str = DB) -> int:
    with psycopg2.connect(db_url(dbname)) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM planet_osm_polygon")
        count = cur.fetchone()[0]
    conn.close()
    return count


def drop(dbname: str) -> None:
    conn = psycopg2.connect(db_url("postgres"))
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)")
    conn.close()


@pytest.fixture(scope="module")
def area(db_url, tmp_path_factory):
    """The moved extract loaded with `make load` (a flat-nodes file forced on): (pbf, env for make)."""
    root = tmp_path_factory.mktemp("area")
    pbf = root / "buenos-aires.osm.pbf"
    shifted_copy(HELSINKI, pbf, *SHIFT)
    env = {"TILEQUEUE__postgresql__dbnames": f"[{DB}]", "TILEQUEUE__store__url": f"file://{root}/out",
           "TILEQUEUE__rawr__sink__url": f"file://{root}/rawr", "FLAT_NODES_ABOVE_MB": "0"}
    drop(DB)
    proc = make("load", f"PBF={pbf}", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    yield pbf, env, root, polygons()
    loaded = record()
    if loaded and loaded.flat_nodes:
        os.unlink(loaded.flat_nodes)
    drop(DB)


def test_make_load_records_the_file(area):
    pbf, _, _, _ = area
    loaded = record()
    assert loaded.file == "buenos-aires.osm.pbf"
    assert loaded.sha256 == load.file_sha256(pbf) and loaded.bytes == os.path.getsize(pbf)
    west, south, east, north = loaded.bounds
    assert -58.5 < west < east < -58.2 and -34.8 < south < north < -34.5
    assert loaded.flat_nodes and os.path.getsize(loaded.flat_nodes) > 0  # FLAT_NODES_ABOVE_MB=0
    assert polygons() > 1000


def test_make_build_builds_what_is_loaded(area):
    _, env, root, _ = area
    proc = make("build", "RUN_ID=area", "JOBS=2", "WORLD_ZOOM=", env=env)  # the area alone, not the world too
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert re.search(r"built run area: \d+ jobs run", proc.stdout)  # (z7 jobs cut into parts for idle workers)
    assert re.search(r"the store holds tiles of zooms \d+\.\.16 over -58\.\d+,-34\.\d+,", proc.stdout), proc.stdout
    assert "make preview" in proc.stdout and "make db-stop" in proc.stdout
    west, south, east, north = record().bounds
    tile = tile_at((west + east) / 2, (south + north) / 2, 15)
    got = built_tile(root, tile)
    buildings, roads = counted_in_database(db_url(), tile)
    assert buildings > 50 and roads > 50
    assert len(got["buildings"]["features"]) == buildings
    assert len(got["roads"]["features"]) == roads


def test_loading_the_same_file_again_is_skipped(area):
    pbf, env, _, _ = area
    before = record()
    proc = make("load", f"PBF={pbf}", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "is loaded already" in proc.stdout and "FORCE=1" in proc.stdout
    assert record() == before


def zoom_indexes(dbname: str = DB) -> int:
    with psycopg2.connect(db_url(dbname)) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_class c JOIN pg_proc p ON p.proname = c.relname"
                    " WHERE c.relkind = 'i' AND c.relname LIKE 'tilebatch\\_zoom\\_%'")
        count = cur.fetchone()[0]
    conn.close()
    return count


def test_a_load_makes_the_zoom_indexes_and_a_repeated_one_makes_those_missing(area):
    pbf, env, _, _ = area
    made = zoom_indexes()
    assert made > 10  # the configured schema's: every OSM table and span of zooms meta-low queries
    with psycopg2.connect(db_url()) as conn, conn.cursor() as cur:
        cur.execute("SELECT proname FROM pg_proc WHERE proname LIKE 'tilebatch\\_zoom\\_%' LIMIT 3")
        for (name,) in cur.fetchall():
            cur.execute(f"DROP FUNCTION {name} CASCADE")  # and its index
    conn.close()
    assert zoom_indexes() == made - 3
    proc = make("load", f"PBF={pbf}", env=env)
    assert proc.returncode == 0 and "is loaded already" in proc.stdout, proc.stderr
    assert zoom_indexes() == made


@pytest.mark.parametrize("content, message", [
    (b"# README\nnot a map\n", "is not an OSM file"),
    (gzip.compress(b"<?xml version='1.0'?>\n<osmChange version='0.6'></osmChange>"), "is an OSM change file"),
    (b"\x1f\x8bnot really gzip", "is not an OSM file"),
    (b"", "is not an OSM file"),
])
def test_a_file_that_is_not_osm_data_exits_2_and_touches_nothing(area, tmp_path, content, message):
    _, env, _, _ = area
    before, count = record(), polygons()
    bad = tmp_path / "area.osm.pbf"
    bad.write_bytes(content)
    proc = bin_load(bad, env=env)
    assert proc.returncode == 2, proc.stderr
    assert message in last_error(proc)
    assert record() == before and polygons() == count


def test_a_failed_load_leaves_the_previous_one(area, tmp_path):
    pbf, env, _, _ = area
    before, count = record(), polygons()
    cut = tmp_path / "cut.osm.pbf"
    cut.write_bytes(pbf.read_bytes()[:os.path.getsize(pbf) // 2])
    flat_files = set(os.listdir(TOP / ".tilebatch"))
    proc = bin_load(cut, env=env)
    assert proc.returncode == 1
    assert "osm2pgsql failed" in last_error(proc) and "the previous load is unchanged" in last_error(proc)
    assert record() == before and polygons() == count
    assert os.path.exists(before.flat_nodes)
    assert set(os.listdir(TOP / ".tilebatch")) == flat_files  # its own flat-nodes file is gone


def test_a_load_by_a_role_without_the_right_to_is_refused_in_one_line(area):
    """A database error after the connection (here no right to read the load record) is said as the connection's
    are: no retry gives the role rights, so exit 2, not a bug's exit 1, and the load stays."""
    pbf, env, _, _ = area
    before, count = record(), polygons()
    admin = psycopg2.connect(db_url("postgres"))
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("DROP ROLE IF EXISTS tilebatch_reader; CREATE ROLE tilebatch_reader LOGIN")
    try:
        proc = run_cli("load", pbf, "--force", "--database-url",
                       db_url().replace("://postgres@", "://tilebatch_reader@"), env=env)
    finally:
        with admin.cursor() as cur:
            cur.execute("DROP ROLE tilebatch_reader")
        admin.close()
    assert proc.returncode == 2, proc.stderr
    assert "permission denied" in last_error(proc) and "Traceback" not in proc.stderr
    assert record() == before and polygons() == count


def test_make_update_keeps_your_area_and_its_flat_nodes(area, tmp_path):
    """make update applies changes to what is loaded (no demo data over it), with the load's flat-nodes file."""
    _, env, _, _ = area
    before = record()
    with psycopg2.connect(db_url()) as conn, conn.cursor() as cur:
        cur.execute("SELECT osm_id, ST_AsText(way) FROM planet_osm_polygon WHERE building IS NOT NULL "
                    "AND osm_id > 0 ORDER BY way_area DESC LIMIT 1")
        way_id, shape = cur.fetchone()
        cur.execute("SELECT nodes FROM planet_osm_ways WHERE id = %s", (way_id,))
        first_node = cur.fetchone()[0][0]
    conn.close()
    west, south, _, _ = before.bounds
    changes = tmp_path / "change.osc"
    changes.write_text(f'<?xml version="1.0"?><osmChange version="0.6"><modify>'
                       f'<node id="{first_node}" version="2" lat="{south + 0.0005:.7f}" lon="{west + 0.0005:.7f}"/>'
                       f"</modify></osmChange>")
    proc = make("update", f"CHANGES={changes}", env={**env, "EXECUTOR": "local", "RUN_ID": "area-update"})
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert record() == before  # still the area, not the demo extract
    with psycopg2.connect(db_url()) as conn, conn.cursor() as cur:
        # Every other node's location came from the flat-nodes file: the building is whole, one corner moved.
        cur.execute("SELECT ST_AsText(way), ST_NPoints(way) FROM planet_osm_polygon WHERE osm_id = %s", (way_id,))
        new_shape, points = cur.fetchone()
    conn.close()
    assert new_shape != shape and points == shape.count(",") + 1


def test_an_osm_xml_extract_loads_too(area, tmp_path):
    pbf, env, _, _ = area
    xml = tmp_path / "area.osm.bz2"
    with osmium.SimpleWriter(str(xml)) as writer:
        for obj in osmium.FileProcessor(str(pbf)):
            writer.add(obj)
    dbname = DB + "_xml"
    drop(dbname)
    try:
        proc = make("load", f"PBF={xml}", env={**env, "TILEQUEUE__postgresql__dbnames": f"[{dbname}]",
                                               "FLAT_NODES_ABOVE_MB": ""})
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert record(dbname).file == "area.osm.bz2" and record(dbname).flat_nodes is None
        assert polygons(dbname) == area[3]
    finally:
        drop(dbname)


@pytest.mark.parametrize("head, fmt", [
    (b"<?xml version='1.0' encoding='UTF-8'?>\n<!-- made by hand -->\n<osm version='0.6'>", "xml"),
    (b"\xef\xbb\xbf<osm version='0.6'>", "xml"),
])
def test_osm_xml_is_told_by_its_first_element(tmp_path, head, fmt):
    path = tmp_path / "x.dat"
    path.write_bytes(head)
    assert load.osm_format(str(path)) == fmt


@pytest.mark.parametrize("size, free, flat, want", [
    (50 * 2**20, 16000, False, 50),        # a city: the file's size
    (40 * 2**30, 16000, False, 12000),     # a continent: 75% of the free memory
    (40 * 2**30, 16000, True, 0),          # with a flat-nodes file the cache does not help
    (100, 16000, False, 1),
])
def test_the_node_cache_follows_the_file_and_the_free_memory(size, free, flat, want):
    assert load.cache_mb(size, free, flat) == want
