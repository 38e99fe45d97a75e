"""tilebatch serve: tiles, TileJSON, style and page over HTTP; bad requests refused, never a traceback."""

import json
import os
import re
import signal
import socket
import subprocess
import threading

import mercantile
import pytest

from tilebatch import config, load, metatile, public_styles, serve, style, tileset
from tilebatch import schema as schemas
from tilebatch.runkeys import schema_key
from tilebatch.store import open_store
from tilebatch.tiles import Tile, metatile_members

import smallstore
from conftest import BIN, TOP, last_error, run_cli
from previewserver import serving

LAYERS = {"water", "earth", "landuse", "roads", "buildings", "pois", "places", "boundaries", "transit"}
MVT = "application/vnd.mapbox-vector-tile"


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    store = open_store(f"file://{tmp_path_factory.mktemp('serve')}/out")
    return {"TILEQUEUE__store__url": store.url}, smallstore.fill(store)


@pytest.fixture(scope="module")
def server(small):
    with serving(small[0]) as s:
        yield s
    # Whatever was asked, the log is JSON lines only: no traceback, ever.
    assert "Traceback" not in s.stderr
    assert all(line.startswith("{") for line in s.stderr.splitlines()), s.stderr


def test_tiles_are_served_with_their_bytes_and_type(server, small):
    for tile, data in list(small[1].items())[::7]:
        status, headers, body = server.get(f"/{tile.z}/{tile.x}/{tile.y}.mvt")
        assert (status, headers["content-type"], body) == (200, MVT, data)


def test_empty_tiles_are_204(server):
    empty = smallstore.empty_tile()
    outside = Tile(0, 0, 16)  # its metatile was never built
    for t in (empty, outside):
        status, headers, body = server.get(f"/{t.z}/{t.x}/{t.y}.mvt")
        assert (status, body) == (204, b"")
        assert "content-length" not in headers


def test_head_answers_without_a_body(server, small):
    tile = next(iter(small[1]))
    status, headers, body = server.get(f"/{tile.z}/{tile.x}/{tile.y}.mvt", method="HEAD")
    assert (status, body) == (200, b"") and int(headers["content-length"]) == len(small[1][tile])


@pytest.mark.parametrize("path, status", [
    ("/17/0/0.mvt", 404),                 # above metatile.max-zoom
    ("/99999999999999999999/0/0.mvt", 404),
    ("/" + "9" * 5000 + "/0/0.mvt", 404),  # past Python's int() digit limit
    ("/3/8/0.mvt", 404),                  # x beyond the zoom's 8 columns
    ("/3/0/99999999999.mvt", 404),
    ("/a/0/0.mvt", 400),
    ("/1/0/x.mvt", 400),
    ("/1/-1/0.mvt", 400),
    ("/1/0/1.5.mvt", 400),
    ("/1/0.mvt", 400),
    ("/1/0/0/0.mvt", 400),
    ("/../config.yaml", 400),
    ("/maplibre/../../../../etc/passwd", 400),
    ("/maplibre/..%2f..%2fpackage.json", 400),
    ("/%2e%2e/%2e%2e/etc/passwd", 400),
    ("/./tilejson.json", 400),
    ("//etc/passwd", 404),                # http.server folds the leading slashes: /etc/passwd
    ("/maplibre/..\\..\\package.json", 400),
    ("/maplibre/maplibre-gl.d.ts", 404),  # only the files a browser needs
    ("/maplibre/", 404),
    ("/fonts/", 404),
    ("/fonts/noto-sans-latin-400-normal.woff", 404),  # woff2 only: what the style names
    ("/fonts/../package.json", 400),
    ("/config.yaml", 404),
    ("/etc/passwd", 404),
])
def test_bad_requests_are_refused(server, path, status):
    got, headers, body = server.get(path)
    assert got == status
    assert headers["content-type"] == "application/json" and "error" in json.loads(body)


