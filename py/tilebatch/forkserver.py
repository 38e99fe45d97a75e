"""Job processes forked from one that has imported the jobs' code already.

Starting Python and importing numpy, shapely and the job modules costs a job
process about 0.2 CPU-seconds: more than most of a small build's jobs work.
`tilebatch build` starts this server as it starts; each job is then a fork
of it that runs the very command line a Batch job runs (`cli.main`), shown
as that command line in ps. The server also loads the build's schema and
compiles its rules, which each job would otherwise do again (schema.load
keeps it, and checks that the file is unchanged). It loads kind by kind, and
forks a job as soon as its kind is loaded: a build's first jobs, rawr's, need
neither numpy nor shapely, and start while those load.

A forked job is run as a spawned one would be: in a session and process group
of its own, its stderr to the runner, SIGTERM from the kernel when the server
dies (and the server ends when the runner's end of its socket closes, however
the runner dies), its exit status handed back (negative: the signal that
ended it).

The runner sends the job's command line as JSON over a Unix socket with two
file descriptors, the job's stderr and a status pipe. The server writes the
job's pid to the status pipe once it is forked, then its exit status, and
closes it; a status pipe closed without one means the server died and took
the job with it. What the server itself says (an error that ended it: a job
module that would not import) goes to the runner, which names it in the
ServerGone of the jobs it could not run.
"""

import ctypes
import gc
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import setproctitle

from . import log

_PR_SET_PDEATHSIG = 1  # prctl(2)
_MESSAGE_BYTES = 1 << 16  # a request's most: a job's command line
# It ends without the interpreter's teardown, its last words flushed: the runner waits for
# its end (close), and freeing what it loaded (numpy, shapely, the schema) took 9 ms.
_SERVER_MAIN = ("import os, sys; del sys.path[0]; from tilebatch import forkserver; "
                "code = forkserver.main(int(sys.argv[1]), *sys.argv[2:]); sys.stderr.flush(); os._exit(code)")
_GONE_WAIT = 5  # seconds to wait for a server whose socket failed to end, so that its last words can be read
TITLE = "tilebatch job server"  # what ps shows of it
LOST_CODE = -signal.SIGKILL  # the exit status of a job whose server died: it was killed, not failed


def _die_with_parent(sig: int) -> None:
    """Have the kernel send `sig` when this process's parent dies (what setpriv --pdeathsig does)."""
    if ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")


class ServerGone(ChildProcessError):
    """The server is not there to fork a job: it died, or failed as it started."""


class Job:
    """A job forked by the server, as `subprocess.Popen` shows a process: its pid, and `communicate()`,
    which reads what it writes to stderr and then its exit status; `poll()` and `wait()`, from any
    thread, hear of its end from that."""

    def __init__(self, stderr: int, status: int):
        self._stderr, self._status, self._unread = stderr, status, b""
        self.returncode: int | None = None
        self._ended = threading.Event()
        line = self._read_status()
        if line is None or not line.isdigit():
            os.close(self._status)
            os.close(self._stderr)
            if line is None:
                raise ServerGone("the job server is gone")
            raise ChildProcessError(f"the job server could not fork the job: {line}")
        self.pid = int(line)

    def _read_status(self) -> str | None:
        """The next line of the status pipe (the pid and the exit status may come in one read); None
        when it closed without one."""
        while b"\n" not in self._unread:
            chunk = os.read(self._status, 64)
            if not chunk:
                return None
            self._unread += chunk
        line, self._unread = self._unread.split(b"\n", 1)
        return line.decode()

    def poll(self) -> int | None:
        return self.returncode if self._ended.is_set() else None

    def wait(self, timeout: float | None = None) -> int:
        if not self._ended.wait(timeout):
            raise subprocess.TimeoutExpired(f"job {self.pid}", timeout)
        return self.returncode

    def communicate(self) -> tuple[None, str]:
        """(None, the job's stderr), once it has ended."""
        with os.fdopen(self._stderr, "rb") as f:
            stderr = f.read()
        line = self._read_status()
        os.close(self._status)
        self.returncode = LOST_CODE if line is None else int(line)
        self._ended.set()
        return None, stderr.decode(errors="replace")


