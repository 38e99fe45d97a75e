"""The preview page in headless Chromium over a real build: the map draws, the console stays clean."""

import json
import re

import psycopg2
import pytest

from chromium import Chromium
from conftest import SHORTBREAD, TOP, build_env
from previewserver import serving

ARTIFACTS = TOP / "tests" / "artifacts"

# Resolves once the page's map is at ZOOM and has drawn it; rejects on the first map
# error. A navigation to another #zoom/lat/lng of the same page moves the map a moment
# later (on hashchange): until then it is still idle at the view before, which a
# screenshot would show.
WAIT_FOR_IDLE = """new Promise((resolve, reject) => {
  const started = Date.now();
  const check = () => {
    if (!window.map || !window.map.once || Math.abs(map.getZoom() - ZOOM) > 0.01) {
      if (Date.now() - started > 30000) reject(new Error("the page made no map at zoom ZOOM"));
      else setTimeout(check, 100);
      return;
    }
    map.on("error", (e) => reject(e.error || e));
    map.once("idle", () => resolve(true));
    map.triggerRepaint();
  };
  check();
})"""

RENDERED_LAYERS = "[...new Set(map.queryRenderedFeatures().map((f) => f.sourceLayer))].sort()"
# Road tunnels drawn by a style's tunnel layers, and whether those come before (under) its first building layer.
TUNNELS = """(() => {
  const ids = map.getStyle().layers.map((l) => l.id);
  const tunnel = ids.findIndex((id) => /tunnel/.test(id)), building = ids.findIndex((id) => /building/.test(id));
  return {drawn: map.queryRenderedFeatures().filter((f) => /tunnel/.test(f.layer.id)).length,
          under_buildings: tunnel >= 0 && tunnel < building};
})()"""

# Clicks the first point of a grid over the view that has features under it; the popup's text box.
POPUP_AFTER_A_CLICK = """(() => {
  const canvas = map.getCanvas();
  for (let y = 20; y < canvas.clientHeight; y += 20) {
    for (let x = 20; x < canvas.clientWidth; x += 20) {
      if (map.queryRenderedFeatures([x, y]).length) {
        map.fire("click", {point: {x, y}, lngLat: map.unproject([x, y])});
        const pre = document.querySelector(".maplibregl-popup-content pre");
        return {whiteSpace: getComputedStyle(pre).whiteSpace, scrollWidth: pre.scrollWidth,
                clientWidth: pre.clientWidth, text: pre.textContent.slice(0, 200)};
      }
    }
  }
  return null;
})()"""


@pytest.fixture
def browser(tmp_path):
    with Chromium(str(tmp_path / "profile"), str(tmp_path / "chromium.log")) as b:
        for domain in ("Runtime", "Log", "Page"):
            b.call(f"{domain}.enable")
        yield b


RENDERED_SYMBOLS = "map.queryRenderedFeatures().filter((f) => f.layer.type === 'symbol').length"


def draw(server, browser, name: str) -> dict:
    """Open central Helsinki at z15 and wait until the map has drawn it: what it shows."""
    browser.call("Page.navigate", {"url": f"{server.url}/#15/60.170/24.945"})
    try:
        browser.evaluate(WAIT_FOR_IDLE.replace("ZOOM", "15"), timeout=90)
    except Exception as e:
        raise AssertionError(f"the map did not finish drawing: {e}; page errors: {browser.errors()}") from None
    ARTIFACTS.mkdir(exist_ok=True)
    browser.screenshot(str(ARTIFACTS / f"preview-helsinki-z15-{name}.png"))
    return {"view": browser.evaluate("[map.getZoom(), map.getCenter().lng, map.getCenter().lat]"),
            "sources": browser.evaluate("Object.keys(map.getStyle().sources)"),
            "layers": browser.evaluate(RENDERED_LAYERS),
            "labels": browser.evaluate(RENDERED_SYMBOLS),
            "tunnels": browser.evaluate(TUNNELS),
            "popup": browser.evaluate(POPUP_AFTER_A_CLICK, timeout=30)}


# Schema: the source its public style reads.
PUBLIC = {"tilezen": "protomaps", "shortbread": "versatiles-shortbread"}


@pytest.fixture(params=PUBLIC)
def build(request):
    """(schema, env serving a build of the demo data with it)."""
    if request.param == "shortbread":
        return "shortbread", {**build_env(request.getfixturevalue("shortbread_build")), **SHORTBREAD}
    return "tilezen", request.getfixturevalue("built_store")[1]


def test_central_helsinki_at_z15_in_the_schemas_public_style(build, browser):
    schema, env = build
    with serving(env) as server:
        shown = draw(server, browser, schema)
    assert shown["view"] == pytest.approx([15, 24.945, 60.170], abs=1e-3)
    assert shown["sources"] == [PUBLIC[schema]]
    assert len(shown["layers"]) >= 5, shown["layers"]
    assert shown["labels"] > 0  # names: the letters came from the font files served with the map
    # Central Helsinki's road tunnels are drawn by the style's tunnel layers: under the buildings in
    # Protomaps light; VersaTiles colorful draws them over, in pale colours of their own.
    assert shown["tunnels"] == {"drawn": shown["tunnels"]["drawn"], "under_buildings": schema == "tilezen"}
    assert shown["tunnels"]["drawn"] > 0
    # Long property values wrap inside the popup instead of running off it.
    popup = shown["popup"]
    assert popup["whiteSpace"] == "pre-wrap" and popup["scrollWidth"] <= popup["clientWidth"], popup
    assert browser.errors() == []
    assert "Traceback" not in server.stderr


