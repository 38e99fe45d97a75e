"""An OSM update end to end: a change file applied with osm2pgsql --append (bin/update),
its expire list turned into jobs and rebuilt; exactly the affected tiles change.

Runs on a database of its own, loaded from the same Helsinki extract, so the
other tests keep the demo data as it was.
"""

import gzip
import json
import os
import subprocess

import mapbox_vector_tile
import mercantile
import psycopg2
import pytest
import shapely

from tilebatch import metatile, render
from tilebatch.store import open_store
from tilebatch.tiles import Tile, metatile_members, tile_at, tile_bounds_3857

from conftest import TOP, run_cli
from motoserver import free_port

DB = "gis_update_test"
CENTRAL = (24.945, 60.170)
MOVE = 0.0003  # degrees east the building moves, about 17 m
ROAD = [(24.9432, 60.1712), (24.9441, 60.1716)]  # the new road, lng/lat
NEW_ID = 90_000_000_000


def localdb_url(dbname: str) -> str:
    url = subprocess.run([str(TOP / "bin/localdb"), "url"], capture_output=True, text=True, check=True).stdout
    return url.strip().rsplit("/", 1)[0] + "/" + dbname


@pytest.fixture(scope="module")
def update_db(db_url):
    """A fresh database holding the Helsinki extract, loaded as make demo-data loads it."""
    admin = psycopg2.connect(localdb_url("postgres"))
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {DB}")
        cur.execute(f"CREATE DATABASE {DB}")
    with psycopg2.connect(localdb_url(DB)) as conn, conn.cursor() as cur:
        cur.execute("CREATE EXTENSION postgis; CREATE EXTENSION hstore")
    subprocess.run(["osm2pgsql", "--slim", "--hstore", "--create", "--log-level=warn", "-d", localdb_url(DB),
                    str(TOP / ".tilebatch/data/Helsinki.osm.pbf")], check=True, capture_output=True)
    yield localdb_url(DB)
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    admin.close()


def change_file(url: str, path) -> tuple[int, list]:
    """One building moved east and one road added, as a gzipped osmChange; the building's id and nodes."""
    conn = psycopg2.connect(url)
    with conn.cursor() as cur:
        # A plain building, large enough for Tilezen to show from z13, and no POI (which may show earlier).
        cur.execute("SELECT osm_id FROM planet_osm_polygon WHERE building IS NOT NULL AND osm_id > 0 "
                    "AND way_area >= 5000 AND name IS NULL AND amenity IS NULL AND tourism IS NULL AND shop IS NULL "
                    "AND leisure IS NULL AND historic IS NULL AND office IS NULL "
                    "ORDER BY way <-> ST_Transform(ST_SetSRID(ST_MakePoint(%s, %s), 4326), 3857) LIMIT 1", CENTRAL)
        building = cur.fetchone()[0]
        cur.execute("SELECT n.id, n.lat / 1e7::float8, n.lon / 1e7::float8 FROM planet_osm_ways w, unnest(w.nodes) AS nid "
                    "JOIN planet_osm_nodes n ON n.id = nid WHERE w.id = %s", (building,))
        nodes = sorted(set(cur.fetchall()))
    conn.close()
    moved = "".join(f'<node id="{i}" version="99" lat="{lat:.7f}" lon="{lon + MOVE:.7f}"/>' for i, lat, lon in nodes)
    road_nodes = "".join(f'<node id="{NEW_ID + k}" version="1" lat="{lat}" lon="{lng}"/>'
                         for k, (lng, lat) in enumerate(ROAD))
    refs = "".join(f'<nd ref="{NEW_ID + k}"/>' for k in range(len(ROAD)))
    road = (f'<way id="{NEW_ID}" version="1">{refs}<tag k="highway" v="residential"/>'
            f'<tag k="name" v="Testikatu"/></way>')
    xml = (f'<?xml version="1.0" encoding="UTF-8"?><osmChange version="0.6" generator="test">'
           f"<modify>{moved}</modify><create>{road_nodes}{road}</create></osmChange>")
    with gzip.open(path, "wt") as f:
        f.write(xml)
    return building, nodes


def snapshot(root) -> dict:
    """Every metatile and RAWR tile under root, by path, with its bytes."""
    out = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, root)
            if name.endswith(".zip") and not rel.startswith("out/runs/"):
                out[rel] = open(path, "rb").read()
    return out


