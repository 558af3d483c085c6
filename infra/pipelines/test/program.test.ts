import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as pulumi from '@pulumi/pulumi';
import { CheckError, LABELS } from '@tunepipe/core';
import { pipelinesProgram, type ClusterPlacement, type CompilePipeline, type PipelinesStackOutputs } from '../src/index.ts';
import { installEngineDouble, runFailingProgram, runProgram, runProgramFailingLate } from './engine-double.ts';
import { seedPipeline } from './fixtures.ts';

const KUBECONFIG = 'apiVersion: v1\nkind: Config\nusers: [{name: admin, user: {token: kubeconfig-canary-7f3a}}]\n';
const CLUSTER = 'acme/tunepipe-cluster/prod';

/** Stands in for the workspace's loader + compile: records the placement it was asked for. */
function compileWith(calls: { pipeline: string; placement: ClusterPlacement }[]): CompilePipeline {
  return (pipeline, placement) => {
    calls.push({ pipeline, placement });
    return seedPipeline({
      pipeline,
      ...(placement.namespace !== undefined ? { namespace: placement.namespace } : {}),
      ...(placement.artifactsClaim !== undefined ? { artifactsClaim: placement.artifactsClaim } : {}),
      ...(placement.queueName !== undefined ? { queueName: placement.queueName } : {}),
    });
  };
}

function messageOf(error: unknown): string {
  assert.ok(pulumi.RunError.isInstance(error), `expected a RunError (printed without a stack trace), got ${String(error)}`);
  return error.message;
}

test('config problems stop the program with every problem listed, before anything is registered', async () => {
  const engine = installEngineDouble({
    config: {
      'tunepipe:pipeline': '["llama3-fintech"]',
      'tunepipe:timeoutFactor': '0.5',
      'tunepipe:startupAllowanceSeconds': 'ten minutes',
      'tunepipe:queueName': 'gpu queue',
      'kubernetes:context': 'prod',
    },
  });
  const calls: { pipeline: string; placement: ClusterPlacement }[] = [];
  const message = messageOf(await runFailingProgram(() => pipelinesProgram(compileWith(calls))));
  assert.match(message, /^tunepipe: 5 problems; nothing was deployed/);
  assert.match(message, /✗ tunepipe:pipeline: unknown config key\n {4}value: "\[\\"llama3-fintech\\"\]"\n {4}fix: {3}did you mean 'tunepipe:pipelines'\?/);
  assert.match(message, /✗ tunepipe:pipelines: is required \(a list\)\n {4}fix: {3}pulumi config set --path 'tunepipe:pipelines\[0\]' llama3-fintech/);
  assert.match(message, /✗ tunepipe:timeoutFactor: a factor below 1 gives up before the stage is expected to finish\n {4}value: "0.5"/);
  assert.match(message, /✗ tunepipe:startupAllowanceSeconds: must be a whole number of seconds, e.g. 900\n {4}value: "ten minutes"/);
  assert.match(message, /✗ tunepipe:queueName: must be usable as a label value/);
  assert.doesNotMatch(message, /kubernetes:context/, 'other namespaces are not ours to judge');
  assert.deepEqual(engine.registered, []);
  assert.deepEqual(calls, []);
});

test('a pipeline list given as a bare name says how to set a list', async () => {
  installEngineDouble({ config: { 'tunepipe:pipelines': 'llama3-fintech' } });
  const message = messageOf(await runFailingProgram(() => pipelinesProgram(compileWith([]))));
  assert.match(message, /✗ tunepipe:pipelines: must be a list, not a string\n {4}value: "llama3-fintech"\n {4}fix: {3}pulumi config set --path 'tunepipe:pipelines\[0\]' llama3-fintech/);
});

