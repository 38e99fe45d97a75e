"""Which of a local build's jobs may start now, and in what order: no I/O, the runner asks.

A build's jobs form a small graph. A job of a kind with inputs (kinds.py:
meta-high reads the RAWR tiles rawr writes) starts once every job of that kind
over its area is done, and never if one of them failed; a job cut into parts
(split.py) runs once its parts are done, over what they left, and never if one
failed. So a meta-high part starts as soon as the rawr part under it is done,
and meta-low, which reads only the database, runs beside rawr and meta-high on
the workers they leave idle instead of after them.

Free workers take what may start in the order of the build's critical path:
the kinds in their order (rawr, then meta-high, whose chain is the longest),
within a kind its parts, then its jobs, in the order given. A job cut into
parts comes after the next kind's: it does what its parts left, little, and
the next kind's job over its tile waits for that kind's parts as well, which
take longer (at 16x, rawr's z7 job would hold up meta-high's largest part).
Last come the groups of jobs one process runs (split.cut: a box's small
low-zoom meta-low jobs, with its queue-zoom one when that is not cut), to
fill the gaps the others leave.
"""

import heapq
from collections import Counter, defaultdict
from typing import NamedTuple

from .kinds import BY_NAME, NAMES
from .tiles import Tile, ancestor


class Task(NamedTuple):
    kind: str
    tile: Tile
    parts: tuple = ()     # a job's parts, done before it (its --after-parts): not its area
    part: bool = False    # a part of a job, not a job
    more: tuple = ()      # jobs the same process does after this one (split.cut: meta-low, which has no inputs)


def _within(tile: Tile, area: Tile) -> bool:
    return tile.z >= area.z and ancestor(tile, area.z) == area


def overlap(a: Task, b: Task) -> bool:
    """Whether the areas of two tasks meet: a task's area is its tile less its parts'."""
    for outer, inner in ((a, b), (b, a)):
        if _within(inner.tile, outer.tile):
            return not any(_within(inner.tile, p) for p in outer.parts)
    return False


class Schedule:
    """A build's tasks: `take(n)` starts up to n of those that may start, `finished()` hears how each ended."""

    def __init__(self, todo: dict[str, list[Tile]], parts: dict[str, dict[Tile, list[Tile]]],
                 done: dict[str, set[Tile]] | None = None, together: dict[str, list[list[Tile]]] | None = None):
        """`todo`: each kind's jobs to run; `parts`: each kind's {job: its parts} (split.py), but those in
        `done` (by kind) done already; `together`: each kind's groups of jobs in `todo` run by one process,
        after its other jobs."""
        tasks, left, last = [], [], []  # left: the kind before's jobs cut into parts; last: the groups
        for kind in NAMES:
            cut, skip = parts.get(kind, {}), (done or {}).get(kind, set())
            groups = (together or {}).get(kind, [])
            grouped = {t for g in groups for t in g}
            jobs = [Task(kind, t, tuple(cut.get(t, ()))) for t in todo.get(kind, []) if t not in grouped]
            tasks += [Task(kind, p, part=True) for ps in cut.values() for p in ps if p not in skip]
            tasks += [t for t in jobs if not t.parts] + left
            left = [t for t in jobs if t.parts]
            last += [Task(kind, g[0], more=tuple(g[1:])) for g in groups]
        tasks += left + last
        self._rank = {t: i for i, t in enumerate(tasks)}  # the order to start them in
        self._needs = {t: set() for t in tasks}           # unfinished tasks each one waits for
        self._needed_by = defaultdict(list)
        for t in tasks:
            self._wait(t, [p for p in (Task(t.kind, p, part=True) for p in t.parts) if p in self._rank])
        self._wait_for_inputs(tasks)
        self._ready = [self._rank[t] for t in tasks if not self._needs[t]]
        heapq.heapify(self._ready)
        self._unfinished = Counter(t.kind for t in tasks)
        self._tasks = tasks
        self.failed_kinds: set[str] = set()  # kinds with a task that failed or will never run

    def _wait(self, task: Task, inputs: list[Task]) -> None:
        for i in inputs:
            self._needs[task].add(i)
            self._needed_by[i].append(task)

    def _wait_for_inputs(self, tasks: list[Task]) -> None:
        """Each task of a kind with inputs waits for the tasks of that kind over its area. Only tasks
        under one tile at the coarsest zoom either kind has can meet: looked for there alone."""
        linked = {k for k in NAMES if BY_NAME[k].after} | {BY_NAME[k].after for k in NAMES}
        zooms = [t.tile.z for t in tasks if t.kind in linked]
        if not zooms:
            return
        top, under = min(zooms), defaultdict(list)
        for t in tasks:
            if t.kind in linked:
                under[(t.kind, ancestor(t.tile, top))].append(t)
        for t in tasks:
            after = BY_NAME[t.kind].after
            if after:
                self._wait(t, [i for i in under[(after, ancestor(t.tile, top))] if overlap(i, t)])

    def take(self, n: int) -> list[Task]:
        """Up to `n` tasks that may start now, first the first to start, counted as running."""
        return [self._tasks[heapq.heappop(self._ready)] for _ in range(min(n, len(self._ready)))]

    def finished(self, task: Task, ok: bool) -> list[Task]:
        """Note that `task` ended; the tasks that now never run (what waited for it, in turn, if it failed)."""
        self._unfinished[task.kind] -= 1
        del self._needs[task]
        if ok:
            for t in self._needed_by.pop(task, ()):
                if t not in self._needs:  # dropped: another of its inputs failed
                    continue
                self._needs[t].discard(task)
                if not self._needs[t]:
                    heapq.heappush(self._ready, self._rank[t])
            return []
        self.failed_kinds.add(task.kind)
        lost, dropped = list(self._needed_by.pop(task, ())), []
        while lost:
            t = lost.pop()
            if t in self._needs:  # not dropped already
                del self._needs[t]
                self._unfinished[t.kind] -= 1
                self.failed_kinds.add(t.kind)
                dropped.append(t)
                lost += self._needed_by.pop(t, ())
        return dropped

    def __len__(self) -> int:
        return sum(self._unfinished.values())

    def size(self, kind: str) -> dict:
        """The jobs of `kind` (and parts, if any) not yet finished, for the log."""
        left = [t for t in self._tasks if t.kind == kind and t in self._needs]
        parts = sum(t.part for t in left)
        return {"jobs": sum(1 + len(t.more) for t in left) - parts, **({"parts": parts} if parts else {})}

    def kind_done(self, kind: str) -> bool:
        """Whether no task of `kind` is left to start or running."""
        return not self._unfinished[kind]
