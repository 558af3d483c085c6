#!/usr/bin/env node
// Benchmark of the dataset converter: generates ~1,000,000 Alpaca rows in a temp folder, converts
// them in a child process (so its peak RSS is the converter's alone) and reports rows/s and peak
// RSS against the targets (>= 100,000 rows/s, <= 256 MB).
//
// With --long-line MIB the file is instead a few ordinary rows around one row whose output is MIB
// mebibytes on a single line: reading it must stay linear in the line's length, and memory bounded
// by the reader's line limit (the row is kept or quarantined, never silently cut).
//
// usage: node scripts/bench-convert.mjs [--rows N] [--format jsonl|json] [--long-line MIB] [--keep]
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createWriteStream, mkdtempSync, readFileSync, rmSync, statSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { once } from 'node:events';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const TARGET_ROWS_PER_S = 100_000;
const TARGET_RSS_MB = 256;

if (process.argv[2] === '--child') {
  // Child: run the converter exactly as the CLI does and report time and peak RSS.
  const [configPath, inputsRoot, outDir] = process.argv.slice(3);
  const { convertCommand } = await import(pathToFileURL(join(root, 'packages/convert/src/index.ts')).href);
  const config = JSON.parse(readFileSync(configPath, 'utf8'));
  const started = process.hrtime.bigint();
  const { result } = await convertCommand({ config, repoRoot: inputsRoot, outDir, log: () => {} });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  // VmHWM is this process's own peak RSS. getrusage's maxRSS is not: on Linux it carries over the
  // parent's peak through fork+exec, which would charge the generator's memory to the converter.
  const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  const maxRssKb = hwm ? Number(hwm[1]) : process.resourceUsage().maxRSS;
  process.stdout.write(
    JSON.stringify({ seconds, maxRssKb, rows_in: result.rows_in, rows_out: result.rows_out, rows_quarantined: result.rows_quarantined, reasons: result.sources[0].reasons }),
  );
  process.exit(0);
}

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i === -1 ? fallback : process.argv[i + 1];
};
const longLineMib = process.argv.includes('--long-line') ? Number(arg('--long-line', '150')) : undefined;
const rows = longLineMib !== undefined ? 7 : Number(arg('--rows', '1000000'));
const format = arg('--format', 'jsonl');
const keep = process.argv.includes('--keep');

const work = mkdtempSync(join(tmpdir(), 'tunepipe-bench-'));
const dataDir = join(work, 'datasets', 'bench');
mkdirSync(dataDir, { recursive: true });
const fileName = format === 'json' ? 'bench.json' : 'bench.jsonl';
const dataPath = join(dataDir, fileName);

// Deterministic synthetic rows: mixed English/Chinese, varied lengths, about 1% exact duplicates
// and 0.1% malformed lines, so the run exercises dedupe and quarantine, not just the happy path.
let seed = 12345;
const rand = () => {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
  return seed / 4294967296;
};
const topics = ['loan repayment', 'credit card interest', 'deposit insurance', 'bond duration', 'FX spreads', 'KYC checks', 'chargebacks', 'mortgage refinancing'];
const zh = ['等额本息', '信用卡免息期', '存款保险', '基金定投', '反洗钱', '提前还款', '理财产品风险等级', '征信查询'];
function makeRow(i) {
  const t = topics[i % topics.length];
  if (i % 4 === 3) {
    const z = zh[i % zh.length];
    return { instruction: `请解释${z}，第${i}题。`, input: '', output: `${z}是常见的金融概念。`.repeat(1 + Math.floor(rand() * 4)) + `示例编号${i}。` };
  }
  const reps = 1 + Math.floor(rand() * 3);
  return {
    instruction: `Explain ${t} for case ${i}.`,
    input: i % 3 === 0 ? `Amount: ${Math.floor(rand() * 100000)}; rate: ${(rand() * 10).toFixed(2)}%` : '',
    output: `For case ${i}, ${t} works as follows. `.repeat(reps) + 'Check the contract terms and recompute the numbers before deciding.',
  };
}