@pytest.mark.parametrize("request_line", [
    b"GET /0/0/0.mvt HTTP/1.1 extra\r\n\r\n",
    b"GET /1/\xd9\xa3/0.mvt HTTP/1.1\r\n\r\n",  # a non-ASCII digit
    b"GET /1/0/0.mvt\x00 HTTP/1.1\r\n\r\n",
    b"GET " + b"/1" * 40000 + b".mvt HTTP/1.1\r\n\r\n",
    b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n",  # TLS spoken to plain HTTP
])
def test_malformed_requests_are_refused(server, request_line):
    assert server.raw(request_line) in (400, 414)


def test_tilejson_describes_what_was_built(server):
    tj = server.json("/tilejson.json")
    assert tj["tilejson"] == "3.0.0"
    assert tj["tiles"] == [f"{server.url}/{{z}}/{{x}}/{{y}}.mvt"]
    assert (tj["minzoom"], tj["maxzoom"]) == (0, 16)
    # The deepest metatiles': 0/0/0 and 4/9/4 hold their ancestors, which meet them.
    box = mercantile.bounds(Tile(4663, 2370, 13)), mercantile.bounds(Tile(4663, 2371, 13))
    assert tj["bounds"] == pytest.approx([box[0].west, box[1].south, box[0].east, box[0].north])
    lon, lat, zoom = tj["center"]
    assert box[0].west < lon < box[0].east and box[1].south < lat < box[0].north and 0 <= zoom <= 16
    assert {layer["id"] for layer in tj["vector_layers"]} == LAYERS
    assert all(layer["fields"]["kind"] == "String" for layer in tj["vector_layers"])
    assert "OpenStreetMap" in tj["attribution"]


def test_metatiles_lying_elsewhere_widen_the_bounds_and_the_view_opens_on_the_data(tmp_path):
    """A world's sea and land built to z5 (build --world) besides the data: z2 metatiles that miss the data widen the
    bounds, so that a map asks for their tiles; one holding the data's ancestors does not; the center stays."""
    deep = [Tile(4663, 2370, 13), Tile(4663, 2371, 13)]
    ancestor_, elsewhere = Tile(2, 1, 2), Tile(0, 1, 2)  # 0..90 E, 0..66.5 N: over the data; 180..90 W
    store = open_store(f"file://{tmp_path}/out")
    alone = tileset.describe(store, deep)
    assert tileset.describe(store, [ancestor_, *deep]).bounds == alone.bounds
    desc = tileset.describe(store, [ancestor_, elsewhere, *deep])
    far = mercantile.bounds(elsewhere)
    assert desc.bounds == pytest.approx((far.west, far.south, alone.bounds[2], far.north))
    assert (desc.minzoom, desc.maxzoom) == (5, 16)
    assert desc.center[:2] == alone.center[:2] and desc.center[2] >= 13
    # Without the center (build's summary line, which need not read metatiles for it), the rest alike.
    assert tileset.describe(store, [ancestor_, elsewhere, *deep], center=False) == desc._replace(center=None)


def test_tilezen_is_drawn_with_protomaps_light_from_this_server(server):
    style = server.json("/style.json")
    assert style["version"] == 8
    assert style["sources"]["protomaps"]["url"] == f"{server.url}/tilejson.json" and len(style["sources"]) == 1
    assert "glyphs" not in style and "sprite" not in style  # neither is published where we could get it
    drawn = {layer.get("source-layer") for layer in style["layers"]} - {None}
    assert drawn and drawn <= LAYERS
    urls = {face["url"] for faces in style["font-faces"].values() for face in faces}
    assert urls
    for url in urls:
        assert url.startswith(f"{server.url}/fonts/")
        status, headers, body = server.get(url.removeprefix(server.url))
        assert (status, headers["content-type"], body[:4]) == (200, "font/woff2", b"wOF2")


def test_shortbread_is_drawn_with_versatiles_colorful(small):
    with serving({**small[0], "TILEQUEUE__schema__name": "shortbread"}) as s:
        style = s.json("/style.json")
        layers = {layer["id"] for layer in s.json("/tilejson.json")["vector_layers"]}
    assert list(style["sources"]) == ["versatiles-shortbread"]
    assert style["sources"]["versatiles-shortbread"]["url"] == f"{s.url}/tilejson.json"
    assert {"noto_sans_regular", "noto_sans_bold"} <= set(style["font-faces"])
    # Shortbread has every source-layer colorful reads: no style layer is left out.
    assert len(style["layers"]) == len(public_styles.make("versatiles-colorful")["layers"])
    assert {layer.get("source-layer") for layer in style["layers"]} - {None} <= layers
    assert "left out" not in s.stderr


