"""A run on Batch: how its jobs stand, re-submitting what is missing, and a whole rebuild.

batch-enqueue records each submission under `runs/{run_id}/{job}/batch/`
(job id, tile list, memory). From those, one DescribeJobs call covers up to a
hundred array jobs (their status summaries), and ListJobs on an array job's
failed children tells which tiles ran out of memory.
"""

import json
import math
import time
from typing import NamedTuple

from . import batch, runs
from .enqueue import (
    Dependency,
    Submission,
    Unit,
    as_submissions,
    depends_on,
    job_units,
    list_text,
    parse_unit,
    parse_units,
    sort_tiles,
)
from .errors import BadInput, JobFailed
from .kinds import NAMES
from .records import read_record
from .runkeys import round_key, round_of, round_prefix, submission_prefix
from .tiles import Tile, ancestor, children, parse_tile

RUNNING = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING")
# A round claimed and never ended is taken as under way this long, then as one whose re-submitter died:
# sending a round takes seconds, a planet's included.
ROUND_LEASE = 15 * 60


def submissions(store, run_id: str, job: str) -> list[dict]:
    """Every submission of a job kind in this run."""
    return [_submission(store, k) for k in store.list(submission_prefix(run_id, job)) if k.endswith(".json")]


def _submission(store, key: str) -> dict:
    """A submission record: without it the run's jobs on Batch cannot be followed."""
    return _record(store, key, "submission record", {"jobId", "list", "tile"},
                   "its Batch job cannot be followed; start the run again under a new run id")


def _record(store, key: str, what: str, fields: set, remedy: str) -> dict:
    """A JSON record of a Batch run holding `fields`; BadInput naming it and `remedy` when it is damaged
    (records are written whole: a hand or a tool changed it)."""
    try:
        record = json.loads(store.read(key) or b"")
    except ValueError:
        record = None
    if not isinstance(record, dict) or not fields <= record.keys():
        raise BadInput(f"{what} {key} in {store.url} is damaged: {remedy}")
    return record


def _describe(client, job_ids: list[str]) -> dict:
    out = {}
    for start in range(0, len(job_ids), 100):
        found = batch.call("describe jobs", client.describe_jobs, jobs=job_ids[start:start + 100])["jobs"]
        out.update({j["jobId"]: j for j in found})
    return out


def job_counts(cfg: dict, store, run_id: str) -> dict:
    """Per job kind, Batch's running and failed counts; {} for a run that never went to Batch."""
    subs = {job: submissions(store, run_id, job) for job in NAMES}
    return _counts(_describe_all(batch.batch_client(cfg), subs), subs) if any(subs.values()) else {}


def _describe_all(client, subs: dict[str, list[dict]]) -> dict:
    """What Batch says of each of these submissions' jobs, by job id."""
    return _describe(client, [s["jobId"] for ss in subs.values() for s in ss])


def _counts(jobs: dict, subs: dict[str, list[dict]]) -> dict:
    """job_counts of these submissions, from what Batch said of their jobs (_describe_all)."""
    out = {}
    for job, ss in subs.items():
        running = failed = 0
        for s in ss:
            j = jobs.get(s["jobId"], {})
            summary = j.get("arrayProperties", {}).get("statusSummary")
            if summary:
                running += sum(summary.get(k, 0) for k in RUNNING)
                failed += summary.get("FAILED", 0)
            else:
                running += j.get("status") in RUNNING
                failed += j.get("status") == "FAILED"
        out[job] = {"running": running, "failed": failed}
    return out


def _out_of_memory(job: dict) -> bool:
    reasons = (job.get("statusReason") or "", (job.get("container") or {}).get("reason") or "")
    return any(r.startswith("OutOfMemoryError") for r in reasons)


class Attempt(NamedTuple):
    """A unit an earlier submission ran, the memory it had (None: the job definition's), and whether
    Batch killed it for memory."""

    unit: Unit
    memory: int | None
    out_of_memory: bool


