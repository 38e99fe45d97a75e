"""`tilebatch tile z/x/y`: one built tile, decoded to GeoJSON, to look at what a build made."""

import json
import sys

import mercantile

from . import metatile
from .errors import BadInput
from .schema import build_max_zoom
from .store import metatile_store
from .tiles import parse_tile


def tile_geojson(data: bytes, tile) -> dict:
    """A FeatureCollection of an MVT tile's features in WGS84, each with its tile layer as a member `layer`.

    The layer goes beside `properties`, not into them: a road has a property
    `layer` of its own (OSM's, -1 for one under the ground).
    """
    # Imported here, not with the module: every command imports it to list its
    # subcommand, and these are most of a command's start (a build's first jobs wait on it).
    import mapbox_vector_tile
    import numpy as np
    import shapely

    from .mvt import EXTENT

    bounds = mercantile.xy_bounds(tile)
    scale = (bounds.right - bounds.left) / EXTENT

    def to_lnglat(coords: np.ndarray) -> np.ndarray:
        x = bounds.left + coords[:, 0] * scale
        y = bounds.top - coords[:, 1] * scale
        # mercantile.lnglat, for whole arrays at once
        lng = np.degrees(x / mercantile.RE)
        lat = np.degrees(np.pi / 2 - 2 * np.arctan(np.exp(-y / mercantile.RE)))
        return np.column_stack((np.round(lng, 7), np.round(lat, 7)))

    features = []
    decoded = mapbox_vector_tile.decode(data, default_options={"y_coord_down": True}) if data else {}
    for layer, content in decoded.items():
        for f in content["features"]:
            geom = shapely.transform(shapely.geometry.shape(f["geometry"]), to_lnglat)
            features.append({"type": "Feature", "id": f.get("id"), "layer": layer,
                             "geometry": shapely.geometry.mapping(geom), "properties": f["properties"]})
    return {"type": "FeatureCollection", "features": features}


def show_tile(args, cfg) -> int:
    tile = parse_tile(args.tile)
    max_zoom = build_max_zoom(cfg)
    if tile.z > max_zoom:
        raise BadInput(f"tile {args.tile}: builds stop at zoom {max_zoom}")
    json.dump(tile_geojson(metatile.read_tile(metatile_store(cfg), tile), tile), sys.stdout)
    sys.stdout.write("\n")
    return 0


def add_commands(sub, common) -> None:
    p = sub.add_parser("tile", parents=[common], help="print one built tile as GeoJSON",
                       description="Print one built tile of the store as a GeoJSON FeatureCollection in WGS84; "
                                   "each feature's tile layer is its member 'layer'.")
    p.add_argument("tile", help="the tile, z/x/y (up to metatile.max-zoom)")
    p.set_defaults(func=show_tile)
