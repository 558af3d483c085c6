#!/usr/bin/env node
// The fuzzers, run long: every test file under a `fuzz/` folder (npm test runs the same files with a
// short, seeded budget), then one table of their counts against the issue's targets.
//
// Environment, as the fuzz tests read it:
//   FUZZ=long        set by this script: each fuzzer runs its long budget, sized to reach its floor
//                    below (the DSL 10,000 pipelines, the converter 10,000 dataset files, the runner
//                    300 fault sequences); without it a fuzzer runs its short seeded budget (npm test).
//   FUZZ_RUNS=<n>    overrides every fuzzer's number of cases (the floors are then not enforced).
//   FUZZ_SEED=<n>    replays one seed; without it the long run takes fresh seeds.
//
// Counts: each fuzz test reports what it did with one TAP diagnostic line, `t.diagnostic(...)`:
//
//   fuzz-count: <target> <key>=<integer> <key>=<integer> ...
//
// <target> names the fuzzer (dsl, convert, runner); keys are lower_snake_case; lines of the same
// target add up. These keys are the issue's targets and must be 0 wherever they are reported:
//   stack_traces                a TypeError (or any non-Issue error) escaped
//   rows_lost                   rows in ≠ rows out + rows quarantined
//   invalid_rows_out            a structurally invalid row (or one with U+FFFD it did not hold) in training data
//   hangs                       a case that did not end in its time
//   stages_failed_by_one_fault  stages failed in runs that met a single transient API fault
// Each target must report the ones listed for it in EXPECTED below, and reach FLOORS (in long mode).
// Any other key (pipelines, files, runs, faults, …) is shown as counted.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(fileURLToPath(new URL('..', import.meta.url)));

const ZERO = ['stack_traces', 'rows_lost', 'invalid_rows_out', 'hangs', 'stages_failed_by_one_fault'];
const EXPECTED = {
  dsl: ['stack_traces'],
  convert: ['stack_traces', 'rows_lost', 'invalid_rows_out'],
  runner: ['stack_traces', 'hangs', 'stages_failed_by_one_fault'],
};
const FLOORS = { dsl: { pipelines: 10_000 }, convert: { files: 10_000 } };

function fuzzFiles(dir, inFuzz, out) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'node_modules' || entry.name === 'dist' || entry.name.startsWith('.')) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) fuzzFiles(path, inFuzz || entry.name === 'fuzz', out);
    else if (inFuzz && /\.test\.m?ts$/.test(entry.name)) out.push(relative(root, path));
  }
  return out;
}

/** Sums the `fuzz-count:` lines of a TAP stream by target. */
export function collectCounts(tap) {
  const counts = new Map();
  for (const line of tap.split('\n')) {
    const m = /^\s*#\s*fuzz-count:\s*(\S+)\s*(.*)$/.exec(line);
    if (!m) continue;
    const target = counts.get(m[1]) ?? new Map();
    for (const pair of m[2].trim().split(/\s+/).filter(Boolean)) {
      const kv = /^([a-z0-9_]+)=(\d+)$/.exec(pair);
      if (kv) target.set(kv[1], (target.get(kv[1]) ?? 0) + Number(kv[2]));
    }
    counts.set(m[1], target);
  }
  return counts;
}

/** The table, and what misses a target. */
export function summarize(counts, { floors = true } = {}) {
  const problems = [];
  const targets = [...new Set([...Object.keys(EXPECTED), ...counts.keys()])];
  const rows = targets.map((target) => {
    const c = counts.get(target);
    if (!c) {
      problems.push(`${target}: no fuzz-count line (did its fuzz test run and print one?)`);
      return [target, ...ZERO.map(() => '–'), 'not reported'];
    }
    for (const key of EXPECTED[target] ?? []) if (!c.has(key)) problems.push(`${target}: ${key} not reported`);
    for (const key of ZERO) if ((c.get(key) ?? 0) > 0) problems.push(`${target}: ${key} = ${c.get(key)} (target 0)`);
    for (const [key, min] of Object.entries((floors && FLOORS[target]) || {})) {
      if ((c.get(key) ?? 0) < min) problems.push(`${target}: ${key} = ${c.get(key) ?? 0}, below ${min.toLocaleString('en-US')}`);
    }
    const counted = [...c].filter(([k]) => !ZERO.includes(k)).map(([k, n]) => `${k} ${n.toLocaleString('en-US')}`).join(', ');
    return [target, ...ZERO.map((k) => (c.has(k) ? String(c.get(k)) : '–')), counted];
  });
  const header = ['target', ...ZERO, 'counted'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells) => cells.map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i]))).join('  ');
  return { table: [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n'), problems };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const files = ['packages', 'test'].flatMap((d) => fuzzFiles(join(root, d), false, [])).sort();
  const override = process.env.FUZZ_RUNS;
  console.log(`fuzzing ${override ? `with ${override} runs each` : 'with each fuzzer’s long budget'}${process.env.FUZZ_SEED ? ` (seed ${process.env.FUZZ_SEED})` : ', fresh seeds'}: ${files.join(', ')}`);
  const started = Date.now();
  const dir = mkdtempSync(join(tmpdir(), 'tunepipe-fuzz-'));
  const tapFile = join(dir, 'fuzz.tap');
  const result = spawnSync(
    process.execPath,
    [
      '--max-old-space-size=3072',
      '--import',
      'tsx',
      '--test',
      '--test-concurrency=1',
      '--test-reporter=spec',
      '--test-reporter-destination=stdout',
      '--test-reporter=tap',
      `--test-reporter-destination=${tapFile}`,
      ...files,
    ],
    { cwd: root, stdio: 'inherit', env: { ...process.env, FUZZ: 'long' } },
  );
  let tap = '';
  try {
    tap = readFileSync(tapFile, 'utf8');
  } catch {
    // no TAP written: the table says every target is unreported
  }
  rmSync(dir, { recursive: true, force: true });
  const { table, problems } = summarize(collectCounts(tap), { floors: !override });
  console.log(`\nfuzz counts after ${((Date.now() - started) / 1000).toFixed(0)} s (targets: ${ZERO.join(', ')} all 0):\n${table}`);
  if (problems.length > 0) console.log(`\nmissed:\n${problems.map((p) => `  ✗ ${p}`).join('\n')}`);
  else console.log('\nevery target met');
  process.exit(result.status !== 0 ? (result.status ?? 1) : problems.length > 0 ? 1 : 0);
}
