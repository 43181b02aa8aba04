import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync, cpSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runInNewContext } from 'node:vm';
import { afterAll, describe, expect, it } from 'vitest';
import { InputError } from '../src/core/errors.js';
import {
  SYSTEM_COLORS, SYSTEM_ORDER, buildReportHtml, compileSpec, parseFormats, planFigures, readCalibration,
  readGpuUtil, readRequests, readSummary, readSweep, readTimeline, readValidation, renderFigures, specToSvg,
  writeReport,
} from '../src/plot/index.js';
import type { FigurePlan } from '../src/plot/index.js';

const FIX = join(import.meta.dirname, 'fixtures', 'results');
const RUN = join(FIX, 'run');
const SWEEP = join(FIX, 'sweep');
const CAL = join(FIX, 'calibration');
const VAL = join(FIX, 'validation');
const tmp = mkdtempSync(join(tmpdir(), 'hatsim-plot-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const plans: [string, FigurePlan][] = [
  ['run', planFigures(RUN)],
  ['sweep', planFigures(SWEEP, { points: 'all' })],
  ['calibration', planFigures(CAL)],
  ['validation', planFigures(VAL)],
];

describe('figure specs', () => {
  for (const [name, plan] of plans) {
    it(`every ${name} figure's vega-lite spec compiles without warnings`, () => {
      expect(plan.figures.length).toBeGreaterThan(0);
      for (const f of plan.figures) {
        const { vega, warnings } = compileSpec(f.spec);
        expect(vega, f.id).toBeTruthy();
        expect(warnings, f.id).toEqual([]);
      }
    });
  }

  it('a run dir yields the standard run figures', () => {
    const ids = plans[0][1].figures.map((f) => f.id);
    expect(ids).toEqual(expect.arrayContaining([
      'ttft-cdf', 'tbt-cdf', 'ttft-bars', 'tbt-bars', 'timeline', 'timeline-prefill', 'gpu-util', 'bytes-per-request',
    ]));
    // and says why the others were skipped
    expect(plans[0][1].skipped.map((s) => s.id)).toEqual(expect.arrayContaining(['sweep-*', 'calibration-*', 'validation*']));
  });

  it('a sweep dir yields metric-vs-parameter figures and per-point run figures', () => {
    const ids = plans[1][1].figures.map((f) => f.id);
    for (const m of ['ttft_mean_ms', 'ttft_p99_ms', 'tbt_mean_ms', 'tbt_p99_ms', 'throughput_tok_s']) {
      expect(ids).toContain(`sweep-${m}-vs-devices.0.link.uplinkMbps`);
    }
    expect(ids).toContain('points/p1/timeline');
    expect(ids).toContain('points/p0/ttft-cdf');
    // p0 has no timeline.csv: skipped with a reason
    expect(plans[1][1].skipped.find((s) => s.id === 'points/p0/timeline')?.reason).toMatch(/no timeline\.csv/);
  });

  it('calibration and validation dirs yield their figures', () => {
    expect(plans[2][1].figures.map((f) => f.id)).toEqual([
      'calibration-this-cpu-tinyllama-1.1b-embedding', 'calibration-this-cpu-tinyllama-1.1b-decoderLayer',
      'calibration-this-cpu-tinyllama-1.1b-adapter', 'calibration-this-cpu-tinyllama-1.1b-lmHead',
      'calibration-this-cpu-tinyllama-1.1b-parity',
    ]);
    expect(plans[3][1].figures.map((f) => f.id)).toEqual(['validation', 'validation-error']);
  });
});

/** aria-labels of the data marks of one vega mark type in an SVG produced by vega. */
function markLabels(svg: string, markType: string): string[] {
  const out: string[] = [];
  const re = new RegExp(`<g class="mark-${markType} role-mark[^"]*"[^>]*>(.*?)</g>`, 'gs');
  for (const m of svg.matchAll(re)) {
    for (const a of m[1].matchAll(/<(?:path|rect|line)[^>]*aria-label="([^"]*)"/g)) out.push(a[1]);
  }
  return out;
}
function countBySystem(labels: string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const l of labels) {
    const sys = /(?:^|; )system: ([^;]+)/.exec(l)?.[1];
    if (sys) counts.set(sys, (counts.get(sys) ?? 0) + 1);
  }
  return counts;
}
function legendSystems(svg: string): string[] | undefined {
  const m = /aria-label="Symbol legend titled 'System' for [a-z ]+ with (\d+) values: ([^"]+)"/.exec(svg);
  return m ? m[2].split(', ') : undefined;
}