test('namespace, artifacts claim, queue and kubeconfig come from the cluster stack; the kubeconfig stays secret', async () => {
  const engine = installEngineDouble({
    config: { 'tunepipe:pipelines': '["llama3-fintech"]', 'tunepipe:clusterStack': CLUSTER },
    stacks: {
      [CLUSTER]: {
        outputs: { namespace: 'ml-pipelines', artifactsPvc: 'shared-rwx', localQueue: 'tunepipe-gpu', kubeconfig: KUBECONFIG },
        secret: ['kubeconfig'],
      },
    },
  });
  const calls: { pipeline: string; placement: ClusterPlacement }[] = [];
  const outputs = await runProgram(() => pipelinesProgram(compileWith(calls)));

  assert.deepEqual(calls, [{ pipeline: 'llama3-fintech', placement: { namespace: 'ml-pipelines', artifactsClaim: 'shared-rwx', queueName: 'tunepipe-gpu' } }]);
  const kube = engine.kube();
  assert.equal(kube.length, seedPipeline().objects.length);
  for (const r of kube) assert.equal((r.inputs['metadata'] as { namespace: string }).namespace, 'ml-pipelines', r.name);
  assert.ok(kube.filter((r) => r.type === 'kubernetes:batch/v1:Job').every((r) => JSON.stringify(r.inputs).includes('"claimName":"shared-rwx"')));
  const queued = kube.filter((r) => (r.inputs['metadata'] as { labels: Record<string, string> }).labels[LABELS.kueueQueue] === 'tunepipe-gpu');
  assert.deepEqual(queued.map((r) => r.name.replace(/-[0-9a-f]{8}$/, '')).sort(), ['llama3-fintech-evaluate', 'llama3-fintech-quantize', 'llama3-fintech-sft']);

  const providers = engine.registered.filter((r) => r.type === 'pulumi:providers:kubernetes');
  assert.equal(providers.length, 1);
  const kubeconfig = providers[0]!.inputs['kubeconfig'] as Record<string, unknown>;
  assert.equal(kubeconfig[pulumi.runtime.specialSigKey], pulumi.runtime.specialSecretSig, 'the kubeconfig must reach the provider as a secret');
  assert.equal(kubeconfig['value'], KUBECONFIG);
  assert.ok(kube.every((r) => r.provider?.includes('pulumi:providers:kubernetes::tunepipe-cluster')), 'every object goes to the cluster stack\'s cluster');
  const elsewhere = engine.registered.filter((r) => r !== providers[0]).map((r) => JSON.stringify(r.inputs));
  assert.ok(elsewhere.every((text) => !text.includes('kubeconfig-canary-7f3a')));

  const out = outputs as PipelinesStackOutputs;
  assert.equal(out.namespace, 'ml-pipelines');
  assert.equal(out.queueName, 'tunepipe-gpu');
  assert.deepEqual(Object.keys(out.pipelines['llama3-fintech']!.stages), ['fetch-model', 'convert', 'sft', 'merge', 'quantize', 'evaluate', 'serve']);
  assert.equal(out.pipelines['llama3-fintech']!.stages['sft']!.timeoutSeconds, 2 * 1530 + 900);
});

test('explicit config wins over the cluster stack, and makes its missing outputs irrelevant', async () => {
  installEngineDouble({
    config: {
      'tunepipe:pipelines': '["llama3-fintech"]',
      'tunepipe:clusterStack': CLUSTER,
      'tunepipe:namespace': 'team-a',
      'tunepipe:artifactsClaim': 'team-a-artifacts',
      'tunepipe:timeoutFactor': '3',
    },
    stacks: { [CLUSTER]: { outputs: { localQueue: 'tunepipe-gpu' } } },
  });
  const calls: { pipeline: string; placement: ClusterPlacement }[] = [];
  const outputs = (await runProgram(() => pipelinesProgram(compileWith(calls)))) as PipelinesStackOutputs;
  assert.deepEqual(calls[0]?.placement, { namespace: 'team-a', artifactsClaim: 'team-a-artifacts', queueName: 'tunepipe-gpu' });
  assert.equal(outputs.pipelines['llama3-fintech']!.stages['sft']!.timeoutSeconds, 3 * 1530 + 900);
});

