"""The preview page in headless Chromium over a real build: the map draws, the console stays clean."""

import pytest
from conftest import TOP

from chromium import Chromium
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


@pytest.fixture
def browser(tmp_path):
    with Chromium(str(tmp_path / "profile"), str(tmp_path / "chromium.log")) as b:
        for domain in ("Runtime", "Log", "Page"):
            b.call(f"{domain}.enable")
        yield b


def test_central_helsinki_at_z15_draws_at_least_five_layers(built_store, browser):
    _, env = built_store
    with serving(env) as server:
        browser.call("Page.navigate", {"url": f"{server.url}/#15/60.170/24.945"})
        try:
            browser.evaluate(WAIT_FOR_IDLE, timeout=90)
        except Exception as e:
            raise AssertionError(f"the map did not finish drawing: {e}; page errors: {browser.errors()}") from None
        ARTIFACTS.mkdir(exist_ok=True)
        browser.screenshot(str(ARTIFACTS / "preview-helsinki-z15.png"))
        view = browser.evaluate("[map.getZoom(), map.getCenter().lng, map.getCenter().lat]")
        layers = browser.evaluate(RENDERED_LAYERS)
    assert view == pytest.approx([15, 24.945, 60.170], abs=1e-3)
    assert len(layers) >= 5, layers
    assert browser.errors() == []
    assert "Traceback" not in server.stderr
