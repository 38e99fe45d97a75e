"""Evidence that the kernel killed a process for memory: its cgroup's OOM-kill count.

A job that dies of SIGKILL may have run out of memory, or an operator may have
killed it; only the kernel's count of OOM kills in the cgroup (cgroup v2
`memory.events`, v1 `memory.oom_control`) tells them apart. Jobs run in the
runner's cgroup, so the runner reads the count before and after each job.
"""

import os

CGROUP_ROOT = "/sys/fs/cgroup"


def memory_cgroup_files(proc_cgroup: str, root: str = CGROUP_ROOT) -> list[str]:
    """The files that may hold the OOM-kill count of the cgroup that `/proc/self/cgroup` text names."""
    out = []
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        path = path.lstrip("/")
        if controllers == "":  # cgroup v2: one unified hierarchy
            out += [os.path.join(root, path, "memory.events"), os.path.join(root, "unified", path, "memory.events")]
        elif "memory" in controllers.split(","):
            out.append(os.path.join(root, "memory", path, "memory.oom_control"))
    return out


def parse_oom_kills(text: str) -> int | None:
    """The `oom_kill N` count of a memory.events or memory.oom_control file."""
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == "oom_kill" and value.strip().isdigit():
            return int(value)
    return None


def oom_kills() -> int | None:
    """How many processes the kernel has killed for memory in this process's cgroup; None if it does not say."""
    try:
        with open("/proc/self/cgroup") as f:
            files = memory_cgroup_files(f.read())
    except OSError:
        return None
    total = None
    for path in files:
        try:
            with open(path) as f:
                count = parse_oom_kills(f.read())
        except OSError:
            continue
        if count is not None:
            total = (total or 0) + count
    return total
