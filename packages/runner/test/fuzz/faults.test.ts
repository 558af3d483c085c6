import { test } from 'node:test';
import { fuzzFaults, type FaultFuzzStats } from './faults.ts';

/**
 * npm test runs the matrix examples and a few seeded random plans; `npm run fuzz` (FUZZ=long) runs
 * 300 fresh ones, about 3 minutes. FUZZ_RUNS overrides the count, FUZZ_SEED replays one.
 */
const long = process.env['FUZZ'] === 'long';
const runs = Number(process.env['FUZZ_RUNS'] ?? (long ? 300 : 8));
const seed = process.env['FUZZ_SEED'] !== undefined ? Number(process.env['FUZZ_SEED']) : long || process.env['FUZZ_RUNS'] ? undefined : 16;

const top = (counts: Record<string, number>) =>
  Object.entries(counts)
    .sort((a, b) => b[1] - a[1])
    .map(([k, n]) => `${n}× ${k}`)
    .join(', ');

test(`the runner under ${runs} random API fault sequences (and the full matrix): every stage done, each Job created once, no hang, no stack trace`, async (t) => {
  let stats: FaultFuzzStats | undefined;
  const started = Date.now();
  try {
    stats = await fuzzFaults(runs, seed);
  } finally {
    if (stats === undefined) t.diagnostic('runner fault fuzz failed: see the counterexample above');
  }
  t.diagnostic(
    `runner fault fuzz: ${stats.runs} runs (${stats.singleFaultRuns} with a single fault, ${stats.restarts} with an API server restart), ${stats.faults} faults in ${((Date.now() - started) / 1000).toFixed(0)} s; ` +
      `${stats.stagesFailed} stages failed, ${stats.hangs} hangs, ${stats.stackTraces} stack traces`,
  );
  t.diagnostic(`  faults: ${top(stats.byFault)}`);
  t.diagnostic(`  calls: ${top(stats.byCall)}`);
  // The machine-readable line scripts/fuzz.mjs sums into its table.
  t.diagnostic(
    `fuzz-count: runner runs=${stats.runs} faults=${stats.faults} single_fault_runs=${stats.singleFaultRuns} restarts=${stats.restarts} ` +
      `stages_failed=${stats.stagesFailed} stages_failed_by_one_fault=${stats.stagesFailedBySingleFault} hangs=${stats.hangs} stack_traces=${stats.stackTraces}`,
  );
});
