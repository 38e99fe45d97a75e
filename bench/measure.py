"""One command's cost: wall seconds, CPU seconds and peak memory, as the kernel counts them.

The child's rusage (os.wait4) covers the whole process, interpreter start-up
included, the same way for every tool compared, so no tool is measured by its
own account of itself.
"""

import os
import subprocess
import time
from typing import NamedTuple


class Usage(NamedTuple):
    seconds: float
    cpu_seconds: float
    peak_memory_mb: float
    returncode: int
    stderr: str


def run(cmd: list[str], env: dict | None = None, cwd: str | None = None) -> Usage:
    """Run `cmd` to the end and measure it; its stdout is dropped, its stderr kept."""
    started = time.monotonic()
    with subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as proc:
        stderr = proc.stderr.read().decode(errors="replace")
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    return Usage(round(time.monotonic() - started, 3), round(usage.ru_utime + usage.ru_stime, 3),
                 round(usage.ru_maxrss / 1024, 1), proc.returncode, stderr)
