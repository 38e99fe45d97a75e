"""Completion records: `runs/{run_id}/{job}/{z}/{x}/{y}.json`, written last by every job.

A run's missing work is its expected jobs minus these records, found by listing
one prefix per job kind rather than by looking at tiles.
"""

import json
import re

from . import log
from .errors import BadInput
from .schema import Schema
from .tiles import Tile, parse_tile

_RECORD_RE = re.compile(r"^(\d+/\d+/\d+)\.json$")


def record_key(run_id: str, job: str, tile: Tile) -> str:
    return f"runs/{run_id}/{job}/{tile.z}/{tile.x}/{tile.y}.json"


def write_record(store, run_id: str, job: str, tile: Tile, info: dict) -> None:
    store.write(record_key(run_id, job, tile), json.dumps(info, sort_keys=True).encode())


def read_record(store, run_id: str, job: str, tile: Tile) -> dict | None:
    """A job's completion record; None without one. One that does not parse (damaged in the store:
    records are written whole) still says the job finished, but nothing more: a warning, and None."""
    key = record_key(run_id, job, tile)
    data = store.read(key)
    if data is None:
        return None
    try:
        record = json.loads(data)
    except ValueError:
        record = None
    if not isinstance(record, dict):
        log.warning("completion record unreadable, its counts left out", key=key, store=store.url)
        return None
    return record


def _schema_key(run_id: str) -> str:
    return f"runs/{run_id}/schema.json"


def check_run_schema(store, run_id: str, schema: Schema) -> dict:
    """The schema as records carry it; BadInput when the run has finished jobs with another one.

    Tiles of two schemas mixed in one store would draw as neither. The first
    job of a run to finish leaves its schema (`keep_run_schema`).
    """
    mine = {"name": schema.name, "digest": schema.digest}
    data = store.read(_schema_key(run_id))
    try:
        theirs = json.loads(data) if data is not None else mine
    except ValueError:
        theirs = None
    if not isinstance(theirs, dict):
        raise BadInput(f"{_schema_key(run_id)} in {store.url} is damaged: delete it, and the run's next job "
                       "writes it again")
    if theirs != mine:
        raise BadInput(f"run {run_id} was started with schema {theirs.get('name')} ({theirs.get('digest')}), "
                       f"this job has {schema.name} ({schema.digest}): use a new run id, or the run's schema")
    return mine


def keep_run_schema(store, run_id: str, mine: dict) -> None:
    """Note the run's schema, unless an earlier job did (created only: two jobs finishing at once
    cannot both write it)."""
    store.write_new(_schema_key(run_id), json.dumps(mine, sort_keys=True).encode())


def done_tiles(store, run_id: str, job: str) -> set[Tile]:
    """The tiles of every job of this kind in this run that has finished."""
    prefix = f"runs/{run_id}/{job}/"
    found = (_RECORD_RE.match(k[len(prefix):]) for k in store.list(prefix))
    return {parse_tile(m.group(1)) for m in found if m}
