"""The three kinds of jobs, once: name, command, work function, zooms and inputs, in the order a build favours them.

Everything that names the job kinds reads them here: the subcommands, the local
runner, the run records, batch-enqueue. The job definitions (jobdefs/*.json)
and images (docker/*/) are files, one per kind; a test holds them to this.
The work function is named, not imported, so that reading the registry does not
load the rendering code.
"""

import importlib
from typing import NamedTuple


class JobKind(NamedTuple):
    name: str          # as in records, job names and job definitions: rawr, meta-high, meta-low
    command: str       # the tilebatch subcommand that runs one job
    work: str          # "module:function", function(tile, cfg, parts) -> counts (parts: split.py)
    help: str          # one line: what one job does
    zooms: tuple       # (first, last) zoom of a job's tile: a number, "queue" (batch.queue-zoom)
                       # or "group" (rawr.group-zoom: a meta-high job cut into parts)
    after: str | None = None  # the kind whose output its jobs read: a local build runs them once that is done

    @property
    def pyramid(self) -> bool:
        """Whether a build has jobs of this kind at every zoom down to the queue zoom, not only at it."""
        return self.zooms[0] != "queue"

    def zoom_range(self, cfg: dict) -> range:
        named = {"queue": cfg["batch"]["queue-zoom"], "group": cfg["rawr"]["group-zoom"]}
        first, last = (named.get(z, z) for z in self.zooms)
        return range(first, last + 1)

    def work_function(self):
        module, function = self.work.split(":")
        return getattr(importlib.import_module(module), function)


KINDS = (
    JobKind("rawr", "rawr-tile", "tilebatch.rawr:rawr_job",
            "rawr job: the z10 RAWR tiles under one z7 tile", ("queue", "queue")),
    JobKind("meta-high", "meta-tile", "tilebatch.meta_high:meta_high_job",
            "meta-high job: metatiles z10..z13 from the RAWR tiles under one z7..z10 tile", ("queue", "group"),
            after="rawr"),
    JobKind("meta-low", "meta-tile-low-zoom", "tilebatch.meta_low:meta_low_job",
            "meta-low job: the metatile of one z0..z7 tile (and its z8, z9 children at z7)", (0, "queue")),
)
NAMES = tuple(k.name for k in KINDS)
BY_NAME = {k.name: k for k in KINDS}
