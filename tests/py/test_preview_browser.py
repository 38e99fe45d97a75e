"""The preview page in headless Chromium over a real build: the map draws, the console stays clean."""

import pytest

from chromium import Chromium
from conftest import SHORTBREAD, TOP, build_env
from previewserver import serving

ARTIFACTS = TOP / "tests" / "artifacts"

# Resolves once the map has drawn everything it asked for; rejects on the first map error.
WAIT_FOR_IDLE = """new Promise((resolve, reject) => {
  const started = Date.now();
  const check = () => {
    if (!window.map || !window.map.once) {
      if (Date.now() - started > 30000) reject(new Error("the page made no map"));
      else setTimeout(check, 100);
      return;
    }
    map.on("error", (e) => reject(e.error || e));
    if (map.loaded()) resolve(true); else map.once("idle", () => resolve(true));
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
        browser.evaluate(WAIT_FOR_IDLE, timeout=90)
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
