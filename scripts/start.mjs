#!/usr/bin/env node
// `npm start`: synthesize the example pipelines, print their plans, and run for real what runs on
// any machine (dataset conversion), through the same CLI a user runs.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
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
// Every pipeline of the repository, yours included (the same rule the CLI uses: a folder with a pipeline.ts).
const pipelines = readdirSync(join(root, 'pipelines')).filter((name) => existsSync(join(root, 'pipelines', name, 'pipeline.ts'))).sort();
for (const pipeline of pipelines) tunepipe('run', pipeline, '--target', 'local', '--only', 'convert');
