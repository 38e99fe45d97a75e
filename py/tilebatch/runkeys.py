"""Every key under `runs/` in the metatile store: made, and read back, here and nowhere else.

    runs/{run_id}/run.json                          when the run began
    runs/{run_id}/schema.json                       the schema of its tiles (the first job to finish writes it)
    runs/{run_id}/{job}/tiles-NNNN.txt              the tiles it expects of a job kind, an array job's worth a list
    runs/{run_id}/{job}/{group}-tiles-NNNN.txt      the tile list of a re-submission group (batch_runs.resubmit)
    runs/{run_id}/{job}/{z}/{x}/{y}.json            completion records, written last by each job
    runs/{run_id}/{job}/batch/{name}.json           one Batch submission: job id, tile list, memory, round
    runs/{run_id}/rounds/{NNNN}.json                a re-submission round, claimed by the one re-submitter sending it
    runs/{run_id}/failures/{job}/{z}/{x}/{y}.json   the last failure of a job the local runner saw

A run's state is a few listings of these prefixes, never a look at tiles.
"""

import re

from .tiles import Tile, format_tile, parse_tile

RUNS = "runs"
_EXPECTED_RE = re.compile(r"/tiles-(\d{4})\.txt$")
_TILE_JSON_RE = re.compile(r"^(\d+/\d+/\d+)\.json$")
_ROUND_RE = re.compile(r"/rounds/(\d{4})\.json$")


def run_key(run_id: str) -> str:
    return f"{RUNS}/{run_id}/run.json"


def schema_key(run_id: str) -> str:
    return f"{RUNS}/{run_id}/schema.json"


def list_key(run_id: str, job: str, index: int, group: str = "") -> str:
    """Where an array job's tile list goes: the run's expected tiles, or a re-submission `group`'s."""
    return f"{RUNS}/{run_id}/{job}/{group + '-' if group else ''}tiles-{index:04d}.txt"


def expected_prefix(run_id: str, job: str) -> str:
    return f"{RUNS}/{run_id}/{job}/tiles-"


def expected_index(key: str) -> int | None:
    """The number of a list of expected tiles (`tiles-NNNN.txt`), None for any other key."""
    m = _EXPECTED_RE.search(key)
    return int(m.group(1)) if m else None


def record_key(run_id: str, job: str, tile: Tile) -> str:
    return f"{record_prefix(run_id, job)}{format_tile(tile)}.json"


def record_prefix(run_id: str, job: str) -> str:
    return f"{RUNS}/{run_id}/{job}/"


def failure_key(run_id: str, job: str, tile: Tile) -> str:
    return f"{failure_prefix(run_id, job)}{format_tile(tile)}.json"


def failure_prefix(run_id: str, job: str) -> str:
    return f"{RUNS}/{run_id}/failures/{job}/"


def tile_of(key: str, prefix: str) -> Tile | None:
    """The tile of a record or failure key under `prefix` (`{z}/{x}/{y}.json`), None for any other key."""
    m = _TILE_JSON_RE.match(key[len(prefix):]) if key.startswith(prefix) else None
    return parse_tile(m.group(1)) if m else None


def submission_key(run_id: str, job: str, name: str) -> str:
    return f"{submission_prefix(run_id, job)}{name}.json"


def submission_prefix(run_id: str, job: str) -> str:
    return f"{RUNS}/{run_id}/{job}/batch/"


def round_key(run_id: str, round_no: int) -> str:
    return f"{round_prefix(run_id)}{round_no:04d}.json"


def round_prefix(run_id: str) -> str:
    return f"{RUNS}/{run_id}/rounds/"


def round_of(key: str) -> int | None:
    """The number of a round's key (`rounds/NNNN.json`), None for any other key."""
    m = _ROUND_RE.search(key)
    return int(m.group(1)) if m else None
