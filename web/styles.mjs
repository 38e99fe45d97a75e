// The public MapLibre styles a schema is drawn with, exactly as their npm packages make them.
//
//   node web/styles.mjs NAME     prints the style NAME as JSON
//
// Nothing here adapts a style to tilebatch: the preview server points it at its own tiles
// (py/tilebatch/style.py), and the coverage tool (style-coverage.mjs) reads its filters as is.
import { osm } from "@versatiles/style";
import { layers, namedFlavor } from "@protomaps/basemaps";
import { pathToFileURL } from "node:url";

// Protomaps publishes layers, not a whole style: this is the style its own generator writes
// (src/generate_style.ts in the package), with the glyphs and sprite of its published styles.
function protomaps(flavor) {
  return {
    version: 8,
    sources: {
      protomaps: {
        type: "vector",
        attribution: '<a href="https://github.com/protomaps/basemaps">Protomaps</a> © ' +
          '<a href="https://osm.org/copyright">OpenStreetMap</a>',
        url: "https://example.invalid/tilejson.json",
      },
    },
    layers: layers("protomaps", namedFlavor(flavor), { lang: "en" }),
    glyphs: "https://protomaps.github.io/basemaps-assets/fonts/{fontstack}/{range}.pbf",
    sprite: `https://protomaps.github.io/basemaps-assets/sprites/v4/${flavor}`,
  };
}

// Name: the style. The schema each one reads is said where they are used (style.py).
export const STYLES = {
  "versatiles-colorful": () => osm({ theme: "colorful" }),
  "protomaps-light": () => protomaps("light"),
};

export function publicStyle(name) {
  const make = STYLES[name];
  if (!make) throw new RangeError(`no public style ${JSON.stringify(name)}: expected one of ${Object.keys(STYLES).join(", ")}`);
  return make();
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const name = process.argv[2];
  if (process.argv.length !== 3 || !(name in STYLES)) {
    console.error(`usage: node web/styles.mjs NAME   (NAME: ${Object.keys(STYLES).join(", ")})`);
    process.exit(2);
  }
  process.stdout.write(JSON.stringify(publicStyle(name)));
}