def test_style_layers_of_source_layers_the_tiles_lack_are_left_out_and_named(small):
    with serving(small[0]) as s:  # Tilezen has no landcover, which Protomaps light draws
        style = s.json("/style.json")
    assert "landcover" not in {layer.get("source-layer") for layer in style["layers"]}
    warnings = [json.loads(line) for line in s.stderr.splitlines() if '"level": "warning"' in line]
    left_out = [(w["style"], w["layers"]) for w in warnings if "left out" in w["msg"]]
    assert left_out == [("protomaps-light", ["landcover"])]


def test_a_schema_of_ones_own_is_drawn_with_the_generic_style(small, tmp_path):
    # A copy of a built-in schema, even under its name, is one's own: no public style promises to draw it.
    own = tmp_path / "my-schema.yaml"
    own.write_bytes((TOP / "py" / "tilebatch" / "schemas" / "tilezen.yaml").read_bytes())
    with serving({**small[0], "TILEQUEUE__schema__name": str(own)}) as s:
        style = s.json("/style.json")
    assert style["sources"] == {"tilebatch": {"type": "vector", "url": f"{s.url}/tilejson.json"}}
    assert {layer.get("source-layer") for layer in style["layers"]} - {None} == LAYERS
    assert "glyphs" not in style and "sprite" not in style  # letters drawn locally: nothing from outside


def test_the_generic_style_draws_the_layers_of_ones_own_schema(small, tmp_path):
    own = tmp_path / "cafes.yaml"
    own.write_text("tables: {point: {name: planet_osm_point}}\n"
                   "layers: {cafes: {rules: [{table: point, where: {amenity: cafe}, kind: cafe, min_zoom: 14}]}}\n")
    with serving({**small[0], "TILEQUEUE__schema__name": str(own)}) as s:
        style = s.json("/style.json")
    drawn = {(layer["source-layer"], layer["type"]) for layer in style["layers"] if "source-layer" in layer}
    assert drawn == {("cafes", kind) for kind in ("fill", "line", "circle", "symbol")}


