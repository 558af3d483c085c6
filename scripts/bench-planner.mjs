#!/usr/bin/env node
// The planner against measurements: every case of bench/planner/cases.ts with its source, the
// measured value, the prediction and the error. Exits 1 when a calibration case is off by more
// than ±5 % or a held-out case by more than ±10 %; reference cases are shown, not gated.
//
// usage: node scripts/bench-planner.mjs [--json]
import { spawnSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

if (process.argv[2] !== '--child') {
  // The cases are TypeScript: run this file again under tsx.
  const child = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', ...process.argv.slice(2)], { stdio: 'inherit', cwd: root });
  process.exit(child.status ?? 1);
}

const { plannerCases, caseError, withinTolerance, EXCLUDED_SOURCES } = await import(pathToFileURL(join(root, 'bench/planner/cases.ts')).href);
const { formatTable, wrapBlock, PLAN_WIDTH } = await import(pathToFileURL(join(root, 'packages/core/src/planner/format.ts')).href);

const cases = plannerCases();
if (process.argv.includes('--json')) {
  process.stdout.write(`${JSON.stringify(cases.map((c) => ({ ...c, error: caseError(c), within: withinTolerance(c) })), null, 2)}\n`);
  process.exit(cases.every(withinTolerance) ? 0 : 1);
}

const value = (c, x) => (c.unit === 'GiB' ? `${x.toFixed(2)} GiB` : `${Math.round(x).toLocaleString('en-US')} tok/s`);
const pct = (x) => `${x >= 0 ? '+' : '−'}${Math.abs(x * 100).toFixed(1)} %`;
const verdict = (c) => (c.tolerance === null ? 'not gated' : `${withinTolerance(c) ? 'ok' : 'OFF'} (±${c.tolerance * 100} %)`);
const rows = cases.map((c) => [c.id, c.role, c.quantity, value(c, c.measured), value(c, c.predicted), pct(caseError(c)), verdict(c)]);
console.log(
  formatTable(
    [
      { header: 'case' },
      { header: 'role' },
      { header: 'quantity', flex: true },
      { header: 'measured', align: 'right' },
      { header: 'predicted', align: 'right' },
      { header: 'error', align: 'right' },
      { header: 'check' },
    ],
    rows,
  ),
);
console.log('\nsources');
const bySource = new Map();
for (const c of cases) bySource.set(c.source, [...(bySource.get(c.source) ?? []), c]);
for (const [source, of] of bySource) {
  const notes = of.map((c) => `  ${c.id}: ${c.note}`).join('\n');
  console.log(wrapBlock(`• ${source.title}\n  at: ${source.url}\n  says: ${source.says}\n${notes}`, PLAN_WIDTH));
}
console.log('\nlooked at, not compared');
for (const s of EXCLUDED_SOURCES) console.log(wrapBlock(`• ${s.title} — ${s.url}\n  why: ${s.why}`, PLAN_WIDTH));

const off = cases.filter((c) => !withinTolerance(c));
const gated = cases.filter((c) => c.tolerance !== null);
console.log(`\n${gated.length - off.length} passed, ${off.length} failed`);
process.exit(off.length === 0 ? 0 : 1);
