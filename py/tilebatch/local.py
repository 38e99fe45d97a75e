"""The local runner: a whole build on this machine, job by job, as Batch would run it.

`tilebatch build` runs every rawr, meta-high and meta-low job covering a box,
each as the very command line a Batch job runs, in a pool of processes
forked from one that has imported the job code once (forkserver.py):
meta-high over an area once rawr over it is done, meta-low beside them on
workers they leave idle (schedule.py). It records what the run expects
first (runs.py), so `tilebatch status` and `missing` see local runs as they
see Batch runs. Jobs with a completion record are skipped, so running the
same run again picks up where it stopped; `--attempts N` does that by itself
up to N times.

Jobs never outlive the runner: each runs in its own process group, is ended
(SIGTERM, then SIGKILL) when the runner is interrupted or terminated, and gets
SIGTERM from the kernel when the runner dies, even of SIGKILL (the server that
forks them dies with the runner, and they with it). A job killed
for memory is told from one killed by hand by the kernel's own count.
"""

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

from . import forkserver, load, log, oom, postgis, records, runkeys, runs, schedule, split, tileset
from .enqueue import build_jobs
from .errors import BadInput, JobFailed, TilebatchError
from .jobs import add_run_id_option, check_run_id
from .kinds import BY_NAME, NAMES
from .schema import load_schema
from .store import metatile_store, rawr_sink
from .tiles import METATILE_ZOOMS, Bbox, Tile, format_tile, parse_bbox, tile_at

KILLED_CODES = (-9, 137)  # SIGKILL: the kernel's OOM killer, or someone's kill -9
INTERRUPTED_CODES = (-2, 130, -15, 143)  # Ctrl-C or SIGTERM: stopped, not failed
JOB_GRACE_SECONDS = 10  # a job told to stop gets this long to clean up before SIGKILL
SERVER_STARTS = 3  # job servers a round may start (forkserver.py): one, and two more if one is lost


def warn_missing_tables(cfg: dict) -> None:
    """One warning for the run, not one a job, when optional tables (sea and land, Natural Earth) are missing."""
    conn = postgis.connect(cfg)
    try:
        missing = postgis.missing_optional_tables(conn, load_schema(cfg))
    finally:
        conn.close()
    if missing:
        log.warning("optional tables missing: tiles are built without them; load them with make water and make naturalearth",
                    tables=missing)


def job_command(kind: str, tile: Tile, config_path: str | None, run_id: str, parts: list[Tile] = (),
                more: list[Tile] = ()) -> list[str]:
    """The command line of one job, the same one a Batch job definition runs; after `parts` of it, if any;
    then the jobs at `more` tiles, if any, in the same process."""
    cmd = [os.path.join(os.path.dirname(sys.executable), "tilebatch"), BY_NAME[kind].command]
    if config_path:
        cmd += ["--config", config_path]
    cmd += ["--tile", ",".join(map(format_tile, [tile, *more])), "--run-id", run_id]
    return cmd + (["--after-parts", ",".join(map(format_tile, parts))] if parts else [])


