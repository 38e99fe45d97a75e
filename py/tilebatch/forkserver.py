"""Job processes forked from one that has imported the jobs' code already.

Starting Python and importing numpy, shapely and the job modules costs a job
process about 0.2 CPU-seconds: more than most of a small build's jobs work.
`tilebatch build` starts this server once; each of its jobs is then a fork of
it that runs the very command line a Batch job runs (`cli.main`), shown as
that command line in ps.

A forked job is run as a spawned one would be: in its own process group, its
stderr to the runner, SIGTERM from the kernel when the server dies (and the
server dies with the runner, however it dies), its exit status handed back
(negative: the signal that ended it).

The runner sends the job's command line as JSON over a Unix socket with two
file descriptors, the job's stderr and a status pipe. The server writes the
job's pid to the status pipe once it is forked, then its exit status, and
closes it; a status pipe closed without one means the server died and took
the job with it.
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

import setproctitle

from . import log

_PR_SET_PDEATHSIG = 1  # prctl(2)
_MESSAGE_BYTES = 1 << 16  # a request's most: a job's command line
LOST_CODE = -signal.SIGKILL  # the exit status of a job whose server died: it was killed, not failed


def _die_with_parent(sig: int) -> None:
    """Have the kernel send `sig` when this process's parent dies (what setpriv --pdeathsig does)."""
    if ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")


class Job:
    """A job forked by the server, as `subprocess.Popen` shows a process: its pid, and `communicate()`,
    which reads what it writes to stderr and then its exit status; `poll()` and `wait()`, from any
    thread, hear of its end from that."""

    def __init__(self, stderr: int, status: int):
        self._stderr, self._status = stderr, status
        self.returncode: int | None = None
        self._ended = threading.Event()
        line = self._read_status()
        if not (line or "").strip().isdigit():
            os.close(self._status)
            os.close(self._stderr)
            raise ChildProcessError("the job server is gone" if line is None
                                    else f"the job server could not fork the job: {line.strip()}")
        self.pid = int(line)

    def _read_status(self) -> str | None:
        """The next line of the status pipe; None when it closed without one."""
        data = b""
        while not data.endswith(b"\n"):
            chunk = os.read(self._status, 64)
            if not chunk:
                return None
            data += chunk
        return data.decode()

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
    ends the server (jobs still running get SIGTERM) and reaps it, so that its jobs' CPU time is counted
    as the runner's children's."""

    def __init__(self):
        self._sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._proc = subprocess.Popen(
                ["setpriv", "--pdeathsig", "TERM", "--", sys.executable, "-m", __name__, str(theirs.fileno())],
                pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        finally:
            theirs.close()

    def start(self, cmd: list[str]) -> Job:
        stderr_r, stderr_w = os.pipe()
        status_r, status_w = os.pipe()
        try:
            socket.send_fds(self._sock, [json.dumps(cmd).encode()], [stderr_w, status_w])
        except OSError:
            for fd in (stderr_r, status_r):
                os.close(fd)
            raise ChildProcessError("the job server is gone") from None
        finally:
            os.close(stderr_w)
            os.close(status_w)
        return Job(stderr_r, status_r)

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def alive(self) -> bool:
        return self._proc.poll() is None

    def close(self) -> None:
        self._sock.close()
        self._proc.wait()


def _preload() -> None:
    """Import what every job imports, and freeze it out of the collector's sight (jobs.run_job freezes
    the rest): the forks share these pages instead of copying them as the collector touches them."""
    from . import cli, kinds

    cli.build_parser(cli.JOB_MODULES)
    for kind in kinds.KINDS:
        kind.work_function()
    gc.collect()
    gc.freeze()


def _run_job(cmd: list[str], stderr: int, server: int) -> int:
    """In the forked child: become the job `cmd` would start, and run it."""
    os.setsid()
    _die_with_parent(signal.SIGTERM)
    if os.getppid() != server:  # it died before the kernel was told: as if its SIGTERM had come
        return 128 + signal.SIGTERM
    setproctitle.setproctitle(" ".join(cmd))
    setproctitle.setthreadtitle(os.path.basename(cmd[0]))  # ps's short name, as if cmd[0] had been run
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd, to in ((devnull, 0), (devnull, 1), (stderr, 2)):
        os.dup2(fd, to)
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))  # the server's socket, other jobs' pipes
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from . import cli

    return cli.main(cmd[1:])


def _report(status: int, what, last: bool = False) -> None:
    """A line to a job's status pipe, then closed if `last`; none if the runner no longer reads it."""
    try:
        os.write(status, f"{what}\n".encode())
    except BrokenPipeError:
        pass
    if last:
        os.close(status)


def serve(sock: socket.socket) -> None:
    """Fork a job for each request on `sock` and report its pid and exit status; return when the runner
    closes its end."""
    server = os.getpid()
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ)
    while True:
        for key, _ in selector.select():
            if key.fileobj is sock:
                message, fds, _, _ = socket.recv_fds(sock, _MESSAGE_BYTES, 2)
                if not message:
                    return
                stderr, status = fds
                try:
                    pid = os.fork()
                except OSError as e:  # out of memory or processes: the job fails, a retry may help
                    os.close(stderr)
                    _report(status, e.strerror, last=True)
                    continue
                if pid == 0:
                    code = 1
                    try:
                        code = _run_job(json.loads(message), stderr, server)
                    except BaseException as e:  # before cli.main could catch it: still one line
                        log.error("the job could not start", error=f"{type(e).__name__}: {e}")
                    finally:
                        sys.stdout.flush()
                        sys.stderr.flush()
                        os._exit(code)
                os.close(stderr)
                _report(status, pid)
                selector.register(os.pidfd_open(pid), selectors.EVENT_READ, (pid, status))
            else:
                pid, status = key.data
                selector.unregister(key.fileobj)
                os.close(key.fileobj)
                _, wait_status = os.waitpid(pid, 0)
                _report(status, os.waitstatus_to_exitcode(wait_status), last=True)


def main(fd: int) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is the runner's to answer
    try:
        _preload()
        serve(socket.socket(fileno=fd))
    except Exception as e:  # one error line, never a traceback; the runner sees its jobs killed
        log.error("the job server failed", error=f"{type(e).__name__}: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1])))
