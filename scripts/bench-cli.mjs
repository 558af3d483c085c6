#!/usr/bin/env node
// `npm run bench:cli [-- --runs N]`: how long the CLI takes as a user meets it, a whole process from
// spawn to exit, beside `node -e ''` timed in the same run (what any Node program costs on this
// machine right now). Prints medians over N runs, and the load average, since on a busy machine
// every row grows. Synth writes into a temporary copy of the repo, never into pipelines/*/dist.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const bin = join(root, 'packages', 'cli', 'bin', 'tunepipe.mjs');

const runsFlag = process.argv.indexOf('--runs');
const runs = runsFlag > 0 ? Number(process.argv[runsFlag + 1]) : 10;
if (!Number.isInteger(runs) || runs < 1) {
  console.error('usage: node scripts/bench-cli.mjs [--runs N]  (N a positive whole number, default 10)');
  process.exit(1);
}

// A copy with what compiling reads (pipelines, datasets, repo config); the CLI and core come from here.
const copy = mkdtempSync(join(tmpdir(), 'tunepipe-bench-'));
for (const entry of ['package.json', 'tunepipe.json', 'pipelines', 'datasets']) {
  cpSync(join(root, entry), join(copy, entry), { recursive: true, filter: (src) => !src.includes('node_modules') });
}

const cases = [
  { name: "node -e ''", argv: ['-e', ''] },
  { name: 'tunepipe --help', argv: [bin, '--help'], target: 0.3 },
  { name: 'tunepipe synth', argv: [bin, 'synth'], target: 0.6 },
  { name: 'tunepipe plan', argv: [bin, 'plan'], target: 0.6 },
  { name: 'tunepipe synth llama3-fintech', argv: [bin, 'synth', 'llama3-fintech'], target: 0.6 },
  { name: 'tunepipe synth qwen-support', argv: [bin, 'synth', 'qwen-support'], target: 0.6 },
  { name: 'tunepipe plan llama3-fintech', argv: [bin, 'plan', 'llama3-fintech'], target: 0.6 },
  { name: 'tunepipe plan qwen-support', argv: [bin, 'plan', 'qwen-support'], target: 0.6 },
];

function run(argv) {
  const started = performance.now();
  const r = spawnSync(process.execPath, argv, { cwd: copy, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
  const seconds = (performance.now() - started) / 1000;
  if (r.status !== 0) throw new Error(`node ${argv.join(' ')} exited with ${r.status}:\n${r.stderr}`);
  return seconds;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
};

const loadBefore = loadavg()[0];
try {
  // Not timed: builds the bundle if a source changed since the last build.
  run([bin, '--version']);
  const samples = new Map(cases.map((c) => [c.name, []]));
  // Interleaved rounds, so a burst of load elsewhere touches every row alike.
  for (let i = 0; i < runs; i++) for (const c of cases) samples.get(c.name).push(run(c.argv));

  const width = Math.max(...cases.map((c) => c.name.length));
  console.log(`${'command'.padEnd(width)}  median     min     max  target`);
  let missed = 0;
  for (const c of cases) {
    const xs = samples.get(c.name);
    const m = median(xs);
    const verdict = c.target === undefined ? '' : `< ${c.target.toFixed(1)} s ${m < c.target ? 'met' : 'MISSED'}`;
    if (c.target !== undefined && m >= c.target) missed++;
    console.log(`${c.name.padEnd(width)}  ${m.toFixed(3)}s  ${Math.min(...xs).toFixed(3)}s  ${Math.max(...xs).toFixed(3)}s  ${verdict}`);
  }
  console.log(
    `\n${runs} runs each, node ${process.version}, ${cpus().length} cores, load average ${loadBefore.toFixed(2)} before and ${loadavg()[0].toFixed(2)} after` +
      (missed > 0 ? `\n${missed} target(s) missed; on a loaded machine compare with the node -e '' row, or rerun when it is idle` : ''),
  );
} finally {
  rmSync(copy, { recursive: true, force: true });
}
