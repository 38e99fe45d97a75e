"""Completion records: `runs/{run_id}/{job}/{z}/{x}/{y}.json`, written last by every job.

A run's missing work is its expected jobs minus these records, found by listing
one prefix per job kind rather than by looking at tiles.
"""

import json
import re

from .errors import BadInput
from .schema import Schema
from .tiles import Tile, parse_tile

JOB_KINDS = ("rawr", "meta-high", "meta-low")
_RECORD_RE = re.compile(r"^(\d+/\d+/\d+)\.json$")


def record_key(run_id: str, job: str, tile: Tile) -> str:
    return f"runs/{run_id}/{job}/{tile.z}/{tile.x}/{tile.y}.json"


def write_record(store, run_id: str, job: str, tile: Tile, info: dict) -> None:
    store.write(record_key(run_id, job, tile), json.dumps(info, sort_keys=True).encode())


def read_record(store, run_id: str, job: str, tile: Tile) -> dict | None:
    data = store.read(record_key(run_id, job, tile))
    return json.loads(data) if data else None


def check_run_schema(store, run_id: str, schema: Schema) -> dict:
    """The schema of the run, as records carry it; BadInput when the run was started with another one.

    The first job of a run (or its enqueue) writes it: tiles of two schemas
    mixed in one store would draw as neither.
    """
    mine = {"name": schema.name, "digest": schema.digest}
    key = f"runs/{run_id}/schema.json"
    data = store.read(key)
    if data is None:
        store.write(key, json.dumps(mine, sort_keys=True).encode())
        return mine
    theirs = json.loads(data)
    if theirs != mine:
        raise BadInput(f"run {run_id} was started with schema {theirs.get('name')} ({theirs.get('digest')}), "
                       f"this job has {schema.name} ({schema.digest}): use a new run id, or the run's schema")
    return mine


def done_tiles(store, run_id: str, job: str) -> set[Tile]:
    """The tiles of every job of this kind in this run that has finished."""
    prefix = f"runs/{run_id}/{job}/"
    found = (_RECORD_RE.match(k[len(prefix):]) for k in store.list(prefix))
    return {parse_tile(m.group(1)) for m in found if m}