test('a cluster stack without the outputs the pipelines need stops with the output named', async () => {
  const engine = installEngineDouble({
    config: { 'tunepipe:pipelines': '["llama3-fintech"]', 'tunepipe:clusterStack': CLUSTER },
    stacks: { [CLUSTER]: { outputs: { namespace: 42 } } },
  });
  const calls: { pipeline: string; placement: ClusterPlacement }[] = [];
  const message = messageOf(await runFailingProgram(() => pipelinesProgram(compileWith(calls))));
  assert.match(message, /^tunepipe: 2 problems; nothing was deployed\n\ncluster stack acme\/tunepipe-cluster\/prod: 2 problems/);
  assert.match(message, /✗ acme\/tunepipe-cluster\/prod#namespace: the cluster stack output 'namespace' must be a non-empty string\n {4}value: 42/);
  assert.match(message, /✗ tunepipe:clusterStack: the cluster stack exports no 'artifactsPvc'\n {4}value: "acme\/tunepipe-cluster\/prod"\n {4}fix: {3}run pulumi up in infra\/cluster for acme\/tunepipe-cluster\/prod, or set tunepipe:artifactsClaim in this stack/);
  assert.deepEqual(engine.kube(), []);
  assert.deepEqual(calls, []);
});

test('problems in several pipelines are reported together and nothing is deployed', async () => {
  const engine = installEngineDouble({ config: { 'tunepipe:pipelines': '["llama3-fintech","qwen-support","typo-pipeline"]' } });
  const compile: CompilePipeline = (pipeline) => {
    if (pipeline === 'llama3-fintech') return seedPipeline();
    if (pipeline === 'qwen-support') {
      throw new CheckError('pipeline qwen-support', [
        { code: 'merge.export-device', path: 'stages.merge.args.export_device', value: 'cuda', message: 'not a value export accepts', fix: "use 'auto' or 'cpu'" },
      ]);
    }
    throw new CheckError('tunepipe:pipelines', [{ code: 'pipeline.unknown', path: 'pipelines/typo-pipeline', message: 'no such pipeline', fix: "did you mean 'qwen-support'?" }]);
  };
  const message = messageOf(await runFailingProgram(() => pipelinesProgram(compile)));
  assert.match(message, /^tunepipe: 2 problems; nothing was deployed/);
  assert.match(message, /pipeline qwen-support: 1 problem\n✗ stages.merge.args.export_device: not a value export accepts\n {4}value: "cuda"/);
  assert.match(message, /tunepipe:pipelines: 1 problem\n✗ pipelines\/typo-pipeline: no such pipeline/);
  assert.deepEqual(engine.registered, []);
});

test('a compiled pipeline that does not match its folder or the cluster namespace is refused', async () => {
  installEngineDouble({ config: { 'tunepipe:pipelines': '["llama3-fintech"]', 'tunepipe:namespace': 'team-a' } });
  const message = messageOf(await runFailingProgram(() => pipelinesProgram(() => seedPipeline({ pipeline: 'llama3-other' }))));
  assert.match(message, /pipeline llama3-fintech: 2 problems/);
  assert.match(message, /the pipeline in folder llama3-fintech is named llama3-other/);
  assert.match(message, /compiled for namespace tunepipe, but the cluster's is team-a/);
});

test('without a cluster stack: the ambient kubeconfig, no stack reference, queue from config', async () => {
  const engine = installEngineDouble({ config: { 'tunepipe:pipelines': '["llama3-fintech"]', 'tunepipe:queueName': 'local-gpu' } });
  const calls: { pipeline: string; placement: ClusterPlacement }[] = [];
  await runProgram(() => pipelinesProgram(compileWith(calls)));
  assert.deepEqual(calls[0]?.placement, { queueName: 'local-gpu' });
  assert.ok(!engine.registered.some((r) => r.type === 'pulumi:providers:kubernetes' || r.type === 'pulumi:pulumi:StackReference'));
  assert.equal(engine.kube().filter((r) => JSON.stringify(r.inputs).includes('"kueue.x-k8s.io/queue-name":"local-gpu"')).length, 3);
});

test('secretKeyRefs are checked against the Secrets the cluster stack says it created', async () => {
  const stacks = (secretKeys: Record<string, string[]>) => ({
    [CLUSTER]: { outputs: { namespace: 'tunepipe', artifactsPvc: 'tunepipe-artifacts', secretKeys } },
  });
  const config = { 'tunepipe:pipelines': '["llama3-fintech"]', 'tunepipe:clusterStack': CLUSTER };

  const ok = installEngineDouble({ config, stacks: stacks({ 'tunepipe-hub': ['modelscope', 'hf'], 'tunepipe-vllm': ['api-key'] }) });
  await runProgram(() => pipelinesProgram(compileWith([])));
  assert.equal(ok.kube().length, seedPipeline().objects.length);

  const wrong = installEngineDouble({ config, stacks: stacks({ 'tunepipe-hub-tokens': ['MODELSCOPE_API_TOKEN'], 'tunepipe-vllm': ['VLLM_API_KEY'] }) });
  const message = messageOf(await runFailingProgram(() => pipelinesProgram(compileWith([]))));
  assert.match(message, /env\[MODELSCOPE_API_TOKEN\]\.valueFrom\.secretKeyRef: the cluster has no Secret tunepipe-hub\n {4}value: "tunepipe-hub"\n {4}fix: {3}did you mean 'tunepipe-hub-tokens'\?/);
  assert.match(message, /env\[VLLM_API_KEY\]\.valueFrom\.secretKeyRef: Secret tunepipe-vllm has no key "api-key" \(it has VLLM_API_KEY\)/);
  assert.deepEqual(wrong.kube(), []);
});

test('two pipelines that would register the same object are refused together', async () => {
  const engine = installEngineDouble({ config: { 'tunepipe:pipelines': '["llama3-fintech","llama3-fintech-copy"]' } });
  // The second folder compiles to objects of the same names (as `a` + `b-serve` and `a-b` + `serve` would).
  const message = messageOf(await runFailingProgram(() => pipelinesProgram((name) => ({ ...seedPipeline(), pipeline: name }))));
  assert.match(message, new RegExp(`pipelines of this stack: ${seedPipeline().objects.length} problems`));
  assert.match(message, /✗ pipelines\/llama3-fintech-copy: Deployment\/llama3-fintech-serve is also an object of pipeline llama3-fintech/);
  assert.deepEqual(engine.kube(), []);
});

test('a failed stage fails the program itself, with its reason, once every Job has finished', async () => {
  // Found by test/real/pulumi: reported only as an uncaught error, a failed Job reached the engine
  // after the Automation API's inline runner had told it the program was complete, and the engine
  // deleted what the failure kept from being registered (the serving endpoint among them).
  const compiled = seedPipeline();
  const quantize = compiled.stages.find((s) => s.name === 'quantize')!.workload.name;
  const failed = { type: 'Failed', status: 'True', reason: 'BackoffLimitExceeded', message: 'Job has reached the specified backoff limit' };
  const engine = installEngineDouble({
    config: { 'tunepipe:pipelines': '["llama3-fintech"]' },
    liveState: (type, name) => (type === 'kubernetes:batch/v1:Job' ? { status: { conditions: [name === quantize ? failed : { type: 'Complete', status: 'True' }] } } : undefined),
  });
  const { error } = await runProgramFailingLate(() => pipelinesProgram(compileWith([])));
  assert.match(messageOf(error), new RegExp(`^pipeline llama3-fintech: stage quantize failed — Job ${quantize}: BackoffLimitExceeded: Job has reached the specified backoff limit`));
  const jobs = engine.kube().filter((r) => r.type === 'kubernetes:batch/v1:Job').map((r) => r.name);
  assert.ok(jobs.includes(quantize));
  // Nothing that needs quantize's output was created.
  for (const stage of ['evaluate']) assert.ok(!jobs.includes(compiled.stages.find((s) => s.name === stage)!.workload.name), `${stage} started`);
  assert.ok(!engine.kube().some((r) => r.type === 'kubernetes:apps/v1:Deployment'), 'serve rolled out after quantize failed');
});
