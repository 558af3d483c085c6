#!/usr/bin/env node
// One `node --test` run over every test file in the repo, so CI reads a single summary.
// With folder arguments (a package's own `npm test`), only those folders are searched.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(fileURLToPath(new URL('..', import.meta.url)));
const args = process.argv.slice(2);
const realTier = join(root, 'test', 'real');
const roots = args.length > 0 ? args : ['packages', 'pipelines', 'infra', 'test'];

function findTests(dir, out) {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return out;
  }
  for (const entry of entries) {
    if (entry.name === 'node_modules' || entry.name === 'dist' || entry.name.startsWith('.')) continue;
    const path = join(dir, entry.name);
    // test/real is the real-tools tier (npm run test:real): it needs the cached tools and minutes.
    if (path === realTier) continue;
    if (entry.isDirectory()) findTests(path, out);
    else if (/\.test\.m?ts$/.test(entry.name)) out.push(relative(root, path));
  }
  return out;
}

const files = roots.flatMap((r) => findTests(resolve(root, r), [])).sort();
if (files.length === 0) {
  console.error(`no test files under ${roots.join(', ')}`);
  process.exit(1);
}

if (args.length === 0) {
  // The whole repo as one incremental program (tsconfig.typecheck.json), replayed by turbo when no input changed.
  const typecheck = spawnSync(join(root, 'node_modules', '.bin', 'turbo'), ['run', 'typecheck:repo', '--output-logs=errors-only'], {
    cwd: root,
    stdio: 'inherit',
    env: { ...process.env, TURBO_TELEMETRY_DISABLED: '1', TURBO_NO_UPDATE_NOTIFIER: '1' },
  });
  if (typecheck.status !== 0) {
    console.error('typecheck failed');
    process.exit(typecheck.status ?? 1);
  }
}

const reporter = process.env.TEST_REPORTER ?? 'spec';
const result = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', `--test-reporter=${reporter}`, '--test-concurrency=2', ...files],
  { cwd: root, stdio: 'inherit' },
);
process.exit(result.status ?? 1);
