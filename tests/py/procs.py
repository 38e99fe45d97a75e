"""The processes of the tests' own: waiting for them, finding them under a parent, telling them apart."""

import os
import time


def wait_for(what: str, probe, timeout: float = 60, every: float = 0.05):
    """probe()'s first truthy answer, asked `every` seconds; fails after `timeout` seconds of falsy ones."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        assert time.monotonic() < deadline, f"waited {timeout} s for {what}"
        time.sleep(every)


def children(pid: int) -> list[int]:
    """The live child processes of `pid`, as the kernel lists each of its threads' (cheap enough to ask
    every few milliseconds, which a scan of all of /proc is not); by that scan where the kernel keeps
    no such lists."""
    out = []
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for thread in threads:
        try:
            with open(f"/proc/{pid}/task/{thread}/children") as f:
                out += [int(child) for child in f.read().split()]
        except FileNotFoundError:
            return _children_by_scan(pid)
        except OSError:  # the thread has ended
            continue
    return [child for child in out if alive(child)]


def _children_by_scan(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                out.append(int(entry))
    return out


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline") as f:
            return f.read().replace("\0", " ")
    except OSError:
        return ""


def descendants(pid: int) -> list[int]:
    """The live processes under `pid`: its children, theirs, and so on."""
    out = children(pid)
    return out + [d for c in out for d in descendants(c)]
