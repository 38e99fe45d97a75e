"""The ways a command can fail, and the exit code each one means.

A BadInput can never succeed on retry (exit 2: Batch job definitions tell it
not to retry); a JobFailed might (exit 1). Which outside failure is which is
decided in faults.py.
"""


class TilebatchError(Exception):
    """Base of every error tilebatch reports as one line."""

    exit_code = 1


class BadInput(TilebatchError, ValueError):
    """Bad input or configuration: a tile, bbox, key, value, table or store."""

    exit_code = 2


class JobFailed(TilebatchError, RuntimeError):
    """The work failed for a reason a retry may cure (database down, network)."""

    exit_code = 1


class Terminated(KeyboardInterrupt):
    """SIGTERM (Batch stopping a job, a runner ending its jobs): stop as on Ctrl-C, cleaning up."""
