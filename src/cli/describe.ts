/**
 * `hatsim describe <scenario>`: what the scenario means, without simulating (the work is in
 * describe-impl.ts, loaded by the handler so that start-up stays light: issue 15).
 */
import type { CommandModule } from 'yargs';
import { scenarioOptions, type ScenarioArgs } from './common.js';

export const describeCommand: CommandModule<object, ScenarioArgs> = {
  command: 'describe <scenario>',
  describe: 'Print sizes, latency sources, per-stage latencies, the topology and the chunk size chosen per device group, without simulating',
  builder: (y) => scenarioOptions(y) as never,
  handler: async (args) => {
    const { isFedSpineFile } = await import('../fedspine/scenario.js');
    if (isFedSpineFile(args.scenario)) { // kind: fedspine
      const { describeFedSpine } = await import('./fedspine.js');
      process.stdout.write(describeFedSpine(args));
      return;
    }
    const { describeScenario } = await import('./describe-impl.js');
    process.stdout.write(describeScenario(args));
  },
};
