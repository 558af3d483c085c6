import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as pulumi from '@pulumi/pulumi';
import * as k8s from '@pulumi/kubernetes';
import { CheckError, LABELS, type CompiledPipeline } from '@tunepipe/core';
import { PIPELINE_DEPLOYMENT_TYPE, PULUMI_TYPES, PipelineDeployment, checkJobStatus, planDeployment, type KubeKind, type PipelineDeploymentArgs } from '../src/index.ts';
import { installEngineDouble, runFailingProgram, runProgram, valueOf, type Registered } from './engine-double.ts';
import { editObject, graphEdges, seedPipeline, stageNamed } from './fixtures.ts';

async function deploy(args: PipelineDeploymentArgs, opts?: pulumi.ComponentResourceOptions) {
  const engine = installEngineDouble();
  let deployment: PipelineDeployment | undefined;
  await runProgram(async () => {
    deployment = new PipelineDeployment(args.compiled.pipeline, args, opts);
    return {};
  });
  return { engine, deployment: deployment! };
}

const identity = (r: Registered) => {
  const metadata = r.inputs['metadata'] as { name?: string; namespace?: string };
  return `${r.type} ${metadata.namespace}/${metadata.name} as ${r.name}`;
};

test('registers exactly compiled.objects, each as its typed resource named metadata.name', async () => {
  const compiled = seedPipeline();
  const { engine } = await deploy({ compiled });
  const expected = compiled.objects.map((o) => `${PULUMI_TYPES[o.kind as KubeKind]} ${o.metadata?.namespace}/${o.metadata?.name} as ${o.metadata?.name}`);
  assert.deepEqual(engine.kube().map(identity).sort(), expected.sort());
  assert.equal(engine.kube().length, compiled.objects.length);
  // One component per pipeline, and nothing else in the stack.
  assert.deepEqual(
    engine.registered.filter((r) => !r.type.startsWith('kubernetes:')).map((r) => `${r.type} ${r.name}`),
    ['pulumi:pulumi:Stack tunepipe-pipelines-test', `${PIPELINE_DEPLOYMENT_TYPE} llama3-fintech`],
  );
});

test('what reaches Pulumi is the planned object, field for field (nothing dropped by the typed classes)', async () => {
  const compiled = seedPipeline();
  const plan = planDeployment(compiled, { queueName: 'tunepipe-gpu' });
  const { engine } = await deploy({ compiled, queueName: 'tunepipe-gpu' });
  const byKey = new Map(engine.kube().map((r) => [`${r.inputs['kind']}/${r.name}`, r.inputs]));
  for (const planned of plan.resources) {
    assert.deepEqual(byKey.get(planned.key), JSON.parse(JSON.stringify(planned.object)), planned.key);
  }
});

test('dependsOn handed to Pulumi follows the pipeline graph', async () => {
  const compiled = seedPipeline();
  const { deployment } = await deploy({ compiled });
  const handed = deployment.registeredEdges.map((e) => `${e.from} -> ${e.to}`).sort();
  assert.deepEqual(handed, deployment.plan.edges.map((e) => `${e.from} -> ${e.to}`).sort());

  const stageOf = new Map(compiled.stages.map((s) => [`${s.workload.kind}/${s.workload.name}`, s.name]));
  const stageEdges = deployment.registeredEdges
    .filter((e) => stageOf.has(e.from) && stageOf.has(e.to))
    .map((e) => `${stageOf.get(e.from)} -> ${stageOf.get(e.to)}`)
    .sort();
  assert.deepEqual(stageEdges, graphEdges(compiled));
  // The resources handed over are the registered ones.
  for (const [key, dependencies] of deployment.dependencies) {
    for (const dependency of dependencies) {
      assert.ok([...deployment.resources.values()].includes(dependency as pulumi.CustomResource), key);
    }
  }
});

test('timeouts, replacement and ignore options per resource', async () => {
  const compiled = seedPipeline({ sftSeconds: 25 * 60 });
  const { deployment } = await deploy({ compiled, queueName: 'tunepipe-gpu' });
  const sft = stageNamed(compiled, 'sft');
  const sftOptions = deployment.resourceOptions.get(`Job/${sft.resourceName}`)!;
  assert.deepEqual(sftOptions.customTimeouts, { create: '3900s', update: '3900s' });
  assert.deepEqual(sftOptions.ignoreChanges, ['spec.suspend']);
  const serve = deployment.resourceOptions.get('Deployment/llama3-fintech-serve')!;
  // Deployment: max(2 × 420 s expected, 1800 s progress deadline) + 900 s.
  assert.deepEqual(serve.customTimeouts, { create: '2700s', update: '2700s' });
  assert.equal(serve.ignoreChanges, undefined);
  for (const [key, options] of deployment.resourceOptions) {
    assert.equal(options.deleteBeforeReplace, true, key);
    assert.equal(options.parent, deployment, key);
    if (key.startsWith('ConfigMap/') || key.startsWith('Service/')) assert.equal(options.customTimeouts, undefined, key);
  }
  assert.equal(deployment.stages['sft']?.timeoutSeconds, 3900);
});

