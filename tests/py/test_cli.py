"""The command's own help: its version, and a description for every subcommand and a line for every option."""

import argparse
import importlib.metadata

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
