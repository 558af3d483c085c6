// A multi-node training gang through GitOps: as an Indexed Job or a JobSet it is a batch stage
// (never pruned under a running gang, re-created when its immutable spec changes, its suspend left
// to Kueue), and the pull request's plan counts the GPUs of every node.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { parse, parseAllDocuments } from 'yaml';
import { compile, definePipeline, LLAMA3_8B, type CompileContext, type CompiledPipeline } from '@tunepipe/core';
import { ARGOCD_ANNOTATIONS, ARGOCD_JOB_SYNC_OPTIONS, ARGOCD_PROTECTED_SYNC_OPTIONS, diffPipelineSets, FLUX_FORCE_ANNOTATION, FLUX_PRUNE_ANNOTATION, renderArgoCd, renderFlux } from '../src/index.ts';

const rows = gzipSync(JSON.stringify([{ instruction: 'Who are you?', input: '', output: 'I am a model.' }])).toString('base64');
const context: CompileContext = {
  queueName: 'tunepipe-gpu',
  datasets: { fintech: { name: 'fintech', digest: '2'.repeat(64), descriptor: { format: 'alpaca', files: ['fintech.json'] }, files: [{ path: 'fintech.json', sha256: 'e'.repeat(64), size: 1234, gzipBase64: rows }], stats: { rows: 20000, meanTokens: 300, maxTokens: 1000 } } },
};
const SOURCE = { repoUrl: 'https://github.com/acme/ml-pipelines.git', revision: 'main', path: 'pipelines/gang/dist' };

function gang(multiNode: 'indexed-job' | 'jobset'): CompiledPipeline {
  const pipeline = definePipeline({ name: 'gang' }, (p) => {
    const base = p.baseModel({ hub: 'huggingface', id: 'meta-llama/Meta-Llama-3-8B-Instruct', revision: '8afb486c1db24fe5011ec46dfbe5b5dccdb575c2', template: 'llama3', architecture: LLAMA3_8B });
    const data = p.convert({ sources: ['fintech'], cutoffLen: 1024 });
    p.sft({ model: base, train: data.train, resources: { gpuType: 'h100-80gb', gpusPerNode: 8, nodes: 2 }, strategy: 'zero3', args: { cutoff_len: 1024, bf16: true, save_steps: 50 } });
  });
  return compile(pipeline, { ...context, multiNode });
}

for (const multiNode of ['indexed-job', 'jobset'] as const) {
  const workloadKind = multiNode === 'jobset' ? 'JobSet' : 'Job';
  test(`${multiNode}: the gang's ${workloadKind} is protected from pruning and re-created on change, in Argo CD and Flux output`, () => {
    const compiled = gang(multiNode);
    const sft = compiled.stages.find((s) => s.kind === 'sft')!;
    assert.equal(sft.workload.kind, workloadKind);

    const argo = renderArgoCd(compiled, SOURCE);
    const workload = argo.flatMap((f) => (f.path.startsWith('app/') ? parseAllDocuments(f.content).map((d) => d.toJS() as Record<string, any>) : [])).find((o) => o?.['kind'] === workloadKind)!; // eslint-disable-line @typescript-eslint/no-explicit-any
    const syncOptions = String(workload['metadata'].annotations[ARGOCD_ANNOTATIONS.syncOptions]).split(',');
    for (const option of [...ARGOCD_PROTECTED_SYNC_OPTIONS.split(','), ARGOCD_JOB_SYNC_OPTIONS]) assert.ok(syncOptions.includes(option), `${option} in ${syncOptions.join(',')}`);
    const application = parse(argo.find((f) => f.path.endsWith('application.yaml'))!.content) as { spec: { ignoreDifferences: { group: string; kind: string; jsonPointers: string[] }[] } };
    const ignored = application.spec.ignoreDifferences.map((d) => `${d.group}/${d.kind}${d.jsonPointers.join('')}`);
    assert.deepEqual(ignored, multiNode === 'jobset' ? ['batch/Job/spec/suspend', 'jobset.x-k8s.io/JobSet/spec/suspend'] : ['batch/Job/spec/suspend']);

    const flux = renderFlux(compiled, SOURCE);
    const fluxWorkload = flux.flatMap((f) => parseAllDocuments(f.content).map((d) => d.toJS() as Record<string, any>)).find((o) => o?.['kind'] === workloadKind)!; // eslint-disable-line @typescript-eslint/no-explicit-any
    assert.equal(fluxWorkload['metadata'].annotations[FLUX_PRUNE_ANNOTATION], 'Disabled');
    assert.equal(fluxWorkload['metadata'].annotations[FLUX_FORCE_ANNOTATION], 'enabled');
  });
}

test("the pull request's plan counts every node of a gang: 2 nodes × 8 GPUs × the expected time", () => {
  const compiled = gang('indexed-job');
  const sft = compiled.stages.find((s) => s.kind === 'sft')!;
  const plan = diffPipelineSets([], [compiled]);
  const row = plan.pipelines[0]!.stages.find((s) => s.stage === 'sft')!;
  assert.equal(sft.gpus, 8, 'GPUs per pod');
  assert.ok(Math.abs(row.gpuHours - (16 * sft.expectedSeconds) / 3600) < 1e-9, `${row.gpuHours} GPU-hours`);
});