def attempts(client, store, subs: list[dict], described: dict) -> list[Attempt]:
    """Every unit of every earlier submission.

    What Batch said of the plain jobs is `described` (_describe_all); ListJobs
    finds an array job's failed children, and DescribeJobs, a hundred at a
    time, says why each failed.
    """
    ran = {}  # job id (a plain job's, or an array child's) -> (its unit, the memory it had)
    children = []  # the array children ListJobs says failed
    for s in subs:
        if not s["list"]:
            ran[s["jobId"]] = (parse_unit(s["tile"]), s.get("memory"))
            continue
        listed = store.read(s["list"])
        if listed is None:
            raise BadInput(f"tile list {s['list']} of Batch job {s['jobId']} is not in {store.url}: "
                           "its children's tiles cannot be told")
        units = parse_units(listed.decode(errors="replace"), s["list"])
        ran.update({f"{s['jobId']}:{i}": (unit, s.get("memory")) for i, unit in enumerate(units)})
        token = {}
        while True:
            page = batch.call("list failed children", client.list_jobs, arrayJobId=s["jobId"],
                              jobStatus="FAILED", **token)
            for child in page.get("jobSummaryList", []):
                # A child's id is its parent's and its index: `{parent}:{index}`.
                index = child.get("arrayProperties", {}).get("index", int(child["jobId"].rsplit(":", 1)[1]))
                children.append(f"{s['jobId']}:{index}")
            if not page.get("nextToken"):
                break
            token = {"nextToken": page["nextToken"]}
    described = {**described, **_describe(client, children)}
    oom = {j for j, job in described.items() if job.get("status") == "FAILED" and _out_of_memory(job)}
    return [Attempt(unit, memory, job_id in oom) for job_id, (unit, memory) in ran.items()]


def needed_memory(attempt: Attempt, base: int, cap: int) -> int | None:
    """What an attempt says its tiles need: after an out-of-memory kill 1.5 times what it had (up to
    `cap`), else at least what it had (None: the job definition's, `base`, was never too little)."""
    if attempt.out_of_memory:
        return min(math.ceil((attempt.memory or base) * 1.5), cap)
    return attempt.memory


def memory_floors(tried: list[Attempt], base: int, cap: int, queue_zoom: int) -> dict[Tile, int]:
    """The memory each job goes again with, where it is more than the job definition's `base`: the
    most any attempt of it needed (needed_memory).

    The most, not the latest: a job given more after running out, then lost
    to something else (a Spot reclaim, a failed dependency), still needs it.
    A part of a split meta-high job (z8..z10) counts for its queue-zoom tile,
    the job the run finds missing, and all its parts left go with that.
    """
    out: dict[Tile, int] = {}
    for attempt in tried:
        need = needed_memory(attempt, base, cap)
        if need is not None and need > base:
            for job in {ancestor(t, queue_zoom) for t in attempt.unit}:
                out[job] = max(out.get(job, need), need)
    return out


def rawr_sizes(store, run_id: str, tile: Tile) -> dict[Tile, int]:
    """The bytes of each RAWR tile a rawr job wrote, from its completion record ({} without one)."""
    record = read_record(store, run_id, "rawr", tile) or {}
    return {parse_tile(k): v for k, v in record.get("counts", {}).get("rawr_bytes", {}).items()}


def split_meta_high(tile: Tile, sizes: dict[Tile, int], limit: int, group_zoom: int) -> list[Tile]:
    """A meta-high job cut into sub-jobs (down to the group zoom) whose RAWR tiles add up to at most
    `limit` bytes; without sizes (rawr_sizes of its queue-zoom tile) the job stays whole."""
    if not sizes:
        return [tile]

    def cut(t: Tile) -> list[Tile]:
        total = sum(v for k, v in sizes.items() if k.z == group_zoom and
                    (k.x >> (group_zoom - t.z), k.y >> (group_zoom - t.z)) == (t.x, t.y))
        if total <= limit or t.z >= group_zoom:
            return [t]
        return [part for c in children(t, t.z + 1) for part in cut(c)]

    # Parts with no RAWR data go too: they only write their record, which the whole needs to count as done.
    return cut(tile)