const genStart = Date.now();
const out = createWriteStream(dataPath, { highWaterMark: 1 << 20 });
let buffer = format === 'json' ? '[\n' : '';
let previous = '';
for (let i = 0; i < rows; i++) {
  let line;
  if (longLineMib !== undefined && i === 3) line = JSON.stringify({ instruction: 'Summarise this filing.', input: '', output: 'x'.repeat(Math.round(longLineMib * 1024 * 1024)) });
  else if (i % 1000 === 999) line = '{"instruction": "broken row" "output": "missing comma"}';
  else if (i % 100 === 50 && previous) line = previous;
  else line = JSON.stringify(makeRow(i));
  previous = line;
  buffer += format === 'json' ? `${i ? ',\n' : ''}${line}` : `${line}\n`;
  if (buffer.length > 1 << 20) {
    if (!out.write(buffer)) await once(out, 'drain');
    buffer = '';
  }
}
buffer += format === 'json' ? '\n]\n' : '';
out.end(buffer);
await once(out, 'finish');
const size = statSync(dataPath).size;
const sha256 = createHash('sha256').update(readFileSync(dataPath)).digest('hex');
const descriptor = { format: 'alpaca', files: [fileName], license: 'CC0-1.0' };
writeFileSync(join(dataDir, 'dataset.yaml'), `format: alpaca\nfiles: [${fileName}]\nlicense: CC0-1.0\n`);
const config = {
  pipeline: 'bench',
  sources: [{ name: 'bench', descriptor, files: [{ path: fileName, sha256, size }] }],
  templateVars: { name: 'Bench', author: 'tunepipe' },
  seed: 42,
  split: { validation: 0.02, test: 0.1 },
  cutoffLen: 1024,
};
const configPath = join(work, 'config.json');
writeFileSync(configPath, JSON.stringify(config));
console.log(`generated ${rows.toLocaleString('en')} rows (${(size / 1024 / 1024).toFixed(0)} MiB ${format}) in ${((Date.now() - genStart) / 1000).toFixed(1)} s at ${work}`);

const child = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', configPath, work, join(work, 'out')], {
  cwd: root,
  encoding: 'utf8',
  maxBuffer: 1 << 20,
});
if (child.status !== 0) {
  console.error(child.stderr || child.stdout);
  if (!keep) rmSync(work, { recursive: true, force: true });
  process.exit(1);
}
const r = JSON.parse(child.stdout);
const rowsPerSecond = r.rows_in / r.seconds;
const rssMb = r.maxRssKb / 1024;
if (longLineMib !== undefined) {
  // One line of N MiB: linear time means tens of MiB/s whatever N. Memory: the line's bytes, its
  // string, the parsed row and the row written again to quarantine.jsonl (a too-long row is kept
  // whole) all exist at once, so the bound is ten copies of the line; the reader refuses lines over
  // MAX_LINE_BYTES (192 MiB), which caps it.
  const mibPerSecond = size / 1024 / 1024 / r.seconds;
  const boundMb = 10 * (size / 1024 / 1024) + 256;
  console.log(`one ${longLineMib} MiB line: ${r.seconds.toFixed(2)} s (${mibPerSecond.toFixed(0)} MiB/s), peak RSS ${rssMb.toFixed(0)} MB (bound ${boundMb.toFixed(0)} MB): rows_in ${r.rows_in} = rows_out ${r.rows_out} + rows_quarantined ${r.rows_quarantined} ${JSON.stringify(r.reasons)}`);
  if (!keep) rmSync(work, { recursive: true, force: true });
  const ok = rssMb <= boundMb && r.rows_in === r.rows_out + r.rows_quarantined && mibPerSecond >= 10;
  console.log(ok ? 'within targets' : 'OUTSIDE TARGETS');
  process.exit(ok ? 0 : 1);
}
console.log(`converted in ${r.seconds.toFixed(2)} s on ${cpus().length} cores: rows_in ${r.rows_in} = rows_out ${r.rows_out} + rows_quarantined ${r.rows_quarantined} ${JSON.stringify(r.reasons)}`);
console.log(`throughput: ${Math.round(rowsPerSecond).toLocaleString('en')} rows/s (target >= ${TARGET_ROWS_PER_S.toLocaleString('en')})`);
console.log(`peak RSS:   ${rssMb.toFixed(0)} MB (target <= ${TARGET_RSS_MB} MB)`);
if (!keep) rmSync(work, { recursive: true, force: true });
const ok = rowsPerSecond >= TARGET_ROWS_PER_S && rssMb <= TARGET_RSS_MB;
console.log(ok ? 'within targets' : 'OUTSIDE TARGETS');
process.exit(ok ? 0 : 1);