describe('rendered SVG: one series per system', () => {
  const run = plans[0][1];
  const byId = (id: string) => run.figures.find((f) => f.id === id)!;

  for (const id of ['ttft-cdf', 'tbt-cdf', 'gpu-util']) {
    it(`${id}: exactly one line per system, legend names the five systems, fixed colors`, async () => {
      const svg = await specToSvg(byId(id).spec);
      const counts = countBySystem(markLabels(svg, 'line'));
      expect([...counts.keys()]).toEqual([...SYSTEM_ORDER]);
      for (const s of SYSTEM_ORDER) expect(counts.get(s), s).toBe(1);
      expect(legendSystems(svg)).toEqual([...SYSTEM_ORDER]);
      // the hat line is drawn in hat's fixed color
      const hatPath = /<path[^>]*aria-label="[^"]*system: hat;[^"]*"[^>]*>/.exec(svg)?.[0] ?? '';
      expect(hatPath).toContain(`stroke="${SYSTEM_COLORS.hat}"`);
    });
  }

  for (const id of ['ttft-bars', 'tbt-bars']) {
    it(`${id}: one bar per system in each of the mean and p99 panels`, async () => {
      const svg = await specToSvg(byId(id).spec);
      const counts = countBySystem(markLabels(svg, 'rect'));
      expect([...counts.keys()]).toEqual([...SYSTEM_ORDER]);
      for (const s of SYSTEM_ORDER) expect(counts.get(s), s).toBe(2);
      expect(legendSystems(svg)).toEqual([...SYSTEM_ORDER]);
    });
  }

  it('sweep lines: one line per system', async () => {
    const f = plans[1][1].figures.find((x) => x.id === 'sweep-ttft_mean_ms-vs-devices.0.link.uplinkMbps')!;
    const svg = await specToSvg(f.spec);
    const counts = countBySystem(markLabels(svg, 'line'));
    for (const s of SYSTEM_ORDER) expect(counts.get(s), s).toBe(1);
    expect(counts.size).toBe(5);
    expect(legendSystems(svg)).toEqual([...SYSTEM_ORDER]);
  });

  it('timeline: one panel per system, each with that system\'s spans only', async () => {
    const svg = await specToSvg(byId('timeline').spec);
    // row headers are title texts; the first one is the figure title
    const titles = [...svg.matchAll(/aria-label="Title text '([^']*)'"/g)].map((m) => m[1]);
    expect(titles.filter((t) => (SYSTEM_ORDER as readonly string[]).includes(t))).toEqual([...SYSTEM_ORDER]);
    const counts = countBySystem(markLabels(svg, 'rect'));
    expect([...counts.keys()].sort()).toEqual([...SYSTEM_ORDER].sort());
    // hat is chunked: its prefill has more device-compute spans than hat-nochunk
    const hatDev = markLabels(svg, 'rect').filter((l) => /system: hat;/.test(l) && /kind: device-compute/.test(l)).length;
    const noChunkDev = markLabels(svg, 'rect').filter((l) => /system: hat-nochunk;/.test(l) && /kind: device-compute/.test(l)).length;
    expect(hatDev).toBeGreaterThan(noChunkDev);
  });

  it('validation: live and simulated bar per system and metric', async () => {
    const f = plans[3][1].figures.find((x) => x.id === 'validation')!;
    const svg = await specToSvg(f.spec);
    const counts = countBySystem(markLabels(svg, 'rect'));
    for (const s of SYSTEM_ORDER) expect(counts.get(s), s).toBe(2 * 3); // live + sim, 3 metrics
  });
});

describe('renderFigures', () => {
  it('writes SVG and PNG for every figure of a run, plus a manifest', async () => {
    const out = join(tmp, 'figs-run');
    const r = await renderFigures(RUN, { outDir: out, formats: ['svg', 'png'], pngScale: 1 });
    expect(r.figures.length).toBe(8);
    for (const f of r.figures) {
      expect(f.files.map((x) => x.slice(out.length + 1)).sort()).toEqual([`${f.id}.png`, `${f.id}.svg`]);
      const png = readFileSync(join(out, `${f.id}.png`));
      expect(png.subarray(1, 4).toString()).toBe('PNG');
      expect(png.length).toBeGreaterThan(5000);
    }
    const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8'));
    expect(manifest.figures.length).toBe(8);
    expect(manifest.skipped.length).toBeGreaterThan(0);
  }, 60_000);

  it('parses --format lists and rejects unknown formats', () => {
    expect(parseFormats(['svg,png', 'html'])).toEqual(['svg', 'png', 'html']);
    expect(parseFormats(undefined)).toEqual(['svg', 'png']);
    expect(() => parseFormats('gif')).toThrow(InputError);
  });
});

