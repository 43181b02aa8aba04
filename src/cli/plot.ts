/** `hatsim plot <results-dir>`: render the standard figures of a run, sweep, calibration or validation dir. */
import type { Argv, CommandModule } from 'yargs';

interface PlotArgs {
  dir: string;
  format?: string[];
  out?: string;
  points?: string;
  calibration?: string[];
  font?: string;
  scale: number;
}

export const plotCommand: CommandModule<object, PlotArgs> = {
  command: 'plot <dir>',
  describe: 'Render figures (SVG/PNG/HTML) from a results, sweep, calibration or validation directory',
  builder: (y: Argv) =>
    y
      .positional('dir', { type: 'string', demandOption: true, describe: 'results directory (run, sweep, calibration or validation)' })
      .option('format', { type: 'string', array: true, describe: 'comma-separated formats: svg, png, html, vl (vega-lite JSON); default svg,png' })
      .option('out', { type: 'string', describe: 'output directory (default <dir>/figures)' })
      .option('points', { type: 'string', describe: "sweeps: points whose per-run figures to draw: auto (default), all, none, or comma-separated ids" })
      .option('calibration', { type: 'string', array: true, describe: 'also plot these calibration dirs (calibration/ or calibration/<hw>/<model>)' })
      .option('font', { type: 'string', describe: 'TTF/OTF font file for PNG text (default $HATSIM_FONT or a system sans font)' })
      .option('scale', { type: 'number', default: 2, describe: 'PNG zoom factor' }) as unknown as Argv<PlotArgs>,
  handler: async (args) => {
    const { parseFormats, renderFigures } = await import('../plot/index.js'); // vega, resvg: only here (issue 15)
    const formats = parseFormats(args.format);
    const points = args.points === undefined || ['auto', 'all', 'none'].includes(args.points)
      ? ((args.points ?? 'auto') as 'auto' | 'all' | 'none')
      : args.points.split(',').map((s) => s.trim()).filter(Boolean);
    const result = await renderFigures(args.dir, {
      formats,
      outDir: args.out,
      points,
      calibration: args.calibration,
      fontFile: args.font,
      pngScale: args.scale,
    });
    for (const w of result.warnings) console.error(`warning: ${w}`);
    for (const f of result.figures) {
      for (const w of f.warnings) console.error(`warning: ${f.id}: ${w}`);
    }
    console.log(`${result.figures.length} figures (${formats.join(', ')}) written to ${result.outDir}`);
    for (const f of result.figures) console.log(`  ${f.id}`);
    if (result.skipped.length) {
      console.log('skipped:');
      for (const s of result.skipped) console.log(`  ${s.id}: ${s.reason}`);
    }
  },
};