def waits_for(subs: list[Submission], ids: list[str]) -> dict[Tile, Dependency]:
    """Each tile of these (rawr) submissions, and the one to wait for before its meta-high job: with its
    tile list, so that a meta-high array over the same list pairs with it child by child (depends_on)."""
    out = {}
    for s, i in zip(subs, ids):  # one Dependency a submission: its list's text is made once, not once a tile
        out.update(dict.fromkeys(s.tiles, Dependency(i, list_text(s.units) if s.list_key else None)))
    return out


def resubmit(cfg: dict, store, run_id: str, states: list) -> list[str]:
    """Submit every missing job again; the new job ids.

    A job goes again with the most memory any earlier attempt of it had, 1.5
    times that after an out-of-memory kill, up to batch.max-memory
    (memory_floors); a meta-high job over RAWR tiles larger than
    batch.split-rawr-bytes goes as its z8..z10 parts, those not done yet.

    A meta-high job waits only for the rawr submission of this round that holds
    its tile, none when its rawr is done: each such group goes as its own
    submission, over the same tile list as the rawr one when it can, so that
    child i waits for rawr child i alone (N_TO_N) and one rawr child failing
    fails one meta-high job, not the round's.
    """
    batch.check_batch_store(store)  # before anything is submitted: a round goes whole or not at all
    client = batch.batch_client(cfg)
    b = cfg["batch"]
    earlier = {job: submissions(store, run_id, job) for job in NAMES}
    described = _describe_all(client, earlier)
    running = sum(c["running"] for c in _counts(described, earlier).values())
    if running:  # a missing job may be one of them: sent again, it would be done twice
        raise JobFailed(f"{running} jobs of run {run_id} are still queued or running on Batch: "
                        "wait for them to end (tilebatch status), then re-submit what is missing")
    # Every kind's definition and memory first: a definition of another kind, a lost
    # tile list, ... stop the round before any of it is submitted.
    plans = []
    for state in states:
        if state.missing:
            definition = batch.definition_name(cfg, state.job)
            base_memory = batch.definition_memory(batch.job_definition(client, definition, state.job))
            tried = attempts(client, store, earlier[state.job], described)
            plans.append((state, definition, memory_floors(tried, base_memory, b["max-memory"], b["queue-zoom"])))
    round_no = claim_round(store, run_id, earlier)
    try:
        return _submit_round(cfg, store, client, run_id, round_no, plans)
    finally:
        store.write(round_key(run_id, round_no), json.dumps({"round": round_no, "ended": time.time()}).encode())


def claim_round(store, run_id: str, earlier: dict) -> int:
    """The number of the next re-submission round, claimed in the store for this re-submitter alone.

    Two re-submitters of one run at once (`missing --enqueue` run twice, a
    rebuild beside it) would send the same missing jobs twice, their tile lists
    under the same keys. The claim is a write that fails when the key exists,
    so one of them takes the round; the other, or one starting while a round
    is being sent (its jobs not yet on Batch, so not seen as running), is
    refused (exit 1: try again once it has ended). A round whose re-submitter
    died unended stops others for ROUND_LEASE seconds.
    """
    claims = {n: key for key in store.list(round_prefix(run_id)) if (n := round_of(key)) is not None}
    if claims:
        latest = max(claims)
        claim = _record(store, claims[latest], "round claim", {"round"},
                        f"delete it once no re-submission of run {run_id} is under way")
        if "ended" not in claim and time.time() - claim.get("began", 0) < ROUND_LEASE:
            raise JobFailed(f"another re-submission of run {run_id} is under way (round {latest}): "
                            "wait for it to end, then re-submit what is still missing")
    submitted = (s.get("round", 0) for subs in earlier.values() for s in subs)
    round_no = 1 + max([*submitted, *claims], default=0)
    if not store.write_new(round_key(run_id, round_no), json.dumps({"round": round_no,
                                                                    "began": time.time()}).encode()):
        raise JobFailed(f"another re-submission of run {run_id} took round {round_no} as this one was about "
                        "to: wait for it to end, then re-submit what is still missing")
    return round_no


