import type { ConfigMap, Container, EnvVar, Service } from 'kubernetes-types/core/v1.js';
import type { Job, PodFailurePolicyRule } from 'kubernetes-types/batch/v1.js';
import type { Deployment } from 'kubernetes-types/apps/v1.js';
import { stringify } from 'yaml';
import { objectKey, type CompiledPipeline, type CompiledStage, type StageRun, type StageStep } from './compiled.ts';
import { ARTIFACTS_MOUNT, COMPLETION_MARKER, type CompileContext, type ResolvedContext } from './context.ts';
import { analysePipeline, type PipelineAnalysis } from './analyse.ts';
import type { Pipeline } from './dsl.ts';
import { datasetDelivery } from './delivery.ts';
import { canonicalJson, contentHash } from './hash.ts';
import { CheckError, isError } from './issues.ts';
import type { JobSet, KubeObject } from './kube.ts';
import { ANNOTATIONS, LABELS, MANAGED_BY } from './labels.ts';
import { stageKind } from './kinds/index.ts';
import { hashInputs } from './kinds/common.ts';
import { servedPort } from './kinds/serve.ts';
import type { RenderEnv, ResolvedStage, StageKindModule, StagePaths } from './kinds/types.ts';
import type { StagePlan } from './plan.ts';
import { containerSecurity, gpuPlacement, metadata, podSecurity, resourcesFor, scratchEnv, secretEnv, waitForMarkers } from './pods.ts';
import { stageScript } from './stage-script.ts';
import { isGang, MASTER_PORT, torchrunEnv, usesTorchrun } from './kinds/distributed.ts';
import type { StageGang } from './compiled.ts';
import { GATE_FAILED_EXIT_CODE, INPUT_CORRUPT_EXIT_CODE, STAGE_ENV, workDirOf, type PublishMode } from './artifacts/protocol.ts';

/** Stands for the stage's own artifact folder while hashing: the folder is named by the hash. */
const SELF = '${self}';
const HASH_LENGTH_IN_NAMES = 8;

/**
 * Compiles a pipeline to Kubernetes objects. Pure: the same pipeline and context always give the
 * same objects. Throws a CheckError listing every problem (check()'s and the planner's) when
 * there are errors.
 */
export function compile(pipeline: Pipeline, context: CompileContext = {}): CompiledPipeline {
  const analysis = analysePipeline(pipeline, context);
  const errors = analysis.issues.filter(isError);
  if (errors.length > 0) throw new CheckError(`pipeline ${String(pipeline?.name)}`, errors);
  return render(analysis);
}

export function artifactPath(pipeline: string, stage: string, hash: string): string {
  return `${ARTIFACTS_MOUNT}/${pipeline}/${stage}/${hash}`;
}

function shortHash(hash: string): string {
  return hash.slice(0, HASH_LENGTH_IN_NAMES);
}

