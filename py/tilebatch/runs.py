"""Where a run stands: the jobs it expects, the ones done, failed and missing.

Everything a run knows lives in the store under `runs/{run_id}/` (runkeys.py):
when it began, the tiles it expects of each job kind (written by build and
batch-enqueue; Batch array jobs read them too), the completion records, and
the failures the local runner saw. Missing work is the expected jobs without a
record, found by listing a few prefixes, never by looking at tiles. A meta-high job split into smaller
jobs (z8..z10 under its z7 tile) counts as done when every part is.

Tile lists are only ever created, never replaced (`write_new`): two builds of
one run at once each add their lists after the other's, so neither loses
tiles the run expects.
"""

import json
import time
from typing import NamedTuple

from . import log
from .enqueue import MAX_ARRAY_SIZE, Unit, list_text, parse_tile_lines
from .errors import BadInput, JobFailed
from .kinds import NAMES
from .records import done_tiles
from .runkeys import RUNS, expected_index, expected_prefix, failure_key, failure_prefix, list_key, run_key, tile_of
from .store import Store
from .tiles import Tile, children


def expected_tiles(store: Store, run_id: str, job: str) -> set[Tile]:
    """Every tile the run expects a `job` job for."""
    out = set()
    for key in store.list(expected_prefix(run_id, job)):
        if expected_index(key) is not None:
            out.update(parse_tile_lines((store.read(key) or b"").decode(errors="replace"), key))
    return out


def add_expected(store: Store, run_id: str, job: str, units: list[Unit],
                 tries: int = 100) -> dict[str, list[Unit]]:
    """Add units (enqueue.job_units) to what the run expects, in lists of at most one array job each; the
    lists written.

    Lists already written are never changed (running array children read
    them); new tiles go into new lists after them. A list number another
    writer took first is read back, and the rest goes after it. The run's
    first tiles also note when it began.
    """
    store.write_new(run_key(run_id), json.dumps({"run_id": run_id, "began": time.time()}).encode())
    written: dict[str, list[Unit]] = {}
    new, index = _unlisted(store, run_id, job, units)
    for _ in range(tries):
        while new:
            key = list_key(run_id, job, index)
            if not store.write_new(key, list_text(new[:MAX_ARRAY_SIZE]).encode()):
                break
            written[key], new, index = new[:MAX_ARRAY_SIZE], new[MAX_ARRAY_SIZE:], index + 1
        if not new:
            return written
        new, index = _unlisted(store, run_id, job, new)
    raise JobFailed(f"cannot add to the tile lists of run {run_id} ({job}): other writers keep taking "
                    f"the next list number; try again")


def _unlisted(store: Store, run_id: str, job: str, units: list[Unit]) -> tuple[list[Unit], int]:
    """The units with a tile no list of the run holds yet, and the number of the next list."""
    numbers = [n for n in map(expected_index, store.list(expected_prefix(run_id, job))) if n is not None]
    known = expected_tiles(store, run_id, job) if numbers else set()
    index = max(numbers, default=-1) + 1
    return [u for u in units if not known.issuperset(u)], index


def run_ids(store: Store) -> list[str]:
    """Every run in the store, oldest first (runs from before run.json first, by name)."""
    def began(run_id: str) -> float:
        data = store.read(run_key(run_id))
        return json.loads(data)["began"] if data else 0.0
    return sorted(store.folders(RUNS), key=lambda r: (began(r), r))


def latest_run(store: Store) -> str:
    """The run that began last; BadInput for a store with none."""
    found = run_ids(store)
    if not found:
        raise BadInput(f"the store {store.url} holds no runs: build some tiles first (make build, or make demo)")
    return found[-1]


def covered(tile: Tile, done: set[Tile], deepest: int) -> bool:
    """Done itself, or split into parts down to `deepest` that are all done."""
    if tile in done:
        return True
    if tile.z >= deepest:
        return False
    return all(covered(c, done, deepest) for c in children(tile, tile.z + 1))


class Failure(NamedTuple):
    exit_code: int
    out_of_memory: bool
    memory_mb: int | None


def write_failure(store: Store, run_id: str, job: str, tile: Tile, failure: Failure) -> None:
    store.write(failure_key(run_id, job, tile), json.dumps(failure._asdict(), sort_keys=True).encode())


def clear_failure(store: Store, run_id: str, job: str, tile: Tile) -> None:
    store.delete(failure_key(run_id, job, tile))


def failures(store: Store, run_id: str, job: str) -> dict[Tile, Failure]:
    """The last failure recorded for each tile of a job kind; an unreadable record is passed over."""
    prefix = failure_prefix(run_id, job)
    out = {}
    for key in store.list(prefix):
        tile = tile_of(key, prefix)
        if tile:
            try:
                out[tile] = Failure(**json.loads(store.read(key) or b"null"))
            except (ValueError, TypeError):
                log.warning("failure record unreadable, passed over", key=key, store=store.url)
    return out


class JobState(NamedTuple):
    """One job kind of a run."""

    job: str
    expected: set
    done: set
    missing: list           # expected tiles not covered by records, sorted
    failed: dict            # missing tiles with a recorded failure


def run_state(store: Store, run_id: str, job: str, group_zoom: int = 10) -> JobState:
    """Expected, done and missing jobs of one kind, from the run's lists and records."""
    expected = expected_tiles(store, run_id, job)
    done = done_tiles(store, run_id, job)
    deepest = group_zoom if job == "meta-high" else 0
    missing = sorted((t for t in expected if not covered(t, done, deepest)), key=lambda t: (t.z, t.x, t.y))
    failed = failures(store, run_id, job) if missing else {}
    return JobState(job, expected, done, missing, {t: f for t, f in failed.items() if t in set(missing)})


def run_states(store: Store, run_id: str, group_zoom: int = 10) -> list[JobState]:
    return [run_state(store, run_id, job, group_zoom) for job in NAMES]


def rounds(store: Store, run_id: str, group_zoom: int, jobs: dict[str, list[Tile]], attempts: int,
           run_round, after_round) -> list[tuple[str, Tile]]:
    """Expect `jobs`, then run rounds until none of them is missing or `attempts` rounds have run; what is missing.

    `run_round(attempt, states)` runs (or submits and waits for) what the
    states say is missing, wherever jobs run; `after_round(attempt, missing)`
    hears of a round that left some. Only these jobs count: another build of
    the run may add its own.
    """
    for kind, tiles in jobs.items():
        add_expected(store, run_id, kind, [(t,) for t in tiles])
    ours = {kind: set(tiles) for kind, tiles in jobs.items()}
    states, missing = run_states(store, run_id, group_zoom), []
    for attempt in range(1, attempts + 1):
        run_round(attempt, states)
        states = run_states(store, run_id, group_zoom)
        missing = [(s.job, t) for s in states for t in s.missing if t in ours.get(s.job, ())]
        if not missing:
            break
        after_round(attempt, missing)
    return missing