def _submit_round(cfg: dict, store, client, run_id: str, round_no: int, plans: list) -> list[str]:
    """Submit a round's plans (resubmit); the new job ids."""
    b = cfg["batch"]
    sizes: dict[Tile, dict] = {}  # rawr_sizes by queue-zoom tile, each record read once
    ids: list[str] = []
    rawr: dict[Tile, Dependency] = {}  # waits_for of this round's rawr submissions
    for state, definition, floors in plans:
        job = state.job
        groups: dict[tuple[int | None, Dependency | None], list[Tile]] = {}  # by memory and rawr to wait for
        for tile in state.missing:
            top = ancestor(tile, b["queue-zoom"])
            parts, wait = [tile], None
            if job == "meta-high":
                if top not in sizes:
                    sizes[top] = rawr_sizes(store, run_id, top)
                parts = [p for p in split_meta_high(tile, sizes[top], b["split-rawr-bytes"], cfg["rawr"]["group-zoom"])
                         if not runs.covered(p, state.done, cfg["rawr"]["group-zoom"])]  # done in an earlier round
                wait = rawr.get(top)
            groups.setdefault((floors.get(tile), wait), []).extend(parts)
        order = sorted(groups, key=lambda g: (g[0] or 0, g[1].job_id if g[1] else ""))  # the default memory first
        for n, (memory, wait) in enumerate(order):
            units = job_units(job, sort_tiles(groups[memory, wait]), b["queue-zoom"], run_tiles=state.expected)
            subs = as_submissions(job, run_id, b["job-name-prefix"], units, f"r{round_no:02d}m{n}")
            new_ids = batch.submit_jobs(client, store, cfg, run_id, job, subs, depends_on(subs, [wait] if wait else []),
                                        definition, memory=memory, round_no=round_no)
            if job == "rawr":
                rawr.update(waits_for(subs, new_ids))
            ids += new_ids
    return ids


def _wait(cfg: dict, store, run_id: str, progress_seconds: float, say) -> None:
    """Until no job of the run is queued or running, a progress line every `progress_seconds`."""
    while True:
        counts = job_counts(cfg, store, run_id)
        states = runs.run_states(store, run_id, cfg["rawr"]["group-zoom"])
        line = ", ".join(f"{s.job} {len(s.expected) - len(s.missing)}/{len(s.expected)}"
                         f" ({counts.get(s.job, {}).get('running', 0)} running,"
                         f" {counts.get(s.job, {}).get('failed', 0)} failed)" for s in states)
        say(f"progress: {line}")
        if not any(c["running"] for c in counts.values()):
            return
        time.sleep(progress_seconds)


def rebuild(cfg: dict, store, run_id: str, jobs: dict, attempts: int, progress_seconds: float, say) -> list:
    """The rebuild of `jobs` on Batch: enqueue, wait, re-submit what is missing; the jobs still missing."""
    def run_round(attempt: int, states) -> None:
        ids = resubmit(cfg, store, run_id, states)
        say(f"attempt {attempt}: submitted {len(ids)} Batch jobs")
        _wait(cfg, store, run_id, progress_seconds, say)

    return runs.rounds(store, run_id, cfg["rawr"]["group-zoom"], jobs, attempts, run_round,
                       lambda attempt, missing: say(f"attempt {attempt}: {len(missing)} jobs missing"))