def test_the_page_and_maplibre_come_from_the_server(server):
    status, headers, body = server.get("/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert b"/maplibre/maplibre-gl.mjs" in body and b"/style.json" in body and b"https://" not in body
    status, headers, body = server.get("/maplibre/maplibre-gl.mjs")
    assert status == 200 and headers["content-type"] == "text/javascript" and len(body) > 100_000
    status, headers, _ = server.get("/maplibre/maplibre-gl-worker.mjs?v=6")  # as MapLibre asks for it
    assert status == 200 and headers["content-type"] == "text/javascript"
    status, headers, _ = server.get("/maplibre/maplibre-gl.css")
    assert status == 200 and headers["content-type"] == "text/css"


def test_a_forwarded_host_names_the_tile_urls(server):
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", "/tilejson.json", headers={"Host": "localhost:9000"})
    assert json.loads(conn.getresponse().read())["tiles"] == ["http://localhost:9000/{z}/{x}/{y}.mvt"]
    conn.request("GET", "/tilejson.json", headers={"Host": "evil\"host/<x>"})
    assert json.loads(conn.getresponse().read())["tiles"] == [f"{server.url}/{{z}}/{{x}}/{{y}}.mvt"]
    conn.close()


def test_an_s3_store_is_served(bucket):
    store = open_store(f"s3://{bucket}/tiles")
    expected = smallstore.fill(store)
    with serving({"TILEQUEUE__store__url": store.url}) as s:
        tile = list(expected)[-1]
        assert s.get(f"/{tile.z}/{tile.x}/{tile.y}.mvt")[2] == expected[tile]


class CountingStore:
    """A real store that counts its reads."""

    def __init__(self, store):
        self.store, self.reads = store, 0
        self.url = store.url

    def tile_key(self, tile, ext):
        return self.store.tile_key(tile, ext)

    def read(self, key):
        self.reads += 1
        return self.store.read(key)


def test_one_read_serves_every_tile_of_a_metatile(small):
    store = CountingStore(open_store(small[0]["TILEQUEUE__store__url"]))
    cache = serve.MetatileCache(store)
    meta = smallstore.METATILES[2]
    members = metatile_members(meta)
    results = {}
    threads = [threading.Thread(target=lambda t=t: results.__setitem__(t, cache.tile(t))) for t, _ in members]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert store.reads == 1
    assert {t: d for t, d in results.items() if d} == {t: small[1][t] for t, _ in members if t in small[1]}


def test_the_cache_forgets_the_least_recently_used(small):
    store = CountingStore(open_store(small[0]["TILEQUEUE__store__url"]))
    cache = serve.MetatileCache(store, size=2)
    a, b, c = smallstore.METATILES[1:]
    for meta in (a, b, a, c, a, b):
        cache.members(meta)
    assert store.reads == 4  # a, b, c, then b again: a stayed, being used


def test_a_corrupt_metatile_is_an_error_response_not_a_crash(tmp_path):
    store = open_store(f"file://{tmp_path}/out")
    smallstore.fill(store)
    meta = smallstore.METATILES[3]
    store.write(metatile.key(store, meta), b"not a zip")
    with serving({"TILEQUEUE__store__url": store.url}) as s:
        tile = metatile_members(meta)[0][0]
        status, _, body = s.get(f"/{tile.z}/{tile.x}/{tile.y}.mvt")
        assert status == 502 and "is corrupt" in json.loads(body)["error"]
        assert s.get("/tilejson.json")[0] == 200  # and the server goes on
    assert "Traceback" not in s.stderr


def test_an_empty_store_is_refused_at_start(tmp_path):
    proc = run_cli("serve", "--config", "config.yaml", "--port", "0",
                   env={"TILEQUEUE__store__url": f"file://{tmp_path}/empty"})
    assert proc.returncode == 2
    assert "holds no metatiles" in last_error(proc)


def test_a_taken_port_is_refused(server, small):
    proc = run_cli("serve", "--config", "config.yaml", "--port", server.port, env=small[0])
    assert proc.returncode == 2
    assert f"cannot listen on 127.0.0.1:{server.port}" in last_error(proc)


def test_without_node_it_says_to_run_setup(small):
    proc = run_cli("serve", "--config", "config.yaml", "--port", "0", env={**small[0], "PATH": str(BIN)})
    assert proc.returncode == 2
    assert last_error(proc) == "Node.js is not installed: run make setup"
    assert "Traceback" not in proc.stderr


def test_without_maplibre_it_says_to_run_setup(small, tmp_path):
    proc = run_cli("serve", "--config", "config.yaml", "--port", "0", "--maplibre", tmp_path, env=small[0])
    assert proc.returncode == 2
    assert "make setup" in last_error(proc)



def _read_response(sock) -> bytes:
    """One whole HTTP response (headers and Content-Length bytes of body) from a socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def test_a_kept_alive_response_leaves_in_one_write(server, small):
    """Headers and body sent apart met Nagle and the client's delayed ACK: the body came ~40 ms
    after the headers. Sent together, the first read on the client gets the whole response."""
    tile, data = next(iter(small[1].items()))
    request = f"GET /{tile.z}/{tile.x}/{tile.y}.mvt HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        for _ in range(3):
            sock.sendall(request)
            assert _read_response(sock).endswith(data)
        sock.sendall(request)
        first_read = sock.recv(1 << 20)
    assert first_read.startswith(b"HTTP/1.1 200 ") and first_read.endswith(data)


def test_idle_connections_are_closed_and_the_backlog_is_long(small):
    with serving(small[0], "--idle-timeout", "1") as s:
        listening = subprocess.run(["ss", "-ltnH", f"sport = :{s.port}"], capture_output=True, text=True,
                                   check=True).stdout.split()
        assert listening[0] == "LISTEN" and int(listening[2]) == 128  # Send-Q of a listener: its backlog
        with socket.create_connection(("127.0.0.1", s.port), timeout=30) as idle:
            assert idle.recv(1) == b""  # closed by the server, long before the 30 s here
        assert s.get("/tilejson.json")[0] == 200
    assert s.stderr == "" or all(line.startswith("{") for line in s.stderr.splitlines())
    assert "timed out" not in s.stderr


def test_the_preview_opens_on_the_middle_of_the_data(built_store, db_url):
    """Not on the middle of the metatiles' bounds, which reach kilometres past a small extract."""
    _, env = built_store
    tilezen = schemas.load(schemas.schema_path("tilezen"))
    preview = serve.Preview(open_store(env["TILEQUEUE__store__url"]), tilezen, 16, serve.DEFAULT_MAPLIBRE)
    lon, lat = preview.style("http://x")["center"]
    data = load.data_extent(config.load("config.yaml", environ={**os.environ, **env}))
    mid = ((data.west + data.east) / 2, (data.south + data.north) / 2)
    # Within a z15 tile of it (the metatiles' middle, around the extract's sea, is kilometres off).
    tile = mercantile.bounds(mercantile.tile(*mid, 15))
    assert abs(lon - mid[0]) < tile.east - tile.west and abs(lat - mid[1]) < tile.north - tile.south


def test_the_generic_style_dashes_tunnels_and_draws_them_under_the_buildings():
    layers = style.layers(["earth", "buildings", "roads", "pois"])
    ids = [layer["id"] for layer in layers]
    tunnel = layers[ids.index("roads-tunnel")]
    assert tunnel["source-layer"] == "roads" and "line-dasharray" in tunnel["paint"]
    assert ids.index("roads-tunnel") < ids.index("buildings-fill") < ids.index("roads-line")
    # The roads drawn over the buildings leave the tunnels out.
    for layer_id in ("roads-casing", "roads-line"):
        assert ["!", tunnel["filter"][2]] in layers[ids.index(layer_id)]["filter"]


def test_a_taken_port_under_make_names_its_variable(server, small):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    proc = subprocess.run(["make", "--no-print-directory", "-C", str(TOP), "preview", f"PORT={server.port}"],
                          capture_output=True, text=True, env={**env, **small[0]}, timeout=120)
    assert proc.returncode != 0
    assert "give another PORT=…, e.g. make preview PORT=9000" in last_error(proc)


def test_sigterm_stops_the_preview_as_it_stops_any_command_and_ctrl_c_quietly(small):
    with serving(small[0]) as terminated:
        pass  # leaving it sends SIGTERM
    assert terminated.proc.returncode == 143
    assert last_error(subprocess.CompletedProcess([], 143, "", terminated.stderr)) == "terminated"
    with serving(small[0]) as interrupted:
        interrupted.proc.send_signal(signal.SIGINT)
        interrupted.proc.wait(timeout=10)
    assert interrupted.proc.returncode == 0 and "error" not in interrupted.stderr


def test_tiles_of_another_schema_are_refused_at_start(tmp_path):
    store = open_store(f"file://{tmp_path}/out")
    smallstore.fill(store)
    store.write(schema_key("r1"), json.dumps({"name": "no-such-schema", "digest": "0123456789abcdef"}).encode())
    proc = run_cli("serve", "--config", "config.yaml", "--port", "0", env={"TILEQUEUE__store__url": store.url})
    assert proc.returncode == 2
    assert "built its tiles with schema no-such-schema" in last_error(proc)


def test_every_zoom_the_tilejson_offers_is_served_whatever_the_configured_top_zoom(small):
    """A store built deeper than the configuration now says (metatile.max-zoom lowered since) still serves
    the zooms its TileJSON offers, rather than 404s a map cannot draw."""
    with serving({**small[0], "TILEQUEUE__metatile__max_zoom": "14"}) as s:
        deep = next(t for t in small[1] if t.z == 16)
        status, _, body = s.get(f"/{deep.z}/{deep.x}/{deep.y}.mvt")
        assert (status, body) == (200, small[1][deep])
