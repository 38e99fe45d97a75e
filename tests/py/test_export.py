"""tilebatch export: PMTiles and MBTiles files that read back tile for tile equal to the store."""

import fcntl
import gzip
import json
import os
import pty
import sqlite3
import struct
import subprocess
import termios
import zipfile

import mercantile
import pytest
from pmtiles.reader import MmapSource, Reader, all_tiles
from pmtiles.tile import Compression, TileType, zxy_to_tileid

import tilebatch
from tilebatch import config, metatile, records, runs, tileset
from tilebatch.runkeys import schema_key
from tilebatch.store import open_store
from tilebatch.tiles import Tile, metatile_members

import smallstore
from conftest import BIN, TOP, last_error, run_cli

LAYERS = {"water", "earth", "landuse", "roads", "buildings", "pois", "places", "boundaries", "transit"}


@pytest.fixture
def small(tmp_path):
    """A file store with the small set of metatiles: (env pointing at it, the tiles it holds)."""
    store = open_store(f"file://{tmp_path}/out")
    return {"TILEQUEUE__store__url": store.url}, smallstore.fill(store)


def read_pmtiles(path) -> tuple[dict, dict, dict]:
    """(header, metadata, {tile: gunzipped bytes}) of a PMTiles file, through the pmtiles reader."""
    with open(path, "rb") as f:
        get = MmapSource(f)
        reader = Reader(get)
        header, meta = reader.header(), reader.metadata()
        tiles = {Tile(x, y, z): gzip.decompress(data) for (z, x, y), data in all_tiles(get)}
        # The directory lookup, too, finds every tile.
        for t, data in tiles.items():
            assert gzip.decompress(reader.get(t.z, t.x, t.y)) == data
    return header, meta, tiles


def read_mbtiles(path) -> tuple[dict, dict]:
    """(metadata, {XYZ tile: gunzipped bytes}) of an MBTiles file, undoing the TMS row flip."""
    db = sqlite3.connect(path)
    try:
        meta = dict(db.execute("SELECT name, value FROM metadata"))
        tiles = {Tile(x, (1 << z) - 1 - row, z): gzip.decompress(data)
                 for z, x, row, data in db.execute("SELECT zoom_level, tile_column, tile_row, tile_data FROM tiles")}
    finally:
        db.close()
    return meta, tiles


def test_pmtiles_reads_back_equal_to_the_store(small, tmp_path):
    env, expected = small
    out = tmp_path / "helsinki.pmtiles"
    proc = run_cli("export", "--config", "config.yaml", "--format", "pmtiles", out, env=env)
    assert proc.returncode == 0, proc.stderr
    header, meta, tiles = read_pmtiles(out)
    assert tiles == expected
    assert header["tile_type"] == TileType.MVT and header["tile_compression"] == Compression.GZIP
    assert header["clustered"] is True
    assert (header["min_zoom"], header["max_zoom"]) == (0, 16)
    deep = mercantile.bounds(Tile(4663, 2370, 13))
    assert header["min_lon_e7"] == int(deep.west * 1e7) and header["max_lat_e7"] == int(deep.north * 1e7)
    assert {layer["id"] for layer in meta["vector_layers"]} == LAYERS
    assert meta["attribution"] == "© OpenStreetMap contributors"
    assert meta["generator"] == f"tilebatch {tilebatch.__version__}"
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp-")]


def test_mbtiles_reads_back_equal_to_the_store_with_rows_flipped(small, tmp_path):
    env, expected = small
    out = tmp_path / "helsinki.mbtiles"
    proc = run_cli("export", "--config", "config.yaml", out, env=env)  # format from the extension
    assert proc.returncode == 0, proc.stderr
    meta, tiles = read_mbtiles(out)
    assert tiles == expected
    assert meta["format"] == "pbf" and meta["attribution"] == "© OpenStreetMap contributors"
    assert meta["generator"] == f"tilebatch {tilebatch.__version__}"
    assert (meta["minzoom"], meta["maxzoom"]) == ("0", "16")
    west, south, east, north = (float(v) for v in meta["bounds"].split(","))
    lon, lat, zoom = meta["center"].split(",")
    assert west < float(lon) < east and south < float(lat) < north and 0 <= int(zoom) <= 16
    assert {layer["id"] for layer in json.loads(meta["json"])["vector_layers"]} == LAYERS
    # The north-west z1 tile (XYZ y 0) sits in TMS row 1.
    db = sqlite3.connect(out)
    assert db.execute("SELECT tile_row FROM tiles WHERE zoom_level = 1 AND tile_column = 0").fetchall() == [(1,)]
    db.close()


