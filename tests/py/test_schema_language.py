"""The schema language's loader: what a broken file says, and a user's own schema end to end."""

import textwrap

import pytest

from tilebatch import classify
from tilebatch import schema as schemas

from conftest import build_env, last_error, run_cli

GOOD = """\
name: mine
max_zoom: 12
tables:
  point: {name: planet_osm_point}
layers:
  cafes:
    properties: {name: name}
    rules:
      - {table: point, where: {amenity: cafe}, kind: cafe, min_zoom: 10}
"""


def write(tmp_path, text: str) -> str:
    path = tmp_path / "schema.yaml"
    path.write_text(textwrap.dedent(text))
    return str(path)


@pytest.mark.parametrize("text, line, says", [
    (GOOD.replace("max_zoom: 12", "max_zoom: 20"), 2, "max_zoom: expected a zoom in 3..16"),
    (GOOD.replace("kind: cafe, ", "kind: cafe, colour: red, "), 9, "unknown keys ['colour']"),
    (GOOD.replace("table: point", "table: points"), 9, "table must be one of ['point']"),
    (GOOD.replace("min_zoom: 10", "min_zoom: ten"), 9, "min_zoom: expected a constant or a mapping"),
    (GOOD.replace("{name: name}", "{name: {tag: name, type: colour}}"), 7, "type: expected one of"),
    (GOOD.replace("where: {amenity: cafe}, ", ""), 9, "needs a where"),
    (GOOD.replace("  cafes:", "  cafes: [\n"), 9, "not valid YAML"),
    (GOOD + "  cafes:\n    rules: []\n", 10, "duplicate key 'cafes'"),
    (GOOD.replace("{name: name}", "{name: name, rank: {tag: rank, at_least: 3}}"), 7, "at_least: expected a list"),
])
def test_a_broken_schema_names_file_line_and_problem(tmp_path, text, line, says):
    path = write(tmp_path, text)
    with pytest.raises(schemas.SchemaError) as e:
        schemas.load(path)
    assert str(e.value).startswith(f"{path}:{line}")
    assert says in str(e.value)
    assert e.value.exit_code == 2


def test_an_unknown_builtin_name_lists_the_builtin_ones():
    with pytest.raises(schemas.SchemaError, match="built in: shortbread, tilezen"):
        schemas.schema_path("openmaptiles")


def test_yes_and_no_are_words():
    schema = schemas.load(schemas.schema_path("shortbread"))
    [match] = classify.classify(schema, "line", {"waterway": "stream", "tunnel": "no", "covered": "yes"})
    assert match.props["tunnel"] is True


def test_a_job_with_a_broken_schema_stops_with_exit_2(tmp_path):
    path = write(tmp_path, GOOD.replace("min_zoom: 10", "min_zoom: -1"))
    proc = run_cli("meta-tile-low-zoom", "--config", "config.yaml", "--tile", "0/0/0", "--run-id", "broken",
                   env={**build_env(tmp_path), "TILEQUEUE__schema__name": path})
    assert proc.returncode == 2
    assert last_error(proc).startswith(f"{path}:9: layers.cafes.rules[0].min_zoom: expected a zoom")
    assert "Traceback" not in proc.stderr


def test_a_users_own_schema_builds(db_url, tmp_path):
    path = write(tmp_path, GOOD)
    env = {**build_env(tmp_path), "TILEQUEUE__schema__name": path}
    proc = run_cli("build", "--config", "config.yaml", "--run-id", "mine", env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    zips = sorted(p.relative_to(tmp_path / "out") for p in (tmp_path / "out").rglob("*.zip") if "runs" not in p.parts)
    assert zips and max(int(p.parts[0]) for p in zips) == 9  # max zoom 12: metatiles down to z9


@pytest.mark.parametrize("text, value", [
    ("12", 12.0), ("007", 7.0), ("0", 0.0), (str(2 ** 53), float(2 ** 53)), (str(2 ** 53 + 2), None),
    ("12 m", 12.0), (" 12", 12.0), ("-3", -3.0), ("1.5e+06", 1500000.0), ("\u0663", 3.0), ("\u00b2", None),
    ("", None), ("yes", None)])
def test_numbers_in_tags(text, value):
    # Plain digits take a shorter way than the pattern; both read the same number.
    assert classify.number(text) == value
    m = classify._NUMBER.match(text)
    assert value == (float(m.group(1)) if m and abs(float(m.group(1))) <= 2 ** 53 else None)
