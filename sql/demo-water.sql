-- The demo's sea and land in the four shapes of osmdata.openstreetmap.de's
-- files, from what bin/demo-water loaded into the schema tilebatch_demo_water:
--   ne_land  Natural Earth 1:10m land (EPSG:4326), for the whole world at z0..7;
--   seas     OSM-derived seas (EPSG:4326), for the tiles :x0..:x1, :y0..:y1 of
--            zoom :z (the tiles holding the data) at z8 and deeper.
-- Splitting along tile edges (z3 for the world, z:z for the data's tiles) keeps
-- each polygon small and puts every cut where a tile is cut anyway.
\set ON_ERROR_STOP on
set search_path = tilebatch_demo_water, public;
set client_min_messages = warning;

-- Only the invalid polygons are mended: mending all the land at once takes a minute.
create function pg_temp.mended(g geometry) returns geometry language sql immutable
  as $$ select case when st_isvalid(g) then g else st_makevalid(g) end $$;
-- The polygons of a shape on a centimetre grid: cutting along square edges
-- leaves slivers a few nanometres wide, which GEOS cannot clip later.
create function pg_temp.polygons(g geometry) returns setof geometry language sql immutable
  as $$ select geom from st_dump(st_reduceprecision(g, 0.01)) where st_geometrytype(geom) = 'ST_Polygon' $$;

-- Natural Earth's polygons are mended before they are cut (the cut of a
-- polygon touching itself can cover the world), and again after projecting.
-- The Pseudo-Mercator square ends at 85.0511 degrees north and south.
create table land as
select geom::geometry(Polygon, 3857) as geom
from (select (st_dump(pg_temp.mended(st_transform(st_clipbybox2d(geom,
        st_makeenvelope(-180, -85.0511287798, 180, 85.0511287798, 4326)), 3857)))).geom
      from (select (st_dump(pg_temp.mended(p))).geom
            from (select (st_dump(geom)).geom as p from ne_land) parts) mended
      where st_geometrytype(geom) = 'ST_Polygon') projected
where st_geometrytype(geom) = 'ST_Polygon';
create index on land using gist (geom);

create table simplified_land_polygons as
select row_number() over (order by st_xmin(geom), st_ymin(geom))::int as gid, geom
from (select pg_temp.polygons(geom)::geometry(Polygon, 3857) as geom from land) d;

create table simplified_water_polygons as
select row_number() over (order by x, y)::int as gid, geom::geometry(Polygon, 3857) as geom
from (select x, y, pg_temp.polygons(coalesce(st_difference(sq, (select st_union(st_clipbybox2d(l.geom, sq)) from land l where l.geom && sq)), sq)) as geom
      from (select x, y, st_tileenvelope(3, x, y) as sq from generate_series(0, 7) x, generate_series(0, 7) y) squares) d;

create table squares as
select x, y, st_tileenvelope(:z, x, y) as sq
from generate_series(:x0, :x1) x, generate_series(:y0, :y1) y;

create table sea as
select st_makevalid(st_transform(st_clipbybox2d(s.geom, st_transform(b.box, 4326)), 3857)) as geom
from seas s, (select st_setsrid(st_extent(sq)::geometry, 3857) as box from squares) b;

create table water_polygons as
select row_number() over (order by x, y)::int as gid, geom::geometry(Polygon, 3857) as geom
from (select x, y, pg_temp.polygons(st_intersection(sea.geom, sq)) as geom from sea, squares) d;

create table land_polygons as
select row_number() over (order by x, y)::int as gid, geom::geometry(Polygon, 3857) as geom
from (select x, y, pg_temp.polygons(coalesce(st_difference(sq, (select st_union(w.geom) from water_polygons w where w.geom && sq)), sq)) as geom
      from squares) d;