class Server:
    """The runner's side: `start(cmd)` forks a job running `cmd` (a `tilebatch` command line); `close()`
    ends the server and reaps it, so that the CPU time of the jobs it reaped is counted as the runner's
    children's (a job still running then gets SIGTERM, as when the runner dies: the server's end of the
    socket hears the runner's close, however it comes)."""

    def __init__(self, config_path: str | None = None):
        """A server for the jobs of the configuration at `config_path` (None: the default one)."""
        self._sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            # Its own session: a terminal's Ctrl-C is the runner's to answer. Not `-m`, which would
            # put the working directory first on the jobs' import path, as a `tilebatch` command does not.
            # Its stderr is read once it has ended (`_gone`): it writes only the error that ends it.
            self._proc = subprocess.Popen(
                [sys.executable, "-c", _SERVER_MAIN, str(theirs.fileno()), *([config_path] if config_path else [])],
                pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE, start_new_session=True)
        except OSError as e:  # out of memory or processes: its jobs fail, a retry may help
            self._sock.close()
            raise ServerGone(f"the job server cannot start: {e.strerror}") from None
        finally:
            theirs.close()
        self.why: str | None = None  # once gone: why (its last error, or the signal that killed it)
        self._lock = threading.Lock()  # the runner's threads start jobs on one server

    @property
    def gone(self) -> bool:
        """Whether it has been found gone: it starts no job from then on."""
        return self.why is not None

    def start(self, cmd: list[str]) -> Job:
        """The job `cmd`, forked; ServerGone (and `gone` from then on) when the server is not there,
        saying why it ended."""
        if self.gone:
            raise self._gone()
        stderr_r, stderr_w = os.pipe()
        status_r, status_w = os.pipe()
        try:
            socket.send_fds(self._sock, [json.dumps(cmd).encode()], [stderr_w, status_w])
        except OSError:
            for fd in (stderr_r, status_r):
                os.close(fd)
            raise self._gone() from None
        finally:
            os.close(stderr_w)
            os.close(status_w)
        try:
            return Job(stderr_r, status_r)
        except ServerGone:
            raise self._gone() from None

    def _gone(self) -> ServerGone:
        """The server has ended (or is ending): ServerGone saying why, found out once (`why`)."""
        with self._lock:
            if self.why is None:
                self.why = self._cause()
        return ServerGone(f"the job server is gone ({self.why})")

    def _cause(self) -> str:
        """How the server ended: the signal that killed it, or its exit code; and the last error it logged."""
        try:
            code = self._proc.wait(_GONE_WAIT)
        except subprocess.TimeoutExpired:
            return "it does not answer"
        how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
        errors = [entry for entry in map(log.parse, self._drain().splitlines()) if entry and entry.get("level") == "error"]
        if not errors:
            return how
        said = f"{errors[-1]['msg']}: {errors[-1]['error']}" if "error" in errors[-1] else errors[-1]["msg"]
        return said if code > 0 else f"{how}: {said}"

    def _drain(self) -> str:
        """What the server wrote to its stderr, once it has ended (a job it forked may still hold the pipe
        for a moment: what is there is read, without waiting for more)."""
        if self._proc.stderr.closed:
            return ""
        os.set_blocking(self._proc.stderr.fileno(), False)
        try:
            return (self._proc.stderr.read() or b"").decode(errors="replace")
        except OSError:
            return ""

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def alive(self) -> bool:
        return self._proc.poll() is None

    def close(self) -> None:
        with self._lock:
            self._sock.close()
            if self._proc.stderr.closed:
                self._proc.wait()
            else:
                self._proc.communicate()  # its stderr read to the end: it cannot block on a full pipe


def _preload(config_path: str | None = None) -> Iterator[set]:
    """Load what jobs load, kind by kind in the order a build starts them (kinds.KINDS), with the schema
    each job loads and then its rules compiled; yields the commands whose jobs may be forked after each
    step. A build's first jobs (rawr: neither numpy nor shapely) start while the rest loads.

    What is loaded is frozen out of the collector's sight (jobs.run_job freezes
    the rest): the forks share these pages instead of copying them as the
    collector touches them."""
    from . import classify, cli, kinds

    cli.build_parser(cli.JOB_MODULES)
    schema = _load_schema(config_path)
    for kind in kinds.KINDS:
        kind.work_function()
        _freeze()
        yield {kind.command}
    if schema is not None:
        for table in schema.tables:
            classify.table_rules(schema, table)
        _freeze()


def _freeze() -> None:
    gc.collect()
    gc.freeze()


def _load_schema(config_path: str | None):
    """The schema of the jobs' configuration, which each job would load (10 ms); None when the configuration
    or the schema does not load, which each job then reports as it would without the server."""
    from . import config
    from .errors import TilebatchError
    from .schema import load_schema

    try:
        return load_schema(config.load(config_path))
    except TilebatchError:
        return None


