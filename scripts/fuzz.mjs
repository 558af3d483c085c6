#!/usr/bin/env node
// The fuzzers, run long: every test file under a `fuzz/` folder (npm test runs the same files with a
// short, seeded budget). FUZZ_RUNS sets the budget (default 2000 per fuzzer); FUZZ_SEED replays one.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(fileURLToPath(new URL('..', import.meta.url)));

function fuzzFiles(dir, inFuzz, out) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'node_modules' || entry.name === 'dist' || entry.name.startsWith('.')) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) fuzzFiles(path, inFuzz || entry.name === 'fuzz', out);
    else if (inFuzz && /\.test\.m?ts$/.test(entry.name)) out.push(relative(root, path));
  }
  return out;
}

const files = ['packages', 'test'].flatMap((d) => fuzzFiles(join(root, d), false, [])).sort();
const runs = process.env.FUZZ_RUNS ?? '2000';
console.log(`fuzzing with ${runs} runs each${process.env.FUZZ_SEED ? ` (seed ${process.env.FUZZ_SEED})` : ', fresh seeds'}: ${files.join(', ')}`);
const started = Date.now();
const result = spawnSync(process.execPath, ['--max-old-space-size=3072', '--import', 'tsx', '--test', '--test-concurrency=1', ...files], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, FUZZ_RUNS: runs },
});
console.log(`fuzzing took ${((Date.now() - started) / 1000).toFixed(0)} s`);
process.exit(result.status ?? 1);
