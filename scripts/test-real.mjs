#!/usr/bin/env node
// `npm run test:real`: installs the real tools into the cache (first run only; it says how long each
// took), then one `node --test` run over every test/real/**/*.test.ts, so CI reads one summary.
// With file or folder arguments, only those tests run (the installs still happen).
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { installAll, readTools, toolsFile } from './real/install.mjs';
import { cacheRoot, formatSeconds, repoRoot } from './real/lib.mjs';

function findTests(path, out) {
  let st;
  try {
    st = statSync(path);
  } catch {
    return out;
  }
  if (st.isFile()) {
    if (/\.test\.m?ts$/.test(path)) out.push(relative(repoRoot, path));
    return out;
  }
  for (const entry of readdirSync(path, { withFileTypes: true })) {
    if (entry.name === 'node_modules' || entry.name.startsWith('.')) continue;
    findTests(join(path, entry.name), out);
  }
  return out;
}

const args = process.argv.slice(2);
const roots = args.length > 0 ? args.map((a) => resolve(a)) : [join(repoRoot, 'test', 'real')];
const files = roots.flatMap((r) => findTests(r, [])).sort();
if (files.length === 0) {
  console.error(`no test files under ${roots.map((r) => relative(repoRoot, r)).join(', ')}`);
  process.exit(1);
}

console.log(`test:real: tools are cached in ${cacheRoot()} (set TUNEPIPE_CACHE to move it).`);
console.log('The first run builds them from PyPI and the Go module proxy (about 50 minutes on 2 cores, about 30 GB); later runs reuse them.');
const started = Date.now();
let tools;
try {
  tools = await installAll();
} catch (err) {
  console.error(`\ntest:real: installing the real tools failed:\n${err instanceof Error ? err.message : String(err)}`);
  console.log('0 passed, 1 failed');
  process.exit(1);
}
mkdirSync(cacheRoot(), { recursive: true });
writeFileSync(toolsFile(), JSON.stringify({ ...readTools(), ...tools }, null, 2) + '\n');
console.log(`test:real: tools ready in ${formatSeconds((Date.now() - started) / 1000)}`);

const reporter = process.env.TEST_REPORTER ?? 'spec';
const result = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', `--test-reporter=${reporter}`, '--test-concurrency=1', '--test-timeout=1800000', ...files],
  { cwd: repoRoot, stdio: 'inherit', env: { ...process.env, TUNEPIPE_TOOLS: toolsFile() } },
);
process.exit(result.status ?? 1);