/** Renders an analysed pipeline whose stages are all sound, in its topological order. */
function render(analysis: PipelineAnalysis): CompiledPipeline {
  const { pipeline, ctx } = analysis;
  const compiled = new Map<string, CompiledStage>();
  const stages: CompiledStage[] = [];
  const upstream = (name: string): CompiledStage => {
    const stage = compiled.get(name);
    if (!stage?.artifactPath) throw new Error(`internal: stage ${name} is not compiled before its consumers`);
    return stage;
  };
  // A Job's deadline clock starts when it is created. When a GitOps controller applies every stage
  // at once, a stage waits in its init container for all of its upstream stages, so its deadline
  // must cover the longest upstream path too.
  const pathDeadline = new Map<string, number>();
  for (const resolved of analysis.stages) {
    const own = analysis.plans.get(resolved.name);
    if (!own) throw new Error(`internal: no plan for stage ${resolved.name}`);
    const upstreamDeadline = Math.max(0, ...resolved.dependsOn.map((d) => pathDeadline.get(d) ?? 0));
    const plan: StagePlan = { ...own, deadlineSeconds: own.deadlineSeconds + upstreamDeadline };
    pathDeadline.set(resolved.name, plan.deadlineSeconds);
    const kind = stageKind(resolved.kind) as unknown as StageKindModule<typeof resolved.kind>;
    const renderEnv: RenderEnv = { ...analysis.env, gpus: plan.gpus, ...(plan.layout ? { layout: plan.layout } : {}) };
    const paths = (self: string): StagePaths => ({ self, of: (s) => upstream(s).artifactPath!, marker: (s) => upstream(s).completionMarker! });
    const inputs = hashInputs(resolved, (d) => upstream(d).hash);
    const files = kind.files?.(resolved as never, renderEnv) ?? {};
    const hash = contentHash({
      kind: resolved.kind,
      config: kind.config(resolved as never, paths(SELF), renderEnv),
      image: resolved.image,
      inputs,
      // Data-parallel GPU count changes the effective batch, so it changes what training produces;
      // so does the node count (absent for one node, which keeps single-node hashes as they were).
      gpus: resolved.kind === 'sft' ? plan.gpus : undefined,
      nodes: plan.layout && plan.layout.nodes > 1 ? plan.layout.nodes : undefined,
      // Files the config refers to by path (a DeepSpeed config): their content is what matters.
      files: Object.keys(files).length > 0 ? files : undefined,
    });
    const stage = resolved.kind === 'serve'
      ? assembleServe(pipeline, resolved as ResolvedStage<'serve'>, kind, plan, hash, inputs, ctx, paths, renderEnv)
      : assembleBatch(pipeline, resolved, kind, plan, hash, inputs, ctx, paths, renderEnv, resolved.dependsOn.map((d) => upstream(d).completionMarker!), resolved.dependsOn.map((d) => upstream(d).artifactPath!));
    compiled.set(resolved.name, stage);
    stages.push(stage);
  }
  const { owned, shared } = shareCommonObjects(stages);
  return {
    pipeline: pipeline.name,
    namespace: ctx.namespace,
    artifactsClaim: ctx.artifactsClaim,
    runtimeImage: ctx.images.runtime,
    stages: owned,
    objects: [...shared, ...owned.flatMap((s) => s.objects)],
  };
}

/**
 * Objects are unique by construction. Content-named objects that several stages need (the
 * dataset ConfigMap of a source two converts read) become one shared object of the pipeline,
 * applied before the stages, with no stage's labels; any other name two stages would both emit is
 * a compiler bug.
 */
function shareCommonObjects(stages: readonly CompiledStage[]): { owned: CompiledStage[]; shared: KubeObject[] } {
  const users = new Map<string, CompiledStage[]>();
  for (const stage of stages) for (const object of stage.objects) users.set(objectKey(object), [...(users.get(objectKey(object)) ?? []), stage]);
  const shared = new Map<string, KubeObject>();
  for (const [key, by] of users) {
    if (by.length < 2) continue;
    const copies = by.map((stage) => stage.objects.find((o) => objectKey(o) === key)!);
    const content = (o: KubeObject) => canonicalJson({ ...o, metadata: { ...o.metadata, labels: undefined } });
    if (copies[0]?.kind !== 'ConfigMap' || copies.some((c) => content(c) !== content(copies[0]!))) {
      throw new Error(`internal: stages ${by.map((s) => s.name).join(', ')} would all emit ${key}`);
    }
    const labels = { ...copies[0].metadata?.labels };
    delete labels[LABELS.stage];
    delete labels[LABELS.stageHash];
    delete labels[LABELS.stageKind];
    shared.set(key, { ...copies[0], metadata: { ...copies[0].metadata, labels } });
  }
  if (shared.size === 0) return { owned: [...stages], shared: [] };
  return {
    owned: stages.map((stage) => ({ ...stage, objects: stage.objects.filter((o) => !shared.has(objectKey(o))) })),
    shared: [...shared.values()],
  };
}

