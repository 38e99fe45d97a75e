import mercantile
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tilebatch import tiles
from tilebatch.tiles import Tile


@st.composite
def any_tile(draw, max_zoom=tiles.MAX_ZOOM):
    z = draw(st.integers(0, max_zoom))
    return Tile(draw(st.integers(0, (1 << z) - 1)), draw(st.integers(0, (1 << z) - 1)), z)


@given(any_tile())
def test_parse_and_format_round_trip(tile):
    assert tiles.parse_tile(tiles.format_tile(tile)) == tile


@given(any_tile())
def test_ancestor_agrees_with_mercantile(tile):
    expected = tile if tile.z <= 7 else mercantile.parent(tile, zoom=7)
    assert tiles.ancestor(tile) == expected


@given(any_tile(max_zoom=12), st.integers(0, 3))
def test_children_agree_with_mercantile(tile, depth):
    got = tiles.children(tile, tile.z + depth)
    assert set(got) == set(mercantile.children(tile, zoom=tile.z + depth)) if depth else got == [tile]
    assert len(got) == 4 ** depth


@given(any_tile(max_zoom=16))
def test_metatile_member_round_trip(tile):
    meta, member = tiles.metatile_of(tile)
    assert (tile, member) in tiles.metatile_members(meta)
    if tile.z >= 3:
        assert meta == mercantile.parent(tile, zoom=tile.z - 3)
        assert member.startswith("3/")


def test_metatile_zero_holds_zooms_0_to_3():
    members = tiles.metatile_members(Tile(0, 0, 0))
    assert len(members) == 1 + 4 + 16 + 64
    assert (Tile(1, 2, 2), "2/1/2.mvt") in members
    assert len(tiles.metatile_members(Tile(5, 9, 4))) == 64
    for meta in (Tile(0, 0, 0), Tile(1, 0, 1), Tile(5, 9, 4)):
        assert list(tiles.metatile_zooms(meta)) == sorted({t.z for t, _ in tiles.metatile_members(meta)})


@given(st.floats(-179, 179), st.floats(-80, 80), st.floats(0.001, 1), st.floats(0.001, 1), st.integers(0, 12))
def test_bbox_tiles_agree_with_mercantile(west, south, dx, dy, zoom):
    box = tiles.make_bbox(west, south, west + dx, south + dy)
    assert set(tiles.bbox_tiles(box, zoom)) == set(mercantile.tiles(*box, [zoom]))


def test_pyramid_counts():
    assert len(tiles.pyramid(0, 6)) == 5461
    assert len(tiles.pyramid(0, 7)) == 5461 + 16384
    assert tiles.pyramid(0, 1)[:2] == [Tile(0, 0, 0), Tile(0, 0, 1)]


@pytest.mark.parametrize("text, reason", [
    ("7/73", "expected z/x/y"),
    ("a/b/c", "expected z/x/y"),
    ("-1/0/0", "expected z/x/y"),
    ("21/0/0", "zoom 21 is above the maximum 20"),
    ("7/128/0", "x and y must be below 128"),
    ("7/0/128", "x and y must be below 128"),
])
def test_bad_tiles(text, reason):
    with pytest.raises(tiles.InvalidTile, match=reason):
        tiles.parse_tile(text)


@pytest.mark.parametrize("text, reason", [
    ("1,2,3", "expected four numbers"),
    ("a,b,c,d", "expected four numbers"),
    ("0,0,nan,1", "finite"),
    ("-181,0,1,1", "west -181.0 is outside"),
    ("0,-91,1,1", "south -91.0 is outside"),
    ("0,1,1,0", "south 1.0 must be less than north"),
    ("170,0,-170,1", "antimeridian"),
])
def test_bad_bboxes(text, reason):
    with pytest.raises(tiles.InvalidBbox, match=reason):
        tiles.parse_bbox(text)


def test_bad_input_is_a_value_error_with_exit_code_2():
    with pytest.raises(ValueError) as e:
        tiles.parse_tile("x")
    assert e.value.exit_code == 2
