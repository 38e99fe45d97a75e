"""One command's cost: wall seconds, CPU seconds and peak memory, as the kernel counts them.

GNU time (/usr/bin/time) runs the command and reports the kernel's account of
it, interpreter start-up included, the same way for every tool compared, so
no tool is measured by its own account of itself. It also keeps the peak
memory honest: a child forked straight from this (large) process would
start with this process's resident size as its peak.
"""

import os
import subprocess
import tempfile
import time
from typing import NamedTuple

TIME = "/usr/bin/time"


class Usage(NamedTuple):
    seconds: float
    cpu_seconds: float
    peak_memory_mb: float
    returncode: int
    stderr: str


def run(cmd: list[str], env: dict | None = None, cwd: str | None = None) -> Usage:
    """Run `cmd` to the end and measure it; its stdout is dropped, its stderr kept."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        started = time.monotonic()
        proc = subprocess.run([TIME, "-o", report.name, "-f", "%U %S %M", *cmd], env=env, cwd=cwd,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        seconds = time.monotonic() - started
        # time writes "Command exited with non-zero status N" first when the command fails.
        user, system, max_kb = report.read().split()[-3:]
    return Usage(round(seconds, 3), round(float(user) + float(system), 3), round(int(max_kb) / 1024, 1),
                 proc.returncode, proc.stderr.decode(errors="replace"))


def proc_cpu(pid: int, children: bool = False) -> float:
    """CPU seconds of a local process from /proc, or of its children it has reaped (`children`)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    i = 13 if children else 11  # utime, stime; cutime, cstime (stat fields 14..17)
    return (int(fields[i]) + int(fields[i + 1])) / os.sysconf("SC_CLK_TCK")


class DatabaseCpu:
    """The CPU the local PostgreSQL server spends for a job's connections.

    A backend's CPU lands in its postmaster's children's time once it exits and
    is reaped, so the difference over a job, after its backends are gone, is
    what the job cost the database (plus any other backend that ended meanwhile:
    keep the cluster otherwise idle while benchmarking). Gone means reaped, not
    only out of pg_stat_activity: a backend leaves that before it exits, and a
    large one (a 256x rawr job's) took long enough about it for its seconds to
    land in the next job's. So the postmaster's children are looked at in /proc:
    a backend of the database (its title names it), or a child exiting or not
    yet reaped.
    """

    def __init__(self, conn):
        with conn.cursor() as cur:
            cur.execute("SELECT pg_backend_pid()")
            self.own = cur.fetchone()[0]
            cur.execute("SELECT current_database()")
            self.title = f" {cur.fetchone()[0]} "  # in a backend's title: postgres: user database host ...
        with open(f"/proc/{self.own}/stat") as f:
            self.postmaster = int(f.read().rsplit(")", 1)[1].split()[1])

    def _settled(self) -> float:
        """The postmaster's children's CPU once no other backend of this database is there, nor a child
        that has exited unreaped (its CPU not yet counted)."""
        for _ in range(500):
            if not self._others():
                break
            time.sleep(0.02)
        return proc_cpu(self.postmaster, children=True)

    def _others(self) -> bool:
        """Whether a backend of the database besides this one is still a process, or a child not yet reaped."""
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    state, ppid = f.read().rsplit(")", 1)[1].split()[:2]
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:  # gone meanwhile
                continue
            # An exiting process has no command line left, then is a zombie until reaped.
            if int(ppid) == self.postmaster and int(pid) != self.own and (
                    state == "Z" or not cmdline.strip() or self.title in cmdline):
                return True
        return False

    def start(self) -> None:
        self.started = self._settled()

    def seconds(self) -> float:
        return round(self._settled() - self.started, 3)
