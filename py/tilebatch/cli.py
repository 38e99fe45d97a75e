"""The `tilebatch` command: one subcommand per verb, errors as one log line and an exit code.

Exit codes: 0 done; 1 failed, a retry may help; 2 bad input or configuration;
130 interrupted, 141 standard output closed, 143 terminated (SIGTERM). Whatever goes wrong is said in one
JSON log line at level error, a bug included: never a traceback on stderr.
Each command module adds its own subcommands (`add_commands`), each bound to a
function `(args, cfg) -> exit code`.
"""

import argparse
import os
import signal
import sys

import yaml

from . import __version__, config, faults, log
from .errors import Terminated, TilebatchError
from .kinds import KINDS

# A job renders in one thread. numpy's OpenBLAS would start a thread per core
# when it is imported, for linear algebra no job does: 0.12 CPU-seconds of every
# job process on two cores, more on a Batch host with many (numpy reads this
# once, at import, so it is set before any module imports numpy).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

# The jobs' module: a run starts thousands of jobs, so a job imports only it
# (what the other commands need, tqdm, http.server, pmtiles, ..., is a quarter of a
# job process's start-up).
JOB_MODULES = ("tilebatch.jobs",)
# The module that adds each other subcommand, in the order `--help` lists them. A
# command imports only its own (`build` starts its job server 25 ms sooner: the
# others' imports were a third of its start); `--help` or an unknown one, them all.
COMMANDS = {
    "config": "tilebatch.cli",
    "load": "tilebatch.load", "zoom-indexes": "tilebatch.load", "loaded": "tilebatch.load",
    "build": "tilebatch.local",
    "tile": "tilebatch.decode",
    "rebuild": "tilebatch.rebuild",
    "status": "tilebatch.status", "missing": "tilebatch.status",
    "serve": "tilebatch.serve",
    "export": "tilebatch.export",
    "batch-enqueue": "tilebatch.batch",
    "plan": "tilebatch.plan",
}
COMMAND_MODULES = tuple(dict.fromkeys(["tilebatch.cli", *JOB_MODULES, *COMMANDS.values()]))


def _config_show(args, cfg) -> int:
    yaml.safe_dump(config.masked(cfg), sys.stdout, sort_keys=False, default_flow_style=False)
    return 0


def _config_get(args, cfg) -> int:
    value = config.get(cfg, args.key)
    if isinstance(value, dict):
        yaml.safe_dump(config.masked(value), sys.stdout, sort_keys=False)
    else:
        for item in value if isinstance(value, list) else [value]:
            print("" if item is None else item)
    return 0


def add_commands(sub, common) -> None:
    cfg_cmd = sub.add_parser("config", parents=[common], help="print the effective configuration",
                             description="Print the effective configuration: built-in defaults, then the "
                                         "config file, then TILEQUEUE__section__key overrides.")
    cfg_sub = cfg_cmd.add_subparsers(dest="action", required=True, metavar="ACTION")
    cfg_sub.add_parser("show", parents=[common], help="the whole configuration, secrets masked",
                       description="Print the whole configuration as YAML, secrets masked.") \
        .set_defaults(func=_config_show)
    get = cfg_sub.add_parser("get", parents=[common], help="one value by dotted key, e.g. postgresql.port",
                             description="Print one value by its dotted key; a list one item a line.")
    get.add_argument("key", help="the dotted key, e.g. postgresql.port (- and _ alike)")
    get.set_defaults(func=_config_get)


def build_parser(modules: tuple = COMMAND_MODULES) -> argparse.ArgumentParser:
    """The parser of the subcommands `modules` add (default: every one)."""
    import importlib

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=argparse.SUPPRESS,
                        help="config.yaml to read (default: built-in defaults)")
    parser = argparse.ArgumentParser(prog="tilebatch", description=__doc__.splitlines()[0], parents=[common])
    parser.add_argument("--version", action="version", version=f"tilebatch {__version__}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in modules:
        importlib.import_module(name).add_commands(sub, common)
    return parser


def subcommand(argv: list[str]) -> str | None:
    """The subcommand argv names: its first word that is neither an option nor --config's value."""
    words = iter(argv)
    for word in words:
        if word == "--config":
            next(words, None)
        elif not word.startswith("-"):
            return word
    return None


SIGPIPE_EXIT = 128 + signal.SIGPIPE


def _terminate(signum, frame):
    raise Terminated()


def main(argv=None) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    argv = sys.argv[1:] if argv is None else list(argv)
    command = subcommand(argv)
    modules = (JOB_MODULES if command in {k.command for k in KINDS} else
               (COMMANDS[command],) if command in COMMANDS else COMMAND_MODULES)
    try:
        # Building the parser imports the command's modules (numpy, shapely: a good part
        # of a second), so a SIGTERM may well land there: it is answered like any other.
        args = build_parser(modules).parse_args(argv)
        cfg = config.load(getattr(args, "config", None))
        return args.func(args, cfg)
    except TilebatchError as e:
        log.error(str(e), exit_code=e.exit_code)
        return e.exit_code
    except Terminated:
        log.error("terminated", exit_code=143)
        return 143
    except KeyboardInterrupt:
        log.error("interrupted", exit_code=130)
        return 130
    except BrokenPipeError:
        # The reader went away (`tilebatch batch-enqueue … | head`): the command stopped
        # part way, so it fails as a shell's pipeline sees a writer killed by SIGPIPE.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        log.error("standard output closed by its reader: stopped part way", exit_code=SIGPIPE_EXIT)
        return SIGPIPE_EXIT
    except MemoryError:
        log.error("out of memory", exit_code=1)
        return 1
    except OSError as e:
        error = faults.os_error(" ".join([type(e).__name__, *(str(f) for f in (e.filename, e.filename2) if f)]), e)
        log.error(str(error), exit_code=error.exit_code, traceback=faults.one_line_traceback(e))
        return error.exit_code
    except Exception as e:  # a bug: said in one line, so that the log filter for errors finds it
        log.error("unexpected error", error_type=type(e).__name__, error=faults.first_line(e),
                  traceback=faults.one_line_traceback(e), exit_code=1)
        return 1


if __name__ == "__main__":
    sys.exit(main())
