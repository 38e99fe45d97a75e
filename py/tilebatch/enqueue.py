"""What a run enqueues: its tiles at the queue zoom, cut into Batch submissions.

Pure planning, no AWS (batch.py sends the plan). Tiles come out sorted by
(z, x, y), so the same selection always gives the same tile lists in the same
order: that is what lets meta-high wait for rawr child by child (N_TO_N).

A Batch job (an array child, or a plain job) does one unit: one tile, or
some of a box's few low-zoom meta-low tiles one after another in one process
(`job_units`, split.groups_of), each recorded as its own job. A tile list
holds a unit a line, its tiles comma-separated (`parse_unit`).
"""

import re
import sys
from typing import Iterable, NamedTuple

from .errors import BadInput
from .kinds import KINDS
from .runkeys import list_key
from .split import few_low_jobs, groups_of
from .tiles import METATILE_ZOOMS, Bbox, Tile, ancestor, bbox_tiles, children, format_tile, parse_tile, pyramid

# An array job has 2..10,000 children; a single tile goes as a plain job.
MAX_ARRAY_SIZE = 10_000
# Batch allows 20 jobs in one dependsOn.
MAX_DEPENDENCIES = 20
JOB_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")


Unit = tuple[Tile, ...]  # what one Batch job does: its tiles, in turn


class Submission(NamedTuple):
    """One job to submit: a plain job for one unit, or an array job over a tile list, a child a unit."""

    name: str
    units: list[Unit]
    list_key: str | None  # where the array job's tile list goes in the store; None for a plain job

    @property
    def tiles(self) -> list[Tile]:
        """Every tile its jobs do, in order."""
        return [t for unit in self.units for t in unit]

    @property
    def tile_parameter(self) -> str:
        """The job's `tile` parameter: `z/x/y[,z/x/y...]`, or `@KEY` naming its tile list (jobs.resolve_tiles)."""
        return f"@{self.list_key}" if self.list_key else unit_text(self.units[0])


def tile_order(t: Tile) -> tuple[int, int, int]:
    return t.z, t.x, t.y


def sort_tiles(tiles: Iterable[Tile]) -> list[Tile]:
    """Each tile once, in (z, x, y) order."""
    return sorted(set(tiles), key=tile_order)


def parse_unit(text: str) -> Unit:
    """The tiles of a unit: `z/x/y`, or several comma-separated (a line of a tile list, a job's --tile)."""
    return tuple(parse_tile(t.strip()) for t in text.split(","))


def parse_units(text: str, where: str) -> list[Unit]:
    """The units of a list, one a line (an osm2pgsql expire list as it is, a tile list as `list_text`
    writes it).

    Blank lines and `#` comments are skipped; a bad line is an error naming it.
    """
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if line:
            try:
                out.append(parse_unit(line))
            except BadInput as e:
                raise BadInput(f"{where} line {number}: {e}") from None
    return out


def parse_tile_lines(text: str, where: str) -> list[Tile]:
    """Every tile of a list (`parse_units`), in order."""
    return [t for unit in parse_units(text, where) for t in unit]