def test_export_reads_an_s3_store(bucket, tmp_path):
    store = open_store(f"s3://{bucket}/tiles")  # hash-prefix keys
    expected = smallstore.fill(store)
    out = tmp_path / "s3.pmtiles"
    proc = run_cli("export", "--config", "config.yaml", out, env={"TILEQUEUE__store__url": store.url})
    assert proc.returncode == 0, proc.stderr
    assert read_pmtiles(out)[2] == expected


def test_tiles_come_in_tile_id_order(small, tmp_path):
    store = open_store(small[0]["TILEQUEUE__store__url"])
    ids = [zxy_to_tileid(t.z, t.x, t.y) for t, _ in tileset.tiles(store, tileset.metatiles(store))]
    assert ids == sorted(ids) and len(ids) == len(small[1])


def test_keys_that_are_not_metatiles_are_ignored(small):
    store = open_store(small[0]["TILEQUEUE__store__url"])
    store.write("rawr/10/582/296.zip", b"not a metatile")
    store.write("runs/r/meta-low/0/0/0.json", b"{}")
    found = tileset.metatiles(store)
    assert len(found) == len(smallstore.METATILES) and set(found) == set(smallstore.METATILES)


def test_a_corrupt_metatile_fails_and_leaves_nothing(small, tmp_path):
    env, _ = small
    store = open_store(env["TILEQUEUE__store__url"])
    store.write(metatile.key(store, Tile(4663, 2371, 13)), b"PK\x03\x04 truncated")
    out = tmp_path / "bad.pmtiles"
    proc = run_cli("export", "--config", "config.yaml", out, env=env)
    assert proc.returncode == 2
    assert "metatile 13/4663/2371.zip" in last_error(proc) and "is corrupt" in last_error(proc)
    assert "Traceback" not in proc.stderr
    assert sorted(os.listdir(tmp_path)) == ["out"]


@pytest.mark.parametrize("args, message", [
    (["tiles.geojson"], "give --format pmtiles or --format mbtiles"),
    (["--format", "pmtiles", "no/such/folder/t.pmtiles"], "does not exist"),
])
def test_bad_destinations_are_refused(small, tmp_path, args, message):
    proc = run_cli("export", "--config", TOP / "config.yaml", *args, env=small[0], cwd=tmp_path)
    assert proc.returncode == 2
    assert message in last_error(proc)


def test_an_empty_store_is_refused(tmp_path):
    proc = run_cli("export", "--config", "config.yaml", tmp_path / "t.pmtiles",
                   env={"TILEQUEUE__store__url": f"file://{tmp_path}/empty"})
    assert proc.returncode == 2
    assert "holds no metatiles" in last_error(proc)
    assert os.listdir(tmp_path) == []


def test_a_real_build_exports_tile_for_tile(built_store, tmp_path):
    root, env = built_store
    # What the store holds, read straight from its zips.
    expected = {}
    for folder, _, files in os.walk(root / "out"):
        for name in files:
            rel = os.path.relpath(os.path.join(folder, name), root / "out")
            parts = rel[:-len(".zip")].split("/")
            if name.endswith(".zip") and len(parts) == 3:
                meta = Tile(int(parts[1]), int(parts[2]), int(parts[0]))
                with zipfile.ZipFile(os.path.join(folder, name)) as z:
                    members = {n: z.read(n) for n in z.namelist()}
                expected.update({t: members[n] for t, n in metatile_members(meta) if n in members})
    assert len(expected) > 20 and 16 in {t.z for t in expected}
    out = tmp_path / "helsinki.pmtiles"
    proc = run_cli("export", "--config", "config.yaml", out, env=env)
    assert proc.returncode == 0, proc.stderr
    assert read_pmtiles(out)[2] == expected
    out = tmp_path / "helsinki.mbtiles"
    assert run_cli("export", "--config", "config.yaml", out, env=env).returncode == 0
    assert read_mbtiles(out)[1] == expected