def changed_tiles(before: dict, after: dict) -> set[Tile]:
    """The tiles whose bytes differ, member by member inside metatiles (and RAWR tiles whole)."""
    out = set()
    for path in set(before) | set(after):
        z, x, y = (int(p) for p in path.rsplit(".", 1)[0].split("/")[-3:])
        if path.startswith("rawr/"):
            if before.get(path) != after.get(path):
                out.add(("rawr", Tile(x, y, z)))
            continue
        old = metatile.unpack(before[path]) if path in before else {}
        new = metatile.unpack(after[path]) if path in after else {}
        for tile, member in metatile_members(Tile(x, y, z)):
            if old.get(member) != new.get(member):
                out.add(("tile", tile))
    return out


def test_update_rebuilds_exactly_the_affected_tiles(update_db, tmp_path):
    env = {"TILEQUEUE__postgresql__dbnames": f"[{DB}]", "TILEQUEUE__store__url": f"file://{tmp_path}/out",
           "TILEQUEUE__rawr__sink__url": f"file://{tmp_path}/rawr"}
    proc = run_cli("build", "--config", "config.yaml", "--run-id", "before", env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    before = snapshot(tmp_path)

    changes = tmp_path / "change.osc.gz"
    building, nodes = change_file(update_db, changes)
    proc = subprocess.run([str(TOP / "bin/update"), str(changes)], capture_output=True, text=True, cwd=TOP,
                          env={**os.environ, **env, "DATABASE_URL": update_db, "RUN_ID": "after",
                               "EXECUTOR": "local"}, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert "nothing missing" in proc.stdout
    after = snapshot(tmp_path)
    changed = changed_tiles(before, after)

    # Where the change is: the building before and after, and the new road (EPSG:3857).
    lats = [lat for _, lat, _ in nodes]
    lons = [lon for _, _, lon in nodes]
    area = shapely.box(*mercantile.xy(min(lons), min(lats)), *mercantile.xy(max(lons) + MOVE, max(lats))).union(
        shapely.LineString([mercantile.xy(*p) for p in ROAD]))

    # Every tile that changed touches the change (within its buffer) ...
    for kind, tile in changed:
        minx, miny, maxx, maxy = tile_bounds_3857(tile)
        pad = (maxx - minx) * (1 / 64 if kind == "rawr" else render.BUFFER / render.EXTENT)
        assert shapely.box(minx - pad, miny - pad, maxx + pad, maxy + pad).intersects(area), (kind, tile)
    # ... and the tiles that show it did change: the building from z13, the road (residential) from z12.
    centre = ((min(lons) + max(lons)) / 2 + MOVE, (min(lats) + max(lats)) / 2)
    for z in range(12, 17):
        assert ("tile", tile_at(*centre, z)) in changed or z < 13, z
        assert ("tile", tile_at(*ROAD[0], z)) in changed, z
    assert ("rawr", tile_at(*centre, 10)) in changed
    # Nothing changed at zooms that show neither.
    assert not [t for kind, t in changed if kind == "tile" and t.z < 12]
    # Most of the build did not change.
    assert len(changed) < len(before) * 64 / 4

    road_tile = tile_at(*ROAD[0], 16)
    data = metatile.read_tile(open_store(f"file://{tmp_path}/out"), road_tile)
    roads = mapbox_vector_tile.decode(data)["roads"]["features"]
    assert any(f["properties"].get("name") == "Testikatu" for f in roads)
    runs_dir = tmp_path / "out/runs/after"
    assert json.loads((runs_dir / "rawr" / "7" / f"{tile_at(*centre, 7).x}" / f"{tile_at(*centre, 7).y}.json")
                      .read_text())["counts"]["rawr_tiles"] >= 1


def test_update_refuses_a_missing_change_file(tmp_path):
    proc = subprocess.run([str(TOP / "bin/update"), str(tmp_path / "nope.osc.gz")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "no change file" in proc.stderr


def test_an_update_of_another_database_leaves_the_local_one_alone(tmp_path):
    """Only the database updated runs: with DATABASE_URL another one's, the local one is not started."""
    changes = tmp_path / "change.osc"
    changes.write_text('<?xml version="1.0"?><osmChange version="0.6"></osmChange>')
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    proc = subprocess.run([str(TOP / "bin/update"), str(changes)], capture_output=True, text=True, cwd=TOP,
                          env={**env, "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/gis"})
    assert proc.returncode == 1  # nothing answers there: a retry may find it up
    assert "localdb" not in proc.stdout + proc.stderr
