"""`tilebatch batch-enqueue`: a run's tiles submitted to AWS Batch in a few calls.

Many tiles go as array jobs: the tile list is written to the metatile store
and each child reads its line (jobs.resolve_tiles), so a planet (16,384 z7
tiles, 21,845 with the pyramid) takes three submissions, not one a tile.
boto3 honours AWS_ENDPOINT_URL, so the same code drives any Batch endpoint.
"""

import json

from . import faults, log, runs
from .enqueue import Dependency, as_submissions, depends_on, job_units, list_text, read_tile_file, select_tiles
from .errors import BadInput
from .jobs import add_run_id_option, check_run_id
from .kinds import NAMES
from .runkeys import submission_key
from .store import FileStore, aws_client, metatile_store
from .tiles import parse_bbox, parse_tile


def batch_client(cfg: dict):
    """A Batch client with adaptive retries: a planet's submissions should not trip throttling."""
    return aws_client("batch", cfg["batch"]["region"], cfg["aws"], "batch.region or AWS_DEFAULT_REGION, AWS_* settings")


def call(what: str, fn, **kwargs):
    """One Batch call; its errors said in one line: throttling, 5xx or an unreachable endpoint
    may pass (exit 1), a refused request will not (exit 2)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return fn(**kwargs)
    except (ClientError, BotoCoreError) as e:
        raise faults.aws_error(what, e) from None


def check_queue(client, queue: str) -> None:
    """BadInput unless the job queue exists and takes jobs."""
    found = call(f"job queue {queue}", client.describe_job_queues, jobQueues=[queue])["jobQueues"]
    if not found:
        raise BadInput(f"job queue {queue!r} does not exist")
    if found[0].get("state") != "ENABLED":
        raise BadInput(f"job queue {queue!r} is {found[0].get('state')}, not ENABLED")


def job_definition(client, definition: str, job: str) -> dict:
    """The newest active revision of a job definition (name, name:revision or ARN) for `job` jobs.

    BadInput when none is registered, or when its `job` tag (jobdefs/*.json)
    names another kind: batch.job-definition set once would otherwise send
    meta-high tiles to the rawr image, whose jobs refuse them every attempt.
    """
    by = {"jobDefinitions": [definition]} if ":" in definition else {"jobDefinitionName": definition}
    found = call(f"job definition {definition}", client.describe_job_definitions, status="ACTIVE", **by)
    if not found["jobDefinitions"]:
        raise BadInput(f"job definition {definition!r} is not registered (make jobdefs)")
    newest = max(found["jobDefinitions"], key=lambda d: d["revision"])
    tagged = (newest.get("tags") or {}).get("job")
    if tagged not in (None, job):
        raise BadInput(f"job definition {definition!r} runs {tagged} jobs, not {job}: batch.job-definition names "
                       "one kind's; leave it unset for {job-name-prefix}-{job}")
    return newest


def dependencies(client, store, job_ids: list[str], sizes: set[int]) -> list[Dependency]:
    """The jobs to wait for, each with its tile list when it may pair with one of ours."""
    if not job_ids:
        return []
    found = {j["jobId"]: j for j in call("depends-on", client.describe_jobs, jobs=job_ids)["jobs"]}
    out = []
    for job_id in job_ids:
        if job_id not in found:
            raise BadInput(f"depends-on: no job {job_id!r}")
        job = found[job_id]
        tile = job.get("parameters", {}).get("tile", "")
        size = job.get("arrayProperties", {}).get("size")
        data = store.read(tile[1:]) if tile.startswith("@") and size in sizes else None
        out.append(Dependency(job_id, data.decode() if data is not None else None))
    return out


def _tiles(args, cfg) -> list:
    queue_zoom = cfg["batch"]["queue-zoom"]
    listed = None
    if args.file is not None:
        listed = read_tile_file(args.file)
    return select_tiles(queue_zoom, tile=parse_tile(args.tile) if args.tile is not None else None,
                        bbox=parse_bbox(args.bbox) if args.bbox is not None else None,
                        listed=listed, with_pyramid=args.pyramid)


def enqueue(args, cfg) -> int:
    """Plan, check everything, then write the tile lists and submit; print one JSON line a job."""
    run_id = check_run_id(args.run_id if args.run_id is not None else cfg["batch"]["run_id"])
    log.bind(run_id=run_id, job=args.job)
    b = cfg["batch"]
    units = job_units(args.job, _tiles(args, cfg), b["queue-zoom"])
    subs = as_submissions(args.job, run_id, b["job-name-prefix"], units)
    if not b["job-queue"]:
        raise BadInput("no job queue: set batch.job-queue")
    definition = definition_name(cfg, args.job)
    store = metatile_store(cfg)
    arrays = [s for s in subs if s.list_key]
    if not args.dry_run:
        check_batch_store(store)

    client = batch_client(cfg)
    check_queue(client, b["job-queue"])
    job_definition(client, definition, args.job)
    deps = dependencies(client, store, args.depends_on, {len(s.units) for s in arrays})
    needs = depends_on(subs, deps)
    # A list already there from an earlier enqueue of this run may feed running
    # children: it is reused when it holds the same tiles and never overwritten.
    reused = set()
    for sub in arrays:
        old = store.read(sub.list_key)
        if old is not None and old.decode() != list_text(sub.units):
            raise BadInput(f"tile list {sub.list_key} already holds other tiles (or the same in other lines): "
                           "use a new run id")
        if old is not None:
            reused.add(sub.list_key)

    log.info("enqueue planned", jobs=len(subs), tiles=sum(len(s.tiles) for s in subs),
             job_definition=definition, job_queue=b["job-queue"], dry_run=args.dry_run)
    if not args.dry_run:
        written = runs.add_expected(store, run_id, args.job, [u for s in subs for u in s.units])
        # Another enqueue of this run at the same moment may have taken these list numbers.
        for sub in arrays:
            if sub.list_key not in reused and written.get(sub.list_key) != sub.units:
                raise BadInput(f"tile list {sub.list_key} was just written with other tiles by another "
                               "enqueue of this run: use a new run id")
    # add_expected wrote the array jobs' lists: the run's expected tiles, chunked as plan chunks them.
    submit_jobs(client, store, cfg, run_id, args.job, subs, needs, definition, write_lists=False,
                dry_run=args.dry_run)
    return 0


def check_batch_store(store) -> None:
    """BadInput when the store is a local folder, where Batch jobs can neither read tile lists nor leave the
    records that say they are done."""
    if isinstance(store, FileStore):
        raise BadInput(f"the run's tile lists and records would go to {store.url}, which Batch jobs cannot "
                       "reach: set the store to S3 (store.name or store.url s3://…), as the job definitions do")


def definition_name(cfg: dict, job: str) -> str:
    """The job definition of a job kind: batch.job-definition, else {job-name-prefix}-{job}."""
    b = cfg["batch"]
    return b["job-definition"] or f"{b['job-name-prefix']}-{job}"


def definition_memory(definition: dict) -> int:
    """The MiB of memory a job definition (job_definition) gives its jobs."""
    props = definition["containerProperties"]
    for r in props.get("resourceRequirements", []):
        if r["type"] == "MEMORY":
            return int(r["value"])
    return int(props["memory"])


def submit_jobs(client, store, cfg: dict, run_id: str, job: str, subs: list, needs: list, definition: str,
                memory: int | None = None, round_no: int = 0, write_lists: bool = True,
                dry_run: bool = False) -> list[str]:
    """Write each array job's tile list, submit, record the submission; print one JSON line a job.

    `memory` (MiB) overrides the job definition's, for jobs that ran out of it.
    """
    ids = []
    for sub, need in zip(subs, needs):
        request = {"jobName": sub.name, "jobQueue": cfg["batch"]["job-queue"], "jobDefinition": definition,
                   "parameters": {"tile": sub.tile_parameter, "run_id": run_id}}
        if sub.list_key:
            request["arrayProperties"] = {"size": len(sub.units)}
        if need:
            request["dependsOn"] = need
        if memory:
            request["containerOverrides"] = {"resourceRequirements": [{"type": "MEMORY", "value": str(memory)}]}
        line = {**request, "tiles": len(sub.tiles)}
        if not dry_run:
            if sub.list_key and write_lists:
                store.write(sub.list_key, list_text(sub.units).encode())
            line["jobId"] = call(f"submit {sub.name}", client.submit_job, **request)["jobId"]
            ids.append(line["jobId"])
            record = {"jobId": line["jobId"], "jobName": sub.name, "list": sub.list_key,
                      "tile": sub.tile_parameter, "tiles": len(sub.tiles), "memory": memory, "round": round_no}
            store.write(submission_key(run_id, job, sub.name), json.dumps(record, sort_keys=True).encode())
        print(json.dumps(line), flush=True)
    return ids


def add_commands(sub, common) -> None:
    p = sub.add_parser("batch-enqueue", parents=[common],
                       help="submit a run's jobs to AWS Batch (array jobs over tile lists)",
                       description="Submit one job kind of a run to AWS Batch: the queue-zoom tiles (with "
                                   "--pyramid, their ancestors too) as array jobs over tile lists in the store, "
                                   "one JSON line printed a submitted job.")
    p.add_argument("--job", choices=NAMES, default="rawr",
                   help="the job kind (default rawr); the job definition is batch.job-definition, "
                        "else {job-name-prefix}-{job}")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--tile", help="one tile z/x/y (default: every tile of the queue zoom, the planet)")
    which.add_argument("--file", help="a file of tiles, one z/x/y a line; - reads stdin. "
                                      "Tiles below the queue zoom stand for their ancestor there, tiles above it "
                                      "for their descendants there")
    which.add_argument("--bbox", help="the queue-zoom tiles touching west,south,east,north")
    p.add_argument("--pyramid", action="store_true",
                   help="also every ancestor above the queue zoom (zooms 0..6; meta-low needs them)")
    p.add_argument("--depends-on", dest="depends_on", action="append", default=[], metavar="JOB_ID",
                   help="wait for this job; an array job over the same tiles pairs child by child "
                        "(N_TO_N). Repeat for several")
    p.add_argument("--dry-run", dest="dry_run", action="store_true",
                   help="print what would be submitted (the queue, definition and dependencies "
                        "still checked); submit and write nothing")
    add_run_id_option(p, "the run (default: batch.run_id); names the jobs and the tile lists")
    p.set_defaults(func=enqueue)