function labelsFor(pipeline: Pipeline, stage: ResolvedStage, hash: string): Record<string, string> {
  return {
    [LABELS.name]: 'tunepipe',
    [LABELS.instance]: pipeline.name,
    [LABELS.component]: stage.kind,
    [LABELS.partOf]: pipeline.name,
    [LABELS.managedBy]: MANAGED_BY,
    [LABELS.pipeline]: pipeline.name,
    [LABELS.stage]: stage.name,
    [LABELS.stageKind]: stage.kind,
    [LABELS.stageHash]: shortHash(hash),
  };
}

function common(stage: ResolvedStage, plan: StagePlan, hash: string, inputs: Readonly<Record<string, string>>) {
  return {
    name: stage.name,
    kind: stage.kind,
    hash,
    dependsOn: stage.dependsOn,
    image: stage.image,
    gpus: plan.gpus,
    ...(plan.gpuType ? { gpuType: plan.gpuType } : {}),
    expectedSeconds: plan.expectedSeconds,
    expectedOutputs: plan.expectedOutputs,
    inputs,
    estimate: plan.resources,
  };
}

function assembleBatch(
  pipeline: Pipeline,
  stage: ResolvedStage,
  kind: StageKindModule<ResolvedStage['kind']>,
  plan: StagePlan,
  hash: string,
  inputs: Readonly<Record<string, string>>,
  ctx: ResolvedContext,
  paths: (self: string) => StagePaths,
  renderEnv: RenderEnv,
  upstreamMarkers: readonly string[],
  upstreamPaths: readonly string[],
): CompiledStage {
  const resourceName = `${pipeline.name}-${stage.name}-${shortHash(hash)}`;
  const labels = labelsFor(pipeline, stage, hash);
  const out = artifactPath(pipeline.name, stage.name, hash);
  const own = paths(out);
  const config = kind.config(stage as never, own, renderEnv);
  const fileName = `${stage.name}.${kind.configFormat}`;
  const configFile = `/config/${fileName}`;
  const command = kind.command!(stage as never, own, configFile, renderEnv);
  const gate = kind.gate?.(stage as never, own);
  const configText = kind.configFormat === 'json' ? `${JSON.stringify(config, null, 2)}\n` : stringify(config, { lineWidth: 0 });
  const layout = plan.layout;
  const gang = isGang(layout) ? gangOf(resourceName, layout.nodes, ctx) : undefined;
  // Files first, then the wrapper: a single-GPU stage's ConfigMap keeps its keys and bytes.
  const extraFiles = kind.files?.(stage as never, renderEnv) ?? {};
  const configData: Record<string, string> = {
    [fileName]: configText,
    ...extraFiles,
    'stage.sh': stageScript(usesTorchrun(layout) ? { gang: gang !== undefined, shardedCheckpoints: layout.strategy !== 'ddp' } : {}),
  };
  if (gate) configData['gate.json'] = `${JSON.stringify(gate, null, 2)}\n`;
  const configMap: ConfigMap = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: metadata(resourceName, ctx.namespace, labels),
    immutable: true,
    data: configData,
  };
  const data = datasetDelivery({ pipeline: pipeline.name, sources: kind.dataSources?.(stage as never) ?? [], datasets: ctx.datasets, namespace: ctx.namespace, labels, fetchImage: ctx.images.fetch, hubToken: ctx.defaultHubToken });

  const env: EnvVar[] = [
    { name: STAGE_ENV.stage, value: stage.name },
    { name: STAGE_ENV.hash, value: hash },
    // The wrapper checks these folders against their SHA256SUMS before the tool reads them.
    ...(upstreamPaths.length > 0 ? [{ name: STAGE_ENV.inputs, value: upstreamPaths.join('\n') }] : []),
    ...scratchEnv(),
  ];
  env.push(...(kind.toolEnv?.(stage as never, renderEnv) ?? []));
  if (usesTorchrun(layout)) env.push(...torchrunEnv(layout, gang));

  const jobLabels = { ...labels };
  // The gang's pods select each other (headless Service, NetworkPolicy) by this label.
  const podLabels = gang ? { ...labels, [LABELS.gang]: resourceName } : { ...labels };
  if (plan.gpus > 0 && ctx.queueName) jobLabels[LABELS.kueueQueue] = ctx.queueName;
  const wrapper = (mode: PublishMode) => ['/bin/sh', '/config/stage.sh', mode, out, '--'];
  const main: Container = {
    name: 'main',
    image: stage.image,
    command: wrapper(command.mode),
    args: [...command.argv],
    env,
    resources: resourcesFor(plan),
    securityContext: containerSecurity(),
    volumeMounts: [
      { name: 'config', mountPath: '/config', readOnly: true },
      { name: 'artifacts', mountPath: ARTIFACTS_MOUNT },
      { name: 'tmp', mountPath: '/tmp' },
      ...(plan.gpus > 0 ? [{ name: 'dshm', mountPath: '/dev/shm' }] : []),
      ...data.mounts,
    ],
  };
  const failureRules: PodFailurePolicyRule[] = [{ action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget', status: 'True' }] }];
  // A failed gate (exit 3) fails again on a retry: stop instead of re-running the GPU work. Any
  // other exit of the gate container (a publish step that hit a full or flaky volume, a killed
  // process) is not a verdict on the model, so it counts against backoffLimit and is retried.
  if (gate) failureRules.push({ action: 'FailJob', onExitCodes: { containerName: 'gate', operator: 'In', values: [GATE_FAILED_EXIT_CODE] } });
  // A corrupt input is read again by every retry: stop and say so.
  if (upstreamPaths.length > 0) failureRules.push({ action: 'FailJob', onExitCodes: { containerName: 'main', operator: 'In', values: [INPUT_CORRUPT_EXIT_CODE] } });

  const waits = [...(upstreamMarkers.length > 0 ? [waitForMarkers('wait-for-inputs', upstreamMarkers, ctx.images.runtime)] : []), ...(data.fetch ? [data.fetch] : [])];
  const work = command.mode === 'rename' ? workDirOf(out) : out;
  const gateContainer: Container | undefined = gate
    ? {
        name: 'gate',
        image: ctx.images.runtime,
        command: wrapper(command.mode),
        args: ['tunepipe', 'gate', '--rules', '/config/gate.json', '--results', `${work}/predict_results.json`, '--out', `${work}/gate.json`],
        env: [
          { name: STAGE_ENV.stage, value: stage.name },
          { name: STAGE_ENV.hash, value: hash },
          { name: STAGE_ENV.step, value: 'publish' },
        ],
        resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '256Mi' } },
        securityContext: containerSecurity(),
        volumeMounts: [
          { name: 'config', mountPath: '/config', readOnly: true },
          { name: 'artifacts', mountPath: ARTIFACTS_MOUNT },
          { name: 'tmp', mountPath: '/tmp' },
        ],
      }
    : undefined;
  const runMain: Container = gateContainer ? { ...main, env: [...env, { name: STAGE_ENV.step, value: 'run' }] } : main;
  const containers = gateContainer
    ? { initContainers: [...waits, runMain], containers: [gateContainer] }
    : { ...(waits.length > 0 ? { initContainers: waits } : {}), containers: [main] };

  const workloadAnnotations = {
    [ANNOTATIONS.artifactPath]: out,
    [ANNOTATIONS.dependsOn]: JSON.stringify(stage.dependsOn),
    [ANNOTATIONS.expectedSeconds]: String(plan.expectedSeconds),
    ...(usesTorchrun(layout) ? { [ANNOTATIONS.layout]: JSON.stringify({ nodes: layout.nodes, gpusPerNode: layout.gpusPerNode, strategy: layout.strategy }) } : {}),
  };
  const job: Job = {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: metadata(resourceName, ctx.namespace, jobLabels, workloadAnnotations),
    spec: {
      ...(gang
        ? {
            // One pod per node, each with a stable hostname <job>-<index> (its NODE_RANK); Kueue
            // counts the gang's pods from parallelism and admits them as one workload.
            completionMode: 'Indexed',
            completions: gang.pods,
            parallelism: gang.pods,
            // Retries counted per rank: when one rank fails, its peers fail with it (torchrun's
            // static rendezvous cannot take a lone replacement), and that is one failure of the
            // gang, not one per pod. Any rank out of retries fails the whole Job at once.
            backoffLimitPerIndex: stage.backoffLimit,
            maxFailedIndexes: 0,
          }
        : { backoffLimit: stage.backoffLimit }),
      activeDeadlineSeconds: plan.deadlineSeconds,
      // Preemption and node loss are not the stage's fault: they must not use up its retries.
      // (Kueue preempts a gang by suspending the whole Job, which counts no failure at all.)
      podFailurePolicy: { rules: failureRules },
      template: {
        metadata: { labels: podLabels },
        spec: {
          ...(gang ? { subdomain: gang.service } : {}),
          restartPolicy: 'Never',
          // No stage calls the Kubernetes API: a token in the pod could only be stolen.
          automountServiceAccountToken: false,
          securityContext: podSecurity(),
          ...gpuPlacement(plan),
          ...containers,
          volumes: [
            { name: 'config', configMap: { name: resourceName } },
            { name: 'artifacts', persistentVolumeClaim: { claimName: ctx.artifactsClaim } },
            { name: 'tmp', emptyDir: {} },
            ...(plan.gpus > 0 ? [{ name: 'dshm', emptyDir: { medium: 'Memory', sizeLimit: plan.shmSize } }] : []),
            ...data.volumes,
          ],
        },
      },
    },
  };

  const steps: StageStep[] = [
    ...(data.fetch ? [{ container: data.fetch.name, argv: [...(data.fetch.command ?? []), ...(data.fetch.args ?? [])], env: data.fetch.env ?? [] }] : []),
    { container: 'main', argv: command.argv, env: runMain.env ?? [], wrapper: gateContainer ? 'run' : 'all' },
    ...(gateContainer ? [{ container: 'gate', argv: gateContainer.args ?? [], env: gateContainer.env ?? [], wrapper: 'publish' as const }] : []),
  ];
  const workloads = gang ? gangObjects(job, gang, stage, ctx, labels, jobLabels, workloadAnnotations) : { objects: [job], kind: 'Job' as const };
  const run: StageRun = {
    mode: command.mode,
    steps,
    files: [
      ...Object.entries(configData).map(([key, text]) => ({ path: `/config/${key}`, text })),
      ...data.files,
    ],
    scratch: ['/tmp', ...(plan.gpus > 0 ? ['/dev/shm'] : []), ...data.scratch],
  };
  return {
    ...common(stage, plan, hash, inputs),
    resourceName,
    artifactPath: out,
    completionMarker: `${out}/${COMPLETION_MARKER}`,
    config,
    objects: [...data.maps, configMap, ...workloads.objects],
    workload: { kind: workloads.kind, name: resourceName },
    ...(layout ? { layout } : {}),
    ...(gang ? { gang } : {}),
    run,
  };
}