def _run_job(message: bytes, server: int) -> int:
    """In the forked child, its stdio the job's: become the job `message` asks for, and run it."""
    _die_with_parent(signal.SIGTERM)
    if os.getppid() != server:  # it died before the kernel was told: as if its SIGTERM had come
        return 128 + signal.SIGTERM
    cmd = json.loads(message)
    setproctitle.setproctitle(" ".join(cmd))
    setproctitle.setthreadtitle(os.path.basename(cmd[0]))  # ps's short name, as if cmd[0] had been run
    from . import cli

    return cli.main(cmd[1:])


def _close_inherited() -> None:
    """Close what the fork inherited above stdio: the server's socket, its pipes (the end of the one it
    waits on tells it the pid may be told), other jobs' pipes, which a job must not hold open. Those
    listed in /proc, not every number up to the limit: without close_range(2) (an older kernel, a
    seccomp filter) that would be a million close() calls a job."""
    for fd in map(int, os.listdir("/proc/self/fd")):
        if fd > 2:
            try:
                os.close(fd)
            except OSError:  # the listing's own descriptor, closed already
                pass


def _child(message: bytes, stderr: int, server: int) -> None:
    """The forked child: in a session of its own before the server tells its pid (it waits for the
    child's end of a pipe to close), its stdio the job's, then the job; never back into the server's loop."""
    code = 1
    try:
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd, to in ((devnull, 0), (devnull, 1), (stderr, 2)):
            os.dup2(fd, to)
        _close_inherited()
        code = _run_job(message, server)
    except SystemExit as e:  # as a fresh process ends on it (argparse's --help, --version, a bad option)
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException as e:  # before cli.main could catch it: still one line
        log.error("the job could not start", error=f"{type(e).__name__}: {e}")
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _report(status: int, what, last: bool = False) -> None:
    """A line to a job's status pipe, then closed if `last`; none if the runner no longer reads it."""
    try:
        os.write(status, f"{what}\n".encode())
    except BrokenPipeError:
        pass
    if last:
        os.close(status)


def _fork(message: bytes, fds: list[int], selector, server: int) -> None:
    """Fork the job `message` asks for, report its pid, and watch for its end."""
    stderr, status = fds
    started, started_w = os.pipe()
    try:
        pid = os.fork()
    except OSError as e:  # out of memory or processes: the job fails, a retry may help
        for fd in (stderr, started, started_w):
            os.close(fd)
        _report(status, e.strerror, last=True)
        return
    if pid == 0:
        _child(message, stderr, server)
    for fd in (stderr, started_w):
        os.close(fd)
    os.read(started, 1)  # the end of file once the child has its own session
    os.close(started)
    _report(status, pid)
    selector.register(os.pidfd_open(pid), selectors.EVENT_READ, (pid, status))


def serve(sock: socket.socket, loading: Iterator[set]) -> None:
    """Fork a job for each request on `sock` and report its pid and exit status; return when the runner
    closes its end.

    `loading` (_preload) is taken a step at a time whenever no request waits; until it is done, a
    request for a command no step has yet made ready is held, and forked once one has.
    """
    from .cli import subcommand

    server = os.getpid()
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ)
    ready, held = set(), []

    def take(message: bytes, fds: list[int]) -> None:
        if loading is None or subcommand(json.loads(message)[1:]) in ready:
            _fork(message, fds, selector, server)
        else:
            held.append((message, fds))

    while True:
        events = selector.select(None if loading is None else 0)
        if not events and loading is not None:
            step = next(loading, None)
            if step is None:
                loading = None
            else:
                ready |= step
            waiting, held = held, []
            for request in waiting:
                take(*request)
            continue
        for key, _ in events:
            if key.fileobj is sock:
                message, fds, _, _ = socket.recv_fds(sock, _MESSAGE_BYTES, 2)
                if not message:
                    return
                take(message, fds)
            else:
                pid, status = key.data
                selector.unregister(key.fileobj)
                os.close(key.fileobj)
                _, wait_status = os.waitpid(pid, 0)
                _report(status, os.waitstatus_to_exitcode(wait_status), last=True)


def main(fd: int, config_path: str | None = None) -> int:
    setproctitle.setproctitle(TITLE)
    try:
        serve(socket.socket(fileno=fd), _preload(config_path))
    except Exception as e:  # one error line, never a traceback; the runner sees its jobs killed
        log.error("the job server failed", error=f"{type(e).__name__}: {e}")
        return 1
    return 0