def end_jobs(procs: list, grace: float = JOB_GRACE_SECONDS) -> None:
    """SIGTERM to each job's process group; SIGKILL to what still runs after `grace` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for proc in procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + grace
        for proc in procs:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass


def failure_reason(stderr: str, code: int, out_of_memory: bool) -> str:
    """Why a job failed, in a few words: its last error line, or how it was killed."""
    if code in KILLED_CODES:
        return "out of memory" if out_of_memory else "killed"
    for line in reversed(stderr.strip().splitlines()):
        entry = log.parse(line)
        if entry is None:
            return line.strip()[:300]  # not one of ours: it died before logging could start
        if entry.get("level") == "error":
            return str(entry.get("msg"))
    return f"exit {code} with no error line"


class Runner:
    """Runs a run's jobs in a pool, each once its inputs are done, keeping count and showing progress.

    On a terminal a progress bar; otherwise the jobs' own JSON log lines (or,
    with `quiet`, only those of failed jobs) and a progress line every
    `progress_seconds`, handed to `report`.
    """

    def __init__(self, cfg: dict, config_path: str | None, run_id: str, workers: int,
                 force: bool = False, quiet: bool = False, progress_seconds: float = 60, report=None,
                 split_within: Bbox | None = None):
        self.cfg, self.config_path, self.run_id = cfg, config_path, run_id
        self.workers, self.force, self.quiet = workers, force, quiet
        self.split_within = split_within  # where the data is: z7 jobs are cut into parts there
        self.progress_seconds = progress_seconds
        self.report = report or (lambda line: log.info("progress", progress=line))
        self.store = metatile_store(cfg)
        self.on_terminal = sys.stderr.isatty()
        self.ran, self.failed = [], []
        self.counts = {kind: [0, 0] for kind in NAMES}  # done, expected
        self._lock = threading.Lock()
        self._procs: set = set()  # jobs running now
        self._server: forkserver.Server | None = None  # what forks them (forkserver.py)
        self._servers = 0  # servers started this round
        self._stopping = threading.Event()
        self._failed_before: set = set()  # (kind, tile) with a failure record from an earlier round

    def sweep(self) -> None:
        """Remove what writes killed half-way left in the stores (file stores only hold any)."""
        for store in (self.store, rawr_sink(self.cfg)):
            store.sweep()

    def run(self, jobs: dict[str, list[Tile]]) -> None:
        """Run every job not yet done, each once what it reads is done (schedule.py); none whose inputs failed."""
        todo, done_parts = {}, {}
        self._failed_before = set()
        for kind in NAMES:
            tiles = jobs.get(kind, [])
            done = set() if self.force else records.done_tiles(self.store, self.run_id, kind)
            todo[kind] = [t for t in tiles if t not in done]
            self.counts[kind] = [len(tiles) - len(todo[kind]), len(tiles)]
            self._failed_before |= {(kind, t) for t in runs.failures(self.store, self.run_id, kind)}
            done_parts[kind] = done  # records of parts too
        parts, together = split.cut(todo, self.split_within, self.workers, self.cfg["batch"]["queue-zoom"],
                                    self.cfg["rawr"]["group-zoom"])
        self._run_schedule(schedule.Schedule(todo, parts, done_parts, together))

    def progress_line(self) -> str:
        return ", ".join(f"{kind} {done}/{expected}" for kind, (done, expected) in self.counts.items())

    def _run_schedule(self, sched: schedule.Schedule) -> None:
        """Start what may start on every free worker, in the schedule's order, until nothing is left.

        Each kind's first start and its end are logged (`stage started`, `stage done`), in the order they happen.
        """
        from tqdm import tqdm  # here, not at the top: 20 ms a build's job server would start later

        bar = tqdm(total=len(sched), desc="build", unit="job",
                   disable=not self.on_terminal, file=sys.stderr)
        stop = threading.Event()
        ticker = threading.Thread(target=self._tick, args=(stop,), daemon=True)
        ticker.start()
        pool = ThreadPoolExecutor(max_workers=self.workers)
        running, started = {}, set()
        try:
            while True:
                for task in sched.take(self.workers - len(running)):
                    if task.kind not in started:
                        started.add(task.kind)
                        log.info("stage started", stage=task.kind, **sched.size(task.kind))
                    running[pool.submit(self._run_one, task.kind, task.tile, task.parts, task.part, task.more)] = task
                if not running:
                    break
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for f in finished:
                    task = running.pop(f)
                    dropped = sched.finished(task, f.result())
                    bar.update(1 + len(dropped))
                    if task.kind in started and sched.kind_done(task.kind):
                        log.info("stage done", stage=task.kind, failed=task.kind in sched.failed_kinds)
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: start no more jobs, end the running ones
            self._stopping.set()
            pool.shutdown(wait=False, cancel_futures=True)
            with self._lock:
                procs = list(self._procs)
            log.warning("stopping: ending the running jobs", jobs=len(procs))
            end_jobs(procs)
            raise
        finally:
            stop.set()
            bar.close()
            pool.shutdown(wait=True)
            self.close_server()

    def _tick(self, stop: threading.Event) -> None:
        while not stop.wait(self.progress_seconds):
            if not self.on_terminal:
                self.report(self.progress_line())

    def _run_one(self, kind: str, tile: Tile, parts: list[Tile] = (), part: bool = False,
                 more: list[Tile] = ()) -> bool:
        """Run one job (after `parts` of it), or a part of one (`part`: not counted as a job), then the jobs
        at `more` tiles in the same process; whether all succeeded.

        A job that wrote its completion record is done, whatever ended the
        process after it; the first that did not failed, and those after it
        are left missing for the next round.
        """
        if self._stopping.is_set():
            return False
        tiles = [tile, *more]
        keys = [runkeys.record_key(self.run_id, kind, t) for t in tiles]
        before = [self.store.read(key) if self.force else None for key in keys]
        kills, not_started = oom.oom_kills(), None
        try:
            proc = self._start(job_command(kind, tile, self.config_path, self.run_id, parts, more))
        except ChildProcessError as e:  # it failed, and a retry may help
            proc, code, stderr, not_started = None, 1, "", str(e)
        if proc:
            with self._lock:
                self._procs.add(proc)
            try:
                _, stderr = proc.communicate()
            finally:
                with self._lock:
                    self._procs.discard(proc)
            code = proc.returncode
        done = 0  # the jobs that wrote their records, in the order the process did them
        while done < len(tiles) and (code == 0 or self._recorded_since(keys[done], before[done])):
            done += 1
        for i, t in enumerate(tiles[:done]):
            self._succeeded(kind, t, "" if i else stderr, part)
        if done == len(tiles):
            if code != 0:
                log.warning("job ended badly after writing its completion record: done", failed_job=kind,
                            failed_tile=format_tile(tiles[-1]), exit_code=code)
            return True
        tile = tiles[done]
        if code in INTERRUPTED_CODES and self._stopping.is_set():
            log.warning("job stopped", failed_job=kind, failed_tile=format_tile(tile), exit_code=code)
            with self._lock:
                self.failed.append((kind, tile, code))
            return False
        after = oom.oom_kills()
        out_of_memory = code in KILLED_CODES and kills is not None and after is not None and after > kills
        with self._lock:
            self.failed.append((kind, tile, code))
        if self.quiet:
            sys.stderr.write(stderr)
        reason = not_started or failure_reason(stderr, code, out_of_memory)
        # Said before anything else is tried: recording it may fail too (the store gone), and then
        # this line is all that tells which job failed and why.
        log.error("job failed", failed_job=kind, failed_tile=format_tile(tile), exit_code=code,
                  reason=reason, out_of_memory=out_of_memory)
        try:
            runs.write_failure(self.store, self.run_id, kind, tile, runs.Failure(code, out_of_memory, None))
        except TilebatchError as e:
            log.warning("cannot record the job's failure", failed_job=kind, failed_tile=format_tile(tile),
                        error=str(e))
        return False

    def _start(self, cmd: list[str]) -> forkserver.Job:
        """The job `cmd`, forked by the round's job server. A server gone (the kernel's OOM killer may
        pick it: its jobs were killed) is replaced, up to SERVER_STARTS in a round, for a server that
        cannot start would fail every job: then ServerGone."""
        while True:
            server = self.start_server()
            try:
                return server.start(cmd)
            except forkserver.ServerGone:
                continue

    def start_server(self) -> forkserver.Server:
        """The round's job server, started if there is none (or it is gone; see `_start`). `build` starts
        it first, so that its imports overlap the run's set-up."""
        with self._lock:
            if self._server is None or self._server.gone:
                if self._servers == SERVER_STARTS:
                    raise forkserver.ServerGone(f"the job server is gone ({self._server.why}), "
                                                f"started {SERVER_STARTS} times")
                if self._server is not None:
                    log.warning("the job server is gone: starting another", why=self._server.why)
                    self._server.close()
                self._server, self._servers = forkserver.Server(self.config_path), self._servers + 1
            return self._server

    def close_server(self) -> None:
        """End the round's job server, if any, and reap it (its jobs' CPU then counts as the runner's)."""
        with self._lock:
            if self._server:
                self._server.close()
            self._server, self._servers = None, 0

    def _recorded_since(self, key: str, before: bytes | None) -> bool:
        """Whether the job wrote its completion record (then whatever ended it, its work is done)."""
        try:
            now = self.store.read(key)
        except TilebatchError:
            return False
        return now is not None and now != before

    def _succeeded(self, kind: str, tile: Tile, stderr: str, part: bool = False) -> None:
        with self._lock:
            if not part:
                self.ran.append((kind, tile))
                self.counts[kind][0] += 1
            if not self.on_terminal and not self.quiet:
                sys.stderr.write(stderr)
        if (kind, tile) in self._failed_before:  # an earlier round's failure, no longer true
            try:
                runs.clear_failure(self.store, self.run_id, kind, tile)
            except TilebatchError as e:
                log.warning("cannot clear the job's old failure record", job_done=kind, tile_done=format_tile(tile),
                            error=str(e))

    def totals(self, jobs: dict[str, list[Tile]]) -> dict:
        """What the run's jobs wrote, from their completion records."""
        totals = {"metatiles": 0, "tiles": 0, "rawr_tiles": 0, "features": 0}
        for kind, tiles in jobs.items():
            for tile in tiles:
                record = records.read_record(self.store, self.run_id, kind, tile) or {}
                for k, v in record.get("counts", {}).items():
                    if k in totals:
                        totals[k] += v
        return totals


