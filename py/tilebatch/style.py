"""The preview map's generic MapLibre style: every layer of any schema drawn, whatever kinds it holds.

The style knows layers and geometry types, not the kinds in them: each layer
has one colour (Tilezen's layers their own, any other layer one of a palette),
polygons are filled, lines stroked, points drawn as dots, and names written
beside points and along lines. A new kind or layer in a schema shows up on
the map without a change here. No `glyphs` URL: MapLibre then draws the
letters with a local font, so the page needs nothing from outside.
"""

SOURCE = "tilebatch"
BACKGROUND = "#f3efe6"
FONT = ["sans-serif"]

# Layer: its colour. Order within a geometry type is drawing order (last on top).
COLOURS = {
    "earth": "#ece6d8",
    "landuse": "#c9dfb4",
    "water": "#9fc6e7",
    "buildings": "#d2c7b8",
    "boundaries": "#9a6bb0",
    "roads": "#ffffff",
    "transit": "#6a6f9a",
    "pois": "#c8553d",
    "places": "#333333",
}
FILL_OPACITY = {"landuse": 0.6, "buildings": 0.9}
# The colours of layers with none of their own, by their place in the schema.
PALETTE = ["#8dd3c7", "#bebada", "#fb8072", "#80b1d3", "#fdb462", "#b3de69", "#fccde5", "#bc80bd", "#ccebc5"]
ROAD_CASING = "#bcb2a3"
# How much wider than a minor road each road kind is drawn; kinds not listed get 1.
ROAD_WIDTH = {"highway": 2.2, "major_road": 1.6, "path": 0.5}
LABELLED_POINTS = ("pois", "places", "transit")  # names in their layer's colour
# A road in a tunnel (is_tunnel true, or OSM's tunnel tag: yes, building_passage, ...) is drawn
# dashed, and under the fills of UNDER_TUNNELS, so that it does not run over the buildings above it.
TUNNEL = ["all", ["has", "is_tunnel"], ["!", ["in", ["to-string", ["get", "is_tunnel"]], ["literal", ["no", "false"]]]]]
UNDER_TUNNELS = "buildings"


def _geometry(kind: str) -> list:
    return ["==", ["geometry-type"], kind]


def _zoom_width(base: float, factor=1, extra: float = 0) -> list:
    """A line width of `base` pixels at zoom 14, thinner out and wider in, times `factor`, plus `extra`.

    MapLibre takes the zoom only as the input of a top-level interpolation,
    so a per-feature factor goes inside each stop.
    """
    def stop(width):
        return ["+", ["*", factor, width], extra] if isinstance(factor, list) else factor * width + extra
    return ["interpolate", ["exponential", 1.6], ["zoom"], 8, stop(base / 6), 14, stop(base), 18, stop(base * 6)]


def _layer(id_: str, type_: str, source_layer: str, geometry: str, paint: dict, **extra) -> dict:
    return {"id": id_, "type": type_, "source": SOURCE, "source-layer": source_layer,
            "filter": _geometry(geometry), "paint": paint, **extra}  # `extra` may bring a narrower filter


def _road_width(extra: float = 0) -> list:
    factor = ["match", ["get", "kind"], *[v for kind, w in ROAD_WIDTH.items() for v in (kind, w)], 1]
    return _zoom_width(2.5, factor, extra)


def colours(layer_names: list[str]) -> dict:
    """Each layer's colour, in schema order."""
    return {name: COLOURS.get(name, PALETTE[i % len(PALETTE)]) for i, name in enumerate(layer_names)}


def layers(layer_names: list[str]) -> list[dict]:
    """Every style layer, bottom to top: fills (road tunnels under the buildings'), lines, dots, then names."""
    out = [{"id": "background", "type": "background", "paint": {"background-color": BACKGROUND}}]
    by_layer = colours(layer_names)
    for name, colour in by_layer.items():
        if name == UNDER_TUNNELS and "roads" in by_layer:
            out.append(_layer("roads-tunnel", "line", "roads", "LineString",
                              {"line-color": ROAD_CASING, "line-width": _road_width(), "line-dasharray": [2, 1]},
                              filter=["all", _geometry("LineString"), TUNNEL]))
        out.append(_layer(f"{name}-fill", "fill", name, "Polygon",
                          {"fill-color": colour, "fill-opacity": FILL_OPACITY.get(name, 1)}))
    for name, colour in by_layer.items():
        if name == "roads":
            out.append(_layer("roads-casing", "line", name, "LineString",
                              {"line-color": ROAD_CASING, "line-width": _road_width(extra=1.5)},
                              layout={"line-cap": "round", "line-join": "round"},
                              filter=["all", _geometry("LineString"), ["!", TUNNEL]]))
            paint = {"line-color": colour, "line-width": _road_width()}
        elif name == "boundaries":
            paint = {"line-color": colour, "line-width": 1.5, "line-dasharray": [3, 2]}
        else:
            paint = {"line-color": colour, "line-width": _zoom_width(1.2)}
        not_tunnel = {"filter": ["all", _geometry("LineString"), ["!", TUNNEL]]} if name == "roads" else {}
        out.append(_layer(f"{name}-line", "line", name, "LineString", paint,
                          layout={"line-cap": "round", "line-join": "round"}, **not_tunnel))
    for name, colour in by_layer.items():
        out.append(_layer(f"{name}-point", "circle", name, "Point",
                          {"circle-color": colour, "circle-radius": 3,
                           "circle-stroke-color": "#ffffff", "circle-stroke-width": 1}))
    for name, colour in by_layer.items():
        out.append(_layer(f"{name}-line-name", "symbol", name, "LineString",
                          {"text-color": "#555555", "text-halo-color": "#ffffff", "text-halo-width": 1.5},
                          layout={"symbol-placement": "line", "text-field": ["get", "name"],
                                  "text-font": FONT, "text-size": 11}, minzoom=14))
        out.append(_layer(f"{name}-name", "symbol", name, "Point",
                          {"text-color": colour if name in LABELLED_POINTS else "#333333",
                           "text-halo-color": "#ffffff", "text-halo-width": 1.5},
                          layout={"text-field": ["get", "name"], "text-font": FONT,
                                  "text-size": 14 if name == "places" else 11,
                                  "text-anchor": "top", "text-offset": [0, 0.6]}))
    return out


def style(tilejson_url: str, layer_names: list[str]) -> dict:
    """The whole MapLibre style (spec version 8) for a schema's layers, its one source read from `tilejson_url`."""
    return {"version": 8, "name": "tilebatch preview",
            "sources": {SOURCE: {"type": "vector", "url": tilejson_url}},
            "layers": layers(layer_names)}
