"""What every job shares: its arguments, its tile, its run id, and its completion record.

A job is one command line (`tilebatch rawr-tile --tile 7/73/37 --run-id R`),
the same on this machine and on Batch. `--tile @KEY` names a tile list in the
store (enqueue.list_text): a Batch array child takes the line at
AWS_BATCH_JOB_ARRAY_INDEX, so one submission covers thousands of tiles.

One process may do several jobs of a kind (`--tile 0/0/0,1/1/0`, or such a
line in a list), one after another, each recorded as if it ran alone: a box's
low-zoom meta-low jobs are a fraction of a second's work each, less than a
process costs to start, load the schema and connect (split.cut; on Batch
enqueue.job_units puts them in a few array children, a line of several tiles each).
"""

import gc
import os
import re
import resource
import time

from . import __version__, log, records, split
from .enqueue import parse_unit
from .errors import BadInput
from .kinds import KINDS, JobKind
from .schema import load_schema
from .store import metatile_store
from .tiles import Tile, ancestor, format_tile, parse_tile

# Batch job names allow 128 letters, digits, '-' and '_'; the run id goes into
# them beside a prefix and a tile, so it keeps to 64.
RUN_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z")


def add_commands(sub, common) -> None:
    """A subcommand for each job kind (kinds.py): `--tile`, `--run-id`, its work run by run_job."""
    for kind in KINDS:
        parser = sub.add_parser(kind.command, parents=[common], help=kind.help,
                                description=kind.help[0].upper() + kind.help[1:] + ".")
        parser.add_argument("--tile", required=True,
                            help="z/x/y (several, comma-separated: done in turn, each recorded as its own job), "
                                 "or @KEY: a tile list in the store (array jobs)")
        add_run_id_option(parser, "the run this job belongs to (default: batch.run_id)")
        parser.add_argument("--after-parts", default="", metavar="Z/X/Y,...",
                            help="tiles below this one whose part jobs of this run are done (split.py): "
                                 "their work is skipped and their counts added to this job's record")
        parser.set_defaults(func=lambda args, cfg, kind=kind: run_job(kind, args, cfg))


def add_run_id_option(parser, help: str) -> None:
    """`--run-id`, also spelt `--run_id` (as tilequeue and the runbook spell it)."""
    parser.add_argument("--run-id", "--run_id", dest="run_id", default=None, help=help)


def check_run_id(run_id: str | None) -> str:
    """The run id, if it can name Batch jobs; BadInput otherwise."""
    if run_id is None:
        raise BadInput("no run id: give --run-id or set batch.run_id")
    if not RUN_ID_RE.match(run_id):
        raise BadInput(f"bad run id {run_id!r}: use 1-64 letters, digits, '-' or '_', starting with a letter or digit")
    return run_id


def job_run_id(args, cfg) -> str:
    return check_run_id(args.run_id if args.run_id is not None else cfg["batch"]["run_id"])


def resolve_tiles(text: str, cfg: dict, environ=os.environ) -> list[Tile]:
    """The job's tiles: `z/x/y[,z/x/y...]` itself, or line AWS_BATCH_JOB_ARRAY_INDEX of the list at `@KEY`."""
    if text.startswith("@"):
        index_text = environ.get("AWS_BATCH_JOB_ARRAY_INDEX")
        if index_text is None or not index_text.isdigit():
            raise BadInput(f"tile list {text!r} needs AWS_BATCH_JOB_ARRAY_INDEX set to a number")
        data = metatile_store(cfg).read(text[1:])
        if data is None:
            raise BadInput(f"tile list {text[1:]!r} is not in the store")
        lines = data.decode(errors="replace").split()  # a damaged list fails on its bad line, by name
        index = int(index_text)
        if index >= len(lines):
            raise BadInput(f"tile list {text[1:]!r} has {len(lines)} lines, no index {index}")
        text = lines[index]
    return list(parse_unit(text))


