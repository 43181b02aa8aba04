/**
 * Self-contained HTML report: tables plus interactive charts that work
 * offline. Specs are compiled to vega in Node, so the page only needs vega's
 * runtime, which is inlined from node_modules/vega/build/vega.min.js (no CDN,
 * no external URL; the only URL-like strings left are the SVG/XLink/XMLNS
 * namespace names inside the vega bundle, which are identifiers, not loads).
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import type { FigurePlan, Table } from './plan.js';
import { compileSpec } from './render.js';

let vegaBundle: string | undefined;

/** Path of vega's browser bundle (UMD, defines window.vega). */
export function vegaBundlePath(): string {
  const candidates: string[] = [];
  try {
    const req = createRequire(import.meta.url);
    candidates.push(join(dirname(req.resolve('vega')), 'vega.min.js'));
  } catch {
    // fall through to the directory walk below
  }
  for (let d = resolve(process.cwd()); ; d = dirname(d)) {
    candidates.push(join(d, 'node_modules', 'vega', 'build', 'vega.min.js'));
    if (dirname(d) === d) break;
  }
  const found = candidates.find((c) => existsSync(c));
  if (!found) throw new Error(`vega browser bundle not found (looked at ${candidates.slice(0, 3).join(', ')})`);
  return found;
}

