import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LLAMA3_8B } from '../src/model/architecture.ts';
import { formatCount, formatDuration, formatGB, formatGiB, formatMemoryBreakdown, formatPipelinePlan, formatStageExplain, formatTable, formatUsd, planPipeline, wrapText, PLAN_WIDTH } from '../src/planner/index.ts';

test('units: memory in GiB, files in GB, money and durations', () => {
  assert.equal(formatGiB(16_060_522_496), '14.96 GiB');
  assert.equal(formatGB(16_060_522_496), '16.06 GB');
  assert.equal(formatGiB(512 * 2 ** 20), '512 MiB');
  assert.equal(formatGB(83_886_080), '84 MB');
  assert.equal(formatUsd(1.2345), '$1.23');
  assert.equal(formatUsd(1234.5), '$1,234.50');
  assert.equal(formatUsd(0.004), '$0.004');
  assert.equal(formatUsd(null), '—');
  assert.equal(formatDuration(1530), '25m 30s');
  assert.equal(formatDuration(45), '45s');
  assert.equal(formatDuration(3720), '1h 02m');
  assert.equal(formatCount(20_971_520), '20,971,520');
});

test('the pipeline table lists every stage with GPU, memory, time, GPU-hours and cost, then totals', () => {
  const plan = planPipeline([
    { kind: 'fetch-model', name: 'fetch-model', architecture: LLAMA3_8B },
    { kind: 'sft', name: 'sft', architecture: LLAMA3_8B, args: { per_device_train_batch_size: 2, gradient_accumulation_steps: 8, cutoff_len: 1024, bf16: true, num_train_epochs: 10 }, data: { rows: 481, meanTokensPerRow: 603 } },
    { kind: 'serve', name: 'serve', architecture: LLAMA3_8B, weights: { format: 'gptq', bits: 4 }, args: { max_model_len: 8192 } },
  ]);
  const text = formatPipelinePlan(plan);
  const lines = text.split('\n');
  assert.match(lines[0]!, /^stage\s+GPU\s+GiB\/GPU need ±band \/ usable\s+time\s+GPU-h\s+cost$/);
  assert.match(lines[1]!, /^─+( +─+){5}$/, 'one rule under the header');
  // times are bands, fast–slow: fetch's 253 s with bandwidth ±50 % is 168-506 s
  assert.match(lines[2]!, /^fetch-model\s+CPU\s+RAM 1\.00\s+2m 48s–8m 26s\s+—\s+—$/);
  const sft = plan.stages[1]!;
  // memory: the need ± its band / the L4's 22.49 GiB; cost over the time's band
  const [fast, slow] = sft.secondsRange.map(formatDuration);
  const [cheap, dear] = sft.costUsdRange!.map((x) => x.toFixed(2));
  assert.match(lines[3]!, new RegExp(`^sft\\s+1× l4\\s+20\\.28 ±0\\.74 / 22\\.49\\s+${fast}–${slow}\\s+${sft.gpuHours.toFixed(2)}\\s+\\$${cheap}–${dear}$`));
  assert.match(lines[4]!, /^serve\s+1× l4\s+.*ready \d+m \d\ds–\d+m \d\ds\s+—\s+\$0\.80\/h$/);
  assert.match(lines[5]!, /^total \(batch stages\)/);
  assert.match(text, /serving: \$0\.80\/h while up/);
  assert.match(text, /Every figure carries its error band: a GPU is chosen when the need plus its band fits/);
  assert.match(text, /aws prices\. Indicative/);
  assert.ok(lines.every((l) => [...l].length <= PLAN_WIDTH), 'fits 100 columns');
  const wide = formatPipelinePlan(plan, { wide: true });
  assert.match(wide.split('\n')[0]!, /RAM GiB\s+disk GiB/);
  assert.ok(wide.split('\n').some((l) => l.length > PLAN_WIDTH), 'wide wraps nothing');

  const breakdown = formatMemoryBreakdown(sft.gpuMemory!);
  assert.match(breakdown, /frozen weights\s+14\.96 GiB\s+exact\s+8,030,261,248 params × 2 B/);
  assert.match(breakdown, /allocator reserve \(cached, unused\s+1\.04 GiB\s+±30%/);
  assert.match(breakdown.split('\n').at(-1)!, /total\s+20\.28 GiB\s+±753 MiB/);
});

test('--explain: the named memory terms, host memory, disk, time per step and the trainable-parameter line', () => {
  const [sft] = planPipeline([{ kind: 'sft', name: 'sft', architecture: LLAMA3_8B, args: { per_device_train_batch_size: 2, gradient_accumulation_steps: 8, cutoff_len: 1024, bf16: true, num_train_epochs: 10 }, data: { rows: 481, meanTokensPerRow: 603 } }]).stages;
  const text = formatStageExplain(sft!, { headroom: 0 });
  const lines = text.split('\n');
  assert.equal(lines[0], 'sft (sft) on 1× l4 (chosen by the planner)');
  assert.equal(lines[1], 'trainable params: 20,971,520 || all params: 8,051,232,768 || trainable%: 0.2605');
  assert.match(text, /GPU memory per GPU: 20\.28 GiB ± 753 MiB needed of 22\.49 GiB; the band is kept free/);
  assert.match(text, /PyTorch: 18\.74 GiB allocated \(torch\.cuda\.max_memory_allocated\), 19\.78 GiB reserved\s+\(max_memory_reserved\); peak at the loss's backward/);
  const literal = (t: string) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  // each term on its own line: its name (or the start of it, wrapped), its size and its band
  for (const term of sft!.gpuMemory!.terms) assert.match(text, new RegExp(`^${literal(term.name.split(' ')[0]!)}.*\\s${literal(formatGiB(term.bytes))}\\s+(exact|±\\d+%)  `, 'm'));
  assert.match(text, /^time: \S+ \S+ expected \(\S+ \S+–\S+ \S+\); Job deadline/m);
  assert.match(text, /^training: 300 optimizer steps, 2,812,995 tokens at [\d,]+ tokens\/s \([\d,]+–[\d,]+, ±25%\)$/m);
  assert.match(text, /GFLOP per token; \d+% of the GPU's peak at this batch/);
  assert.match(text, /^host memory \(per pod\)$/m);
  assert.match(text, /^disk \(artifact folder\)$/m);
  for (const step of Object.keys(sft!.secondsBreakdown)) assert.match(text, new RegExp(`^${literal(step)}\\s+(<1s|\\d)`, 'm'));
  assert.match(text, /^cost: 1 GPU × \S+ \S+ = \d\.\d\d GPU-h = \$\d/m);
  assert.ok(lines.every((l) => [...l].length <= PLAN_WIDTH), lines.find((l) => [...l].length > PLAN_WIDTH));
});

test('one table style: header, rule, two-space gaps, numbers right, wrapped cells continue indented', () => {
  const text = formatTable(
    [{ header: 'name' }, { header: 'n', align: 'right' }, { header: 'note', flex: true }],
    [['a', '1', 'one two three four five six'], ['bb', '22', 'x']],
    { width: 20 },
  );
  assert.deepEqual(text.split('\n'), ['name   n  note', `${'─'.repeat(4)}  ${'─'.repeat(2)}  ${'─'.repeat(10)}`, 'a      1  one two', '            three', '            four', '            five six', 'bb    22  x']);
  assert.ok(text.split('\n').every((l) => l.length <= 20), text);
  assert.deepEqual(wrapText('    fix:   a b c d', 12, '           '), ['    fix:   a', '           b', '           c', '           d']);
  assert.deepEqual(wrapText('abcdefghij', 4), ['abcd', 'efgh', 'ij']);
});
