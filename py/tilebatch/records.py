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


def _schema_key(run_id: str) -> str:
    return f"runs/{run_id}/schema.json"


def check_run_schema(store, run_id: str, schema: Schema) -> dict:
    """The schema as records carry it; BadInput when the run has finished jobs with another one.

    Tiles of two schemas mixed in one store would draw as neither. The first
    job of a run to finish leaves its schema (`keep_run_schema`).
    """
    mine = {"name": schema.name, "digest": schema.digest}
    data = store.read(_schema_key(run_id))
    theirs = json.loads(data) if data else mine
    if theirs != mine:
        raise BadInput(f"run {run_id} was started with schema {theirs.get('name')} ({theirs.get('digest')}), "
                       f"this job has {schema.name} ({schema.digest}): use a new run id, or the run's schema")
    return mine


def keep_run_schema(store, run_id: str, mine: dict) -> None:
    """Note the run's schema, unless an earlier job did."""
    if not store.exists(_schema_key(run_id)):
        store.write(_schema_key(run_id), json.dumps(mine, sort_keys=True).encode())


def done_tiles(store, run_id: str, job: str) -> set[Tile]:
    """The tiles of every job of this kind in this run that has finished."""
    prefix = f"runs/{run_id}/{job}/"
    found = (_RECORD_RE.match(k[len(prefix):]) for k in store.list(prefix))
    return {parse_tile(m.group(1)) for m in found if m}
