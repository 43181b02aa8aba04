/**
 * Loads hatsim's library API (the ESM build in dist/) into a tslab notebook.
 *
 * Why this file: tslab compiles every cell to CommonJS and runs it with
 * vm.runInThisContext, so in a cell
 *   - `import * as hs from '../dist/src/index.js'` becomes require(), and
 *     require() of hatsim's ESM graph fails (ERR_REQUIRE_ASYNC_MODULE: the
 *     graph has a module with top-level await);
 *   - `await import('../dist/src/index.js')` fails too (tslab's type check
 *     rejects files outside the notebook folder, and a vm script has no
 *     dynamic-import callback: ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING).
 * A real CommonJS file loaded with require() can call import(), so cells do
 *   const nb = require('./hatsim.cjs');
 *   const hs = await nb.hatsim();      // src/index.ts, the library API
 * Run `npm run build` first (the notebooks use dist/, not the TypeScript sources).
 */
'use strict';
const { existsSync } = require('node:fs');
const { join } = require('node:path');
const { pathToFileURL } = require('node:url');

/** The repository root (the folder above notebooks/). */
const root = join(__dirname, '..');

function load(rel) {
  const file = join(root, 'dist', 'src', rel);
  if (!existsSync(file)) {
    return Promise.reject(new Error(`${file} is missing: run \`npm ci && npm run build\` in ${root} first`));
  }
  return import(pathToFileURL(file).href);
}

const esc = (v) => String(v).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Formats a number for a table: integers as they are, else `digits` significant-ish decimals. */
function fmt(v, digits = 2) {
  if (typeof v !== 'number') return v === undefined || v === null ? '' : String(v);
  if (!Number.isFinite(v)) return String(v);
  if (Number.isInteger(v)) return String(v);
  return Math.abs(v) >= 1000 ? v.toFixed(0) : v.toFixed(digits);
}

/**
 * An HTML table of an array of row objects (tslab.display.html(htmlTable(rows))).
 * columns: which keys, in order (default: the keys of the first row).
 */
function htmlTable(rows, columns, digits = 2) {
  const cols = columns ?? (rows.length ? Object.keys(rows[0]) : []);
  const head = cols.map((c) => `<th>${esc(c)}</th>`).join('');
  const body = rows.map((r) => '<tr>' + cols.map((c) => {
    const v = r[c];
    return `<td style="text-align:${typeof v === 'number' ? 'right' : 'left'}">${esc(fmt(v, digits))}</td>`;
  }).join('') + '</tr>').join('\n');
  return `<table><thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table>`;
}

module.exports = {
  fmt,
  htmlTable,
  root,
  /** hatsim's library API (src/index.ts). */
  hatsim: () => load('index.js'),
  /** The plot library (src/plot/index.ts): specToSvg, figures.*, on top of what index.js exports. */
  plot: () => load('plot/index.js'),
};
