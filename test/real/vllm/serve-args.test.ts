// The argv every example pipeline's vLLM Deployment passes to `vllm serve`, run through the pinned
// vLLM's own parser: the FlexibleArgumentParser with the serve subcommand, built as the `vllm` CLI
// builds it, then the subcommand's validate() (scripts/real/introspect_vllm.py `serve` mode). No
// engine starts, so nothing here needs a GPU or the model. Then flags the parser rejects, and values
// it lets through that the engine refuses at start-up: check() must reject all of them.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { check, definePipeline, formatIssues, isError, LLAMA3_8B, type Pipeline } from '@tunepipe/core';
import { compiledExamples, identityDatasets, vllmServeArgs, type VllmServeArgs } from '../support/generated.ts';
import { startLineServer, type LineServer } from '../support/python.ts';

interface Verdict {
  ok: boolean;
  error?: string;
  model?: string | null;
  parsed?: Record<string, unknown>;
}

let vllm: LineServer;
let deployments: VllmServeArgs[] = [];
let serving: string[] = [];

before(async () => {
  vllm = await startLineServer('introspect_vllm.py', ['serve']);
  for (const { name, compiled } of await compiledExamples()) {
    deployments.push(...vllmServeArgs(name, compiled));
    if (compiled.stages.some((s) => s.kind === 'serve')) serving.push(name);
  }
  serving = serving.sort();
});
after(async () => {
  await vllm?.close();
});

const parseWithVllm = (argv: readonly string[]) => vllm.request<Verdict>(argv);

test('every example pipeline with a serve stage has its vLLM Deployment here', () => {
  assert.ok(serving.includes('llama3-fintech'), `the seed pipeline serves: ${serving.join(', ')}`);
  assert.deepEqual([...new Set(deployments.map((d) => d.pipeline))].sort(), serving);
});

test("vLLM (pinned) accepts every example Deployment's `vllm serve` arguments", async () => {
  for (const d of deployments) {
    const verdict = await parseWithVllm(d.argv);
    assert.equal(verdict.ok, true, `${d.object}: vllm serve ${d.argv.join(' ')}\n  -> ${verdict.error}`);
    assert.equal(verdict.model, d.argv[0], 'the model path is the positional model_tag');
    const parsed = verdict.parsed ?? {};
    // What tunepipe meant is what vLLM read (not just "no error").
    const at = (flag: string) => d.argv[d.argv.indexOf(flag) + 1];
    assert.equal(parsed['port'], Number(at('--port')));
    assert.deepEqual(parsed['served_model_name'], [at('--served-model-name')]);
    if (d.argv.includes('--max-model-len')) assert.equal(parsed['max_model_len'], Number(at('--max-model-len')));
  }
});

const datasets = identityDatasets;

function servedWith(args: Record<string, string | number | boolean>): Pipeline {
  return definePipeline({ name: 'bad' }, (p) => {
    const base = p.baseModel({ hub: 'huggingface', id: 'meta-llama/Meta-Llama-3-8B-Instruct', revision: '8afb486c1db24fe5011ec46dfbe5b5dccdb575c2', template: 'llama3', architecture: LLAMA3_8B });
    const data = p.convert({ sources: ['identity'], cutoffLen: 1024 });
    const adapter = p.sft({ model: base, train: data.train, args: { cutoff_len: 1024, save_steps: 0.25 } });
    p.serve({ model: p.merge({ adapter, args: { export_size: 4 } }), args });
  });
}

const bad = [
  { flag: '--max-model-length', value: '4096', arg: 'max-model-length', parser: 'rejects', code: 'vllm.unknown' },
  { flag: '--dtype', value: 'bf16', arg: 'dtype', parser: 'rejects', code: 'vllm.choice' },
  // argparse takes any string here; the engine looks it up in its registry at start-up.
  { flag: '--quantization', value: 'awq4', arg: 'quantization', parser: 'accepts', code: 'vllm.choice' },
  { flag: '--load-format', value: 'safetensor', arg: 'load-format', parser: 'accepts', code: 'vllm.choice' },
] as const;

for (const b of bad) {
  test(`vLLM's parser ${b.parser} ${b.flag} ${b.value}; check() rejects it`, async () => {
    const base = deployments[0];
    assert.ok(base, 'no example Deployment');
    const verdict = await parseWithVllm([...base.argv, b.flag, b.value]);
    assert.equal(verdict.ok, b.parser === 'accepts', `${b.flag} ${b.value}: ${verdict.error ?? 'accepted'}`);
    const issues = check(servedWith({ [b.arg]: b.value }), { datasets });
    assert.ok(issues.some((i) => i.code === b.code && isError(i)), `check() does not reject ${b.flag} ${b.value} with ${b.code}:\n${formatIssues(issues)}`);
  });
}

test('the sound pipeline the bad flags are added to has no errors', () => {
  const errors = check(servedWith({}), { datasets }).filter(isError);
  assert.deepEqual(errors, [], formatIssues(errors));
});
