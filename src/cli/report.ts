/** `hatsim report <results-dir>`: one self-contained, offline HTML file with tables and interactive charts. */
import type { Argv, CommandModule } from 'yargs';

interface ReportArgs {
  dir: string;
  out?: string;
  points?: string;
  calibration?: string[];
  title?: string;
}

export const reportCommand: CommandModule<object, ReportArgs> = {
  command: 'report <dir>',
  describe: 'Write one self-contained HTML report (tables + interactive charts, works offline)',
  builder: (y: Argv) =>
    y
      .positional('dir', { type: 'string', demandOption: true, describe: 'results directory (run, sweep, calibration or validation)' })
      .option('out', { type: 'string', describe: 'output file (default <dir>/report.html)' })
      .option('points', { type: 'string', describe: 'sweeps: points whose per-run figures to include: auto (default), all, none, or comma-separated ids' })
      .option('calibration', { type: 'string', array: true, describe: 'also include these calibration dirs' })
      .option('title', { type: 'string', describe: 'page title' }) as unknown as Argv<ReportArgs>,
  handler: async (args) => {
    const { writeReport } = await import('../plot/index.js'); // vega: only here (issue 15)
    const points = args.points === undefined || ['auto', 'all', 'none'].includes(args.points)
      ? ((args.points ?? 'auto') as 'auto' | 'all' | 'none')
      : args.points.split(',').map((s) => s.trim()).filter(Boolean);
    const file = writeReport(args.dir, args.out, { points, calibration: args.calibration, title: args.title });
    console.log(`report written to ${file}`);
  },
};