/**
 * Names of a gang's pods. An Indexed Job's pod `i` is `<job>-<i>`; a JobSet's is
 * `<jobset>-<replicatedJob>-<jobIndex>-<podIndex>`. With the Service as the pods' subdomain each
 * resolves as `<hostname>.<service>.<namespace>.svc`, before the pod is ready (the rendezvous
 * happens while no rank is ready yet).
 */
function gangOf(resourceName: string, pods: number, ctx: ResolvedContext): StageGang {
  const hostnames = Array.from({ length: pods }, (_, i) => (ctx.multiNode === 'jobset' ? `${resourceName}-${JOBSET_REPLICATED_JOB}-0-${i}` : `${resourceName}-${i}`));
  return {
    engine: ctx.multiNode,
    pods,
    service: resourceName,
    hostnames,
    masterAddr: `${hostnames[0]}.${resourceName}.${ctx.namespace}.svc`,
    masterPort: MASTER_PORT,
    podLabel: LABELS.gang,
  };
}

/** The JobSet's one replicated Job: the gang's nodes. */
const JOBSET_REPLICATED_JOB = 'node';

/**
 * The workload objects of a gang: the Indexed Job with its headless Service, or a JobSet (whose
 * controller makes the Service). Either is one Kueue workload with `nodes` pods, admitted whole:
 * the queue label sits on the Job / JobSet, and no partial-admission (min-parallelism) annotation.
 */
