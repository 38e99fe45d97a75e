"""`tilebatch serve`: look at a build in the browser, straight from the metatile store.

A small HTTP server on 127.0.0.1 serves the tiles (`/{z}/{x}/{y}.mvt`, cut out
of their metatiles), a TileJSON 3.0.0 description (`/tilejson.json`), a
MapLibre style (`/style.json`) and a page with the map (`/`). The style is the
public one made for a built-in schema (public_styles: VersaTiles colorful for
Shortbread, Protomaps light for Tilezen), else our generic one (style). MapLibre
GL JS and the fonts come from web/node_modules (installed by `make setup`) and
are served from here too, so the preview needs no network.

The server shows the store as it was when it started: the description is
worked out once, and a metatile once read stays in a small cache (one read
serves all 64 of its tiles). Restart it after a rebuild.
"""

import http.server
import json
import os
import re
import sys
import threading
from collections import OrderedDict
from pathlib import Path

from . import log, metatile, public_styles, records, runs, style, tileset
from .errors import BadInput, Terminated, TilebatchError
from .schema import Schema, build_max_zoom, load_schema
from .store import metatile_store
from .tiles import Tile, metatile_of

MVT_TYPE = "application/vnd.mapbox-vector-tile"
JSON_TYPE = "application/json"
PAGE = Path(__file__).with_name("preview.html")
DEFAULT_MAPLIBRE = Path(__file__).resolve().parents[2] / "web" / "node_modules" / "maplibre-gl" / "dist"
ASSET_TYPES = {".mjs": "text/javascript", ".js": "text/javascript", ".css": "text/css", ".map": JSON_TYPE}
FONT_TYPE = "font/woff2"
CACHE_SIZE = 32  # metatiles; a z13 metatile of a dense city unpacks to a few MB
IDLE_TIMEOUT = 30.0  # seconds; each open connection holds a thread

_TILE_PATH_RE = re.compile(r"^/([^/]+)/([^/]+)/([^/]+)\.mvt$")
_NUMBER_RE = re.compile(r"^[0-9]{1,10}$")
_HOST_RE = re.compile(r"^[A-Za-z0-9.\-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")


class HTTPError(Exception):
    """A request that cannot be answered with what it asked for: its status and why."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def clean_path(target: str) -> str:
    """The path of a request target, without its query; HTTPError 400 if it is malformed.

    Nothing here needs escapes, dot segments or empty segments, so a path with
    any of them is refused outright rather than normalised: no way out of the
    routes below.
    """
    path = target.split("?", 1)[0]
    shown = path[:80]
    if (not path.startswith("/") or "//" in path or "%" in path or "\\" in path
            or not path.isprintable() or any(seg in (".", "..") for seg in path.split("/"))):
        raise HTTPError(400, f"malformed path {shown!r}")
    return path


def parse_tile_path(path: str, max_zoom: int) -> Tile:
    """The tile of a `/z/x/y.mvt` path: HTTPError 400 if it is not one, 404 if no such tile can exist."""
    m = _TILE_PATH_RE.match(path)
    if not m:
        raise HTTPError(400, f"malformed tile path {path[:80]!r}: expected /z/x/y.mvt")
    z, x, y = m.groups()
    if not all(v.isascii() and v.isdigit() for v in (z, x, y)):
        raise HTTPError(400, f"malformed tile path {path[:80]!r}: z, x and y must be whole numbers")
    if not _NUMBER_RE.match(z) or int(z) > max_zoom:
        raise HTTPError(404, f"no tile {path[1:80]}: zoom is outside 0..{max_zoom}")
    side = 1 << int(z)
    if not (_NUMBER_RE.match(x) and _NUMBER_RE.match(y)) or int(x) >= side or int(y) >= side:
        raise HTTPError(404, f"no tile {path[1:80]}: at zoom {int(z)}, x and y must be below {side}")
    return Tile(int(x), int(y), int(z))


class MetatileCache:
    """The members of the most recently used metatiles, each read from the store once.

    Tiles of one metatile are requested together; a per-metatile lock makes
    concurrent requests wait for the one read rather than each reading it.
    A metatile not in the store is remembered as empty.
    """

    def __init__(self, store, size: int = CACHE_SIZE):
        self.store, self.size = store, size
        self._entries: OrderedDict = OrderedDict()
        self._loading: dict = {}
        self._lock = threading.Lock()

    def _cached(self, meta: Tile):
        with self._lock:
            if meta in self._entries:
                self._entries.move_to_end(meta)
                return self._entries[meta]
            return None

    def members(self, meta: Tile) -> dict[str, bytes]:
        found = self._cached(meta)
        if found is not None:
            return found
        with self._lock:
            loading = self._loading.setdefault(meta, threading.Lock())
        with loading:
            found = self._cached(meta)
            if found is not None:
                return found
            members = metatile.read_members(self.store, meta)
            with self._lock:
                self._entries[meta] = members
                while len(self._entries) > self.size:
                    self._entries.popitem(last=False)
                self._loading.pop(meta, None)
            return members

    def tile(self, tile: Tile) -> bytes:
        """The tile's MVT bytes; b"" when it is empty."""
        meta, member = metatile_of(tile)
        return self.members(meta).get(member, b"")


