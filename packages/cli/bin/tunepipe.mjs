#!/usr/bin/env node
// Runs the bundled CLI (dist/tunepipe.mjs, built by build.mjs) with plain node: transpiling the
// TypeScript sources at every start cost seconds. The bundle is gitignored and rebuilt here whenever
// a file it is made from is newer, so a fresh clone and an edited source need no build step.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const cliDir = fileURLToPath(new URL('..', import.meta.url));
const packagesDir = join(cliDir, '..');
const repoRoot = join(packagesDir, '..');
const bundle = join(cliDir, 'dist', 'tunepipe.mjs');

function mtime(path) {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return 0;
  }
}

/** True when a file under `dir` was modified after `than`. */
function newerUnder(dir, than) {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return false;
  }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory() ? newerUnder(path, than) : mtime(path) > than) return true;
  }
  return false;
}

/** The bundle inlines every workspace package's sources and the locked dependencies. */
function bundleIsStale() {
  const built = mtime(bundle);
  if (built === 0) return true;
  if ([join(cliDir, 'build.mjs'), join(repoRoot, 'package-lock.json')].some((f) => mtime(f) > built)) return true;
  return readdirSync(packagesDir).some((pkg) => mtime(join(packagesDir, pkg, 'package.json')) > built || newerUnder(join(packagesDir, pkg, 'src'), built));
}

if (bundleIsStale()) {
  const { buildCli } = await import('../build.mjs');
  try {
    await buildCli({ quiet: true });
  } catch {
    // esbuild has printed what does not compile.
    process.stderr.write('tunepipe: the CLI does not build (see above)\n');
    process.exit(2);
  }
}

const { main } = await import(pathToFileURL(bundle).href);
process.exitCode = await main(process.argv.slice(2));
