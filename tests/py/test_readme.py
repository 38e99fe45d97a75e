"""README says what is so: the verbs as make lists them, one form of the command, paths that exist,
subcommands that exist, and the demo's zooms as a build makes them."""

import re
import subprocess

from tilebatch import cli, tileset
from tilebatch.store import open_store

from conftest import TOP

README = (TOP / "README.md").read_text()


def code() -> str:
    """Every code block and code span of the README."""
    return "\n".join(re.findall(r"```[a-z]*\n(.*?)```", README, re.S) + re.findall(r"`([^`\n]+)`", README))


def test_the_verbs_are_listed_as_make_help_lists_them():
    listed = re.search(r"`make` \(or `make help`\) lists them:\n\n```\n(.*?)```", README, re.S).group(1)
    assert listed == subprocess.run(["make", "--no-print-directory", "-C", str(TOP), "help"], capture_output=True,
                                    text=True, check=True).stdout


def test_the_command_has_one_form_and_the_readme_says_how_to_reach_it():
    assert 'export PATH="$PWD/.venv/bin:$PATH"' in README
    assert ".venv/bin/tilebatch" not in README


def test_every_subcommand_named_exists():
    named = set(re.findall(r"(?<![\w/-])tilebatch ([a-z][a-z-]*[a-z])", code())) - {"job", "jobs"}
    commands = cli.build_parser()._subparsers._group_actions[0].choices
    assert named and named <= set(commands), named - set(commands)


def test_every_path_named_in_the_repository_exists():
    tops = {p.name for p in TOP.iterdir() if not p.name.startswith(".")}
    paths = {t for t in re.findall(r"`([^`\s]+)`", README)
             if (t.split("/")[0] in tops or t.startswith("../")) and not re.search(r"[{*…]", t)}
    assert paths
    assert not [p for p in paths if not (TOP / p).exists()]


def test_the_demo_zooms_are_those_a_build_makes(built_store):
    root, _ = built_store
    store = open_store(f"file://{root}/out")
    built = tileset.describe(store, tileset.metatiles(store))
    said = re.search(r"make demo .*zooms (\d+)\.\.(\d+)", README)
    assert said and (int(said.group(1)), int(said.group(2))) == (built.minzoom, built.maxzoom)


def test_the_demo_extract_is_downloaded_not_bundled():
    helped = subprocess.run(["make", "--no-print-directory", "-C", str(TOP), "help"], capture_output=True,
                            text=True, check=True).stdout
    assert "bundled" not in README and "bundled" not in helped


def test_chromium_is_named_for_the_tests():
    said = [s for s in re.split(r"(?<=\.)\s", README) if "Chromium" in s]
    assert said and all("test" in s for s in said), said