def peak_memory_mb() -> float:
    """This process's peak resident memory so far, in MiB.

    On Linux from VmHWM: getrusage's maxrss survives exec, so a job started
    by a large process (the local runner) would report its parent's peak.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def done_parts(kind: str, tile: Tile, text: str, run_id: str, cfg: dict) -> dict[Tile, dict]:
    """The counts of each part named in `--after-parts`, from its completion record; BadInput when one
    is not a part of this job or has no record."""
    out, store = {}, metatile_store(cfg)
    zooms = split.part_zooms(kind, cfg["batch"]["queue-zoom"], cfg["rawr"]["group-zoom"])
    for part in (parse_tile(t) for t in text.split(",") if t.strip()):
        if part.z not in zooms or ancestor(part, tile.z) != tile:
            raise BadInput(f"--after-parts: {format_tile(part)} is not a part of {kind} job {format_tile(tile)}")
        record = records.read_record(store, run_id, kind, part)
        if record is None:
            raise BadInput(f"--after-parts: part {format_tile(part)} has no completion record in run {run_id}")
        out[part] = record["counts"]
    return out


def add_counts(total: dict, more: dict) -> dict:
    """`total` with `more` added in: numbers summed, mappings (RAWR tile sizes) merged."""
    for k, v in more.items():
        total[k] = {**total.get(k, {}), **v} if isinstance(v, dict) else total.get(k, 0) + v
    return total


def run_job(kind: JobKind, args, cfg) -> int:
    """Run the job of `kind` at each of its tiles in turn (its work function), each then writing its
    completion record (its peak memory that of the process so far).

    The record goes last: a job killed half-way leaves none, so it counts as missing.
    A job below its kind's zooms is a part of one (split.py); a job after parts
    of it skips their work, and its record holds their counts too.
    """
    run_id = job_run_id(args, cfg)
    # The tile as given until it is resolved, so that an error about a bad one or its list names it.
    log.bind(run_id=run_id, job=kind.name, tile=args.tile)
    tiles = resolve_tiles(args.tile, cfg)
    zooms = kind.zoom_range(cfg)
    part_zooms = split.part_zooms(kind.name, cfg["batch"]["queue-zoom"], cfg["rawr"]["group-zoom"])
    for tile in tiles:  # all checked before any is done: a bad one leaves nothing half-written
        if tile.z not in zooms and tile.z not in part_zooms:
            at = f"zoom {zooms[0]}" if len(zooms) == 1 else f"zooms {zooms[0]}..{zooms[-1]}"
            beyond = [z for z in part_zooms if z not in zooms]
            parts = f" (their parts at {beyond[0]}..{beyond[-1]})" if beyond else ""
            raise BadInput(f"{kind.name} jobs run at {at}{parts}, not z{tile.z}")
    if args.after_parts and len(tiles) > 1:
        raise BadInput(f"--after-parts names the parts of one job, not of {len(tiles)}")
    schema = records.check_run_schema(metatile_store(cfg), run_id, load_schema(cfg))
    parts = done_parts(kind.name, tiles[0], args.after_parts, run_id, cfg) if args.after_parts else {}
    # No cyclic garbage comes of a job's work (measured: a collection after each
    # kind's job at 16x finds none), so the collector would only walk the heap
    # again and again: 8-16% of a job's CPU. Reference counting frees the rest.
    gc.freeze()
    gc.disable()
    for tile in tiles:
        log.bind(tile=format_tile(tile))
        _do_job(kind, tile, cfg, run_id, schema, parts)
    return 0


def _do_job(kind: JobKind, tile: Tile, cfg: dict, run_id: str, schema: dict, parts: dict[Tile, dict]) -> None:
    """One job's work, then its completion record."""
    started = time.monotonic()
    cpu_started = time.process_time()
    log.info("job started", **({"after_parts": len(parts)} if parts else {}))
    counts = kind.work_function()(tile, cfg, frozenset(parts))
    for part_counts in parts.values():
        add_counts(counts, part_counts)
    info = {"job": kind.name, "tile": format_tile(tile), "run_id": run_id, "version": __version__, "counts": counts,
            "seconds": round(time.monotonic() - started, 3),
            "cpu_seconds": round(time.process_time() - cpu_started, 3),
            "peak_memory_mb": peak_memory_mb(), "schema": schema}
    records.keep_run_schema(metatile_store(cfg), run_id, schema)
    records.write_record(metatile_store(cfg), run_id, kind.name, tile, info)
    log.info("job done", **{k: v for k, v in info.items() if k not in ("job", "tile", "run_id", "version")})
