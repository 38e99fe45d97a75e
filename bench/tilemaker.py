"""tilemaker on a benchmark dataset: its OpenMapTiles example, over a zoom range, with N threads.

The config is the example Debian ships (/usr/share/doc/tilemaker/examples),
with the layers that read shapefiles (ocean, urban areas, ice) left out, since
there are none here and tilebatch draws no such layers either, and its zoom
range set to the range compared. Layers that stop at z14 in the example go on
to the range's top zoom, so tilemaker draws z15 and z16 as tilebatch does
rather than leaving them empty.
"""

import gzip
import json
import os
import sqlite3

import mapbox_vector_tile

from . import measure
from .data import WORK, Dataset

EXAMPLES = "/usr/share/doc/tilemaker/examples"
EXAMPLE_TOP_ZOOM = 14


def config(minzoom: int, maxzoom: int) -> dict:
    """The OpenMapTiles example config, limited to zooms minzoom..maxzoom."""
    with open(os.path.join(EXAMPLES, "config-openmaptiles.json")) as f:
        cfg = json.load(f)
    layers = {}
    for name, layer in cfg["layers"].items():
        if "source" in layer:
            continue
        if layer["maxzoom"] == EXAMPLE_TOP_ZOOM:
            layer["maxzoom"] = max(maxzoom, EXAMPLE_TOP_ZOOM)
        layers[name] = layer
    cfg["layers"] = layers
    cfg["settings"].update(minzoom=minzoom, maxzoom=maxzoom, basezoom=max(maxzoom, EXAMPLE_TOP_ZOOM))
    return cfg


def counts(mbtiles: str) -> tuple[int, int]:
    """(tiles, features) in an .mbtiles file tilemaker wrote (gzip-compressed tiles)."""
    conn = sqlite3.connect(mbtiles)
    try:
        tiles = features = 0
        for (data,) in conn.execute("SELECT tile_data FROM tiles"):
            tiles += 1
            raw = gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
            features += sum(len(layer["features"]) for layer in mapbox_vector_tile.decode(raw).values())
        return tiles, features
    finally:
        conn.close()


def run(ds: Dataset, minzoom: int, maxzoom: int, threads: int) -> dict:
    """Wall and CPU seconds, peak memory, tiles and features of one tilemaker run."""
    stem = os.path.join(WORK, f"tilemaker-x{ds.size}-z{minzoom}-{maxzoom}")
    with open(stem + ".json", "w") as f:
        json.dump(config(minzoom, maxzoom), f, indent=1)
    out = f"{stem}-t{threads}.mbtiles"
    if os.path.exists(out):
        os.remove(out)
    use = measure.run(["tilemaker", "--input", ds.clean_pbf, "--output", out, "--config", stem + ".json",
                       "--process", os.path.join(EXAMPLES, "process-openmaptiles.lua"),
                       "--threads", str(threads)], cwd=WORK)
    if use.returncode != 0:
        raise SystemExit(f"bench: tilemaker failed on x{ds.size}:\n{use.stderr[-2000:]}")
    tiles, features = counts(out)
    return {"threads": threads, "seconds": use.seconds, "cpu_seconds": use.cpu_seconds,
            "peak_memory_mb": use.peak_memory_mb, "tiles": tiles, "features": features}
