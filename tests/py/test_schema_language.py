"""The schema language's loader: what a broken file says, and a user's own schema end to end."""

import textwrap

import pytest

from tilebatch import classify, rulecode
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


def point_layers(tmp_path, layers: str) -> schemas.Schema:
    """A schema (max zoom 14) of osm2pgsql's points alone and these layers (YAML, as under `layers:`)."""
    head = "name: deeper\nmax_zoom: 14\ntables:\n  point: {name: planet_osm_point}\nlayers:\n"
    return schemas.load(write(tmp_path, head + textwrap.indent(textwrap.dedent(layers), "  ")))


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
    (GOOD.replace("min_zoom: 10", "min_zoom: {feature: id}"), 9, "min_zoom.feature: a min zoom cannot read"),
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
    ("12 m", 12.0), (" 12", 12.0), ("-3", -3.0), ("1.5e+06", 1500000.0), ("\u0663", None), ("\u00b2", None),
    ("\u00a012", None), ("\t12", 12.0), ("12.5", 12.5), ("12.5m", 12.5), ("12 m ", 12.0), ("-3 m", -3.0),
    # Not one number: no number, rather than the one it starts with.
    ("1,234,567", None), ("12 345", None), ("1,5", None), ("12;15", None), ("40 ft", None), ("12 mm", None),
    ("12\u00a0", None), ("+4", None), ("~100", None),
    ("", None), ("yes", None)])
def test_numbers_in_tags(text, value):
    # Plain digits take a shorter way than the pattern; both read the same number.
    assert rulecode.number(text) == value
    m = rulecode._NUMBER.match(text)
    assert value == (float(m.group(1)) if m and abs(float(m.group(1))) <= 2 ** 53 else None)


EVERY_FORM = """\
name: forms
max_zoom: 14
tables:
  point: {name: planet_osm_point}
layers:
  things:
    properties:
      name: {tag: [name, "name:en"]}
      lit: {any: {lit: true, street_lamp: yes}}
      open: {all: {access: {not: [no, private]}, disused: false}, only_true: true}
      hectares: {area: ha}
      shown_from: {feature: min_zoom}
      osm_id: {feature: id}
      "name:*": {prefix: "name:"}
      height: {tag: height, type: float}
      levels: {tag: levels, type: int, default: {const: 1}}
      roofed: {tag: covered, type: bool}
      size: {tag: size, values: {big: 3, small: 1}, default: 2}
      rank: {tag: population, at_least: [[1000, 2], [10, 1]], default: 0}
      ref: {tag: ref, replace: {";": "/"}}
      refs: {tag: ref, split: ";", take: count, values: {"1": one, "2": two}}
      longest: {tag: ref, split: ";", take: longest, at_least: [[3, long]]}
      flag: {const: "yes", type: bool}
      cuisine: {tag: cuisine, when: {amenity: [cafe, restaurant]}, default: {const: none}}
      detail: {tag: detail, min_zoom: 12}
    rules:
      - table: point
        where: {amenity: true}
        kind: {tag: amenity, values: {cafe: coffee}, default: {tag: amenity}}
        min_zoom: {tag: rank, values: {high: 3}, default: 10}
        properties:
          name: {tag: official_name, when: {official: yes}}
"""