def run_build(runner: Runner, jobs: dict[str, list[Tile]], attempts: int) -> list:
    """Run the jobs, then whatever is still missing, up to `attempts` rounds; the jobs still missing."""
    runner.sweep()

    def run_round(attempt: int, states) -> None:
        runner.failed = []
        runner.run(jobs)
        runner.force = False  # --force redoes the first round; later rounds run only what is missing

    def after_round(attempt: int, missing: list) -> None:
        log.warning("jobs missing after a round", attempt=attempt, attempts=attempts, missing=len(missing))

    return runs.rounds(runner.store, runner.run_id, runner.cfg["rawr"]["group-zoom"], jobs, attempts,
                       run_round, after_round)


def _store_holds(store) -> str:
    """What a preview or an export of the store will show: its zooms and bounds."""
    metas = tileset.metatiles(store)
    if not metas:
        return "the store holds no tiles: the box has nothing the schema shows"
    d = tileset.describe(store, metas, center=False)
    return (f"the store holds tiles of zooms {d.minzoom}..{d.maxzoom} over "
            f"{','.join(f'{v:.5f}' for v in d.bounds)} (west,south,east,north)")


def build(args, cfg) -> int:
    run_id = check_run_id(args.run_id if args.run_id is not None else cfg["batch"]["run_id"] or "local")
    log.bind(run_id=run_id, job="build")
    bbox = parse_bbox(args.bbox) if args.bbox is not None else load.data_extent(cfg)
    workers = args.jobs or os.cpu_count() or 1
    if workers < 1 or args.attempts < 1:
        raise BadInput("--jobs and --attempts need to be at least 1")
    queue_zoom = cfg["batch"]["queue-zoom"]
    if args.world is not None and not 0 <= args.world <= queue_zoom + METATILE_ZOOMS - 1:
        raise BadInput(f"--world {args.world}: expected a zoom in 0..{queue_zoom + METATILE_ZOOMS - 1}")
    jobs = build_jobs(queue_zoom, bbox=bbox, world_zoom=args.world)
    runner = Runner(cfg, getattr(args, "config", None), run_id, workers, args.force, split_within=bbox)
    started = time.monotonic()
    try:
        runner.start_server()
        warn_missing_tables(cfg)
        missing = run_build(runner, jobs, args.attempts)
    finally:
        runner.close_server()
    seconds = round(time.monotonic() - started, 1)
    totals = runner.totals(jobs)
    expected = sum(len(t) for t in jobs.values())
    log.info("build done" if not missing else "build incomplete", bbox=",".join(f"{v:.6f}" for v in bbox),
             jobs_run=len(runner.ran), jobs_missing=len(missing), seconds=seconds, store=runner.store.url, **totals)
    print(f"built run {run_id}: {len(runner.ran)} jobs run, {expected - len(runner.ran) - len(missing)} "
          f"already done, {len(missing)} missing, in {seconds} s")
    print(f"  {totals['rawr_tiles']} RAWR tiles, {totals['metatiles']} metatiles holding {totals['tiles']} tiles "
          f"({totals['features']} features), in {runner.store.url}")
    print(f"  {_store_holds(runner.store)}")
    center = tile_at((bbox.west + bbox.east) / 2, (bbox.south + bbox.north) / 2, 15)
    config_arg = f" --config {args.config}" if getattr(args, "config", None) else ""
    print(f"  look at one: {os.path.relpath(sys.argv[0])} tile {format_tile(center)}{config_arg}")
    if missing:
        codes = {code for _, _, code in runner.failed}
        kinds = "/".join(sorted({kind for kind, _ in missing}))
        if codes == {2}:
            raise BadInput(f"{len(missing)} {kinds} jobs stopped on bad input (see the log above)")
        raise JobFailed(f"{len(missing)} {kinds} jobs missing; run the same command again to retry them")
    return 0


def add_commands(sub, common) -> None:
    p = sub.add_parser("build", parents=[common], help="build every tile of a box on this machine",
                       description="Build every tile of a box on this machine: every rawr, meta-high and "
                                   "meta-low job, each as the command a Batch job runs, in a pool of processes "
                                   "(meta-high over an area once rawr over it is done, meta-low beside them). Jobs of the run that are "
                                   "done already are skipped.")
    p.add_argument("--bbox", help="west,south,east,north (default: the data's extent)")
    add_run_id_option(p, "the run (default: batch.run_id, else 'local')")
    p.add_argument("--jobs", type=int, default=None, help="jobs at once (default: all cores)")
    p.add_argument("--attempts", type=int, default=1, help="rounds of re-running missing jobs (default 1)")
    p.add_argument("--force", action="store_true", help="redo jobs that already have a completion record")
    p.add_argument("--world", type=int, metavar="ZOOM",
                   help="also build the whole world down to this zoom (meta-low jobs: the low-zoom sea and land)")
    p.set_defaults(func=build)
