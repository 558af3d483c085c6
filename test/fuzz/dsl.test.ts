import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { loadCompileContext } from '@tunepipe/workspace';
import { fuzzDsl } from './dsl.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
/** npm test runs a short, seeded fuzz; `npm run fuzz` runs it long (FUZZ_RUNS) with a fresh seed. */
const runs = Number(process.env['FUZZ_RUNS'] ?? 150);
const seed = process.env['FUZZ_SEED'] !== undefined ? Number(process.env['FUZZ_SEED']) : process.env['FUZZ_RUNS'] ? undefined : 12;

test(`the DSL under ${runs} hostile pipelines: Issues or valid objects, never a stack trace`, async (t) => {
  const context = await loadCompileContext(root, { name: 'fuzz', stages: [{ kind: 'convert', name: 'convert', options: { sources: ['identity'], cutoffLen: 1024 } }] });
  const result = fuzzDsl(context, runs, seed);
  assert.ok(result.refused > 0 && result.accepted > 0, 'the mutations reach both outcomes');
  t.diagnostic(`dsl fuzz: ${result.runs} pipelines, ${result.mutations} mutations, ${result.refused} refused with Issues, ${result.accepted} compiled to valid objects`);
});
