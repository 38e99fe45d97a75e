"""The command's own help: its version, and a description for every subcommand and a line for every option."""

import argparse
import importlib.metadata
import os
import subprocess
import sys

import pytest

import tilebatch
from tilebatch import cli

from conftest import run_cli


def parsers(parser, path=("tilebatch",)):
    """(command path, parser) for the command and every subcommand under it."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from parsers(sub, path + (name,))


def test_version_comes_from_one_place():
    proc = run_cli("--version")
    assert proc.returncode == 0
    assert proc.stdout == f"tilebatch {tilebatch.__version__}\n"
    assert importlib.metadata.version("tilebatch") == tilebatch.__version__


@pytest.mark.parametrize("path, parser", list(parsers(cli.build_parser())), ids=lambda v: " ".join(v)
                         if isinstance(v, tuple) else "")
def test_every_command_says_what_it_does_and_every_option_has_a_line(path, parser):
    assert parser.description, f"{' '.join(path)} --help has no description"
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            assert action.help, f"{' '.join(path)}: {action.option_strings or action.dest} has no help line"


def test_the_run_id_option_is_run_id_everywhere_and_run_id_with_an_underscore_too():
    spelt = {tuple(a.option_strings) for _, p in parsers(cli.build_parser()) for a in p._actions if a.dest == "run_id"}
    assert spelt == {("--run-id", "--run_id")}
    args = cli.build_parser().parse_args(["rawr-tile", "--tile", "7/0/0", "--run_id", "old-spelling"])
    assert args.run_id == "old-spelling"


def test_numpy_starts_no_threads_in_a_tilebatch_process():
    """OpenBLAS would start a thread per core at numpy's import, for nothing a job does (0.12 CPU-s a job)."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    threads = "int(open('/proc/self/status').read().split('Threads:')[1].split()[0])"
    count = lambda code: int(subprocess.run([sys.executable, "-c", f"{code}; print({threads})"], env=env,  # noqa: E731
                                            capture_output=True, text=True, check=True).stdout)
    assert count("import tilebatch.cli, numpy") == 1
    if (os.cpu_count() or 1) > 1:  # the test's own check that numpy alone would start them here
        assert count("import numpy") > 1


def test_each_command_is_added_by_the_module_it_is_listed_with():
    """A command builds the parser of its own module alone (cli.COMMANDS): each lists exactly what it adds."""
    def added(modules):
        parser = cli.build_parser(modules)
        [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        return set(sub.choices)

    jobs = added(cli.JOB_MODULES)
    for module in set(cli.COMMANDS.values()):
        assert added((module,)) == {c for c, m in cli.COMMANDS.items() if m == module}, module
    assert added(cli.COMMAND_MODULES) == set(cli.COMMANDS) | jobs


@pytest.mark.parametrize("modules, heavy", [
    # A job imports its own modules only; what jobs render with is theirs to import.
    ("JOB_MODULES", ("tqdm", "http.server", "pmtiles", "sqlite3", "mapbox_vector_tile")),
    # Every other command lists every subcommand: none of them may start numpy and shapely (a fifth of a
    # second, which a build's first jobs wait on) before the one command that needs them runs.
    ("COMMAND_MODULES", ("numpy", "shapely", "mapbox_vector_tile")),
])
def test_listing_the_commands_imports_nothing_heavy(modules, heavy):
    code = (f"import sys; from tilebatch import cli; cli.build_parser(cli.{modules}); "
            f"print(' '.join(m for m in {heavy!r} if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == ""
