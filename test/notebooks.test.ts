/**
 * Static checks of notebooks/ (the headless execution is scripts/run-notebooks.sh,
 * run by .ci/run after npm test): no committed outputs, the tslab kernel, the
 * library API loaded through notebooks/hatsim.cjs (not the CLI), and that loader
 * really loads the ESM build from CommonJS.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const DIR = join(import.meta.dirname, '..', 'notebooks');
const notebooks = readdirSync(DIR).filter((f) => f.endsWith('.ipynb')).sort();

interface Cell { cell_type: string; source: string | string[]; outputs?: unknown[]; execution_count?: number | null }
const load = (f: string) => JSON.parse(readFileSync(join(DIR, f), 'utf8')) as { cells: Cell[]; metadata: { kernelspec?: { name?: string } } };
const text = (c: Cell) => (Array.isArray(c.source) ? c.source.join('') : c.source);

describe('notebooks', () => {
  it('has the four notebooks', () => {
    expect(notebooks).toEqual(['01-hat-comparison.ipynb', '02-sensitivity.ipynb', '03-calibration.ipynb', '04-live-vs-sim.ipynb']);
  });

  for (const f of notebooks) {
    it(`${f}: tslab kernel, no committed outputs, library API not CLI`, () => {
      const nb = load(f);
      expect(nb.metadata.kernelspec?.name).toBe('tslab');
      const code = nb.cells.filter((c) => c.cell_type === 'code');
      expect(code.length).toBeGreaterThan(2);
      for (const c of code) {
        expect(c.outputs ?? [], `${f}: outputs committed (scripts/run-notebooks.sh --strip)`).toEqual([]);
        expect(c.execution_count ?? null, `${f}: execution count committed`).toBeNull();
        expect((c as { metadata?: { execution?: unknown } }).metadata?.execution, `${f}: execution timestamps committed`).toBeUndefined();
      }
      const all = code.map(text).join('\n');
      expect(all).toContain("require('./hatsim.cjs')");
      expect(all).not.toMatch(/cli\/main|child_process|execSync|spawn\(/);
    });
  }

  it('hatsim.cjs loads the built library from CommonJS', async () => {
    const nb = createRequire(import.meta.url)(join(DIR, 'hatsim.cjs')) as {
      hatsim: () => Promise<Record<string, unknown>>; plot: () => Promise<Record<string, unknown>>;
      htmlTable: (rows: object[], cols?: string[]) => string;
    };
    const hs = await nb.hatsim();
    expect(typeof hs.runScenario).toBe('function');
    expect(typeof hs.loadScenario).toBe('function');
    expect(typeof (await nb.plot()).specToSvg).toBe('function');
    expect(nb.htmlTable([{ a: 1, b: 'x<y' }])).toContain('x&lt;y');
  });
});
