"""MVT encoding: tilebatch's vectorised encoder against mapbox-vector-tile's, on real tiles.

Every z13..z16 tile a meta-high job renders over the data (from RAWR tiles
built straight from the database) is prepared once (`render.tile_layers`),
then encoded by `mapbox_vector_tile.encode` and by `mvt.encode`, in the same
process, each timed in CPU seconds as the best of a few runs. Both must write
the same bytes. It also times `render.render_tile` end to end, so the share of
encoding in a tile shows.

    .venv/bin/python -m bench.encode [--config config.yaml] [--bbox W,S,E,N] [--repeat 5]
"""

import argparse
import time

import mapbox_vector_tile

from tilebatch import config, load, mvt, postgis, rawr, render
from tilebatch.schema import load_schema
from tilebatch.tiles import bbox_tiles, children, format_tile, parse_bbox, tile_at

ZOOMS = range(13, 17)
CENTRAL = (24.945, 60.170)  # central Helsinki: the densest tile of the demo data
REFERENCE_OPTIONS = {"extents": mvt.EXTENT, "y_coord_down": True, "check_winding_order": False}


def cpu_ms(fn, repeat: int) -> float:
    """The best of `repeat` runs of fn(), in CPU milliseconds."""
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        fn()
        best = min(best, time.process_time() - started)
    return best * 1000


def reference_input(tile_layers: list[mvt.TileLayer]) -> list[dict]:
    """The same layers as mapbox_vector_tile.encode takes them."""
    return [{"name": layer.name, "features": [{"geometry": g, "properties": p, "id": i}
                                              for g, p, i in zip(layer.geoms, layer.props.dicts(),
                                                                 layer.ids.tolist())]}
            for layer in tile_layers]


def measure(schema, features, tile, repeat: int) -> dict:
    tile_layers = render.tile_layers(schema, features, tile)
    if not tile_layers:
        return {}
    reference = reference_input(tile_layers)
    ours = mvt.encode(tile_layers)
    return {
        "tile": tile,
        "features": sum(len(layer.geoms) for layer in tile_layers),
        "same": ours == mapbox_vector_tile.encode(reference, default_options=REFERENCE_OPTIONS),
        "mapbox": cpu_ms(lambda: mapbox_vector_tile.encode(reference, default_options=REFERENCE_OPTIONS), repeat),
        "mvt": cpu_ms(lambda: mvt.encode(tile_layers), repeat),
        "render": cpu_ms(lambda: render.render_tile(schema, features, tile), repeat),
    }


def line(label: str, rows: list[dict]) -> str:
    n, feats = len(rows), sum(r["features"] for r in rows)
    mapbox, ours, whole = (sum(r[k] for r in rows) for k in ("mapbox", "mvt", "render"))
    return (f"{label:<18} {n:>5} {feats:>8} {mapbox / n:>9.2f} {ours / n:>9.2f} {mapbox / ours:>6.1f}x"
            f" {feats / mapbox * 1000:>10.0f} {feats / ours * 1000:>10.0f} {whole / n:>10.2f} {ours / whole:>6.0%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="config.yaml")
    parser.add_argument("--bbox", help="west,south,east,north (default: the data's extent)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per tile and encoder; the best counts")
    args = parser.parse_args()
    cfg = config.load(args.config)
    bbox = parse_bbox(args.bbox) if args.bbox else load.data_extent(cfg)
    schema = load_schema(cfg)
    src = postgis.Tables(postgis.connect(cfg), schema)
    group_zoom = cfg["rawr"]["group-zoom"]
    central = [tile_at(*CENTRAL, z) for z in ZOOMS]
    rows = []
    try:
        for group in bbox_tiles(bbox, group_zoom):
            tables = rawr.build_rawr_tile(src, group)
            features = render.collect(schema, ((key, tables[t.name]) for key, t in src.tables.items()))
            for zoom in ZOOMS:
                rows += filter(None, (measure(schema, features, t, args.repeat) for t in children(group, zoom)))
    finally:
        src.conn.close()
    print(f"MVT encoding, CPU ms per tile (best of {args.repeat}), same process, same prepared layers")
    print(f"{'':<18} {'tiles':>5} {'features':>8} {'mapbox':>9} {'mvt':>9} {'ratio':>7}"
          f" {'mapbox f/s':>10} {'mvt f/s':>10} {'render':>10} {'mvt %':>6}")
    for zoom in ZOOMS:
        at_zoom = [r for r in rows if r["tile"].z == zoom]
        if at_zoom:
            print(line(f"z{zoom}", at_zoom))
    print(line("all", rows))
    for r in rows:
        if r["tile"] in central:
            print(line(format_tile(r["tile"]), [r]))
    differ = [format_tile(r["tile"]) for r in rows if not r["same"]]
    print("bytes identical to mapbox-vector-tile: " + ("all tiles" if not differ else f"NOT for {differ}"))


if __name__ == "__main__":
    main()
