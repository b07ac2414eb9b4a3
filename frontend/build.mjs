// Bundles every frontend/assets/*.js and *.css (with what they import from node_modules)
// into frontend/static/frontend/dist/, where Django's static files find them.
// `npm run build` once; `npm run watch` rebuilds on change while developing.
import { readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const assets = join(here, "assets");
const entryPoints = readdirSync(assets)
  .filter((name) => /\.(js|css)$/.test(name))
  .map((name) => join(assets, name));

const options = {
  entryPoints,
  outdir: join(here, "static", "frontend", "dist"),
  bundle: true,
  minify: true,
  sourcemap: true,
  format: "esm",
  target: ["es2020", "chrome100", "firefox100", "safari15"],
  // Fonts and images that CSS refers to are copied beside the bundle, never fetched from a CDN.
  loader: { ".woff": "file", ".woff2": "file", ".svg": "file", ".png": "file" },
  logLevel: "info",
};

if (process.argv.includes("--watch")) {
  const context = await esbuild.context(options);
  await context.watch();
} else {
  await esbuild.build(options);
}
