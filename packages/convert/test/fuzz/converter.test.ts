import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cleanup, tempRepo } from '../helpers.ts';
import { fuzzConverter } from './converter.ts';

/** npm test runs a short, seeded fuzz; `npm run fuzz` (FUZZ=long) runs 10,000 files with a fresh seed. */
const long = process.env['FUZZ'] === 'long';
const runs = Number(process.env['FUZZ_RUNS'] ?? (long ? 10_000 : 120));
const seed = process.env['FUZZ_SEED'] !== undefined ? Number(process.env['FUZZ_SEED']) : long || process.env['FUZZ_RUNS'] ? undefined : 16;

test(`the converter under ${runs} malformed dataset files: no crash, no row lost, no invalid row or U+FFFD out, deterministic, agrees with check()`, async (t) => {
  const root = await tempRepo({});
  try {
    const s = await fuzzConverter(root, runs, seed);
    assert.ok(s.rowsOut > 0 && s.rowsQuarantined > 0 && Object.keys(s.failedWith).length > 0, 'the inputs reach every outcome');
    assert.equal(s.mergedRecords, 0);
    assert.ok((s.reasons['csv_unclosed_quote'] ?? 0) > 0, 'stray quotes reach the CSV cut');
    // The line scripts/fuzz.mjs adds up (see its header): every target but files must be 0.
    t.diagnostic(`fuzz-count: convert files=${s.inputs} runs=${s.runs} rows_in=${s.rowsIn} stack_traces=${s.crashes} rows_lost=${s.rowsIn - s.rowsOut - s.rowsQuarantined} invalid_rows_out=${s.invalidRowsOut + s.replacementCharsIntroduced} merged_records=${s.mergedRecords} nondeterministic=${s.nondeterministic} disagreements=${s.disagreementsWithCheck}`);
    const top = (counts: Record<string, number>) => Object.entries(counts).sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`).join(', ');
    console.log(
      `# converter fuzz: ${s.inputs} files, ${s.runs} runs, ${s.crashes} crashes; rows ${s.rowsIn} in = ${s.rowsOut} out + ${s.rowsQuarantined} quarantined; ` +
        `${s.invalidRowsOut} invalid rows out, ${s.replacementCharsIntroduced} with U+FFFD introduced, ${s.nondeterministic} nondeterministic, ${s.disagreementsWithCheck} disagreeing with check(), ` +
        `${s.mergedRecords} merged CSV records (longest out: ${s.longestRecordOut} lines)`,
    );
    console.log(`#   files: ${top(s.byFormat)}`);
    console.log(`#   quarantined: ${top(s.reasons)}`);
    console.log(`#   refused with Issues: ${top(s.failedWith)}`);
  } finally {
    await cleanup(root);
  }
});