function gangObjects(
  job: Job,
  gang: StageGang,
  stage: ResolvedStage,
  ctx: ResolvedContext,
  labels: Record<string, string>,
  workloadLabels: Record<string, string>,
  annotations: Record<string, string>,
): { objects: KubeObject[]; kind: 'Job' | 'JobSet' } {
  if (gang.engine === 'jobset') {
    const spec = job.spec!;
    const { backoffLimitPerIndex: _perIndex, maxFailedIndexes: _maxFailed, podFailurePolicy: _policy, ...jobSpec } = spec;
    const jobSet: JobSet = {
      apiVersion: 'jobset.x-k8s.io/v1alpha2',
      kind: 'JobSet',
      metadata: metadata(gang.service, ctx.namespace, workloadLabels, annotations),
      spec: {
        network: { enableDNSHostnames: true, subdomain: gang.service, publishNotReadyAddresses: true },
        // The JobSet restarts the whole gang on any failure; a rank lost to node disruption fails
        // its Job by the pod failure policy, and that restart does not count against maxRestarts.
        failurePolicy: {
          maxRestarts: stage.backoffLimit,
          rules: [{ name: 'disruption', action: 'RestartJobSetAndIgnoreMaxRestarts', onJobFailureReasons: ['PodFailurePolicy'] }],
        },
        replicatedJobs: [{
          name: JOBSET_REPLICATED_JOB,
          replicas: 1,
          template: {
            metadata: { labels: { ...labels } },
            spec: {
              ...jobSpec,
              backoffLimit: 0,
              podFailurePolicy: { rules: [{ action: 'FailJob', onPodConditions: [{ type: 'DisruptionTarget', status: 'True' }] }] },
              // The JobSet's own network settings name the subdomain.
              template: { ...jobSpec.template, spec: withoutSubdomain(jobSpec.template.spec!) },
            },
          },
        }],
      },
    };
    return { objects: [stripUndefined(jobSet)], kind: 'JobSet' };
  }
  const service: Service = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: metadata(gang.service, ctx.namespace, { ...labels }),
    spec: {
      // Headless: DNS gives each pod's own address under its hostname, no virtual IP.
      clusterIP: 'None',
      // torchrun's rendezvous runs before any rank is ready; the names must resolve from the start.
      publishNotReadyAddresses: true,
      selector: { [LABELS.gang]: gang.service },
      ports: [{ name: 'rendezvous', port: gang.masterPort, targetPort: gang.masterPort, protocol: 'TCP' }],
    },
  };
  return { objects: [service, job], kind: 'Job' };
}