def test_a_schema_of_ones_own_is_drawn_with_the_generic_style(built_store, browser, tmp_path):
    _, env = built_store
    own = tmp_path / "my-schema.yaml"
    own.write_bytes((TOP / "py" / "tilebatch" / "schemas" / "tilezen.yaml").read_bytes())
    with serving({**env, "TILEQUEUE__schema__name": str(own)}) as server:
        shown = draw(server, browser, "generic")
    assert shown["sources"] == ["tilebatch"]
    assert len(shown["layers"]) >= 5, shown["layers"]
    assert shown["tunnels"]["drawn"] > 0 and shown["tunnels"]["under_buildings"], shown["tunnels"]
    assert browser.errors() == []


# The colour of each pixel under the given [lng, lat] points, read from a PNG screenshot of the page.
PIXELS = """(async ([png, points]) => {
  const img = new Image();
  img.src = "data:image/png;base64," + png;
  await img.decode();
  const canvas = document.createElement("canvas");
  canvas.width = img.width;
  canvas.height = img.height;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(img, 0, 0);
  return points.map(([lng, lat]) => {
    const p = map.project([lng, lat]);
    return Array.from(ctx.getImageData(Math.round(p.x), Math.round(p.y), 1, 1).data.slice(0, 3));
  });
})(%s)"""


def rgb(colour: str) -> list[int]:
    """[r, g, b] of a style's colour, written #rrggbb or rgb(r, g, b)."""
    if re.fullmatch(r"#[0-9a-fA-F]{6}", colour):
        return [int(colour[i:i + 2], 16) for i in (1, 3, 5)]
    m = re.fullmatch(r"rgb\((\d+),\s*(\d+),\s*(\d+)\)", colour)
    assert m, f"a colour this test cannot read: {colour}"
    return [int(v) for v in m.groups()]


# Schema: the tile layer its public style draws the sea from, and the land's (None: the style's background).
SEA_AND_LAND = {"tilezen": ("water", "earth"), "shortbread": ("ocean", None)}


def fill_colour(style: dict, source_layer: str | None) -> list[int]:
    """The colour the style fills `source_layer`'s polygons with; its background's for None."""
    for layer in style["layers"]:
        paint = layer.get("paint", {})
        if source_layer is None and layer["type"] == "background" and "background-color" in paint:
            return rgb(paint["background-color"])
        if source_layer is not None and layer["type"] == "fill" and layer.get("source-layer") == source_layer:
            return rgb(paint["fill-color"])
    raise AssertionError(f"the style fills no {source_layer or 'background'}")


def inside(db_url, table: str, lng: float, lat: float, zoom: int, margin_px: float) -> tuple[float, float]:
    """A point of `table`'s largest polygon within a 1024x768 view at (lng, lat, zoom), margin_px from its edges."""
    px = 40075016.686 / 2 ** zoom / 512  # MapLibre's zoom: the world is 512 pixels wide at zoom 0
    with psycopg2.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_Transform(ST_PointOnSurface(ST_Buffer(ST_Intersection("
                    f"geom, view), -%(margin)s)), 4326) AS p FROM {table}, (SELECT ST_Expand(ST_Transform("
                    f"ST_SetSRID(ST_Point(%(lng)s, %(lat)s), 4326), 3857), 400 * %(px)s, 300 * %(px)s) AS view) v "
                    f"WHERE geom && view ORDER BY ST_Area(ST_Intersection(geom, view)) DESC LIMIT 1) q",
                    {"margin": margin_px * px, "lng": lng, "lat": lat, "px": px})
        point = cur.fetchone()
    conn.close()
    assert point and point[0] is not None, f"no polygon of {table} {margin_px} pixels wide in the view"
    return point


def test_the_sea_is_drawn_where_it_is(build, browser, db_url):
    """At z2 (Natural Earth), z8 and z14 (the detailed sea), the pixels over the sea have the colour the
    schema's public style gives the sea, and those over land do not."""
    schema, env = build
    harbour = (24.9565, 60.1635)
    views = [  # zoom, centre, sea points, land points
        # A build of the extract alone has, at z2, only the tile over Helsinki: 2/2/1 (0..90 E, 0..66.5 N).
        (2, (45, 33), [(18, 35), (62, 15), (3, 56)], [(40, 50), (20, 22)]),
        (8, harbour, [inside(db_url, "water_polygons", *harbour, 8, 2)],
         [inside(db_url, "land_polygons", *harbour, 8, 2)]),
        (14, harbour, [inside(db_url, "water_polygons", *harbour, 14, 8)], []),
    ]
    with serving(env) as server:
        status, _, body = server.get("/style.json")
        assert status == 200
        style = json.loads(body)
        water, land = (fill_colour(style, layer) for layer in SEA_AND_LAND[schema])
        for zoom, (lng, lat), sea, ground in views:
            browser.call("Page.navigate", {"url": f"{server.url}/#{zoom}/{lat}/{lng}"})
            browser.evaluate(WAIT_FOR_IDLE.replace("ZOOM", str(zoom)), timeout=90)
            ARTIFACTS.mkdir(exist_ok=True)
            browser.screenshot(str(ARTIFACTS / f"preview-sea-{schema}-z{zoom}.png"))
            png = browser.call("Page.captureScreenshot", {"format": "png"})["data"]
            colours = browser.evaluate(PIXELS % json.dumps([png, [list(p) for p in sea + ground]]))
            for point, colour in zip(sea, colours):
                assert colour == pytest.approx(water, abs=6), (zoom, point, colour)
            for point, colour in zip(ground, colours[len(sea):]):
                assert colour != pytest.approx(water, abs=30), (zoom, point, colour)
                if zoom < 8:
                    assert colour == pytest.approx(land, abs=6), (zoom, point, colour)
    assert browser.errors() == []
