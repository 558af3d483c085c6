import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fuzzShell } from './shell.ts';

/** npm test runs a short, seeded fuzz; `npm run fuzz` (FUZZ=long) runs 2,000 rounds with a fresh seed. */
const long = process.env['FUZZ'] === 'long';
const runs = Number(process.env['FUZZ_RUNS'] ?? (long ? 2000 : 40));
const seed = process.env['FUZZ_SEED'] !== undefined ? Number(process.env['FUZZ_SEED']) : long || process.env['FUZZ_RUNS'] ? undefined : 18;

test(`every shell text tunepipe writes, under ${runs} rounds of hostile values: no planted command runs, every value arrives whole`, () => {
  const root = mkdtempSync(join(tmpdir(), 'tunepipe-shell-fuzz-'));
  try {
    const s = fuzzShell(root, runs, seed);
    assert.equal(s.injections, 0);
    console.log(
      `# shell fuzz: ${s.runs} rounds, ${s.shells} shells run (${s.wrapper} stage wrappers, ${s.fetchScripts} fetch scripts, ${s.waitScripts * 2} wait-for-markers scripts, ` +
        `${s.markerChecks} marker checks, ${s.localSteps} local fetch steps): ${s.injections} planted commands ran, ${s.mangled} values mangled`,
    );
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
