// How much of a public map style a set of tiles can feed: which style layers would draw something.
//
//   node web/style-coverage.mjs --style NAME|style.json [--missing] TILES.mbtiles
//
// prints `style layers drawing: H/T`, T being the style's source-bound layers; --missing first
// lists the layers that draw nothing (id, type, source-layer, zooms, filter), one a line.
//
// A layer draws when some feature of its source-layer, in a tile of zoom z, passes the layer's
// filter at zoom z, z within the layer's zoom range, with a geometry the layer type can draw.
// The filters are evaluated by MapLibre's own code (featureFilter of its style spec) on the
// features as MapLibre decodes them; the zoom range is MapLibre's too (a tile of zoom z feeds a
// layer when floor(minzoom) <= z < maxzoom). Tiles of the top zoom count at every zoom above
// it, as a map overzooms them. Geometries: fill and fill-extrusion draw polygons, line draws
// lines and polygons (their outlines), heatmap points, circle and symbol anything, except a
// symbol placed along lines, which MapLibre draws on lines and polygon outlines only.
import fs from "node:fs";
import zlib from "node:zlib";
import { featureFilter } from "@maplibre/maplibre-gl-style-spec";
import { VectorTile } from "@mapbox/vector-tile";
import { PbfReader } from "pbf";
import initSqlJs from "sql.js";
import { STYLES, publicStyle } from "./styles.mjs";

const USAGE = "usage: node web/style-coverage.mjs --style NAME|style.json [--missing] TILES.mbtiles" +
  `   (NAME: ${Object.keys(STYLES).join(", ")})`;
const MAX_ZOOM = 24; // the style spec's highest zoom
const POINT = 1, LINE = 2, POLYGON = 3;
const DRAWABLE = {
  fill: [POLYGON],
  "fill-extrusion": [POLYGON],
  line: [LINE, POLYGON],
  heatmap: [POINT],
  circle: [POINT, LINE, POLYGON],
  symbol: [POINT, LINE, POLYGON],
};
const ALONG_LINES = ["line", "line-center"];

class BadInput extends Error {}

function parseArgs(argv) {
  const args = { missing: false };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--style" && i + 1 < argv.length) args.style = argv[++i];
    else if (argv[i] === "--missing") args.missing = true;
    else if (!argv[i].startsWith("-") && !args.tiles) args.tiles = argv[i];
    else throw new BadInput(USAGE);
  }
  if (!args.style || !args.tiles) throw new BadInput(USAGE);
  return args;
}

function loadStyle(spec) {
  if (spec in STYLES) return publicStyle(spec);
  let text;
  try {
    text = fs.readFileSync(spec, "utf8");
  } catch (e) {
    throw new BadInput(`cannot read the style ${spec}: ${e.code ?? e.message} (or name one of ${Object.keys(STYLES).join(", ")})`);
  }
  try {
    const style = JSON.parse(text);
    if (!Array.isArray(style.layers)) throw new Error("it has no layers");
    return style;
  } catch (e) {
    throw new BadInput(`${spec} is not a MapLibre style: ${e.message}`);
  }
}

// The style layers that read a source, each with its compiled filter.
function styleLayers(style) {
  const state = Object.fromEntries(Object.entries(style.state ?? {}).map(([k, v]) => [k, v.default]));
  return style.layers.map((layer, i) => layer.source && {
    id: layer.id,
    type: layer.type,
    sourceLayer: layer["source-layer"],
    minzoom: layer.minzoom ?? 0,
    maxzoom: layer.maxzoom ?? MAX_ZOOM + 1,
    filter: layer.filter,
    geometries: ALONG_LINES.includes(layer.layout?.["symbol-placement"]) ? [LINE, POLYGON] : DRAWABLE[layer.type] ?? [],
    compiled: compile(layer, i, state),
    draws: false,
  }).filter(Boolean);
}