describe('HTML report', () => {
  const html = buildReportHtml(planFigures(RUN), { generatedAt: 'fixed' });
  const sweepHtml = buildReportHtml(planFigures(SWEEP), { generatedAt: 'fixed' });
  // Namespace names inside vega's bundle (createElementNS / xmlns attributes): identifiers, never fetched.
  const NAMESPACES = new Set(['http://www.w3.org/2000/svg', 'http://www.w3.org/1999/xlink', 'http://www.w3.org/2000/xmlns/']);

  for (const [name, page] of [['run', html], ['sweep', sweepHtml]] as const) {
    it(`${name}: loads nothing from outside the file`, () => {
      // every src/href/action attribute of the markup (scripts removed) is an in-page fragment
      const markup = page.replace(/<script\b[^>]*>.*?<\/script>/gs, '<script></script>');
      expect(markup).not.toMatch(/<script [^>]*src/i);
      const attrs = [...markup.matchAll(/\b(src|href|action|poster|srcset)\s*=\s*["']?([^"'\s>]*)/gi)].map((m) => m[2]);
      for (const a of attrs) expect(a.startsWith('#'), a).toBe(true);
      expect(markup).not.toMatch(/<link\b/i);
      expect(markup).not.toMatch(/@import/i);
      expect(markup).not.toMatch(/<(iframe|img|embed|object|base)\b/i);
      expect(markup).not.toMatch(/url\(\s*['"]?(?!#)/i);
      expect(markup).not.toMatch(/["'(]\/\/[a-z0-9]/i); // protocol-relative URLs
      // the charts carry their data inline: no spec asks vega to load a URL
      const specs = /<script type="application\/json" id="hatsim-specs">(.*?)<\/script>/s.exec(page)![1];
      expect(specs).not.toMatch(/"url"\s*:/);
    });

    it(`${name}: has no external URL at all except namespace names`, () => {
      const urls = [...page.matchAll(/(?:https?|ftp|wss?):\/\/[^\s"'`<>)\\]*/gi)].map((m) => m[0]);
      for (const u of urls) expect(NAMESPACES.has(u), u).toBe(true);
      expect(page).not.toMatch(/vega\.github\.io|cdn|jsdelivr|unpkg|googleapis/i);
    });
  }

  it('contains the tables, every figure, and the vega runtime inline', () => {
    expect(html).toContain('Summary per system');
    for (const s of SYSTEM_ORDER) expect(html).toContain(`<td class="">${s}</td>`);
    for (const f of planFigures(RUN).figures) expect(html).toContain(`id="chart-${f.id}"`);
    expect(html).toMatch(/t\.version="6\.\d+\.\d+"/); // vega's UMD bundle
    expect(html.length).toBeGreaterThan(400_000);
  });

  it('the inline vega runtime draws every embedded spec (headless check)', async () => {
    const scripts = [...html.matchAll(/<script(?: type="application\/json" id="hatsim-specs")?>(.*?)<\/script>/gs)].map((m) => m[1]);
    const specs = JSON.parse(scripts[0]) as Record<string, unknown>;
    const ctx: Record<string, unknown> = { console, setTimeout, clearTimeout, Promise };
    runInNewContext(scripts[1], ctx);
    const vega = ctx.vega as { parse: (s: unknown) => unknown; View: new (r: unknown, o: unknown) => { runAsync(): Promise<unknown>; toSVG(): Promise<string> } };
    expect(Object.keys(specs).length).toBe(8);
    for (const [id, spec] of Object.entries(specs)) {
      const view = new vega.View(vega.parse(spec), { renderer: 'none' });
      const svg = await view.toSVG();
      expect(svg, id).toContain('<svg');
    }
    // the page script is syntactically valid
    expect(() => new Function(scripts[2])).not.toThrow();
  }, 60_000);

  it('writeReport writes one file, default <dir>/report.html', () => {
    const dir = join(tmp, 'runcopy');
    cpSync(RUN, dir, { recursive: true });
    const file = writeReport(dir);
    expect(file).toBe(join(dir, 'report.html'));
    expect(existsSync(file)).toBe(true);
  });
});

describe('readers: clear errors', () => {
  function dirWith(file: string, content: string): string {
    const d = mkdtempSync(join(tmp, 'bad-'));
    writeFileSync(join(d, file), content);
    return d;
  }
  function dropColumn(src: string, col: string): string {
    const lines = readFileSync(src, 'utf8').trim().split('\n').map((l) => l.split(','));
    const i = lines[0].indexOf(col);
    return lines.map((l) => l.filter((_, j) => j !== i).join(',')).join('\n') + '\n';
  }
  const cases: [string, string, string, (d: string) => unknown][] = [
    ['requests.csv', join(RUN, 'requests.csv'), 'ttft_ms', readRequests],
    ['requests.csv', join(RUN, 'requests.csv'), 'raw_token_bytes_up', readRequests],
    ['summary.csv', join(RUN, 'summary.csv'), 'tbt_p99_ms', readSummary],
    ['timeline.csv', join(RUN, 'timeline.csv'), 'end_ms', readTimeline],
    ['gpu_util.csv', join(RUN, 'gpu_util.csv'), 'busy_fraction', readGpuUtil],
    ['sweep.csv', join(SWEEP, 'sweep.csv'), 'ttft_mean_ms', readSweep],
    ['validation.csv', join(VAL, 'validation.csv'), 'sim', readValidation],
  ];
  for (const [file, src, col, reader] of cases) {
    it(`${file} without '${col}' names the file and the column`, () => {
      const d = dirWith(file, dropColumn(src, col));
      expect(() => reader(d)).toThrow(InputError);
      expect(() => reader(d)).toThrow(new RegExp(`${file.replace('.', '\\.')}: missing column '${col}'`));
      // planFigures surfaces the same error
      expect(() => planFigures(d)).toThrow(new RegExp(`missing column '${col}'`));
    });
  }

  it('samples.csv without median_ms names the file and column', () => {
    const d = mkdtempSync(join(tmp, 'cal-'));
    const src = join(CAL, 'this-cpu', 'tinyllama-1.1b');
    writeFileSync(join(d, 'model.json'), readFileSync(join(src, 'model.json')));
    writeFileSync(join(d, 'samples.csv'), dropColumn(join(src, 'samples.csv'), 'median_ms'));
    expect(() => readCalibration(d)).toThrow(/samples\.csv: missing column 'median_ms'/);
  });

  it('a non-numeric value names the file, row and column', () => {
    const text = readFileSync(join(RUN, 'summary.csv'), 'utf8').replace(/^(cloud,)\d+/m, '$1many');
    const d = dirWith('summary.csv', text);
    expect(() => readSummary(d)).toThrow(/summary\.csv: row 2: column 'requests' must be a finite number, got 'many'/);
  });

  it('empty cells in optional metric columns are allowed (not applicable), in required ones not', () => {
    const text = readFileSync(join(RUN, 'summary.csv'), 'utf8').replace(/,0,1,estimate$/m, ',,,estimate');
    const rows = readSummary(dirWith('summary.csv', text));
    expect(rows[0].acceptance_rate).toBeUndefined();
    const bad = readFileSync(join(RUN, 'summary.csv'), 'utf8').replace(/^(cloud,)\d+/m, '$1');
    expect(() => readSummary(dirWith('summary.csv', bad))).toThrow(/column 'requests' must be a finite number/);
  });

  it('a directory with nothing to plot is an InputError', () => {
    const d = mkdtempSync(join(tmp, 'empty-'));
    mkdirSync(join(d, 'sub'));
    expect(() => planFigures(d)).toThrow(/nothing to plot/);
    expect(() => planFigures(join(d, 'missing'))).toThrow(/not a directory/);
  });
});

describe('calibration figures use the calibrator’s sample semantics', () => {
  it('predictSample agrees with the fitter for multi-sequence batch samples (tokens and ctx are batch sums)', async () => {
    const { predictSample } = await import('../src/plot/read.js');
    const { predictMs } = await import('../src/calibrate/fit.js');
    const piece = { maxTokens: null, c0Ms: 1, c1MsPerToken: 0.5, c2MsPerTokenCtx: 0.001, c3MsPerCtx: 0.01, c4MsPerSeq: 0.3, c5MsPerTokenSq: 0.002 };
    const comp = { source: 'measured' as const, pieces: [piece] };
    for (const [tokens, ctx, seqs] of [[4, 2048, 4], [64, 0, 4], [1, 512, 1], [8, 4096, 8]]) {
      const sample = { component: 'adapter' as const, tokens, ctx, seqs, layers: 1, median_ms: 0, p10_ms: 0, p90_ms: 0, reps: 1, split: 'train' as const };
      expect(predictSample(comp as never, sample as never)).toBeCloseTo(predictMs([piece], { tokens, ctx, seqs }), 9);
    }
  });
});