function withoutSubdomain(spec: NonNullable<Job['spec']>['template']['spec'] & object): typeof spec {
  const { subdomain: _subdomain, ...rest } = spec;
  return rest;
}

function stripUndefined<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

function assembleServe(
  pipeline: Pipeline,
  stage: ResolvedStage<'serve'>,
  kind: StageKindModule<ResolvedStage['kind']>,
  plan: StagePlan,
  hash: string,
  inputs: Readonly<Record<string, string>>,
  ctx: ResolvedContext,
  paths: (self: string) => StagePaths,
  renderEnv: RenderEnv,
): CompiledStage {
  const o = stage.spec.options;
  const serviceName = `${pipeline.name}-${stage.name}`;
  const labels = labelsFor(pipeline, stage, hash);
  const own = paths('');
  const config = kind.config(stage as never, own, renderEnv);
  const port = servedPort(stage);
  const modelPath = String(config['model']);
  const args = config['args'] as string[];
  // Selector labels must not change between rollouts; the hash label lives on the pod template only.
  const selector = { [LABELS.pipeline]: pipeline.name, [LABELS.stage]: stage.name };
  // Pods wait until the model is published and every required evaluation (gate) has passed, so a
  // GitOps controller that applies everything at once still rolls out in order.
  const waitFor = config['waitFor'] as string[];
  const env: EnvVar[] = [...scratchEnv(), { name: 'HF_HUB_OFFLINE', value: '1' }, ...secretEnv('VLLM_API_KEY', o.apiKey)];

  const deployment: Deployment = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: metadata(serviceName, ctx.namespace, labels, {
      [ANNOTATIONS.dependsOn]: JSON.stringify(stage.dependsOn),
      [ANNOTATIONS.expectedSeconds]: String(plan.expectedSeconds),
    }),
    spec: {
      replicas: o.replicas ?? 1,
      selector: { matchLabels: selector },
      // The old model keeps serving until the new one is healthy; a failed gate stalls the rollout.
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
      progressDeadlineSeconds: plan.deadlineSeconds,
      template: {
        metadata: { labels: { ...labels } },
        spec: {
          automountServiceAccountToken: false,
          securityContext: podSecurity(),
          ...gpuPlacement(plan),
          initContainers: [waitForMarkers('wait-for-model', waitFor, ctx.images.runtime, { verify: [modelPath] })],
          containers: [
            {
              name: 'vllm',
              image: stage.image,
              // The model is vLLM's positional argument; `command` makes that independent of the image's entrypoint.
              command: ['vllm', 'serve'],
              args: [modelPath, ...args],
              env,
              ports: [{ name: 'http', containerPort: port, protocol: 'TCP' }],
              resources: resourcesFor(plan),
              securityContext: containerSecurity(),
              // Loading and compiling a model takes minutes; liveness must not kill it meanwhile.
              startupProbe: { httpGet: { path: '/health', port: 'http' }, periodSeconds: 10, failureThreshold: 90 },
              readinessProbe: { httpGet: { path: '/health', port: 'http' }, periodSeconds: 10, failureThreshold: 3 },
              livenessProbe: { httpGet: { path: '/health', port: 'http' }, periodSeconds: 20, failureThreshold: 6 },
              volumeMounts: [
                { name: 'artifacts', mountPath: ARTIFACTS_MOUNT, readOnly: true },
                { name: 'dshm', mountPath: '/dev/shm' },
                { name: 'tmp', mountPath: '/tmp' },
              ],
            },
          ],
          volumes: [
            { name: 'artifacts', persistentVolumeClaim: { claimName: ctx.artifactsClaim, readOnly: true } },
            { name: 'dshm', emptyDir: { medium: 'Memory', sizeLimit: plan.shmSize } },
            { name: 'tmp', emptyDir: {} },
          ],
        },
      },
    },
  };
  const service: Service = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: metadata(serviceName, ctx.namespace, labels),
    spec: {
      type: 'ClusterIP',
      selector,
      ports: [{ name: 'http', port, targetPort: 'http', protocol: 'TCP' }],
    },
  };
  const verify = verifyObjects(pipeline, stage, config, serviceName, port, labels, hash, plan, ctx);
  const run: StageRun = {
    steps: [{ container: 'vllm', argv: ['vllm', 'serve', modelPath, ...args], env }],
    files: [],
    scratch: ['/tmp', '/dev/shm'],
    port,
  };
  return {
    ...common(stage, plan, hash, inputs),
    resourceName: serviceName,
    ...(verify ? { artifactPath: verify.out, completionMarker: `${verify.out}/${COMPLETION_MARKER}` } : {}),
    config,
    objects: [deployment, service, ...(verify?.objects ?? [])],
    workload: { kind: 'Deployment', name: serviceName },
    run,
  };
}