test('Kueue label reaches the cluster on GPU Jobs only, and only with a queue', async () => {
  const compiled = seedPipeline();
  const gpuJobs = compiled.stages.filter((s) => s.gpus > 0 && s.workload.kind === 'Job').map((s) => s.resourceName).sort();
  const labelled = (rs: Registered[]) =>
    rs.filter((r) => (r.inputs['metadata'] as { labels?: Record<string, string> }).labels?.[LABELS.kueueQueue] === 'tunepipe-gpu').map((r) => `${r.type} ${r.name}`).sort();
  const queued = await deploy({ compiled, queueName: 'tunepipe-gpu' });
  assert.deepEqual(labelled(queued.engine.kube()), gpuJobs.map((n) => `kubernetes:batch/v1:Job ${n}`));
  const unqueued = await deploy({ compiled });
  assert.deepEqual(labelled(unqueued.engine.kube()), []);
  assert.ok(unqueued.engine.kube().every((r) => !JSON.stringify(r.inputs).includes(LABELS.kueueQueue)));
});

test('URNs live under the pipeline component and are identical when an unchanged pipeline is deployed again', async () => {
  const urns = async (compiled: CompiledPipeline) => {
    const { deployment } = await deploy({ compiled });
    return Promise.all([...deployment.resources.values()].map((r) => valueOf(r.urn)));
  };
  const first = await urns(seedPipeline());
  const second = await urns(seedPipeline());
  assert.deepEqual(second, first);
  for (const urn of first) assert.match(urn, /::tunepipe:pipelines:PipelineDeployment\$kubernetes:[a-z]+\/v1:[A-Za-z]+::llama3-fintech-/);
});

test('only secretKeyRef env and no credential literal reaches Pulumi', async () => {
  const compiled = seedPipeline();
  const { engine } = await deploy({ compiled });
  let envs = 0;
  const visit = (value: unknown): void => {
    if (Array.isArray(value)) return value.forEach(visit);
    if (!value || typeof value !== 'object') return;
    const record = value as Record<string, unknown>;
    if (Array.isArray(record['env'])) {
      for (const env of record['env'] as { name: string; value?: string; valueFrom?: { secretKeyRef?: unknown } }[]) {
        envs++;
        if (/TOKEN|KEY|SECRET|PASSWORD/.test(env.name)) {
          assert.equal(env.value, undefined, env.name);
          assert.ok(env.valueFrom?.secretKeyRef, env.name);
        }
      }
    }
    Object.values(record).forEach(visit);
  };
  engine.kube().forEach((r) => visit(r.inputs));
  assert.ok(envs > 0);
  const all = JSON.stringify(engine.registered.map((r) => r.inputs));
  assert.doesNotMatch(all, /hf_[A-Za-z0-9]{30,}|--api-key/);
  assert.match(all, /"secretKeyRef":\{"key":"api-key","name":"tunepipe-vllm"\}/);
});

test('a pipeline that cannot be deployed registers nothing', async () => {
  const compiled = seedPipeline();
  const fetch = stageNamed(compiled, 'fetch-model');
  const leaky = editObject(compiled, `Job/${fetch.resourceName}`, (job) => {
    (job as { spec: { template: { spec: { containers: { env: unknown[] }[] } } } }).spec.template.spec.containers[0]!.env.push({ name: 'HF_TOKEN', value: 'plain' });
    return job;
  });
  const engine = installEngineDouble();
  const error = await runFailingProgram(async () => new PipelineDeployment('llama3-fintech', { compiled: leaky }));
  assert.ok(error instanceof CheckError && error.issues.some((i) => i.code === 'pulumi.secret-literal'));
  assert.deepEqual(engine.kube(), []);
  assert.ok(!engine.registered.some((r) => r.type === PIPELINE_DEPLOYMENT_TYPE));
});

test('children use the provider given to the component', async () => {
  const engine = installEngineDouble();
  await runProgram(async () => {
    const provider = new k8s.Provider('cluster', { kubeconfig: pulumi.secret('apiVersion: v1') });
    new PipelineDeployment('llama3-fintech', { compiled: seedPipeline() }, { providers: [provider] });
    return {};
  });
  const providerRefs = new Set(engine.kube().map((r) => r.provider));
  assert.equal(providerRefs.size, 1);
  assert.match([...providerRefs][0]!, /\$pulumi:providers:kubernetes::cluster::cluster-id$/);
});

