"""The local runner: a whole build on this machine, job by job, as Batch would run it.

`tilebatch build` runs every rawr job, then every meta-high job, then every
meta-low job covering a box, each as the very command line a Batch job runs, in
a pool of processes. Jobs with a completion record in this run are skipped, so
running the same run again picks up where it stopped.
"""

import json
import os
import subprocess
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import NamedTuple

from tqdm import tqdm

from . import log, records, source
from .errors import BadInput, JobFailed
from .jobs import check_run_id
from .store import metatile_store
from .tiles import Bbox, Tile, bbox_tiles, format_tile, make_bbox, parse_bbox, tile_at

COMMANDS = {"rawr": "rawr-tile", "meta-high": "meta-tile", "meta-low": "meta-tile-low-zoom"}


class Job(NamedTuple):
    kind: str
    tile: Tile


def plan(bbox: Bbox, queue_zoom: int) -> list[Job]:
    """Every job of a build over `bbox`, in the order they must run."""
    queue_tiles = bbox_tiles(bbox, queue_zoom)
    pyramid = [t for z in range(queue_zoom + 1) for t in bbox_tiles(bbox, z)]
    return ([Job("rawr", t) for t in queue_tiles] + [Job("meta-high", t) for t in queue_tiles]
            + [Job("meta-low", t) for t in pyramid])


def data_extent(cfg: dict) -> Bbox:
    """The box around every row of the source tables, in WGS84."""
    conn = source.connect(cfg)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM ("
                        " SELECT ST_Transform(ST_SetSRID(ST_Extent(way), 3857), 4326) AS e FROM ("
                        "  SELECT way FROM planet_osm_point UNION ALL SELECT way FROM planet_osm_line"
                        "  UNION ALL SELECT way FROM planet_osm_polygon) rows) extent")
            box = cur.fetchone()
    except Exception as e:  # psycopg2 errors: a missing table or a broken connection
        raise BadInput(f"cannot find the data's extent: {str(e).strip().splitlines()[0]}") from None
    finally:
        conn.close()
    if box[0] is None:
        raise BadInput("the database has no rows: load an extract first (make demo-data)")
    return make_bbox(*box)


def job_command(job: Job, config_path: str | None, run_id: str) -> list[str]:
    """The command line of one job, the same one a Batch job definition runs."""
    cmd = [sys.executable, "-m", "tilebatch.cli", COMMANDS[job.kind]]
    if config_path:
        cmd += ["--config", config_path]
    return cmd + ["--tile", format_tile(job.tile), "--run_id", run_id]


