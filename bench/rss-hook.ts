/**
 * `node --import dist/bench/rss-hook.js ...`: on exit, writes the process's peak resident set
 * size (KiB) and its CPU time (user + system, microseconds), both from getrusage, space-separated,
 * to the file named by HATSIM_BENCH_RSS_FILE. Used by bench/peer.ts.
 */
import { writeFileSync } from 'node:fs';

const file = process.env.HATSIM_BENCH_RSS_FILE;
if (file) {
  process.on('exit', () => {
    const u = process.resourceUsage();
    writeFileSync(file, `${u.maxRSS} ${u.userCPUTime + u.systemCPUTime}`);
  });
}
