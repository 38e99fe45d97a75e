"""Parts of a queue-zoom job, so that idle workers on one machine share it.

A city-sized build is one rawr and one meta-high job and a z7 meta-low job
that outweighs the rest, so most of `tilebatch build --jobs N` would run on
one core. When a stage has fewer queue-zoom jobs than workers, each of them is
cut into parts where the data is (the tiles below it that touch the build's
box); each part is a job of the same kind on a tile below the queue zoom:

- rawr and meta-high: a z8..z10 tile, for the RAWR tiles (z10) beneath it,
  at the coarsest zoom that gives every worker a part (or the finest there is);
- meta-low: one z8 or z9 metatile of the z7 job, its rows clipped as the z7
  job clips them, so that its tiles come out the same.

The job itself runs once its parts are done, told which they were
(`--after-parts`): it does only what they left (its own metatile, tiles
outside the box) and writes the completion record of the whole, counts
included, so a split build is recorded as an unsplit one, byte for byte the
same tiles.

The other way round, a box's few meta-low jobs below the queue zoom (a city's:
one a zoom, z0..z6, each a fraction of a second's work) share processes: a
job process, even one forked from the job server (forkserver.py), loads its
schema, connects and plans its queries, more than most of them work. Within
one queue-zoom tile whose meta-low job is not cut, they run in that job's
process, before it, as a Batch job does them (enqueue.job_units): at 16x,
two processes of 0.12 and 0.17 s became 0.22 s more of the z7 job's, and
`--jobs 2` took 1.96 s where it took 2.02 (medians of eight). Otherwise they
run a process a worker (`groups_of`), after meta-low's other jobs, small jobs
last filling the gaps the large ones leave.

`cut` decides both for a build. The kinds that read no other kind's output
(rawr, meta-low) start together, so each is cut only for the workers that
those before it and its own groups leave idle: a part costs its own process
and its own query, which a busy machine pays in time.
"""

from .kinds import BY_NAME, NAMES
from .tiles import METATILE_ZOOMS, Bbox, Tile, ancestor, bbox_tiles

# At most this many low-zoom meta-low jobs go in one process. More come of a
# country-sized box, whose low zooms are work enough to want the workers.
GROUP_AT_MOST = 16


def part_zooms(kind: str, queue_zoom: int, group_zoom: int) -> range:
    """The zooms a part of a `kind` job can be at."""
    if kind == "meta-low":
        return range(queue_zoom + 1, queue_zoom + METATILE_ZOOMS)
    return range(queue_zoom + 1, group_zoom + 1)


def covered(kind: str, tile: Tile, parts: frozenset) -> bool:
    """Whether done parts leave nothing of `tile` (a RAWR group tile, or a metatile) to the job.

    A rawr or meta-high part covers every tile beneath it; a meta-low part only its own metatile.
    """
    if kind == "meta-low":
        return tile in parts
    return any(ancestor(tile, z) in parts for z in {p.z for p in parts} if z <= tile.z)


def _under(bbox: Bbox, job: Tile, zoom: int) -> list[Tile]:
    return [t for t in bbox_tiles(bbox, zoom) if ancestor(t, job.z) == job]


def cut(todo: dict[str, list[Tile]], bbox: Bbox | None, workers: int, queue_zoom: int,
        group_zoom: int) -> tuple[dict, dict]:
    """({job: its parts}, its groups) of each kind, for a build of the jobs `todo` (by kind) on `workers`
    (no parts without a `bbox`, which tells where the data is)."""
    parts, groups, starting = {}, {}, 0  # starting: the processes kinds that start at once take
    for kind in NAMES:
        jobs = todo.get(kind, [])
        groups[kind] = groups_of(kind, jobs, queue_zoom, workers)
        at_once = not BY_NAME[kind].after
        idle = workers - (starting + len(groups[kind]) if at_once else 0)
        parts[kind] = {} if bbox is None else parts_of(kind, jobs, bbox, idle, queue_zoom, group_zoom)
        whole = [t for t in jobs if t.z == queue_zoom]
        if groups[kind] and len(whole) == 1 and not parts[kind]:
            # A box within one queue-zoom tile, its job left whole: its few low-zoom jobs
            # go in that job's process, before it, as on Batch (enqueue.job_units).
            groups[kind] = [few_low_jobs(kind, jobs, queue_zoom) + whole]
        if at_once:  # its parts, and its jobs neither cut (they wait for their parts) nor grouped
            grouped = {t for g in groups[kind] for t in g}
            alone = [t for t in jobs if t not in parts[kind] and t not in grouped]
            starting += len(groups[kind]) + sum(map(len, parts[kind].values())) + len(alone)
    return parts, groups


def parts_of(kind: str, jobs: list[Tile], bbox: Bbox, workers: int, queue_zoom: int, group_zoom: int) -> dict:
    """{job: its parts} for the queue-zoom jobs of a stage, when they are fewer than the `workers` (idle ones).

    A job whose data lies in a single part is left whole: cut, it would run
    one part and then itself, one after the other.
    """
    whole = [t for t in jobs if t.z == queue_zoom]
    if not whole or len(whole) >= workers:
        return {}
    zooms = part_zooms(kind, queue_zoom, group_zoom)
    if not zooms:
        return {}
    if kind == "meta-low":
        cut = {job: [t for z in zooms for t in _under(bbox, job, z)] for job in whole}
    else:
        for zoom in zooms:
            cut = {job: _under(bbox, job, zoom) for job in whole}
            if sum(len(p) for p in cut.values()) >= workers:
                break
    return {job: p for job, p in cut.items() if len(p) > 1}


def few_low_jobs(kind: str, jobs: list[Tile], queue_zoom: int) -> list[Tile]:
    """A kind's low-zoom meta-low jobs, sorted, when they are few enough to share processes (a box's, not
    a planet's: GROUP_AT_MOST); [] when they are not."""
    low = sorted((t for t in jobs if t.z < queue_zoom), key=lambda t: (t.z, t.x, t.y)) if kind == "meta-low" else []
    return low if 1 < len(low) <= GROUP_AT_MOST else []


def groups_of(kind: str, jobs: list[Tile], queue_zoom: int, workers: int = 1) -> list[list[Tile]]:
    """The processes a kind's low-zoom meta-low jobs run in when they are few (GROUP_AT_MOST), one a
    worker (on Batch, one a z6 tile: enqueue.job_units), each its jobs coarsest first; [] when they are
    not.

    The jobs are dealt finest first (the finer, the more work: a city's z6
    job has 15 to 30 times its z2 job's CPU), so that each worker's last gap gets
    a fair share, the schedule running these groups after the kind's other jobs.
    """
    low = few_low_jobs(kind, jobs, queue_zoom)
    if not low:
        return []
    finest_first, n = low[::-1], min(workers, len(low))
    return [finest_first[i::n][::-1] for i in range(n)]