/**
 * The post-deploy check: a Job, named by the serve stage's hash, that waits until the Service
 * answers with this model (old pods keep answering during a rollout) and then runs
 * `tunepipe verify`, writing its scores next to the other stages' artifacts.
 */
function verifyObjects(
  pipeline: Pipeline,
  stage: ResolvedStage<'serve'>,
  config: Record<string, unknown>,
  serviceName: string,
  port: number,
  labels: Record<string, string>,
  hash: string,
  plan: StagePlan,
  ctx: ResolvedContext,
): { out: string; objects: KubeObject[] } | undefined {
  const o = stage.spec.options;
  const verify = o.verify;
  if (!verify) return undefined;
  const name = `${pipeline.name}-${stage.name}-verify-${shortHash(hash)}`;
  const out = artifactPath(pipeline.name, stage.name, hash);
  const endpoint = `http://${serviceName}.${ctx.namespace}.svc:${port}`;
  const dataset = config['verifyData'] as { dir: string; entries: string[] } | undefined;
  const verifyLabels = { ...labels, [LABELS.component]: 'verify' };
  const env: EnvVar[] = [
    { name: STAGE_ENV.stage, value: stage.name },
    { name: STAGE_ENV.hash, value: hash },
    ...secretEnv('VLLM_API_KEY', o.apiKey),
  ];
  const configMap: ConfigMap = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: metadata(name, ctx.namespace, verifyLabels),
    immutable: true,
    data: { 'stage.sh': stageScript() },
  };
  const job: Job = {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: metadata(name, ctx.namespace, verifyLabels, {
      [ANNOTATIONS.artifactPath]: out,
      [ANNOTATIONS.dependsOn]: JSON.stringify([stage.name]),
    }),
    spec: {
      backoffLimit: 2,
      activeDeadlineSeconds: plan.deadlineSeconds + 3600,
      podFailurePolicy: {
        rules: [
          { action: 'Ignore', onPodConditions: [{ type: 'DisruptionTarget', status: 'True' }] },
          { action: 'FailJob', onExitCodes: { containerName: 'main', operator: 'In', values: [GATE_FAILED_EXIT_CODE] } },
        ],
      },
      template: {
        metadata: { labels: verifyLabels },
        spec: {
          restartPolicy: 'Never',
          automountServiceAccountToken: false,
          securityContext: podSecurity(),
          initContainers: [
            {
              name: 'wait-for-rollout',
              image: ctx.images.runtime,
              command: ['tunepipe', 'wait-served'],
              args: ['--endpoint', endpoint, '--model-root', String(config['model']), '--timeout', String(plan.deadlineSeconds)],
              env,
              securityContext: containerSecurity(),
              resources: { requests: { cpu: '10m', memory: '64Mi' }, limits: { memory: '128Mi' } },
              volumeMounts: [{ name: 'tmp', mountPath: '/tmp' }],
            },
          ],
          containers: [
            {
              name: 'main',
              image: ctx.images.runtime,
              command: ['/bin/sh', '/config/stage.sh', 'rename', out, '--'],
              args: [
                'tunepipe', 'verify',
                '--endpoint', endpoint,
                '--served-model-name', String(stage.args['--served-model-name']),
                '--expect-name', verify.expectName,
                ...(verify.identityPrompts ?? []).flatMap((prompt) => ['--identity-prompt', prompt]),
                ...(dataset ? ['--dataset-dir', dataset.dir, '--dataset', dataset.entries.join(',')] : []),
                ...(verify.limit !== undefined ? ['--limit', String(verify.limit)] : []),
                '--out', workDirOf(out),
              ],
              env,
              securityContext: containerSecurity(),
              resources: { requests: { cpu: '250m', memory: '512Mi' }, limits: { memory: '1Gi' } },
              volumeMounts: [
                { name: 'config', mountPath: '/config', readOnly: true },
                { name: 'artifacts', mountPath: ARTIFACTS_MOUNT },
                { name: 'tmp', mountPath: '/tmp' },
              ],
            },
          ],
          volumes: [
            { name: 'config', configMap: { name } },
            { name: 'artifacts', persistentVolumeClaim: { claimName: ctx.artifactsClaim } },
            { name: 'tmp', emptyDir: {} },
          ],
        },
      },
    },
  };
  return { out, objects: [configMap, job] };
}
