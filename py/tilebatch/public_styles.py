"""The public MapLibre styles the built-in schemas are drawn with, pointed at our own server.

Each style comes from its npm package as its authors make it (web/styles.mjs;
the packages pinned by web/package-lock.json). To draw our tiles, offline:

- its one vector source reads our TileJSON, and its layers reading a
  source-layer the tiles do not have go (MapLibre would draw nothing there,
  and report each as an error);
- `glyphs` goes, as no package publishes the glyph files the styles name; the
  letters are drawn by MapLibre itself from Noto Sans font files
  (@fontsource/noto-sans), which `font-faces` declares for each font the style
  names, and from the browser's fonts for any other;
- `sprite` goes, as neither style's sprite sheet is published in a package:
  icons and fill patterns are missing (MapLibre warns once per image).
"""

import json
import os
import subprocess
from pathlib import Path

from .errors import BadInput
from .schema import BUILTIN_DIR, Schema

WEB = Path(__file__).resolve().parents[2] / "web"
FONT_PACKAGE = WEB / "node_modules" / "@fontsource" / "noto-sans"
# Schema: the public style that draws it (a name web/styles.mjs knows).
BY_SCHEMA = {"shortbread": "versatiles-colorful", "tilezen": "protomaps-light"}
# The fonts the styles name: weight and style of the Noto Sans that draws each.
FONTS = {
    "Noto Sans Regular": (400, "normal"),
    "Noto Sans Medium": (500, "normal"),
    "Noto Sans Italic": (400, "italic"),
    "noto_sans_regular": (400, "normal"),
    "noto_sans_bold": (700, "normal"),
}
TIMEOUT = 60  # seconds; making a style takes well under one


def for_schema(schema: Schema) -> str | None:
    """The public style that draws a built-in schema; None for a schema file of one's own."""
    builtin = os.path.dirname(os.path.abspath(schema.path)) == os.path.abspath(BUILTIN_DIR)
    return BY_SCHEMA.get(schema.name) if builtin else None


def make(name: str, web: Path = WEB) -> dict:
    """The public style `name` as its package makes it; BadInput if it cannot be made here."""
    try:
        proc = subprocess.run(["node", str(web / "styles.mjs"), name], capture_output=True, text=True,
                              timeout=TIMEOUT, cwd=web)
    except FileNotFoundError:
        raise BadInput("Node.js is not installed: run make setup") from None
    if proc.returncode != 0:
        why = (proc.stderr.strip().splitlines() or ["no message"])[-1][:300]
        raise BadInput(f"cannot make the {name} style ({why}): run make setup")
    return json.loads(proc.stdout)


def font_file(subset: str, weight: int, style: str) -> str:
    return f"noto-sans-{subset}-{weight}-{style}.woff2"


def unicode_ranges(package: Path = FONT_PACKAGE) -> dict[str, list[str]]:
    """Subset of the font files: the characters it covers (CSS unicode-range entries)."""
    try:
        subsets = json.loads((package / "unicode.json").read_text())
    except (OSError, ValueError) as e:
        raise BadInput(f"the Noto Sans font files are not installed in {package}: run make setup ({e})") from None
    return {subset: ranges.split(",") for subset, ranges in subsets.items()}


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def text_fonts(layers: list[dict]) -> set[str]:
    """Every font name the layers' `text-font` may give (expressions included)."""
    return {s for layer in layers for s in _strings(layer.get("layout", {}).get("text-font"))}


def absent_source_layers(style: dict, source_layers: set[str]) -> set[str]:
    """The source-layers the style reads that are not among `source_layers`."""
    return {layer["source-layer"] for layer in style["layers"] if "source-layer" in layer} - source_layers


def point_at(style: dict, base: str, subsets: dict[str, list[str]], source_layers: set[str]) -> dict:
    """The style drawing the tiles of the server at `base`, which hold `source_layers`, with nothing from outside."""
    out = {k: v for k, v in style.items() if k not in ("glyphs", "sprite")}
    out["layers"] = [layer for layer in style["layers"] if layer.get("source-layer", "") in source_layers | {""}]
    out["sources"] = {name: {**{k: v for k, v in source.items() if k != "tiles"}, "url": f"{base}/tilejson.json"}
                      if source.get("type") == "vector" else source
                      for name, source in style["sources"].items()}
    out["font-faces"] = {
        font: [{"url": f"{base}/fonts/{font_file(subset, *FONTS[font])}", "unicode-range": ranges}
               for subset, ranges in subsets.items()]
        for font in sorted(text_fonts(style["layers"]) & FONTS.keys())}
    return out
