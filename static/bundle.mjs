// Copies the browser builds of our npm dependencies into static/dist/ (git-ignored), served by Django.
import { copyFileSync, mkdirSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";

const files = {
  "htmx.min.js": "htmx.org/dist/htmx.min.js",
  "uppy.min.js": "uppy/dist/uppy.min.js",
  "uppy.min.css": "uppy/dist/uppy.min.css",
  "chart.umd.min.js": "chart.js/dist/chart.umd.min.js",
};

const out = join(import.meta.dirname, "dist");
mkdirSync(out, { recursive: true });
for (const [name, source] of Object.entries(files)) {
  const from = join(import.meta.dirname, "..", "node_modules", source);
  if (!existsSync(from)) {
    console.error(`missing ${source}: run npm ci`);
    process.exit(1);
  }
  mkdirSync(dirname(join(out, name)), { recursive: true });
  copyFileSync(from, join(out, name));
}
console.log(`bundled ${Object.keys(files).length} files into static/dist/`);