class Preview:
    """Everything a request needs, and the answer to each path, apart from HTTP itself."""

    def __init__(self, store, schema: Schema, max_zoom: int, maplibre_dir: Path):
        self.store, self.schema = store, schema
        self.cache = MetatileCache(store)
        self.description = tileset.describe(store, tileset.metatiles(store))
        # The TileJSON offers what the store holds, which an earlier build may have taken deeper.
        self.max_zoom = max(max_zoom, self.description.maxzoom)
        self.vector_layers = tileset.vector_layers(self.description, schema)
        self.assets = {p.name: p for p in maplibre_dir.iterdir() if p.suffix in ASSET_TYPES} \
            if maplibre_dir.is_dir() else {}
        if "maplibre-gl.mjs" not in self.assets:
            raise BadInput(f"MapLibre GL JS is not installed in {maplibre_dir}: run make setup")
        # A built-in schema is drawn by its public style, a schema of one's own by the generic style.
        self.public_style = self.subsets = None
        self.fonts = {}
        name = public_styles.for_schema(schema)
        if name:
            self.public_style = public_styles.make(name)
            absent = public_styles.absent_source_layers(self.public_style, self._source_layers())
            if absent:
                log.warning("the tiles lack layers the style draws: those style layers are left out",
                            style=name, layers=sorted(absent))
            self.subsets = public_styles.unicode_ranges()
            self.fonts = {p.name: p for p in (public_styles.FONT_PACKAGE / "files").glob("*.woff2")}

    def _source_layers(self) -> set[str]:
        return {layer["id"] for layer in self.vector_layers}

    def tilejson(self, base: str) -> dict:
        d = self.description
        return {"tilejson": "3.0.0", "name": "tilebatch", "description": f"tiles of {self.store.url}",
                "attribution": tileset.ATTRIBUTION, "scheme": "xyz", "tiles": [f"{base}/{{z}}/{{x}}/{{y}}.mvt"],
                "minzoom": d.minzoom, "maxzoom": d.maxzoom, "bounds": list(d.bounds), "center": list(d.center),
                "vector_layers": self.vector_layers, "schema": tileset.schema_metadata(self.schema)}

    def style(self, base: str) -> dict:
        lon, lat, zoom = self.description.center
        drawn = public_styles.point_at(self.public_style, base, self.subsets, self._source_layers()) \
            if self.public_style else style.style(f"{base}/tilejson.json", [lay.name for lay in self.schema.layers])
        return {**drawn, "center": [lon, lat], "zoom": zoom}

    def respond(self, target: str, base: str) -> tuple[int, str | None, bytes]:
        """(status, content type, body) for a request target; HTTPError for what cannot be served."""
        path = clean_path(target)
        if path.endswith(".mvt"):
            data = self.cache.tile(parse_tile_path(path, self.max_zoom))
            return (200, MVT_TYPE, data) if data else (204, None, b"")
        if path in ("/", "/index.html"):
            return 200, "text/html; charset=utf-8", PAGE.read_bytes()
        if path == "/tilejson.json":
            return 200, JSON_TYPE, json.dumps(self.tilejson(base)).encode()
        if path == "/style.json":
            return 200, JSON_TYPE, json.dumps(self.style(base)).encode()
        name = path.removeprefix("/maplibre/")
        if name in self.assets and name != path:
            asset = self.assets[name]
            return 200, ASSET_TYPES[asset.suffix], asset.read_bytes()
        name = path.removeprefix("/fonts/")
        if name in self.fonts and name != path:
            return 200, FONT_TYPE, self.fonts[name].read_bytes()
        raise HTTPError(404, f"nothing at {path[:80]!r}")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a map asks for dozens of tiles at once
    server_version = "tilebatch"
    sys_version = ""
    # Headers and body leave in one write (the buffer is flushed after each
    # response), and nothing waits for Nagle: with headers and body sent apart,
    # Nagle and the client's delayed ACK held every response ~40 ms.
    wbufsize = 1 << 16
    disable_nagle_algorithm = True

    def setup(self):
        self.timeout = self.server.idle_timeout  # an idle kept-alive connection is closed, freeing its thread
        super().setup()

    def do_GET(self):
        try:
            status, content_type, body = self.server.preview.respond(self.path, self._base())
        except HTTPError as e:
            log.warning("request refused", path=self.path[:200], status=e.status, error=str(e))
            status, content_type, body = e.status, JSON_TYPE, json.dumps({"error": str(e)}).encode()
        except (TilebatchError, OSError) as e:
            log.error("cannot serve", path=self.path[:200], error=str(e))
            status, content_type, body = 502, JSON_TYPE, json.dumps({"error": f"cannot read the store: {e}"}).encode()
        except Exception as e:  # a bug must cost one request, not the server, and show no traceback
            log.error("internal error", path=self.path[:200], error=f"{type(e).__name__}: {e}")
            status, content_type, body = 500, JSON_TYPE, json.dumps({"error": "internal error"}).encode()
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        if status != 204:  # a 204 has no body, and may not say it has one
            self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Access-Control-Allow-Origin", "*")
        self.end_headers()
        if self.command != "HEAD" and status != 204:
            self.wfile.write(body)

    do_HEAD = do_GET

    def _base(self) -> str:
        """The URL the client reached us at (so a forwarded port works), else the bound address."""
        host = self.headers.get("Host", "")
        if not _HOST_RE.match(host):
            host = "%s:%d" % self.server.server_address[:2]
        return f"http://{host}"

    def log_request(self, code="-", size="-"):
        """Quiet: a map asks for hundreds of tiles. Refusals are logged where they are made."""

    def log_message(self, format, *args):
        # Only http.server's own refusals (a malformed request line, a path too long) get here,
        # and idle connections timing out, which is routine.
        if not format.startswith("Request timed out"):
            log.warning(format % args)


