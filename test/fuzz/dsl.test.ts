import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { loadCompileContext } from '@tunepipe/workspace';
import { fuzzDsl } from './dsl.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
/** npm test runs a short, seeded fuzz; `npm run fuzz` (FUZZ=long) runs 10,000 pipelines with a fresh seed; FUZZ_RUNS overrides. */
const long = process.env['FUZZ'] === 'long';
const runs = Number(process.env['FUZZ_RUNS'] ?? (long ? 10_000 : 150));
const seed = process.env['FUZZ_SEED'] !== undefined ? Number(process.env['FUZZ_SEED']) : long || process.env['FUZZ_RUNS'] ? undefined : 12;

test(`the DSL under ${runs} hostile pipelines: Issues or valid objects, never a stack trace`, async (t) => {
  const context = await loadCompileContext(root, { name: 'fuzz', stages: [{ kind: 'convert', name: 'convert', options: { sources: ['identity'], cutoffLen: 1024 } }] });
  let result: ReturnType<typeof fuzzDsl>;
  try {
    result = fuzzDsl(context, runs, seed);
  } catch (error) {
    // The property stops at its first failure: count it, so scripts/fuzz.mjs's table shows it.
    const cause = (error as { cause?: unknown }).cause;
    const crashed = cause instanceof Error && [cause.name, cause.constructor.name].some((n) => ['TypeError', 'RangeError', 'ReferenceError', 'SyntaxError'].includes(n));
    t.diagnostic(`fuzz-count: dsl failed_cases=1 stack_traces=${crashed ? 1 : 0}`);
    throw error;
  }
  assert.ok(result.refused > 0 && result.accepted > 0, 'the mutations reach both outcomes');
  t.diagnostic(`dsl fuzz: ${result.runs} pipelines, ${result.mutations} mutations, ${result.refused} refused with Issues, ${result.accepted} compiled to valid objects`);
  // For scripts/fuzz.mjs's table: a crash would have failed the property above.
  t.diagnostic(`fuzz-count: dsl failed_cases=0 pipelines=${result.runs} mutations=${result.mutations} refused=${result.refused} accepted=${result.accepted} stack_traces=0`);
});