@pytest.mark.parametrize("tags, props, zooms", [
    ({"amenity": "cafe", "name:en": "Cup", "name:fi": "Kuppi", "lit": "no", "street_lamp": "yes",
      "access": "yes", "height": "4.5 m", "levels": "x", "covered": "true", "size": "big", "population": "500",
      "ref": "A;BCD", "cuisine": "coffee_shop", "detail": "d", "rank": "high", "way_area": "25000"},
     {"kind": "coffee", "lit": True, "open": True, "hectares": 2.5, "shown_from": 3, "osm_id": 7,
      "name:en": "Cup", "name:fi": "Kuppi", "height": 4.5, "levels": 1, "roofed": True, "size": 3, "rank": 1,
      "ref": "A/BCD", "refs": "two", "longest": "long", "flag": True, "cuisine": "coffee_shop", "detail": "d"},
     {"detail": 12}),
    ({"amenity": "bench", "name": "Penkki", "lit": "no", "access": "private", "levels": "3.7", "covered": "maybe",
      "size": "huge", "population": "2e3", "ref": "12", "official": "yes", "official_name": "Virallinen"},
     {"kind": "bench", "name": "Virallinen", "lit": False, "shown_from": 10, "osm_id": 7, "levels": 3, "size": 2,
      "rank": 2, "ref": "12", "refs": "one", "flag": True},
     None),
    ({"amenity": "restaurant", "name": "Ravintola", "official": "no", "disused": "yes", "population": "many"},
     {"kind": "restaurant", "lit": False, "shown_from": 10, "osm_id": 7, "levels": 1, "size": 2, "rank": 0,
      "flag": True, "cuisine": "none"},
     None),
])
def test_every_form_of_value(tmp_path, tags, props, zooms):
    """Each form and option of a property (docs/SCHEMAS.md): values, their types and their order (the order
    tiles write them in). A rule's property of the same name replaces the layer's in its place, and takes it
    back when it has no value."""
    schema = schemas.load(write(tmp_path, EVERY_FORM))
    [match] = classify.classify(schema, "point", tags, 7)
    assert [(k, v, type(v)) for k, v in match.props.items()] == [(k, v, type(v)) for k, v in props.items()]
    assert match.zooms == zooms


def test_the_tags_a_table_reads_are_every_form_of_values(tmp_path):
    """What a RAWR tile keeps of a row's tags: those of tests, values, defaults and `when`s, a prefix whole."""
    schema = schemas.load(write(tmp_path, EVERY_FORM))
    assert schemas.tags_read(schema, "point") == (frozenset({
        "amenity", "name", "name:en", "lit", "street_lamp", "access", "disused", "way_area", "height", "levels",
        "covered", "size", "population", "ref", "cuisine", "detail", "rank", "official", "official_name"}), ("name:",))


def test_properties_that_appear_deeper_than_the_tiles_made_are_not_made(tmp_path):
    """As in a tile above their zoom: absent, the layer's property of the same name taken back with the
    rule's; but one the layer sorts by is made at every zoom, since it orders the features above it too."""
    schema = point_layers(tmp_path, """\
        things:
          sort: [-rank]
          properties:
            name: {tag: name}
            rank: {tag: population, type: int, min_zoom: 13}
            detail: {tag: detail, min_zoom: 12}
          rules:
            - table: point
              where: {amenity: true}
              min_zoom: 5
              properties:
                name: {tag: official_name, min_zoom: 11}
        """)
    tags = {"amenity": "cafe", "name": "Kuppi", "official_name": "Virallinen", "population": "7", "detail": "d"}
    [every] = classify.classify(schema, "point", tags, 1)
    assert every.props == {"name": "Virallinen", "rank": 7, "detail": "d"}
    assert every.zooms == {"name": 11, "rank": 13, "detail": 12}
    [at_10] = classify.classify(schema, "point", tags, 1, last_zoom=10)
    assert at_10.props == {"rank": 7}
    [at_11] = classify.classify(schema, "point", tags, 1, last_zoom=11)
    assert at_11.props == {"name": "Virallinen", "rank": 7}


def test_matches_that_appear_deeper_than_the_tiles_made_are_not_made_yet_still_count_for_unless(tmp_path):
    """A row's match in a layer it enters only deeper than the last zoom made is left out (no tile holds it),
    while a layer whose `unless` names that layer still leaves the row out, as it does at every zoom."""
    schema = point_layers(tmp_path, """\
        labels:
          rules:
            - {table: point, where: {amenity: true}, min_zoom: 13}
        dots:
          unless: [labels]
          rules:
            - {table: point, where: {amenity: true}, min_zoom: 5}
        places:
          rules:
            - {table: point, where: {place: true}, min_zoom: 13}
            - {table: point, where: {amenity: true}, min_zoom: 3}
        """)
    layers = lambda tags, last: [(schema.layers[m.layer].name, m.min_zoom)  # noqa: E731
                                 for m in classify.classify(schema, "point", tags, 1, last_zoom=last)]
    cafe = {"amenity": "cafe"}
    assert layers(cafe, 14) == [("labels", 13), ("places", 3)]
    assert layers(cafe, 12) == [("places", 3)]  # no label, and still no dot
    assert layers({"place": "town", "amenity": "cafe"}, 12) == []  # the place's rule wins, deeper
