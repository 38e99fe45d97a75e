#!/usr/bin/env bats
# bin/load-water (make water) against a database of its own in the local
# cluster, with shapefiles made from the demo's (make test loads them first).

setup_file() {
  load helpers
  DB_NAME=tilebatch_water_test
  MAIN_URL=$("$TOP/bin/localdb" url)
  export DATABASE_URL=${MAIN_URL%/*}/$DB_NAME MAIN_URL DB_NAME
  psql "$MAIN_URL" -qX -c "drop database if exists $DB_NAME" -c "create database $DB_NAME"
  psql "$DATABASE_URL" -qX -c "create extension postgis"
  WATER_DIR=$(find "$TOP/.tilebatch/water" -mindepth 2 -maxdepth 2 -name water-polygons-split-3857 | head -n 1)
  [ -n "$WATER_DIR" ] || { echo "no demo water: run make water first" >&2; return 1; }
  export WATER_DIR
  # The same shapefile in other forms: zipped, reprojected, as points, empty.
  FILES=$BATS_FILE_TMPDIR
  (cd "$(dirname "$WATER_DIR")" && zip -qr "$FILES/water-polygons-split-3857.zip" water-polygons-split-3857)
  mkdir -p "$FILES/wgs84" "$FILES/points" "$FILES/empty"
  ogr2ogr -t_srs EPSG:4326 "$FILES/wgs84/water_polygons.shp" "$WATER_DIR/water_polygons.shp"
  ogr2ogr -dialect SQLite -sql "select ST_Centroid(geometry) from water_polygons" \
    "$FILES/points/water_polygons.shp" "$WATER_DIR/water_polygons.shp"
  ogr2ogr -where "gid < 0" "$FILES/empty/water_polygons.shp" "$WATER_DIR/water_polygons.shp"
  echo "not a shapefile" >"$FILES/notes.txt"
  echo "not a shapefile" >"$FILES/water_polygons.shp"
  (cd "$FILES" && zip -q notes.zip notes.txt)
}

teardown_file() {
  psql "$MAIN_URL" -qX -c "drop database if exists $DB_NAME"
}

setup() { load helpers; }

# What the table holds and where it came from, to compare before and after.
state() {
  psql "$DATABASE_URL" -qtAX -c "select count(*), sum(st_area(geom))::bigint from water_polygons" \
    -c "select file, sha256, loaded_at from tilebatch_water_load where table_name = 'water_polygons'"
}

@test "usage on no arguments" {
  run "$TOP/bin/load-water"
  assert_failure 2
  assert_output --partial "usage: bin/load-water FILE..."
}

@test "a folder loads into the table named by its shapefile, indexed and recorded" {
  run "$TOP/bin/load-water" "$WATER_DIR"
  assert_success
  assert_output --partial "water_polygons loaded"
  run psql "$DATABASE_URL" -qtAX -c "select find_srid('public', 'water_polygons', 'geom'), count(*) > 0 from water_polygons"
  assert_output "3857|t"
  run psql "$DATABASE_URL" -qtAX -c "select indexdef from pg_indexes where tablename = 'water_polygons' and indexdef like '%gist%'"
  assert_output --partial "USING gist (geom)"
  run psql "$DATABASE_URL" -qtAX -c "select file from tilebatch_water_load where table_name = 'water_polygons'"
  assert_output "$WATER_DIR"
}

@test "the same file again does nothing" {
  before=$(state)
  run "$TOP/bin/load-water" "$WATER_DIR"
  assert_success
  assert_output --partial "water_polygons already holds"
  refute_output --partial "loading"
  [ "$(state)" = "$before" ]
}

@test "a zip loads, and its checksum is recorded" {
  run "$TOP/bin/load-water" "$BATS_FILE_TMPDIR/water-polygons-split-3857.zip"
  assert_success
  run psql "$DATABASE_URL" -qtAX -c "select sha256 from tilebatch_water_load where table_name = 'water_polygons'"
  assert_output "$(sha256sum "$BATS_FILE_TMPDIR/water-polygons-split-3857.zip" | cut -d' ' -f1)"
}

@test "make water WATER=<not a shapefile> exits 2 and leaves the table as it was" {
  before=$(state)
  run make -C "$TOP" --no-print-directory water WATER="$BATS_FILE_TMPDIR/notes.txt"
  assert_failure
  assert_output --partial "notes.txt: not a shapefile"
  run "$TOP/bin/load-water" "$BATS_FILE_TMPDIR/notes.txt"
  assert_failure 2
  [ "$(state)" = "$before" ]
}

@test "a wrong file exits 2 naming what is wrong, and leaves the table as it was" {
  before=$(state)
  for case in "wgs84:its projection is WGS 84, expected EPSG:3857" "points:its geometry is Point, expected polygons" \
              "empty:it holds no features" "notes.zip:not a zip holding a shapefile" \
              "water_polygons.shp:cannot read it as a shapefile" "missing.zip:no such file"; do
    run "$TOP/bin/load-water" "$BATS_FILE_TMPDIR/${case%%:*}"
    assert_failure 2
    assert_output --partial "${case#*:}"
  done
  mkdir -p "$BATS_FILE_TMPDIR/other" && cp "$WATER_DIR"/water_polygons.* "$BATS_FILE_TMPDIR/other/"
  for f in "$BATS_FILE_TMPDIR"/other/water_polygons.*; do mv "$f" "${f/water_polygons/coast}"; done
  run "$TOP/bin/load-water" "$BATS_FILE_TMPDIR/other"
  assert_failure 2
  assert_output --partial "its shapefile is coast.shp; expected one of water_polygons"
  [ "$(state)" = "$before" ]
}

@test "an unreachable database exits 1" {
  DATABASE_URL=postgresql://postgres@127.0.0.1:$(free_port)/gis run "$TOP/bin/load-water" "$WATER_DIR"
  assert_failure 1
  assert_output --partial "cannot connect to the database"
}
