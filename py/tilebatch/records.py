"""Completion records (runkeys.record_key), written last by every job, and the run's schema.

A run's missing work is its expected jobs minus these records, found by listing
one prefix per job kind rather than by looking at tiles.
"""

import json

from . import log
from .errors import BadInput
from .runkeys import record_key, record_prefix, schema_key, tile_of
from .schema import Schema
from .store import Store
from .tiles import Tile


def write_record(store: Store, run_id: str, job: str, tile: Tile, info: dict) -> None:
    store.write(record_key(run_id, job, tile), json.dumps(info, sort_keys=True).encode())


def read_record(store: Store, run_id: str, job: str, tile: Tile) -> dict | None:
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


def run_schema(store: Store, run_id: str) -> dict | None:
    """The schema the run's first finished job noted (name and digest); None before one has. BadInput when
    the note is damaged."""
    data = store.read(schema_key(run_id))
    if data is None:
        return None
    try:
        theirs = json.loads(data)
    except ValueError:
        theirs = None
    if not isinstance(theirs, dict):
        raise BadInput(f"{schema_key(run_id)} in {store.url} is damaged: delete it, and the run's next job "
                       "writes it again")
    return theirs


def check_run_schema(store: Store, run_id: str, schema: Schema) -> dict:
    """The schema as records carry it; BadInput when the run has finished jobs with another one.

    Tiles of two schemas mixed in one store would draw as neither. The first
    job of a run to finish leaves its schema (`keep_run_schema`).
    """
    mine = {"name": schema.name, "digest": schema.digest}
    theirs = run_schema(store, run_id)
    if theirs is not None and theirs != mine:
        raise BadInput(f"run {run_id} was started with schema {theirs.get('name')} ({theirs.get('digest')}), "
                       f"this job has {schema.name} ({schema.digest}): use a new run id, or the run's schema")
    return mine


def check_store_schema(store: Store, schema: Schema, run_ids: list[str]) -> None:
    """BadInput when one of the store's runs (`run_ids`) built its tiles with a schema of another name: what describes the
    tiles (an export's metadata, the preview's style) would come from a schema they do not follow.

    A run with an earlier version of the same schema (another digest) is only
    warned of: its layers are most likely those of the schema now.
    """
    for run_id in run_ids:
        theirs = run_schema(store, run_id)
        if theirs is None:
            continue
        if theirs.get("name") != schema.name:
            raise BadInput(f"run {run_id} in {store.url} built its tiles with schema {theirs.get('name')}, "
                           f"the configuration names {schema.name}: set schema.name to the tiles' schema")
        if theirs.get("digest") != schema.digest:
            log.warning("a run built its tiles with another version of the schema", run_id=run_id,
                        schema=schema.name, built_with=theirs.get("digest"), now=schema.digest)


def keep_run_schema(store: Store, run_id: str, mine: dict) -> None:
    """Note the run's schema, unless an earlier job did (created only: two jobs finishing at once
    cannot both write it)."""
    store.write_new(schema_key(run_id), json.dumps(mine, sort_keys=True).encode())


def done_tiles(store: Store, run_id: str, job: str) -> set[Tile]:
    """The tiles of every job of this kind in this run that has finished."""
    prefix = record_prefix(run_id, job)
    return {t for t in (tile_of(k, prefix) for k in store.list(prefix)) if t}
