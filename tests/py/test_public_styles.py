"""public_styles: the styles as their packages make them, pointed at our server with nothing from outside."""

import pytest

from tilebatch import public_styles
from tilebatch.errors import BadInput

BASE = "http://127.0.0.1:8080"


@pytest.fixture(scope="module")
def made():
    return {name: public_styles.make(name) for name in public_styles.BY_SCHEMA.values()}


def test_each_style_is_made_by_its_package(made):
    colorful, light = made["versatiles-colorful"], made["protomaps-light"]
    assert colorful["name"] == "versatiles-colorful" and list(colorful["sources"]) == ["versatiles-shortbread"]
    assert sum("source" in layer for layer in colorful["layers"]) == 275
    assert list(light["sources"]) == ["protomaps"] and sum("source" in layer for layer in light["layers"]) == 70


@pytest.mark.parametrize("name", public_styles.BY_SCHEMA.values())
def test_pointed_at_our_server_it_reaches_nothing_outside(made, name):
    subsets = public_styles.unicode_ranges()
    source_layers = {layer["source-layer"] for layer in made[name]["layers"] if "source-layer" in layer}
    style = public_styles.point_at(made[name], BASE, subsets, source_layers)
    assert "glyphs" not in style and "sprite" not in style
    (source,) = style["sources"].values()
    assert source["url"] == f"{BASE}/tilejson.json" and "tiles" not in source
    # Every font the layers name has a file for every subset, all of them on our server.
    fonts = public_styles.text_fonts(style["layers"]) & public_styles.FONTS.keys()
    assert fonts and set(style["font-faces"]) == fonts
    for faces in style["font-faces"].values():
        assert [face["unicode-range"] for face in faces] == list(subsets.values())
        for face in faces:
            file = face["url"].removeprefix(f"{BASE}/fonts/")
            assert (public_styles.FONT_PACKAGE / "files" / file).is_file()
    # Nothing else names an address (attribution links are text for people).
    urls = [v for k, v in walk(style) if k == "url"]
    assert urls and all(u.startswith(BASE) for u in urls)
    assert style["layers"] == made[name]["layers"]


def walk(value, key=None):
    """(key, value) of every leaf of a JSON document."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from walk(v, k)
    elif isinstance(value, list):
        for v in value:
            yield from walk(v, key)
    else:
        yield key, value


def test_layers_of_source_layers_the_tiles_lack_are_left_out(made):
    light = made["protomaps-light"]
    have = {"roads", "water"}
    style = public_styles.point_at(light, BASE, {}, have)
    kept = {layer.get("source-layer") for layer in style["layers"]}
    assert kept == have | {None}  # the background reads no source
    assert public_styles.absent_source_layers(light, have) == {
        layer["source-layer"] for layer in light["layers"] if "source-layer" in layer} - have


def test_fonts_inside_expressions_are_found():
    layers = [{"layout": {"text-font": ["case", ["<=", ["get", "min_zoom"], 5],
                                        ["literal", ["Noto Sans Medium"]], ["literal", ["Noto Sans Regular"]]]}},
              {"layout": {"text-font": ["noto_sans_bold"]}}, {"paint": {}}]
    assert public_styles.text_fonts(layers) & public_styles.FONTS.keys() == {
        "Noto Sans Medium", "Noto Sans Regular", "noto_sans_bold"}


def test_without_the_packages_it_says_to_run_setup(tmp_path):
    with pytest.raises(BadInput, match="cannot make the protomaps-light style .*: run make setup"):
        public_styles.make("protomaps-light", web=tmp_path)
    with pytest.raises(BadInput, match="Noto Sans font files are not installed .*: run make setup"):
        public_styles.unicode_ranges(tmp_path)
    (tmp_path / "unicode.json").write_text("not json")
    with pytest.raises(BadInput, match="run make setup"):
        public_styles.unicode_ranges(tmp_path)


def test_the_styles_script_refuses_an_unknown_name():
    with pytest.raises(BadInput, match="usage: node web/styles.mjs NAME"):
        public_styles.make("no-such-style")
