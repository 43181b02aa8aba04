/**
 * Library API of plot/ (notebooks import this, the CLI wraps it):
 *
 *   planFigures(dir, opts)      -> the figures (vega-lite specs) and tables a directory allows
 *   renderFigures(dir, opts)    -> writes SVG / PNG / HTML / vega-lite JSON files, returns what it wrote
 *   writeReport(dir, out, opts) -> one self-contained offline HTML file
 *   compileSpec / specToSvg / svgToPng -> the rendering steps, for one spec
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { InputError } from '../core/errors.js';
import { planFigures } from './plan.js';
import type { Figure, FigurePlan, PlanOptions, Skipped } from './plan.js';
import { buildReportHtml } from './report.js';
import type { ReportOptions } from './report.js';
import { chooseFont, compileSpec, svgToPng, vegaToSvg } from './render.js';

export * as figures from './figures.js';
export type { VlSpec } from './figures.js';
export { planFigures } from './plan.js';
export type { Figure, FigurePlan, FigureGroup, PlanOptions, Skipped, Table } from './plan.js';
export { buildReportHtml } from './report.js';
export type { ReportOptions } from './report.js';
export { chooseFont, compileSpec, specToSvg, svgToPng, vegaToSvg } from './render.js';
export * from './read.js';
export { SYSTEM_COLORS, SYSTEM_ORDER } from './style.js';

export const FORMATS = ['svg', 'png', 'html', 'vl'] as const;
export type Format = (typeof FORMATS)[number];

export interface RenderOptions extends PlanOptions {
  /** Default ['svg', 'png']. 'html' writes one interactive figures.html; 'vl' writes each vega-lite spec as .vl.json. */
  formats?: readonly Format[];
  /** Default `<dir>/figures`. */
  outDir?: string;
  /** PNG zoom factor (default 2). */
  pngScale?: number;
  /** Font file for PNG text (default: $HATSIM_FONT or a system sans font). */
  fontFile?: string;
  /** Called after each figure is written (progress output). */
  onFigure?: (figure: Figure, files: string[]) => void;
}

export interface RenderedFigure {
  id: string;
  title: string;
  group: Figure['group'];
  files: string[];
  /** vega-lite warnings raised while compiling. */
  warnings: string[];
}

export interface RenderResult {
  outDir: string;
  figures: RenderedFigure[];
  skipped: Skipped[];
  /** Other files written (figures.html, manifest.json). */
  files: string[];
  warnings: string[];
}

/** Writes a file atomically (temp file + rename), creating parent dirs. */
export function writeFileAtomic(file: string, data: string | Buffer): void {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, data);
  renameSync(tmp, file);
}

export function parseFormats(list: string | readonly string[] | undefined): Format[] {
  if (list === undefined) return ['svg', 'png'];
  const items = (typeof list === 'string' ? [list] : list).flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean);
  const bad = items.filter((s) => !(FORMATS as readonly string[]).includes(s));
  if (bad.length) throw new InputError(`--format: unknown format ${bad.map((b) => `'${b}'`).join(', ')}; allowed: ${FORMATS.join(', ')}`, 'format');
  if (items.length === 0) throw new InputError(`--format: empty; allowed: ${FORMATS.join(', ')}`, 'format');
  return [...new Set(items)] as Format[];
}

/** Renders every figure the directory allows. */
export async function renderFigures(dir: string, opts: RenderOptions = {}): Promise<RenderResult> {
  const formats = opts.formats ?? ['svg', 'png'];
  const outDir = opts.outDir ?? join(dir, 'figures');
  const plan: FigurePlan = planFigures(dir, opts);
  const result: RenderResult = { outDir, figures: [], skipped: plan.skipped, files: [], warnings: [] };
  if (formats.includes('png')) {
    const font = chooseFont(opts.fontFile);
    if (font.warning) result.warnings.push(font.warning);
  }
  for (const fig of plan.figures) {
    const { vega, warnings } = compileSpec(fig.spec);
    const files: string[] = [];
    const base = join(outDir, fig.id);
    if (formats.includes('vl')) {
      writeFileAtomic(`${base}.vl.json`, JSON.stringify(fig.spec, null, 2) + '\n');
      files.push(`${base}.vl.json`);
    }
    if (formats.includes('svg') || formats.includes('png')) {
      const svg = await vegaToSvg(vega);
      if (formats.includes('svg')) {
        writeFileAtomic(`${base}.svg`, svg);
        files.push(`${base}.svg`);
      }
      if (formats.includes('png')) {
        writeFileAtomic(`${base}.png`, svgToPng(svg, { scale: opts.pngScale, fontFile: opts.fontFile }));
        files.push(`${base}.png`);
      }
    }
    result.figures.push({ id: fig.id, title: fig.title, group: fig.group, files, warnings });
    opts.onFigure?.(fig, files);
  }
  if (formats.includes('html')) {
    const html = join(outDir, 'figures.html');
    writeFileAtomic(html, buildReportHtml(plan, { title: `hatsim figures: ${dir}` }));
    result.files.push(html);
  }
  const manifest = join(outDir, 'manifest.json');
  writeFileAtomic(manifest, JSON.stringify({
    dir, kinds: plan.kinds, formats,
    figures: result.figures.map((f) => ({ id: f.id, title: f.title, group: f.group, files: f.files.map((x) => x.slice(outDir.length + 1)) })),
    skipped: plan.skipped,
  }, null, 2) + '\n');
  result.files.push(manifest);
  return result;
}

/** Writes the self-contained HTML report; `out` defaults to `<dir>/report.html`. Returns the path. */
export function writeReport(dir: string, out?: string, opts: ReportOptions & PlanOptions = {}): string {
  const plan = planFigures(dir, opts);
  const file = out ?? join(dir, 'report.html');
  writeFileAtomic(file, buildReportHtml(plan, opts));
  return file;
}
