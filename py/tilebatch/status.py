"""`tilebatch status` and `tilebatch missing`: where a run stands, and what it still lacks.

Both read the run's tile lists and completion records (runs.py); for a run
on Batch, status adds what Batch says of its jobs, one call for up to a
hundred array jobs rather than one a tile.
"""

from tqdm import tqdm

from . import batch_runs, log, runs
from .errors import BadInput
from .jobs import add_run_id_option, check_run_id
from .store import metatile_store
from .tiles import format_tile


def _bar(done: int, total: int) -> str:
    return tqdm.format_meter(done, max(total, 1), 0, ncols=40, bar_format="|{bar}| {percentage:3.0f}%")


def _run(args, cfg, command: str):
    """The run's id (default: the latest), store and job states; BadInput for a run the store knows nothing of."""
    store = metatile_store(cfg)
    run_id = check_run_id(args.run_id) if args.run_id else runs.latest_run(store)
    log.bind(run_id=run_id, job=command)
    states = runs.run_states(store, run_id, cfg["rawr"]["group-zoom"])
    if not any(s.expected for s in states):
        known = runs.run_ids(store)
        raise BadInput(f"run {run_id!r} has no jobs in {store.url}; "
                       + (f"its runs, oldest first: {', '.join(known)}" if known else "it holds no runs"))
    return run_id, store, states


def status(args, cfg) -> int:
    run_id, store, states = _run(args, cfg, "status")
    on_batch = batch_runs.job_counts(cfg, store, run_id)
    print(f"run {run_id} in {store.url}")
    print(f"  {'job':<10} {'expected':>8} {'done':>8} {'running':>8} {'failed':>8} {'missing':>8}")
    for s in states:
        batch = on_batch.get(s.job)
        running = str(batch["running"]) if batch else "-"
        failed = batch["failed"] if batch else len(s.failed)
        print(f"  {s.job:<10} {len(s.expected):>8} {len(s.expected) - len(s.missing):>8} {running:>8} "
              f"{failed:>8} {len(s.missing):>8}  {_bar(len(s.expected) - len(s.missing), len(s.expected))}")
    return 0


def missing(args, cfg) -> int:
    run_id, store, states = _run(args, cfg, "missing")
    for s in states:
        for tile in s.missing:
            failure = s.failed.get(tile)
            note = "" if failure is None else f"  # failed, exit {failure.exit_code}" + (
                ", out of memory" if failure.out_of_memory else "")
            print(f"{s.job} {format_tile(tile)}{note}")
    total = sum(len(s.missing) for s in states)
    log.info("missing jobs", missing=total, **{s.job: len(s.missing) for s in states})
    if args.enqueue and total:
        batch_runs.resubmit(cfg, store, run_id, states)
    return 0


def add_commands(sub, common) -> None:
    p = sub.add_parser("status", parents=[common], help="where a run stands: jobs expected, done, running, failed",
                       description="Where a run stands: per job kind, the jobs it expects, done, running and "
                                   "failed (running and failed from Batch for a run there).")
    add_run_id_option(p, "the run (default: the latest in the store)")
    p.set_defaults(func=status)
    p = sub.add_parser("missing", parents=[common], help="a run's jobs without a completion record",
                       description="A run's jobs without a completion record, one 'job z/x/y' a line.")
    add_run_id_option(p, "the run (default: the latest in the store)")
    p.add_argument("--enqueue", action="store_true",
                   help="re-submit them to Batch (more memory for jobs that ran out of it)")
    p.set_defaults(func=missing)
