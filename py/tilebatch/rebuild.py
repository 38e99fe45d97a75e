"""`tilebatch rebuild`: rebuild every RAWR tile and metatile touching a box, until none is missing.

rawr and meta-high for the queue-zoom tiles touching the box (meta-high after
its rawr), meta-low for the pyramid tiles touching it; or the same for the
tiles of a list, such as the expire list of an OSM update. Then it looks for
missing work and re-runs it, a bounded number of times, and succeeds only when
nothing is missing. The same rebuild runs here (local runner) or on Batch.
Its output is plain lines meant for a log file (bin/bbox_rebuild.sh).
"""

import os
import time

from . import batch, batch_runs, local, log
from .enqueue import build_jobs, read_tile_file
from .errors import BadInput, JobFailed
from .jobs import add_run_id_option, check_run_id
from .store import metatile_store
from .tiles import parse_bbox


def default_run_id(what: str = "rebuild") -> str:
    """The run id of work started without one: the UTC time and what it is, e.g. 20261124-153000-rebuild.

    The one home of that form; bin/update and bin/bbox_rebuild.sh ask for it here.
    """
    return time.strftime("%Y%m%d-%H%M%S-", time.gmtime()) + what


def say(line: str) -> None:
    print(line, flush=True)


def rebuild_jobs(args, cfg) -> tuple[str, dict]:
    """What to rebuild, and how to say it: a box's jobs, or those of a tile list (an expire list)."""
    queue_zoom = cfg["batch"]["queue-zoom"]
    if args.bbox is not None:
        return f"bbox {args.bbox}", build_jobs(queue_zoom, bbox=parse_bbox(args.bbox))
    listed = read_tile_file(args.file)
    return f"file {args.file}{'' if listed else ' (empty)'}", build_jobs(queue_zoom, listed=listed)


def rebuild(args, cfg) -> int:
    what, jobs = rebuild_jobs(args, cfg)
    run_id = check_run_id(args.run_id if args.run_id is not None else default_run_id())
    log.bind(run_id=run_id, job="rebuild")
    executor = args.executor or ("batch" if cfg["batch"]["job-queue"] else "local")
    if executor == "batch" and not cfg["batch"]["job-queue"]:
        raise BadInput("EXECUTOR=batch needs a job queue: set batch.job-queue")
    store = metatile_store(cfg)
    if executor == "batch":  # said by the dry run bbox_rebuild.sh starts with, before any log
        batch.check_batch_store(store)
    if args.attempts < 1:
        raise BadInput(f"bad attempts {args.attempts}: need at least 1")
    counts = ", ".join(f"{len(tiles)} {kind}" for kind, tiles in jobs.items())
    say(f"rebuild {run_id}: {what}: {counts} jobs, on {executor}, up to {args.attempts} attempts")
    if args.dry_run:
        return 0
    started = time.monotonic()
    if executor == "local":
        local.warn_missing_tables(cfg)
        runner = local.Runner(cfg, getattr(args, "config", None), run_id, os.cpu_count() or 1,
                              quiet=True, progress_seconds=args.progress_seconds,
                              report=lambda line: say(f"progress: {line}"))
        missing = local.run_build(runner, jobs, args.attempts)
    else:
        missing = batch_runs.rebuild(cfg, store, run_id, jobs, args.attempts, args.progress_seconds, say)
    seconds = round(time.monotonic() - started)
    if missing:
        for kind, tile in missing:
            say(f"missing: {kind} {tile.z}/{tile.x}/{tile.y}")
        raise JobFailed(f"rebuild {run_id}: {len(missing)} jobs still missing after {args.attempts} attempts; "
                        f"see `tilebatch missing --run-id {run_id}`")
    say(f"rebuild {run_id}: done in {seconds} s, nothing missing")
    return 0


def add_commands(sub, common) -> None:
    p = sub.add_parser("rebuild", parents=[common],
                       help="rebuild every RAWR tile and metatile touching a box, re-running what is missing",
                       description="Rebuild every RAWR tile and metatile touching a box (or the tiles of a list, "
                                   "such as an osm2pgsql expire list), here or on Batch, then re-run what is "
                                   "missing until nothing is or the attempts run out. Plain lines for a log file.")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--bbox", help="west,south,east,north")
    which.add_argument("--file", help="tiles, one z/x/y a line, any zoom (an osm2pgsql expire list as it is)")
    add_run_id_option(p, "the run (default: a datestamp plus 'rebuild')")
    p.add_argument("--executor", choices=("local", "batch"),
                   help="where jobs run (default: batch when batch.job-queue is set, else local)")
    p.add_argument("--attempts", type=int, default=3, help="rounds of re-running missing jobs (default 3)")
    p.add_argument("--progress-seconds", dest="progress_seconds", type=float, default=60,
                   help="seconds between progress lines (default 60)")
    p.add_argument("--dry-run", dest="dry_run", action="store_true", help="check the box, print the plan, run nothing")
    p.set_defaults(func=rebuild)