function compile(layer, i, state) {
  try {
    return featureFilter(layer.filter, `layers[${i}].filter`, state);
  } catch (e) {
    throw new BadInput(`style layer ${JSON.stringify(layer.id)}: bad filter: ${e.message}`);
  }
}

// The zooms a layer is drawn at from a tile of zoom z, the top zoom being `top`.
function zooms(layer, z, top) {
  const out = [];
  for (let zoom = z; zoom <= (z === top ? MAX_ZOOM : z); zoom++) {
    if (zoom >= Math.floor(layer.minzoom) && zoom < layer.maxzoom) out.push(zoom);
  }
  return out;
}

function decode(bytes) {
  return new VectorTile(new PbfReader(bytes[0] === 0x1f && bytes[1] === 0x8b ? zlib.gunzipSync(bytes) : bytes));
}

// Marks each layer some feature of this tile draws.
function visit(layers, tile, { z, x, y }, top) {
  for (const layer of layers) {
    if (layer.draws || !layer.sourceLayer || !(layer.sourceLayer in tile.layers)) continue;
    const at = zooms(layer, z, top);
    if (!at.length) continue;
    const source = tile.layers[layer.sourceLayer];
    for (let i = 0; i < source.length && !layer.draws; i++) {
      const f = source.feature(i);
      if (!layer.geometries.includes(f.type)) continue;
      // As MapLibre's worker hands a feature to a filter: geometry only when the filter needs it.
      const feature = { type: f.type, id: f.id, properties: f.properties,
        geometry: layer.compiled.needGeometry ? f.loadGeometry() : [] };
      layer.draws = at.some((zoom) => layer.compiled.filter({ zoom }, feature, { z, x, y }));
    }
  }
}

async function readMBTiles(path) {
  let data;
  try {
    data = fs.readFileSync(path);
  } catch (e) {
    throw new BadInput(`cannot read ${path}: ${e.code ?? e.message}`);
  }
  const SQL = await initSqlJs();
  const db = new SQL.Database(data);
  try {
    const meta = Object.fromEntries(db.exec("SELECT name, value FROM metadata")[0]?.values ?? []);
    const rows = db.exec("SELECT zoom_level, tile_column, tile_row, tile_data FROM tiles")[0]?.values ?? [];
    const tiles = rows.map(([z, x, row, bytes]) => ({ z, x, y: (1 << z) - 1 - row, bytes }));
    return { maxzoom: meta.maxzoom !== undefined ? Number(meta.maxzoom) : Math.max(...tiles.map((t) => t.z)), tiles };
  } catch (e) {
    throw new BadInput(`${path} is not an MBTiles file: ${e.message}`);
  } finally {
    db.close();
  }
}

function summary(layer) {
  const zoomRange = `z${layer.minzoom}-${layer.maxzoom > MAX_ZOOM ? "" : layer.maxzoom}`;
  return [layer.id, layer.type, layer.sourceLayer ?? "-", zoomRange, JSON.stringify(layer.filter ?? null)].join("\t");
}

async function main(argv) {
  const args = parseArgs(argv);
  const layers = styleLayers(loadStyle(args.style));
  const { maxzoom, tiles } = await readMBTiles(args.tiles);
  for (const t of tiles) {
    try {
      visit(layers, decode(t.bytes), t, maxzoom); // the tile is read as it is visited
    } catch (e) {
      throw new BadInput(`tile ${t.z}/${t.x}/${t.y} in ${args.tiles} is not a vector tile: ${e.message}`);
    }
  }
  if (args.missing) for (const layer of layers.filter((l) => !l.draws)) console.log(summary(layer));
  console.log(`style layers drawing: ${layers.filter((l) => l.draws).length}/${layers.length}`);
}

main(process.argv.slice(2)).catch((e) => {
  console.error(`style-coverage: ${e instanceof BadInput ? e.message : `unexpected error: ${e?.message ?? e}`}`);
  process.exit(e instanceof BadInput ? 2 : 1);
});
