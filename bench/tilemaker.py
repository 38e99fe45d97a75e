"""tilemaker on a benchmark dataset: a profile over a zoom range, with N threads.

Two profiles, each with the tilemaker it is written for:

- OpenMapTiles, the example Debian's tilemaker 2.2 ships
  (/usr/share/doc/tilemaker/examples), with the layers that read shapefiles
  (ocean, urban areas, ice) left out, since there are none here. Layers that
  stop at z14 in the example go on to the range's top zoom, so that it draws
  z15 and z16 when tilebatch's schema does.
- Shortbread, the reference's own config.json and process.lua
  (shortbread-tiles/shortbread-tilemaker, written for tilemaker 3), run by the
  tilemaker binary given as TILEMAKER (config.mk). Its ocean and boundary-label
  layers read shapefiles that are not available here: their `source` points
  at a file that does not exist, which tilemaker skips, so those layers stay
  empty, as the reference build of the same extract left them.

The range's zooms are set in the config's settings; a range above the
profile's own top zoom stops at that zoom.
"""

import copy
import json
import os
import subprocess
from typing import NamedTuple

from . import counts, measure
from .data import WORK, Dataset

EXAMPLES = "/usr/share/doc/tilemaker/examples"
EXAMPLE_TOP_ZOOM = 14


class Profile(NamedTuple):
    key: str            # names its figures in the results
    binary: str
    config: dict        # config.json as the profile has it
    process: str        # path of its process.lua
    stretch: bool       # layers ending at the profile's top zoom go on to the range's top

    def settings(self, minzoom: int, maxzoom: int) -> dict:
        """The config, limited to zooms minzoom..maxzoom (no deeper than the profile goes, unless it stretches)."""
        cfg = copy.deepcopy(self.config)
        top = cfg["settings"]["maxzoom"]
        if self.stretch:
            for layer in cfg["layers"].values():
                if layer["maxzoom"] == top:
                    layer["maxzoom"] = max(maxzoom, top)
            top = max(maxzoom, top)
        cfg["settings"].update(minzoom=minzoom, maxzoom=min(maxzoom, top), basezoom=max(min(maxzoom, top), 14))
        return cfg


def openmaptiles() -> Profile:
    """Debian's tilemaker and its OpenMapTiles example, less the layers that read shapefiles."""
    with open(os.path.join(EXAMPLES, "config-openmaptiles.json")) as f:
        cfg = json.load(f)
    cfg["layers"] = {name: layer for name, layer in cfg["layers"].items() if "source" not in layer}
    return Profile("tilemaker", "tilemaker", cfg, os.path.join(EXAMPLES, "process-openmaptiles.lua"), True)


def shortbread(binary: str, profile_dir: str) -> Profile:
    """The given tilemaker and the Shortbread reference profile, its shapefiles pointed at nothing."""
    for name in ("config.json", "process.lua"):
        if not os.path.exists(os.path.join(profile_dir, name)):
            raise SystemExit(f"bench: {profile_dir} has no {name} (TILEMAKER_PROFILE: the Shortbread reference profile)")
    with open(os.path.join(profile_dir, "config.json")) as f:
        cfg = json.load(f)
    for layer in cfg["layers"].values():
        if "source" in layer:
            layer["source"] = os.path.join(WORK, "no-shapefiles", os.path.basename(layer["source"]))
    return Profile("tilemaker3", binary, cfg, os.path.join(profile_dir, "process.lua"), False)


def version(binary: str) -> str:
    """What the binary says it is: the first line of its --help, which names the version."""
    try:
        out = subprocess.run([binary, "--help"], capture_output=True, text=True)
    except OSError as e:
        raise SystemExit(f"bench: cannot run tilemaker {binary}: {e.strerror}")
    lines = (out.stdout + out.stderr).splitlines()
    return lines[0].strip() if lines else binary


def run(profile: Profile, ds: Dataset, minzoom: int, maxzoom: int, threads: int) -> dict:
    """Wall and CPU seconds, peak memory, tiles, features and MVT bytes of one tilemaker run."""
    stem = os.path.join(WORK, f"{profile.key}-x{ds.size}-z{minzoom}-{maxzoom}")
    with open(stem + ".json", "w") as f:
        json.dump(profile.settings(minzoom, maxzoom), f, indent=1)
    out = f"{stem}-t{threads}.mbtiles"
    if os.path.exists(out):
        os.remove(out)
    use = measure.run([profile.binary, "--input", ds.clean_pbf, "--output", out, "--config", stem + ".json",
                       "--process", profile.process, "--threads", str(threads)], cwd=WORK)
    if use.returncode != 0:
        raise SystemExit(f"bench: {profile.binary} failed on x{ds.size}:\n{use.stderr[-2000:]}")
    return {"threads": threads, "seconds": use.seconds, "cpu_seconds": use.cpu_seconds,
            "peak_memory_mb": use.peak_memory_mb, **counts.summarize(counts.mbtiles_tiles(out)).total()}
