// The local target is one machine: a training gang (nodes > 1) is refused before anything starts,
// while a one-node multi-GPU stage (torchrun on this machine) is run as any other.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { compile, definePipeline, LLAMA3_8B, type CompileContext } from '@tunepipe/core';
import { localPreflight } from '../src/local/preflight.ts';
import { planLocalStage } from '../src/local/plan.ts';

const rows = gzipSync(JSON.stringify([{ instruction: 'Who are you?', input: '', output: 'I am a model.' }])).toString('base64');
const context: CompileContext = {
  datasets: { fintech: { name: 'fintech', digest: '2'.repeat(64), descriptor: { format: 'alpaca', files: ['fintech.json'] }, files: [{ path: 'fintech.json', sha256: 'e'.repeat(64), size: 1234, gzipBase64: rows }], stats: { rows: 20000, meanTokens: 300, maxTokens: 1000 } } },
};

function sftPlan(nodes: number) {
  const pipeline = definePipeline({ name: 'gang' }, (p) => {
    const base = p.baseModel({ hub: 'huggingface', id: 'meta-llama/Meta-Llama-3-8B-Instruct', revision: '8afb486c1db24fe5011ec46dfbe5b5dccdb575c2', template: 'llama3', architecture: LLAMA3_8B });
    const data = p.convert({ sources: ['fintech'], cutoffLen: 1024 });
    p.sft({ model: base, train: data.train, resources: { gpuType: 'h100-80gb', gpusPerNode: 8, nodes }, args: { cutoff_len: 1024, bf16: true, save_steps: 50 } });
  });
  const stage = compile(pipeline, context).stages.find((s) => s.kind === 'sft')!;
  return planLocalStage(stage, { artifactsDir: '/tmp/tunepipe-local-gang', env: {} });
}

test('a gang of 2 nodes is refused locally with what to do instead; one node of 8 GPUs is not', async () => {
  const gang = await localPreflight([sftPlan(2)], { pathVar: '/nonexistent', hasConverter: true });
  assert.equal(gang.length, 1, gang.join('\n'));
  assert.match(gang[0]!, /stage sft runs as a gang of 2 nodes × 8 GPUs; the local target is one machine: run it on a cluster \(--target cluster\), or set resources\.nodes to 1/);

  const single = await localPreflight([sftPlan(1)], { pathVar: '/nonexistent', hasConverter: true });
  assert.ok(!single.some((p) => p.includes('gang')), single.join('\n'));
  assert.ok(single.some((p) => p.startsWith('llamafactory-cli is not on PATH')), 'the one-node stage is checked like any other');
});
