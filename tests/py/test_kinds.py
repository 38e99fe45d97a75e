"""The job kinds live in kinds.py; the job definitions and images, one file each, agree with it."""

import json
import re

import pytest

from tilebatch import config
from tilebatch.kinds import KINDS, NAMES

from conftest import TOP


def test_one_job_definition_and_one_image_per_kind():
    assert sorted(p.stem for p in (TOP / "jobdefs").glob("*.json")) == sorted(NAMES)
    assert sorted(p.parent.name for p in (TOP / "docker").glob("*/Dockerfile")) == sorted(NAMES)


@pytest.mark.parametrize("kind", KINDS, ids=NAMES)
def test_the_job_definition_and_image_run_the_kinds_command(kind):
    # A template, not JSON until rendered; its command has no variables.
    template = (TOP / "jobdefs" / f"{kind.name}.json").read_text()
    command = json.loads(re.search(r'"command": (\[.*?\])', template).group(1))
    assert command[:2] == ["tilebatch", kind.command]
    cmd = re.search(r"^CMD (\[.*\])$", (TOP / "docker" / kind.name / "Dockerfile").read_text(), re.M).group(1)
    assert json.loads(cmd)[:2] == ["tilebatch", kind.command]
    assert callable(kind.work_function())


def test_zoom_ranges_follow_the_configuration():
    cfg = config.load(None, environ={"TILEQUEUE__batch__queue_zoom": "6", "TILEQUEUE__rawr__group_zoom": "9"})
    assert {k.name: (k.zoom_range(cfg)[0], k.zoom_range(cfg)[-1], k.pyramid) for k in KINDS} == {
        "rawr": (6, 6, False), "meta-high": (6, 9, False), "meta-low": (0, 6, True)}
