import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LLAMA3_8B } from '../src/model/architecture.ts';
import { formatCount, formatDuration, formatGB, formatGiB, formatMemoryBreakdown, formatPipelinePlan, formatUsd, planPipeline } from '../src/planner/index.ts';

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
  assert.match(lines[0]!, /^stage\s+GPU\s+memory\/GPU \(need \/ usable\)\s+time\s+GPU-h\s+cost$/);
  assert.match(lines[1]!, /^fetch-model \(fetch-model\)\s+CPU\s+RAM 1\.00 GiB\s+4m 13s\s+—\s+—$/);
  const sft = plan.stages[1]!;
  assert.match(lines[2]!, new RegExp(`^sft \\(sft\\)\\s+1× l40s\\s+20\\.87 GiB / 40\\.49 GiB\\s+${formatDuration(sft.expectedSeconds)}\\s+${sft.gpuHours.toFixed(2)}\\s+\\$${(sft.costUsd ?? 0).toFixed(2)}$`));
  assert.match(lines[3]!, /^serve \(serve\)\s+1× l4\s+.*ready in .*\$0\.80\/h$/);
  assert.match(lines[4]!, /^total \(batch stages\)/);
  assert.match(text, /serving: \$0\.80\/h while up/);
  assert.match(text, /aws prices, 10% memory headroom/);

  const breakdown = formatMemoryBreakdown(sft.gpuMemory!);
  assert.match(breakdown, /frozen weights\s+14\.96 GiB\s+8,030,261,248 params × 2 B/);
  assert.match(breakdown.split('\n').at(-1)!, /total\s+20\.87 GiB/);
});