def test_a_terminal_shows_a_progress_bar_and_a_pipe_does_not(small, tmp_path):
    env, _ = small
    ours, theirs = pty.openpty()
    fcntl.ioctl(theirs, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen([str(BIN / "tilebatch"), "export", "--config", str(TOP / "config.yaml"),
                             tmp_path / "t.pmtiles"], stdin=theirs, stdout=theirs, stderr=theirs,
                            env={**os.environ, **env})
    os.close(theirs)
    seen = b""
    while True:
        try:
            chunk = os.read(ours, 4096)
        except OSError:  # the terminal's other end is gone
            break
        if not chunk:
            break
        seen += chunk
    os.close(ours)
    assert proc.wait(timeout=60) == 0
    assert b"export pmtiles: 100%|" in seen and b"4/4 [" in seen
    piped = run_cli("export", "--config", "config.yaml", tmp_path / "u.pmtiles", env=env)
    assert all(line.startswith("{") for line in piped.stderr.splitlines())


def make_export(tmp_path, env, *args):
    full = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    return subprocess.run(["make", "--no-print-directory", "-C", str(TOP), "export", *args], capture_output=True,
                          text=True, env={**full, **env}, timeout=300)


@pytest.mark.parametrize("out, fmt, want", [
    ("tiles.mbtiles", None, "mbtiles"),   # the extension says it
    ("tiles.pmtiles", None, "pmtiles"),
    ("tiles.bin", "mbtiles", "mbtiles"),  # FORMAT says it
])
def test_make_export_writes_the_format_the_name_says(small, tmp_path, out, fmt, want):
    env, expected = small
    proc = make_export(tmp_path, env, f"OUT={tmp_path / out}", *([f"FORMAT={fmt}"] if fmt else []))
    assert proc.returncode == 0, proc.stderr
    with open(tmp_path / out, "rb") as f:
        magic = f.read(16)
    assert magic.startswith(b"PMTiles") if want == "pmtiles" else magic == b"SQLite format 3\x00"


def test_tiles_of_another_schema_are_refused_and_another_version_of_it_warned_of(small, tmp_path):
    """The file's metadata (its layers, their zooms) comes from the configured schema: it must be the tiles'."""
    env, _ = small
    store = open_store(env["TILEQUEUE__store__url"])
    configured = config.load(str(TOP / "config.yaml"), environ=env)["schema"]["name"]
    other = next(name for name in ("tilezen", "shortbread") if name != configured)
    store.write(schema_key("r1"), json.dumps({"name": other, "digest": "0123456789abcdef"}).encode())
    proc = run_cli("export", "--config", "config.yaml", tmp_path / "t.pmtiles", env=env)
    assert proc.returncode == 2
    assert f"run r1 in {store.url} built its tiles with schema {other}" in last_error(proc)
    assert sorted(os.listdir(tmp_path)) == ["out"]
    store.write(schema_key("r1"), json.dumps({"name": configured, "digest": "0123456789abcdef"}).encode())
    proc = run_cli("export", "--config", "config.yaml", tmp_path / "t.pmtiles", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "another version of the schema" in proc.stderr


def test_an_unfinished_latest_run_is_warned_of(small, tmp_path):
    env, _ = small
    store = open_store(env["TILEQUEUE__store__url"])
    runs.add_expected(store, "r1", "meta-high", [(Tile(72, 37, 7),)])
    proc = run_cli("export", "--config", "config.yaml", tmp_path / "t.pmtiles", env=env)
    assert proc.returncode == 0, proc.stderr
    [warning] = [json.loads(line) for line in proc.stderr.splitlines() if '"warning"' in line]
    assert warning["msg"].startswith("the latest run is not finished") and warning["missing"] == {"meta-high": 1}
    records.write_record(store, "r1", "meta-high", Tile(72, 37, 7), {"counts": {}})
    proc = run_cli("export", "--config", "config.yaml", tmp_path / "t.pmtiles", env=env)
    assert proc.returncode == 0 and '"warning"' not in proc.stderr
