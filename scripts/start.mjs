#!/usr/bin/env node
// `npm start`: synthesize the example pipelines, print their plans, and run for real what runs on
// any machine (dataset conversion), through the same CLI a user runs.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const bin = fileURLToPath(new URL('../packages/cli/bin/tunepipe.mjs', import.meta.url));

function tunepipe(...args) {
  console.log(`\n$ tunepipe ${args.join(' ')}`);
  const r = spawnSync(process.execPath, [bin, ...args], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

tunepipe('synth');
tunepipe('plan');
for (const pipeline of ['llama3-fintech', 'qwen-support']) tunepipe('run', pipeline, '--target', 'local', '--only', 'convert');