def _run(job: Job, config_path: str | None, run_id: str) -> tuple[Job, int, str]:
    proc = subprocess.run(job_command(job, config_path, run_id), stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    return job, proc.returncode, proc.stderr


class Runner:
    """Runs jobs in a pool, stage by stage, keeping count and showing progress."""

    def __init__(self, cfg: dict, config_path: str | None, run_id: str, workers: int, force: bool):
        self.cfg, self.config_path, self.run_id = cfg, config_path, run_id
        self.workers, self.force = workers, force
        self.store = metatile_store(cfg)
        self.on_terminal = sys.stderr.isatty()
        self.ran, self.skipped, self.failed = [], 0, []

    def stage(self, kind: str, jobs: list[Job]) -> None:
        done = set() if self.force else records.done_tiles(self.store, self.run_id, kind)
        todo = [j for j in jobs if j.tile not in done]
        self.skipped += len(jobs) - len(todo)
        log.info("stage started", stage=kind, jobs=len(todo), skipped=len(jobs) - len(todo))
        bar = tqdm(total=len(todo), desc=kind, unit="job", disable=not self.on_terminal, file=sys.stderr)
        pool = ThreadPoolExecutor(max_workers=self.workers)
        pending = {pool.submit(_run, j, self.config_path, self.run_id) for j in todo}
        try:
            while pending:
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for f in finished:
                    self._finished(*f.result())
                    bar.update(1)
        except KeyboardInterrupt:
            # The children got the same SIGINT from the terminal; wait for them to go.
            for f in pending:
                f.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        finally:
            bar.close()
            pool.shutdown(wait=True)

    def _finished(self, job: Job, code: int, stderr: str) -> None:
        if code == 0:
            self.ran.append(job)
            if not self.on_terminal:
                sys.stderr.write(stderr)
            return
        self.failed.append((job, code))
        last = stderr.strip().splitlines()[-1:] or [""]
        try:
            message = json.loads(last[0])["msg"]
        except (ValueError, KeyError):
            message = last[0]
        log.error("job failed", failed_job=job.kind, failed_tile=format_tile(job.tile), exit_code=code,
                  reason=message)

    def totals(self, jobs: list[Job]) -> dict:
        """What the run's jobs wrote, from their completion records."""
        totals = {"metatiles": 0, "tiles": 0, "rawr_tiles": 0, "features": 0}
        for job in jobs:
            record = records.read_record(self.store, self.run_id, job.kind, job.tile) or {}
            for k, v in record.get("counts", {}).items():
                if k in totals:
                    totals[k] += v
        return totals


def build(args, cfg) -> int:
    run_id = check_run_id(args.run_id or cfg["batch"]["run_id"] or "local")
    log.bind(run_id=run_id, job="build")
    bbox = parse_bbox(args.bbox) if args.bbox else data_extent(cfg)
    workers = args.jobs or os.cpu_count() or 1
    if workers < 1:
        raise BadInput(f"bad --jobs {workers}: need at least 1")
    jobs = plan(bbox, cfg["batch"]["queue-zoom"])
    runner = Runner(cfg, getattr(args, "config", None), run_id, workers, args.force)
    started = time.monotonic()
    for kind in COMMANDS:
        runner.stage(kind, [j for j in jobs if j.kind == kind])
        if runner.failed:
            break
    seconds = round(time.monotonic() - started, 1)
    totals = runner.totals(jobs)
    summary = {"run_id": run_id, "bbox": ",".join(f"{v:.6f}" for v in bbox), "jobs_run": len(runner.ran),
               "jobs_skipped": runner.skipped, "jobs_failed": len(runner.failed), "seconds": seconds, **totals,
               "store": runner.store.url}
    log.info("build done" if not runner.failed else "build failed", **summary)
    print(f"built run {run_id}: {len(runner.ran)} jobs run, {runner.skipped} already done, "
          f"{len(runner.failed)} failed, in {seconds} s")
    print(f"  {totals['rawr_tiles']} RAWR tiles, {totals['metatiles']} metatiles holding {totals['tiles']} tiles "
          f"({totals['features']} features), in {runner.store.url}")
    center = tile_at((bbox.west + bbox.east) / 2, (bbox.south + bbox.north) / 2, 15)
    print(f"  look at one: {os.path.relpath(sys.argv[0])} tile {format_tile(center)}{' --config ' + args.config if getattr(args, 'config', None) else ''}")
    if runner.failed:
        kinds = sorted({j.kind for j, _ in runner.failed})
        code = 2 if all(c == 2 for _, c in runner.failed) else 1
        if code == 2:
            raise BadInput(f"{len(runner.failed)} {'/'.join(kinds)} jobs stopped on bad input (see the log above)")
        raise JobFailed(f"{len(runner.failed)} {'/'.join(kinds)} jobs failed; run the same command again to retry them")
    return 0


def add_commands(sub, common) -> None:
    p = sub.add_parser("build", parents=[common], help="build every tile of a box on this machine")
    p.add_argument("--bbox", help="west,south,east,north (default: the data's extent)")
    p.add_argument("--run_id", "--run-id", dest="run_id", help="the run (default: batch.run_id, else 'local')")
    p.add_argument("--jobs", type=int, default=None, help="jobs at once (default: all cores)")
    p.add_argument("--force", action="store_true", help="redo jobs that already have a completion record")
    p.set_defaults(func=build)
