/**
 * `node --import dist/bench/rss-hook.js ...`: on exit, writes the process's peak resident set
 * size (KiB, from getrusage) to the file named by HATSIM_BENCH_RSS_FILE. Used by bench/peer.ts.
 */
import { writeFileSync } from 'node:fs';

const file = process.env.HATSIM_BENCH_RSS_FILE;
if (file) process.on('exit', () => writeFileSync(file, String(process.resourceUsage().maxRSS)));
