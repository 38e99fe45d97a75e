"""Logs: one JSON object a line on stderr, each carrying the run id, job kind and tile.

The context is set once per job (`bind`), so a Batch log group can be searched
by run id without every call site passing it along.
"""

import json
import sys
import time

_context: dict = {}


def bind(**fields) -> None:
    """Add fields (run_id, job, tile, ...) to every later log line; None removes one."""
    for k, v in fields.items():
        if v is None:
            _context.pop(k, None)
        else:
            _context[k] = v


def emit(level: str, msg: str, **fields) -> None:
    entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "level": level,
             "run_id": _context.get("run_id"), **_context, "msg": msg, **fields}
    sys.stderr.write(json.dumps(entry, default=str) + "\n")
    sys.stderr.flush()


def info(msg: str, **fields) -> None:
    emit("info", msg, **fields)


def warning(msg: str, **fields) -> None:
    emit("warning", msg, **fields)


def error(msg: str, **fields) -> None:
    emit("error", msg, **fields)