def read_tile_file(path: str) -> list[Tile]:
    """The tiles of a file (`-`: standard input), one `z/x/y` a line or several comma-separated (see
    parse_units)."""
    try:
        if path == "-":
            return parse_tile_lines(sys.stdin.buffer.read().decode("utf-8"), "stdin")
        with open(path, encoding="utf-8") as f:
            return parse_tile_lines(f.read(), path)
    except OSError as e:
        raise BadInput(f"tile file {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise BadInput(f"tile file {path}: not UTF-8 text (a z/x/y a line)") from None


def select_tiles(queue_zoom: int, tile: Tile | None = None, bbox: Bbox | None = None,
                 listed: list[Tile] | None = None, with_pyramid: bool = False) -> list[Tile]:
    """The job tiles of an enqueue, sorted: one tile, a list, a box's, or all of the queue zoom.

    A tile deeper than the queue zoom stands for its ancestor there; a listed
    tile above it, for its descendants there: an expire list made at a zoom
    above the queue zoom (EXPIRE_ZOOM < 7) says something changed somewhere in
    each tile, so every rawr and meta-high job beneath it, which run at the
    queue zoom only. With `with_pyramid`, every ancestor of those tiles above
    the queue zoom is added (the whole pyramid of zooms 0..queue_zoom-1 for
    the planet).
    """
    if tile is not None:
        chosen = [tile]
    elif listed is not None:
        chosen = [c for t in listed for c in (children(t, queue_zoom) if t.z < queue_zoom else [t])]
    elif bbox is not None:
        chosen = bbox_tiles(bbox, queue_zoom)
    else:
        chosen = pyramid(queue_zoom, queue_zoom)
    chosen = {ancestor(t, queue_zoom) for t in chosen}
    if with_pyramid:
        level = chosen
        while level:
            level = {ancestor(t, t.z - 1) for t in level if t.z > 0}
            chosen |= level
    if not chosen:
        raise BadInput("no tiles to enqueue")
    return sort_tiles(chosen)


def build_jobs(queue_zoom: int, bbox: Bbox | None = None, listed: list[Tile] | None = None,
               world_zoom: int | None = None) -> dict[str, list[Tile]]:
    """The jobs of a build or rebuild, by kind: over a box, the tiles of a list (any zoom; an empty
    list has no jobs), or the planet. Each kind at the queue-zoom tiles; a pyramid kind
    (meta-low) at their ancestors too.

    With `world_zoom`, a pyramid kind also covers the whole world down to that
    tile zoom (a job at z renders the tiles of z+3): the sea and land the low
    zooms show everywhere, a handful of jobs.
    """
    if listed is not None and not listed:
        return {k.name: [] for k in KINDS}
    world = pyramid(0, world_zoom - METATILE_ZOOMS) if world_zoom is not None else []
    return {k.name: sort_tiles(select_tiles(queue_zoom, bbox=bbox, listed=listed, with_pyramid=k.pyramid)
                               + (world if k.pyramid else []))
            for k in KINDS}


def job_units(kind: str, tiles: list[Tile], queue_zoom: int, run_tiles: list[Tile] | None = None) -> list[Unit]:
    """The units the Batch jobs of `kind` over `tiles` (sorted) do, in the order of their first tiles: a
    tile each, but a box's few low-zoom meta-low tiles in as many units as it has tiles at the zoom
    above the queue zoom (split.groups_of deals the finest first: each unit one of those and a share
    of the coarser ones).

    Over a city those are a fraction of a second's work each, less than a job
    costs to start (a container, the interpreter, numpy and shapely, the
    schema, a connection). Over a country they are work, and Batch runs
    units side by side: with one z6 tile a unit, none does much more than a
    z6 job. A box within one queue-zoom tile (a city's) is one unit, its
    low-zoom tiles and then that tile: one job instead of two, the big one
    longer by what the small ones do. A planet's 5,461 stay one a unit, and
    so do the few of them a planet run sends again: `run_tiles`, all the
    run's tiles of the kind when `tiles` are some of them, tells a box's run
    from a planet's.
    """
    if run_tiles is not None and not few_low_jobs(kind, run_tiles, queue_zoom):
        return [(t,) for t in tiles]
    finest = sum(1 for t in tiles if t.z == queue_zoom - 1)
    grouped = [tuple(g) for g in groups_of(kind, tiles, queue_zoom, max(finest, 1))]
    whole = [t for t in tiles if t.z == queue_zoom]
    if len(grouped) == 1 and len(whole) == 1:
        grouped = [grouped[0] + (whole[0],)]
    in_group = {t for group in grouped for t in group}
    return sorted(grouped + [(t,) for t in tiles if t not in in_group], key=lambda unit: tile_order(unit[0]))


def unit_text(unit: Unit) -> str:
    """A unit as a tile list line or a job's --tile: its tiles comma-separated."""
    return ",".join(map(format_tile, unit))


def list_text(units: list[Unit]) -> str:
    """A tile list as stored: a unit a line, in array index order."""
    return "".join(unit_text(unit) + "\n" for unit in units)


def as_submissions(job: str, run_id: str, prefix: str, units: list[Unit], group: str = "") -> list[Submission]:
    """The submissions for `units`: an array job per 10,000 of them, a plain job for a lone unit.

    Names: `{prefix}-{run_id}-{z}-{x}-{y}` for a plain job (its first tile), `{prefix}-{run_id}-{NNNN}`
    for array job NNNN (whose list is runkeys.list_key's); a re-submission's
    `group` goes between run id and tile or number, and into its lists' keys,
    so that no round's job takes another's name (and its submission record).
    """
    subs, named = [], f"{prefix}-{run_id}-{group + '-' if group else ''}"
    for index, start in enumerate(range(0, len(units), MAX_ARRAY_SIZE)):
        chunk = units[start:start + MAX_ARRAY_SIZE]
        if len(chunk) == 1:
            t = chunk[0][0]
            subs.append(Submission(f"{named}{t.z}-{t.x}-{t.y}", chunk, None))
        else:
            subs.append(Submission(f"{named}{index:04d}", chunk, list_key(run_id, job, index, group)))
    for sub in subs:
        if not JOB_NAME_RE.match(sub.name):
            raise BadInput(f"bad job name {sub.name!r}: Batch allows 128 letters, digits, '-' or '_'; "
                           "shorten batch.job-name-prefix or the run id")
    return subs


class Dependency(NamedTuple):
    """A job to wait for; `tile_list` is its tile list when it is an array job over one."""

    job_id: str
    tile_list: str | None


def depends_on(subs: list[Submission], deps: list[Dependency]) -> list[list[dict]]:
    """The dependsOn of each submission.

    An array job over exactly the same tile list as one of ours pairs with it
    child by child (N_TO_N: child i waits only for child i); any other job is
    waited for as a whole by every submission.
    """
    texts = [list_text(s.units) if s.list_key else None for s in subs]
    paired = {d.job_id: texts.index(d.tile_list) for d in deps if d.tile_list and d.tile_list in texts}
    out = []
    for i, _ in enumerate(subs):
        mine = [{"jobId": d.job_id, "type": "N_TO_N"} for d in deps if paired.get(d.job_id) == i]
        mine += [{"jobId": d.job_id} for d in deps if d.job_id not in paired]
        if len(mine) > MAX_DEPENDENCIES:
            raise BadInput(f"{len(mine)} dependencies for one job: Batch allows {MAX_DEPENDENCIES}")
        out.append(mine)
    return out
