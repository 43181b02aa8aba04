/**
 * vega-lite spec -> vega spec -> SVG (vega headless View, no browser) -> PNG
 * (resvg, no browser). Fonts for the PNG come from the system or from
 * HATSIM_FONT / an explicit font file.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Resvg } from '@resvg/resvg-js';
import { compile } from 'vega-lite';
import type { TopLevelSpec } from 'vega-lite';
import { View, parse } from 'vega';
import type { Spec as VegaSpec } from 'vega';
import type { VlSpec } from './figures.js';

export interface CompileResult {
  vega: VegaSpec;
  /** vega-lite warnings raised while compiling (a spec that compiles may still warn). */
  warnings: string[];
}

/** Compiles a vega-lite spec; throws on an invalid spec, collects warnings. */
export function compileSpec(spec: VlSpec): CompileResult {
  const warnings: string[] = [];
  const logger = {
    level: () => logger,
    error: (...args: readonly unknown[]) => {
      throw new Error(`vega-lite: ${args.map(String).join(' ')}`);
    },
    warn: (...args: readonly unknown[]) => {
      warnings.push(args.map(String).join(' '));
      return logger;
    },
    info: () => logger,
    debug: () => logger,
  };
  // The spec is a plain object checked at run time by compile (see figures.ts for why it is untyped).
  // `logger` implements the subset of vega-util's LoggerInterface that compile calls; cast because
  // that interface's overloaded level() getter/setter is awkward to satisfy with a literal.
  const { spec: vega } = compile(spec as unknown as TopLevelSpec, { logger: logger as never });
  return { vega, warnings };
}

/** Renders a compiled vega spec to an SVG string without a browser. */
export async function vegaToSvg(vega: VegaSpec): Promise<string> {
  const view = new View(parse(vega), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

export async function specToSvg(spec: VlSpec): Promise<string> {
  return vegaToSvg(compileSpec(spec).vega);
}

// ---- PNG ----------------------------------------------------------------------------------

const FONT_DIRS = [
  '/usr/share/fonts',
  '/usr/local/share/fonts',
  '/usr/X11R6/lib/X11/fonts',
  '/Library/Fonts',
  '/System/Library/Fonts',
  'C:\\Windows\\Fonts',
];
const PREFERRED = ['DejaVuSans.ttf', 'LiberationSans-Regular.ttf', 'Arial.ttf', 'arial.ttf', 'Helvetica.ttc', 'NotoSans-Regular.ttf'];

/** First file (breadth first per folder, depth-limited) under `dir` whose name passes `match`. */
function findFile(dir: string, match: (name: string) => boolean, depth = 4): string | undefined {
  if (depth < 0 || !existsSync(dir)) return undefined;
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return undefined;
  }
  for (const e of entries) if (e.isFile() && match(e.name)) return join(dir, e.name);
  for (const e of entries) {
    if (e.isDirectory()) {
      const f = findFile(join(dir, e.name), match, depth - 1);
      if (f) return f;
    }
  }
  return undefined;
}

export interface FontChoice {
  /** A font file to load explicitly, if one was found or given. */
  file?: string;
  /** Warning to show when no font is available (PNG text would be missing). */
  warning?: string;
}

let cachedFont: FontChoice | undefined;

/** Font for PNG text: `explicit`, else $HATSIM_FONT, else a common sans font, else any installed TTF/OTF. */
export function chooseFont(explicit?: string): FontChoice {
  const given = explicit ?? process.env.HATSIM_FONT;
  if (given) {
    if (!existsSync(given)) return { warning: `font file ${given} not found; PNG text may not render` };
    return { file: given };
  }
  if (cachedFont) return cachedFont;
  let file: string | undefined;
  for (const d of FONT_DIRS) if (!file) file = findFile(d, (n) => PREFERRED.includes(n));
  for (const d of FONT_DIRS) if (!file) file = findFile(d, (n) => /\.(ttf|otf)$/i.test(n));
  cachedFont = file
    ? { file }
    : { warning: 'no TTF/OTF font found on this machine; PNG text will be missing. Install one (e.g. apt-get install fonts-dejavu-core) or set HATSIM_FONT=/path/font.ttf' };
  return cachedFont;
}

/** Renders SVG to PNG at `scale` x (2 = crisp on high-density screens and in slides). */
export function svgToPng(svg: string, opts: { scale?: number; fontFile?: string } = {}): Buffer {
  const font = chooseFont(opts.fontFile);
  const resvg = new Resvg(svg, {
    fitTo: { mode: 'zoom', value: opts.scale ?? 2 },
    background: 'white',
    font: {
      loadSystemFonts: true,
      fontFiles: font.file ? [font.file] : [],
      // Make every generic and named family resolve to the font we found.
      ...(font.file ? { defaultFontFamily: familyOf(font.file), sansSerifFamily: familyOf(font.file) } : {}),
    },
  });
  return resvg.render().asPng();
}

/** Family name guessed from the file name (resvg matches families by name). */
function familyOf(file: string): string {
  const base = file.split(/[\\/]/).pop()!.replace(/\.(ttf|otf|ttc)$/i, '');
  const known: Record<string, string> = {
    DejaVuSans: 'DejaVu Sans',
    'LiberationSans-Regular': 'Liberation Sans',
    Arial: 'Arial',
    arial: 'Arial',
    Helvetica: 'Helvetica',
    'NotoSans-Regular': 'Noto Sans',
  };
  return known[base] ?? base.replace(/-Regular$/, '').replace(/([a-z])([A-Z])/g, '$1 $2');
}