class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 128  # the listen backlog: a map opens many connections at once (default 5)

    def __init__(self, address, preview: Preview, idle_timeout: float = IDLE_TIMEOUT):
        self.idle_timeout = idle_timeout
        super().__init__(address, Handler)
        self.preview = preview

    def handle_error(self, request, client_address):
        error = sys.exc_info()[1]
        if not isinstance(error, (BrokenPipeError, ConnectionResetError)):  # a closed tab, not news
            log.error("request failed", error=f"{type(error).__name__}: {error}")


def serve(cfg: dict, port: int, maplibre_dir: Path = DEFAULT_MAPLIBRE, idle_timeout: float = IDLE_TIMEOUT) -> int:
    """Serve the preview on 127.0.0.1:`port` (0: any free port) until interrupted."""
    if not 0 <= port <= 65535:
        raise BadInput(f"bad port {port}: expected 0..65535")
    if not idle_timeout > 0:
        raise BadInput(f"bad idle timeout {idle_timeout}: expected seconds above 0")
    store, schema = metatile_store(cfg), load_schema(cfg)
    records.check_store_schema(store, schema, runs.run_ids(store))
    preview = Preview(store, schema, build_max_zoom(cfg, schema), maplibre_dir)
    try:
        server = Server(("127.0.0.1", port), preview, idle_timeout)
    except OSError as e:
        # Under make (make preview) the port is make's variable, not the option.
        other = "another PORT=…, e.g. make preview PORT=9000" if os.environ.get("MAKELEVEL") else "another --port"
        raise BadInput(f"cannot listen on 127.0.0.1:{port}: {e.strerror}; give {other}") from None
    url = "http://%s:%d/" % server.server_address[:2]
    log.info("serving the preview", url=url, store=preview.store.url)
    try:
        # Inside the try: whoever reads this line may press Ctrl-C before print returns.
        print(f"preview: {url}  (Ctrl-C stops it)", flush=True)
        server.serve_forever()
    except Terminated:
        raise  # SIGTERM: exit 143 as any command, not Ctrl-C's quiet end
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def _serve(args, cfg) -> int:
    return serve(cfg, args.port, Path(args.maplibre), args.idle_timeout)


def add_commands(sub, common) -> None:
    p = sub.add_parser("serve", parents=[common],
                       help="preview the built tiles in the browser (a map on http://127.0.0.1:PORT/)",
                       description="Serve the metatile store on 127.0.0.1 as a map: the page, its style, "
                                   "TileJSON and the tiles, MapLibre GL JS included. Ctrl-C stops it.")
    p.add_argument("--port", type=int, default=8080, help="port on 127.0.0.1 (default 8080; 0: any free port)")
    p.add_argument("--maplibre", default=str(DEFAULT_MAPLIBRE),
                   help="folder of MapLibre GL JS's built files (default: web/node_modules/maplibre-gl/dist)")
    p.add_argument("--idle-timeout", dest="idle_timeout", type=float, default=IDLE_TIMEOUT,
                   help=f"seconds a kept-alive connection may sit idle before it is closed (default {IDLE_TIMEOUT})")
    p.set_defaults(func=_serve)