test('a failed Job becomes a RunError naming its stage and Kubernetes\' reason, not a wait until the timeout', () => {
  // Found by the real Kubernetes provider (test/real/pulumi): its Job await ends early only for
  // BackoffLimitExceeded / DeadlineExceeded, so a Job ended by a FailJob rule (a failed gate,
  // exit 3) was awaited until the stage's timeout. Jobs now wait for Complete or Failed
  // (JOB_FINISHED) and jobSucceeded() turns a Failed condition into this error.
  const where = { pipeline: 'llama3-fintech', stage: 'eval-adapter', job: 'llama3-fintech-eval-adapter-3593434b', namespace: 'tunepipe' };
  const failed = { type: 'Failed', status: 'True', reason: 'PodFailurePolicy', message: 'Container gate for pod tunepipe/llama3-fintech-eval-adapter-3593434b-x7k2p failed with exit code 3 matching FailJob rule at index 1' };
  const error = (() => {
    try {
      checkJobStatus({ conditions: [{ type: 'FailureTarget', status: 'True' }, failed] }, where);
    } catch (e) {
      return e;
    }
    return assert.fail('a failed Job must not count as done');
  })();
  assert.ok(pulumi.RunError.isInstance(error), `expected a RunError (printed without a stack trace), got ${String(error)}`);
  assert.equal(
    error.message.split('\n')[0],
    'pipeline llama3-fintech: stage eval-adapter failed — Job llama3-fintech-eval-adapter-3593434b: PodFailurePolicy: Container gate for pod tunepipe/llama3-fintech-eval-adapter-3593434b-x7k2p failed with exit code 3 matching FailJob rule at index 1',
  );
  assert.match(error.message, /Exit code 3 is a failed evaluation gate/);
  assert.match(error.message, /kubectl -n tunepipe logs job\/llama3-fintech-eval-adapter-3593434b --all-containers/);
  assert.match(error.message, /runs again \(pulumi\.com\/replaceUnready\)/);
  // Complete, or still running (a preview, a Job that was not touched): no error.
  assert.equal(checkJobStatus({ conditions: [{ type: 'Complete', status: 'True' }] }, where), where.job);
  assert.equal(checkJobStatus(undefined, where), where.job);
  assert.equal(checkJobStatus({ conditions: [{ type: 'Failed', status: 'False' }] }, where), where.job);
});

test('what runs after a Job waits for its success, not only for its end', async () => {
  const compiled = seedPipeline();
  const complete = { status: { conditions: [{ type: 'Complete', status: 'True' }] } };
  installEngineDouble({ liveState: (type) => (type === 'kubernetes:batch/v1:Job' ? complete : undefined) });
  let deployment: PipelineDeployment | undefined;
  await runProgram(async () => {
    deployment = new PipelineDeployment('llama3-fintech', { compiled });
    return {};
  });
  const d = deployment!;
  // Jobs a resource waits for, directly or through other resources (the serve Service: through the Deployment).
  const upstream = (key: string): string[] => {
    const planned = d.plan.resources.find((r) => r.key === key)!;
    return planned.dependsOn.flatMap((k) => [...(k.startsWith('Job/') ? [k] : []), ...upstream(k)]);
  };
  for (const planned of d.plan.resources) {
    const handed = d.resourceOptions.get(planned.key)!.dependsOn;
    const upstreamJobs = upstream(planned.key);
    if (upstreamJobs.length === 0) {
      assert.ok(Array.isArray(handed), `${planned.key}: plain dependsOn expected`);
      continue;
    }
    // An Output that resolves to the same resources only once every upstream Job succeeded.
    assert.ok(pulumi.Output.isInstance(handed), `${planned.key} must wait for ${upstreamJobs.join(', ')} to succeed`);
    const resolved = await (handed as unknown as { promise(): Promise<pulumi.Resource[]> }).promise();
    assert.deepEqual(resolved, d.dependencies.get(planned.key), planned.key);
  }
});

test('a leaf Job that failed fails the update too; succeeded Jobs resolve', async () => {
  const compiled = seedPipeline();
  const evaluate = stageNamed(compiled, 'evaluate').resourceName;
  const ok = { status: { conditions: [{ type: 'Complete', status: 'True' }] } };
  installEngineDouble({ liveState: (type) => (type === 'kubernetes:batch/v1:Job' ? ok : undefined) });
  let deployment: PipelineDeployment | undefined;
  await runProgram(async () => {
    deployment = new PipelineDeployment('llama3-fintech', { compiled });
    return {};
  });
  const names = await (deployment!.jobsSucceeded as unknown as { promise(): Promise<readonly string[]> }).promise();
  assert.ok(names.includes(evaluate));
  assert.equal(names.length, compiled.stages.filter((s) => s.workload.kind === 'Job').length);
});