function loadVegaBundle(): string {
  if (vegaBundle === undefined) {
    const js = readFileSync(vegaBundlePath(), 'utf8');
    if (/<\/script|<!--/i.test(js)) throw new Error('vega bundle contains "</script" or "<!--" and cannot be inlined safely');
    vegaBundle = js.replace(/\n\/\/# sourceMappingURL=.*$/m, '');
  }
  return vegaBundle;
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/**
 * JSON safe inside <script type="application/json">: no "</", and "://" written
 * as ":\/\/" (same JSON value) so user data cannot form a URL in the page text.
 */
function scriptJson(v: unknown): string {
  return JSON.stringify(v).replace(/<\//g, '<\\/').replace(/<!--/g, '<\\u0021--').replace(/:\/\//g, ':\\/\\/');
}

function fmtCell(v: string | number): string {
  if (typeof v === 'number') {
    if (Number.isInteger(v)) return v.toLocaleString('en-US');
    const a = Math.abs(v);
    return a >= 100 ? v.toFixed(1) : a >= 1 ? v.toFixed(2) : v.toPrecision(3);
  }
  return v;
}

function tableHtml(t: Table): string {
  const maxRows = 500;
  const rows = t.rows.slice(0, maxRows);
  const head = t.columns.map((c) => `<th>${escapeHtml(c)}</th>`).join('');
  const body = rows
    .map((r) => `<tr>${r.map((v) => `<td class="${typeof v === 'number' ? 'num' : ''}">${escapeHtml(fmtCell(v))}</td>`).join('')}</tr>`)
    .join('\n');
  const more = t.rows.length > maxRows ? `<p class="note">${t.rows.length - maxRows} more rows not shown.</p>` : '';
  return `<section id="table-${escapeHtml(t.id)}"><h3>${escapeHtml(t.title)}</h3><div class="scroll"><table><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table></div>${more}</section>`;
}

function runMetaHtml(run: Record<string, unknown> | undefined): string {
  if (!run) return '<p class="note">No run.json found.</p>';
  const scenario = (run.scenario ?? {}) as Record<string, unknown>;
  const items: [string, unknown][] = [
    ['scenario', scenario.name],
    ['model', scenario.model],
    ['seed', run.seed],
    ['hatsim version', run.version],
    ['wall time (ms)', run.wallMs],
    ['events', run.eventCount],
  ];
  const dl = items
    .filter(([, v]) => v !== undefined && v !== null)
    .map(([k, v]) => `<dt>${escapeHtml(k)}</dt><dd>${escapeHtml(typeof v === 'number' ? v.toLocaleString('en-US') : String(v))}</dd>`)
    .join('');
  const prov = run.latency ?? run.latencyProvenance ?? run.provenance;
  const provHtml = prov !== undefined
    ? `<details><summary>Latency provenance</summary><pre>${escapeHtml(JSON.stringify(prov, null, 2))}</pre></details>`
    : '';
  const scen = run.scenario !== undefined
    ? `<details><summary>Resolved scenario</summary><pre>${escapeHtml(JSON.stringify(run.scenario, null, 2))}</pre></details>`
    : '';
  return `<dl class="meta">${dl}</dl>${provHtml}${scen}`;
}

const CSS = `
body{font-family:"DejaVu Sans","Liberation Sans",Arial,Helvetica,sans-serif;margin:0 auto;max-width:1200px;padding:16px 24px;color:#222;line-height:1.4}
h1{font-size:26px;margin:8px 0}h2{font-size:21px;margin-top:32px;border-bottom:1px solid #ddd;padding-bottom:4px}h3{font-size:17px}
table{border-collapse:collapse;font-size:13px}th,td{border:1px solid #ddd;padding:3px 8px}th{background:#f4f4f4;text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}
.scroll{overflow-x:auto}.note{color:#555;font-size:13px}figure{margin:20px 0 32px}figcaption{font-size:14px;color:#333;margin-bottom:6px}
.chart{overflow-x:auto}.tools button{font-size:12px;margin-right:6px}
dl.meta{display:grid;grid-template-columns:max-content auto;gap:2px 16px;font-size:14px}dl.meta dt{font-weight:bold}dl.meta dd{margin:0}
nav ul{columns:2;font-size:14px}pre{font-size:12px;background:#f7f7f7;padding:8px;overflow-x:auto}
.vg-tooltip{position:fixed;background:#fff;border:1px solid #999;padding:4px 6px;font-size:12px;pointer-events:none;white-space:pre;z-index:10}`;

const PAGE_JS = `
(function(){
  var specs = JSON.parse(document.getElementById('hatsim-specs').textContent);
  var tip = document.createElement('div'); tip.className='vg-tooltip'; tip.style.display='none'; document.body.appendChild(tip);
  function tooltip(handler, event, item, value){
    if (value == null || value === '') { tip.style.display='none'; return; }
    var text = typeof value === 'object' ? Object.keys(value).map(function(k){return k+': '+value[k];}).join('\\n') : String(value);
    tip.textContent = text; tip.style.display='block';
    tip.style.left = (event.clientX + 12) + 'px'; tip.style.top = (event.clientY + 12) + 'px';
  }
  function download(view, id, type){
    view.toImageURL(type, type === 'png' ? 2 : 1).then(function(url){
      var a = document.createElement('a'); a.download = id.replace(/\\//g,'_') + '.' + type; a.href = url;
      document.body.appendChild(a); a.click(); a.remove();
    });
  }
  Object.keys(specs).forEach(function(id){
    var el = document.getElementById('chart-' + id);
    if (!el) return;
    try {
      var view = new vega.View(vega.parse(specs[id]), {renderer:'svg', container: el, hover: true});
      view.tooltip(tooltip);
      view.runAsync();
      var tools = document.getElementById('tools-' + id);
      if (tools) {
        tools.querySelector('.svg').onclick = function(){ download(view, id, 'svg'); };
        tools.querySelector('.png').onclick = function(){ download(view, id, 'png'); };
      }
    } catch (e) { el.textContent = 'Could not draw this chart: ' + e; }
  });
})();`;

export interface ReportOptions {
  title?: string;
  /** Generation time shown in the page (default now; fixed in tests for stable output). */
  generatedAt?: string;
}

/** Builds the whole page as a string. */
export function buildReportHtml(plan: FigurePlan, opts: ReportOptions = {}): string {
  const specs: Record<string, unknown> = {};
  const domId = (id: string) => id.replace(/[^A-Za-z0-9_-]/g, '_');
  for (const f of plan.figures) {
    const { vega } = compileSpec(f.spec);
    const clean: Record<string, unknown> = { ...(vega as unknown as Record<string, unknown>) };
    delete clean.$schema; // a URL; the page needs no schema
    specs[domId(f.id)] = clean;
  }
  const title = opts.title ?? `hatsim report: ${plan.dir}`;
  const groups: [string, string][] = [['run', 'Run'], ['sweep', 'Sweep'], ['calibration', 'Calibration'], ['validation', 'Validation']];
  const figureSections = groups
    .map(([g, name]) => {
      const figs = plan.figures.filter((f) => f.group === g);
      if (figs.length === 0) return '';
      const items = figs
        .map((f) => `<figure id="fig-${domId(f.id)}"><figcaption><b>${escapeHtml(f.title)}</b> <span class="note">(${escapeHtml(f.id)})</span><br>${escapeHtml(f.description)}</figcaption>` +
          `<div class="chart" id="chart-${domId(f.id)}"></div>` +
          `<div class="tools" id="tools-${domId(f.id)}"><button class="svg" type="button">Save SVG</button><button class="png" type="button">Save PNG</button></div></figure>`)
        .join('\n');
      return `<section id="figures-${g}"><h2>${name} figures</h2>${items}</section>`;
    })
    .join('\n');
  const nav = plan.figures.map((f) => `<li><a href="#fig-${domId(f.id)}">${escapeHtml(f.title)}</a> <span class="note">${escapeHtml(f.id)}</span></li>`).join('');
  const skipped = plan.skipped.length
    ? `<h2>Skipped figures</h2><ul>${plan.skipped.map((s) => `<li><b>${escapeHtml(s.id)}</b>: ${escapeHtml(s.reason)}</li>`).join('')}</ul>`
    : '';
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${CSS}</style>
</head>
<body>
<h1>${escapeHtml(title)}</h1>
<p class="note">Generated ${escapeHtml(opts.generatedAt ?? new Date().toISOString())} by hatsim. Self-contained: works offline; charts are interactive (hover for values, click a system in a legend to highlight it, drag/scroll to zoom CDFs).</p>
<noscript><p><b>Charts need JavaScript; the tables below work without it.</b></p></noscript>
<h2>Run</h2>
${runMetaHtml(plan.run)}
<h2>Tables</h2>
${plan.tables.map(tableHtml).join('\n') || '<p class="note">No tables.</p>'}
<h2>Contents</h2>
<nav><ul>${nav}</ul></nav>
${figureSections}
${skipped}
<script type="application/json" id="hatsim-specs">${scriptJson(specs)}</script>
<script>${loadVegaBundle()}</script>
<script>${PAGE_JS}</script>
</body>
</html>
`;
}
