"""Logs: one JSON object a line on stderr, each carrying the run id, job kind and tile.

The context is set once per job (`bind`), so a Batch log group can be searched
by run id without every call site passing it along. Secrets the configuration
holds are registered (`hide`) and never written, whatever message carries them.
When TILEBATCH_LOG_CONTEXT names a file, the context is kept there too, as a
JSON object: the job images' entrypoint (docker/job-entrypoint) ends the log
with a line of its own that carries it.
"""

import json
import os
import sys
import time

_context: dict = {}
_secrets: set = set()
MASK = "********"


def bind(**fields) -> None:
    """Add fields (run_id, job, tile, ...) to every later log line; None removes one."""
    for k, v in fields.items():
        if v is None:
            _context.pop(k, None)
        else:
            _context[k] = v
    path = os.environ.get("TILEBATCH_LOG_CONTEXT")
    if path:
        with open(path, "w") as f:
            f.write(redact(json.dumps({"run_id": _context.get("run_id"), **_context}, default=str)))


def hide(secret: str) -> None:
    """Never write this value: it is masked in every later log line."""
    if secret:
        _secrets.add(secret)


def redact(text: str) -> str:
    """`text` with every registered secret (also as JSON escapes it) masked."""
    for secret in sorted(_secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
        escaped = json.dumps(secret)[1:-1]
        if escaped != secret:
            text = text.replace(escaped, MASK)
    return text


def emit(level: str, msg: str, **fields) -> None:
    entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "level": level,
             "run_id": _context.get("run_id"), **_context, "msg": msg, **fields}
    try:
        sys.stderr.write(redact(json.dumps(entry, default=str)) + "\n")
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):  # stderr closed: nobody is listening
        pass


def info(msg: str, **fields) -> None:
    emit("info", msg, **fields)


def warning(msg: str, **fields) -> None:
    emit("warning", msg, **fields)


def error(msg: str, **fields) -> None:
    emit("error", msg, **fields)


def parse(line: str) -> dict | None:
    """A line these functions wrote, as the dict it holds; None for a line that is not one (a traceback
    before logging started, a line cut short by a kill)."""
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    return entry if isinstance(entry, dict) else None
