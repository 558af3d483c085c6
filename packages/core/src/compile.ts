import type { ConfigMap, Container, EnvVar, ResourceRequirements, PodSecurityContext, SecurityContext, Service, Toleration, Volume, VolumeMount } from 'kubernetes-types/core/v1.js';
import type { Job, PodFailurePolicyRule } from 'kubernetes-types/batch/v1.js';
import type { Deployment } from 'kubernetes-types/apps/v1.js';
import { stringify } from 'yaml';
import type { CompiledPipeline, CompiledStage, StageKind } from './compiled.ts';
import { ARTIFACTS_MOUNT, COMPLETION_MARKER, resolveContext, type CompileContext, type ResolvedContext } from './context.ts';
import { convertInputSources, modelSourceOf, type HubModelOptions, type ObjectStoreModelOptions, type Pipeline, type SecretRef, type StageSpec } from './dsl.ts';
import { localModelDigest, uploadFolder, type ModelSource } from './model/source.ts';
import type { Dataset, EvaluableModel } from './handles.ts';
import { canonicalJson, contentHash } from './hash.ts';
import { gateRules } from './gate.ts';
import { CheckError, isError } from './issues.ts';
import { structuralIssues } from './check.ts';
import type { KubeObject } from './kube.ts';
import { ANNOTATIONS, GPU_RESOURCE, GPU_TAINT, LABELS, MANAGED_BY } from './labels.ts';
import { GATE_FAILED_EXIT_CODE, stageScript, type PublishMode } from './stage-script.ts';
import { plannerIssues, planStages, type StagePlan } from './plan.ts';
import { servedArgs } from './vllm.ts';

/** Stands for the stage's own artifact folder while hashing: the folder is named by the hash. */
const SELF = '${self}';
const HASH_LENGTH_IN_NAMES = 8;
const RUN_AS_USER = 1000;

interface StageDraft {
  readonly spec: StageSpec;
  readonly kind: StageKind;
  readonly image: string;
  readonly dependsOn: readonly string[];
  readonly inputs: Readonly<Record<string, string>>;
  /** The stage's config with its own folder as `self`. */
  readonly config: (self: string) => Record<string, unknown>;
  /** For gated evaluations: the rules and the baseline's results, checked before publishing. */
  readonly gate?: { readonly rules: unknown; readonly baselineResults: string | null };
  readonly plan: StagePlan;
}

/**
 * Compiles a pipeline to Kubernetes objects. Pure: the same pipeline and context always give the
 * same objects. Throws a CheckError listing every problem when `check()` finds errors.
 */
export function compile(pipeline: Pipeline, context: CompileContext = {}): CompiledPipeline {
  const ctx = resolveContext(context);
  const structural = structuralIssues(pipeline, ctx).filter(isError);
  if (structural.length > 0) throw new CheckError(`pipeline ${pipeline.name}`, structural);
  const plans = planStages(pipeline, ctx);
  const unplaceable = plannerIssues(plans).filter(isError);
  if (unplaceable.length > 0) throw new CheckError(`pipeline ${pipeline.name}`, unplaceable);

  const compiled = new Map<string, CompiledStage>();
  const stages: CompiledStage[] = [];

  // A Job's deadline clock starts when it is created. When a GitOps controller applies every stage
  // at once, a stage waits in its init container for all of its upstream stages, so its deadline
  // must cover the longest upstream path too.
  const pathDeadline = new Map<string, number>();
  for (const spec of pipeline.stages) {
    const own = plans.get(spec.name);
    if (!own) throw new Error(`internal: no plan for stage ${spec.name}`);
    const drafted = draftStage(pipeline, spec, ctx, compiled, own);
    const upstreamDeadline = Math.max(0, ...drafted.dependsOn.map((d) => pathDeadline.get(d) ?? 0));
    const plan: StagePlan = { ...own, deadlineSeconds: own.deadlineSeconds + upstreamDeadline };
    pathDeadline.set(spec.name, plan.deadlineSeconds);
    const draft: StageDraft = { ...drafted, plan };
    const hash = contentHash({
      kind: draft.kind,
      config: draft.config(SELF),
      image: draft.image,
      inputs: draft.inputs,
      // Data-parallel GPU count changes the effective batch, so it changes what training produces.
      gpus: draft.kind === 'sft' ? plan.gpus : undefined,
    });
    const upstreamMarkers = draft.dependsOn.map((d) => upstream(compiled, d).completionMarker!);
    const stage = assemble(pipeline, draft, hash, ctx, upstreamMarkers);
    compiled.set(spec.name, stage);
    stages.push(stage);
  }

  return {
    pipeline: pipeline.name,
    namespace: ctx.namespace,
    stages,
    objects: stages.flatMap((s) => s.objects),
  };
}

export function artifactPath(pipeline: string, stage: string, hash: string): string {
  return `${ARTIFACTS_MOUNT}/${pipeline}/${stage}/${hash}`;
}

function upstream(compiled: ReadonlyMap<string, CompiledStage>, name: string): CompiledStage {
  const stage = compiled.get(name);
  if (!stage?.artifactPath) throw new Error(`internal: stage ${name} is not compiled before its consumers`);
  return stage as CompiledStage & { artifactPath: string };
}

function pathOf(compiled: ReadonlyMap<string, CompiledStage>, name: string): string {
  return upstream(compiled, name).artifactPath!;
}

function datasetEntries(data: Dataset): string {
  return data.entries.join(',');
}

function draftStage(
  pipeline: Pipeline,
  spec: StageSpec,
  ctx: ResolvedContext,
  compiled: ReadonlyMap<string, CompiledStage>,
  plan: StagePlan,
): StageDraft {
  const hashOf = (name: string): string => upstream(compiled, name).hash;
  const base = { spec, plan };

  switch (spec.kind) {
    case 'fetch-model': {
      const o = spec.options;
      const source = modelSourceOf(o);
      const fetched = fetchedModel(source, ctx);
      return {
        ...base,
        kind: 'fetch-model',
        // Local and artifacts-volume folders are copied and verified by our own CLI; hubs and object stores need their clients.
        image: o.image ?? (source.kind === 'local' || source.kind === 'artifacts' ? ctx.images.runtime : ctx.images.fetch),
        dependsOn: [],
        inputs: { model: fetched.identity },
        config: () => fetched.config,
      };
    }
    case 'convert': {
      const o = spec.options;
      const inputs: Record<string, string> = {};
      for (const source of convertInputSources(o)) inputs[`dataset:${source}`] = ctx.datasets[source]?.digest ?? 'missing';
      return {
        ...base,
        kind: 'convert',
        image: o.image ?? ctx.images.runtime,
        dependsOn: [],
        inputs,
        config: () => ({
          pipeline: pipeline.name,
          sources: convertInputSources(o).map((name) => {
            const source = ctx.datasets[name];
            return {
              name,
              descriptor: source?.descriptor ?? {},
              files: (source?.files ?? []).map((f) => ({ path: f.path, sha256: f.sha256, size: f.size })),
            };
          }),
          templateVars: o.templateVars ?? {},
          seed: o.seed ?? 42,
          ...(o.maxSamples !== undefined ? { maxSamples: o.maxSamples } : {}),
          split: { validation: o.split?.validation ?? 0.02, test: o.split?.test ?? 0.1 },
          cutoffLen: o.cutoffLen,
          ...(o.calibration ? { calibration: o.calibration } : {}),
        }),
      };
    }
    case 'sft': {
      const o = spec.options;
      const args = o.args ?? {};
      const deps = unique([o.model.stage, o.train.stage, ...(o.eval ? [o.eval.stage] : [])]);
      return {
        ...base,
        kind: 'sft',
        image: o.image ?? ctx.images.llamafactory,
        dependsOn: deps,
        inputs: Object.fromEntries(deps.map((d) => [`stage:${d}`, hashOf(d)])),
        config: (self) => ({
          stage: 'sft',
          do_train: true,
          model_name_or_path: pathOf(compiled, o.model.stage),
          template: o.model.template,
          finetuning_type: args.finetuning_type ?? 'lora',
          dataset_dir: pathOf(compiled, o.train.stage),
          dataset: datasetEntries(o.train),
          ...(o.eval
            ? { eval_dataset: datasetEntries(o.eval), eval_strategy: args.eval_strategy ?? 'steps' }
            : {}),
          output_dir: self,
          // A restarted pod must find and resume from its own checkpoints.
          overwrite_output_dir: false,
          report_to: args.report_to ?? 'none',
          ...withoutKeys(args, ['finetuning_type', 'report_to', 'eval_strategy']),
          ...(o.extraArgs ?? {}),
        }),
      };
    }
    case 'merge': {
      const o = spec.options;
      const args = o.args ?? {};
      const baseModel = o.base ?? o.adapter.base;
      const deps = unique([baseModel.stage, o.adapter.stage]);
      return {
        ...base,
        kind: 'merge',
        image: o.image ?? ctx.images.llamafactory,
        dependsOn: deps,
        inputs: Object.fromEntries(deps.map((d) => [`stage:${d}`, hashOf(d)])),
        config: (self) => ({
          model_name_or_path: pathOf(compiled, baseModel.stage),
          adapter_name_or_path: pathOf(compiled, o.adapter.stage),
          template: args.template ?? o.adapter.template,
          finetuning_type: 'lora',
          export_dir: `${self}.partial`,
          export_size: args.export_size ?? 5,
          export_device: args.export_device ?? 'cpu',
          export_legacy_format: args.export_legacy_format ?? false,
          ...(o.extraArgs ?? {}),
        }),
      };
    }
    case 'quantize': {
      const o = spec.options;
      const a = o.args;
      const deps = unique([o.model.stage, o.calibration.stage]);
      return {
        ...base,
        kind: 'quantize',
        image: o.image ?? ctx.images.gptq,
        dependsOn: deps,
        inputs: Object.fromEntries(deps.map((d) => [`stage:${d}`, hashOf(d)])),
        config: (self) => ({
          model_name_or_path: pathOf(compiled, o.model.stage),
          template: a.template ?? o.model.template,
          export_dir: `${self}.partial`,
          export_quantization_bit: a.export_quantization_bit,
          export_quantization_dataset: `${pathOf(compiled, o.calibration.stage)}/calibration.jsonl`,
          export_quantization_nsamples: a.export_quantization_nsamples ?? 128,
          export_quantization_maxlen: a.export_quantization_maxlen ?? 1024,
          export_size: a.export_size ?? 5,
          export_legacy_format: a.export_legacy_format ?? false,
          ...(o.extraArgs ?? {}),
        }),
      };
    }
    case 'evaluate': {
      const o = spec.options;
      const args = o.args ?? {};
      const model = modelPaths(o.model, compiled);
      const deps = unique([...model.stages, o.data.stage, ...(o.baseline ? [o.baseline.stage] : [])]);
      const inputs: Record<string, string> = Object.fromEntries(deps.map((d) => [`stage:${d}`, hashOf(d)]));
      if (o.gate) inputs['gate'] = canonicalJson(gateRules(o.gate));
      return {
        ...base,
        kind: 'evaluate',
        image: o.image ?? (o.model.kind === 'quantized-model' ? ctx.images.gptq : ctx.images.llamafactory),
        dependsOn: deps,
        inputs,
        ...(o.gate
          ? {
              gate: {
                rules: gateRules(o.gate),
                baselineResults: o.baseline ? `${pathOf(compiled, o.baseline.stage)}/predict_results.json` : null,
              },
            }
          : {}),
        config: (self) => ({
          stage: 'sft',
          do_predict: true,
          predict_with_generate: true,
          model_name_or_path: model.model,
          ...(model.adapter ? { adapter_name_or_path: model.adapter, finetuning_type: 'lora' } : {}),
          template: o.model.template,
          dataset_dir: pathOf(compiled, o.data.stage),
          eval_dataset: datasetEntries(o.data),
          output_dir: `${self}.partial`,
          report_to: 'none',
          cutoff_len: args.cutoff_len ?? 2048,
          per_device_eval_batch_size: args.per_device_eval_batch_size ?? 8,
          max_new_tokens: args.max_new_tokens ?? 1024,
          do_sample: args.do_sample ?? true,
          temperature: args.temperature ?? 0.95,
          top_p: args.top_p ?? 0.7,
          ...(args.max_samples !== undefined ? { max_samples: args.max_samples } : {}),
          ...(o.extraArgs ?? {}),
        }),
      };
    }
    case 'serve': {
      const o = spec.options;
      const deps = unique([o.model.stage, ...(o.requires ?? []).map((r) => r.stage), ...(o.verify?.data ? [o.verify.data.stage] : [])]);
      return {
        ...base,
        kind: 'serve',
        image: o.image ?? ctx.images.vllm,
        dependsOn: deps,
        inputs: Object.fromEntries(deps.map((d) => [`stage:${d}`, hashOf(d)])),
        config: () => ({
          model: pathOf(compiled, o.model.stage),
          waitFor: [o.model.stage, ...(o.requires ?? []).map((r) => r.stage)].map(
            (stage) => upstream(compiled, stage).completionMarker!,
          ),
          args: servedArgs(pipeline.name, o, plan.gpus),
          ...(o.verify?.data ? { verifyData: { dir: pathOf(compiled, o.verify.data.stage), entries: [...o.verify.data.entries] } } : {}),
          ...(o.verify ? { verify: { expectName: o.verify.expectName, ...(o.verify.identityPrompts ? { identityPrompts: o.verify.identityPrompts } : {}), ...(o.verify.limit !== undefined ? { limit: o.verify.limit } : {}) } } : {}),
        }),
      };
    }
  }
}

/**
 * What a fetch-model stage's hash covers (the model's identity, never a machine's path) and its
 * config. Hub models keep the config they always had, so their stage names do not change.
 */
function fetchedModel(source: ModelSource, ctx: ResolvedContext): { identity: string; config: Record<string, unknown> } {
  switch (source.kind) {
    case 'hub':
      return { identity: `${source.hub}:${source.id}@${source.revision}`, config: { hub: source.hub, id: source.id, revision: source.revision } };
    case 'local': {
      const digest = localModelDigest(source, ctx) ?? 'missing';
      return { identity: `local:sha256:${digest}`, config: { source: 'local', digest } };
    }
    case 'artifacts': {
      const path = artifactsRelative(source.path);
      return { identity: `artifacts:${path}@${source.version}`, config: { source: 'artifacts', path, version: source.version } };
    }
    case 'object-store':
      return { identity: `${source.uri.replace(/\/+$/, '')}@${source.version}`, config: { source: 'object-store', uri: source.uri.replace(/\/+$/, ''), version: source.version } };
  }
}

/** `/artifacts/models/x` and `models/x` name the same folder. */
function artifactsRelative(path: string): string {
  return path.replace(new RegExp(`^${ARTIFACTS_MOUNT}/`), '').replace(/\/+$/, '');
}

function modelPaths(
  model: EvaluableModel,
  compiled: ReadonlyMap<string, CompiledStage>,
): { model: string; adapter?: string; stages: string[] } {
  switch (model.kind) {
    case 'base-model':
      return { model: pathOf(compiled, model.stage), stages: [model.stage] };
    case 'adapter':
      return {
        model: pathOf(compiled, model.base.stage),
        adapter: pathOf(compiled, model.stage),
        stages: [model.base.stage, model.stage],
      };
    case 'merged-model':
    case 'quantized-model':
      return { model: pathOf(compiled, model.stage), stages: [model.stage] };
  }
}

function unique(names: readonly string[]): string[] {
  return [...new Set(names)];
}

function withoutKeys<T extends object>(value: T, keys: readonly string[]): Record<string, unknown> {
  return Object.fromEntries(Object.entries(value).filter(([k, v]) => !keys.includes(k) && v !== undefined));
}

function shortHash(hash: string): string {
  return hash.slice(0, HASH_LENGTH_IN_NAMES);
}

function labelsFor(pipeline: Pipeline, draft: StageDraft, hash: string): Record<string, string> {
  return {
    [LABELS.name]: 'tunepipe',
    [LABELS.instance]: pipeline.name,
    [LABELS.component]: draft.kind,
    [LABELS.partOf]: pipeline.name,
    [LABELS.managedBy]: MANAGED_BY,
    [LABELS.pipeline]: pipeline.name,
    [LABELS.stage]: draft.spec.name,
    [LABELS.stageKind]: draft.kind,
    [LABELS.stageHash]: shortHash(hash),
  };
}

const LLAMAFACTORY_COMMAND: Partial<Record<StageKind, string>> = {
  sft: 'train',
  evaluate: 'train',
  merge: 'export',
  quantize: 'export',
};

function assemble(pipeline: Pipeline, draft: StageDraft, hash: string, ctx: ResolvedContext, upstreamMarkers: readonly string[]): CompiledStage {
  const name = draft.spec.name;
  const resourceName = `${pipeline.name}-${name}-${shortHash(hash)}`;
  const labels = labelsFor(pipeline, draft, hash);
  const plan = draft.plan;
  const common = {
    name,
    kind: draft.kind,
    hash,
    dependsOn: draft.dependsOn,
    image: draft.image,
    gpus: plan.gpus,
    ...(plan.gpuType ? { gpuType: plan.gpuType } : {}),
    expectedSeconds: plan.expectedSeconds,
    expectedOutputs: plan.expectedOutputs,
    inputs: draft.inputs,
    estimate: plan.resources,
  };

  if (draft.kind === 'serve') {
    const config = draft.config('');
    const serviceName = `${pipeline.name}-${name}`;
    const objects = serveObjects(pipeline, draft, config, serviceName, labels, ctx);
    const verify = verifyObjects(pipeline, draft, config, serviceName, labels, hash, ctx);
    return {
      ...common,
      resourceName: serviceName,
      ...(verify ? { artifactPath: verify.out, completionMarker: `${verify.out}/${COMPLETION_MARKER}` } : {}),
      config,
      objects: [...objects, ...(verify?.objects ?? [])],
      workload: { kind: 'Deployment', name: serviceName },
    };
  }

  const out = artifactPath(pipeline.name, name, hash);
  const config = draft.config(out);
  const objects = batchObjects(pipeline, draft, config, resourceName, out, labels, hash, ctx, upstreamMarkers);
  return {
    ...common,
    resourceName,
    artifactPath: out,
    completionMarker: `${out}/${COMPLETION_MARKER}`,
    config,
    objects,
    workload: { kind: 'Job', name: resourceName },
  };
}

function metadata(name: string, namespace: string, labels: Record<string, string>, annotations?: Record<string, string>) {
  return { name, namespace, labels, ...(annotations ? { annotations } : {}) };
}

/**
 * Object-store credentials for the fetch-model Job, each from a key of the named Secret (never a
 * literal); without a Secret the pod's workload identity (IRSA, GKE Workload Identity) is used.
 */
function objectStoreEnv(uri: string, credentials: { readonly secretName: string } | undefined): EnvVar[] {
  if (!credentials) return [];
  const secretName = credentials.secretName;
  if (uri.startsWith('gs://')) return secretEnv('GOOGLE_SERVICE_ACCOUNT_JSON', { secretName, key: 'GOOGLE_SERVICE_ACCOUNT_JSON' });
  return [
    ...secretEnv('AWS_ACCESS_KEY_ID', { secretName, key: 'AWS_ACCESS_KEY_ID' }),
    ...secretEnv('AWS_SECRET_ACCESS_KEY', { secretName, key: 'AWS_SECRET_ACCESS_KEY' }),
    ...secretEnv('AWS_SESSION_TOKEN', { secretName, key: 'AWS_SESSION_TOKEN' }, { optional: true }),
  ];
}

function secretEnv(name: string, ref: SecretRef | undefined, options: { optional?: boolean } = {}): EnvVar[] {
  return ref ? [{ name, valueFrom: { secretKeyRef: { name: ref.secretName, key: ref.key, ...(options.optional ? { optional: true } : {}) } } }] : [];
}

// Functions, not shared constants: one object referenced twice would turn into YAML anchors.
function containerSecurity(): SecurityContext {
  return {
    allowPrivilegeEscalation: false,
    capabilities: { drop: ['ALL'] },
    runAsNonRoot: true,
    seccompProfile: { type: 'RuntimeDefault' },
  };
}

function podSecurity(): PodSecurityContext {
  return {
    runAsNonRoot: true,
    runAsUser: RUN_AS_USER,
    runAsGroup: RUN_AS_USER,
    fsGroup: RUN_AS_USER,
    // Without it the kubelet re-owns every file of the shared artifacts volume at each pod start
    // (minutes on a large NFS volume, and a failure on root_squash exports); the root of a volume
    // already owned by the group is proof enough.
    fsGroupChangePolicy: 'OnRootMismatch',
    seccompProfile: { type: 'RuntimeDefault' },
  };
}

/** Writable scratch for tools that expect a home directory (caches, Triton kernels). */
function scratchEnv(): EnvVar[] {
  return [
    { name: 'HOME', value: '/tmp' },
    { name: 'HF_HOME', value: '/tmp/hf' },
    { name: 'XDG_CACHE_HOME', value: '/tmp/cache' },
  ];
}

function gpuPlacement(plan: StagePlan): { nodeSelector?: Record<string, string>; tolerations?: Toleration[] } {
  if (plan.gpus === 0) return {};
  const tolerations: Toleration[] = [{ key: GPU_TAINT.key, operator: 'Exists', effect: GPU_TAINT.effect }];
  return {
    ...(plan.gpuType ? { nodeSelector: { [LABELS.gpuType]: plan.gpuType } } : {}),
    tolerations,
  };
}

function resourcesFor(plan: StagePlan): ResourceRequirements {
  const requests: Record<string, string> = { cpu: plan.cpu, memory: plan.memory };
  const limits: Record<string, string> = { memory: plan.memory };
  if (plan.gpus > 0) {
    requests[GPU_RESOURCE] = String(plan.gpus);
    limits[GPU_RESOURCE] = String(plan.gpus);
  }
  return { requests, limits };
}

function batchCommand(draft: StageDraft, out: string, configFile: string): { mode: PublishMode; argv: string[] } {
  const o = draft.spec;
  switch (o.kind) {
    case 'fetch-model': {
      const m = modelSourceOf(o.options);
      const work = `${out}.partial`;
      switch (m.kind) {
        case 'hub':
          return m.hub === 'huggingface'
            ? { mode: 'rename', argv: ['huggingface-cli', 'download', m.id, '--revision', m.revision, '--local-dir', work] }
            : {
                mode: 'rename',
                argv: ['modelscope', 'download', '--model', m.id, '--revision', m.revision, '--local_dir', work],
              };
        // The user (or `tunepipe run --target local`) puts the folder at its content-named upload path;
        // the Job verifies every file against the digest the stage hash covers, then copies it.
        case 'local':
          return { mode: 'rename', argv: ['tunepipe', 'fetch-model', '--config', configFile, '--from', `${ARTIFACTS_MOUNT}/${uploadFolder(String(draft.config(out)['digest']))}`, '--out', work] };
        case 'artifacts':
          return { mode: 'rename', argv: ['tunepipe', 'fetch-model', '--config', configFile, '--from', `${ARTIFACTS_MOUNT}/${artifactsRelative(m.path)}`, '--out', work] };
        case 'object-store':
          return { mode: 'rename', argv: ['tunepipe-fetch-model', '--uri', m.uri.replace(/\/+$/, ''), '--version', m.version, '--dest', work] };
      }
    }
    case 'convert':
      return {
        mode: 'rename',
        argv: ['tunepipe', 'convert', '--config', configFile, '--inputs', CLUSTER_INPUTS_ROOT, '--out', `${out}.partial`],
      };
    case 'sft':
      return { mode: 'in-place', argv: ['llamafactory-cli', 'train', configFile] };
    case 'merge':
    case 'quantize':
    case 'evaluate':
      return { mode: 'rename', argv: ['llamafactory-cli', LLAMAFACTORY_COMMAND[o.kind]!, configFile] };
    case 'serve':
      throw new Error('internal: serve is not a batch stage');
  }
}

function configFileName(draft: StageDraft): string {
  return draft.kind === 'convert' || draft.kind === 'fetch-model' ? `${draft.spec.name}.json` : `${draft.spec.name}.yaml`;
}

function renderConfig(draft: StageDraft, config: Record<string, unknown>): string {
  return draft.kind === 'convert' || draft.kind === 'fetch-model'
    ? `${JSON.stringify(config, null, 2)}\n`
    : stringify(config, { lineWidth: 0 });
}

/** Where the convert Job finds its inputs; the converter's cluster layout reads the same paths. */
export const CLUSTER_INPUTS_ROOT = '/inputs';
const REMOTE_INPUTS = `${CLUSTER_INPUTS_ROOT}/.remote`;

interface DatasetDelivery {
  readonly maps: ConfigMap[];
  readonly volumes: Volume[];
  readonly mounts: VolumeMount[];
  /** Downloads declared remote files into an emptyDir before the converter starts. */
  readonly fetch?: Container;
}

function datasetDelivery(pipeline: Pipeline, draft: StageDraft, labels: Record<string, string>, ctx: ResolvedContext): DatasetDelivery {
  if (draft.spec.kind !== 'convert') return { maps: [], volumes: [], mounts: [] };
  const maps: ConfigMap[] = [];
  const volumes: Volume[] = [];
  const mounts: VolumeMount[] = [];
  const downloads: string[][] = [];
  for (const sourceName of convertInputSources(draft.spec.options)) {
    const source = ctx.datasets[sourceName];
    if (!source) continue;
    for (const f of source.files) {
      if (f.url) downloads.push(['tunepipe-fetch-file', '--url', f.url, '--sha256', f.sha256, '--dest', `${REMOTE_INPUTS}/${sourceName}/${f.path}`]);
    }
    const files = source.files.filter((f) => f.url === undefined && f.gzipBase64 !== undefined);
    if (files.length === 0) continue;
    // Named by content: an edited dataset is a new object, never an in-place change under a running Job.
    const name = `${pipeline.name}-data-${sourceName}-${source.digest.slice(0, HASH_LENGTH_IN_NAMES)}`;
    const binaryData: Record<string, string> = {};
    files.forEach((f, i) => {
      binaryData[`f${i}.gz`] = f.gzipBase64!;
    });
    maps.push({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      // Client-side apply would copy the data into the 256 KiB last-applied annotation and fail.
      metadata: metadata(name, ctx.namespace, { ...labels, [LABELS.component]: 'dataset' }, { 'argocd.argoproj.io/sync-options': 'ServerSideApply=true' }),
      immutable: true,
      binaryData,
    });
    const volume = `data-${sourceName}`.slice(0, 63);
    volumes.push({
      name: volume,
      configMap: { name, items: files.map((f, i) => ({ key: `f${i}.gz`, path: `${f.path}.gz` })) },
    });
    mounts.push({ name: volume, mountPath: `${CLUSTER_INPUTS_ROOT}/${sourceName}`, readOnly: true });
  }
  if (downloads.length === 0) return { maps, volumes, mounts };
  volumes.push({ name: 'remote-inputs', emptyDir: {} });
  mounts.push({ name: 'remote-inputs', mountPath: REMOTE_INPUTS });
  const fetch: Container = {
    name: 'fetch-inputs',
    image: ctx.images.fetch,
    command: ['/bin/sh', '-c'],
    args: [`set -e\n${downloads.map((argv) => argv.map(shellQuote).join(' ')).join('\n')}`],
    env: [...secretEnv('HF_TOKEN', ctx.defaultHubToken), ...scratchEnv()],
    // Cloud credentials for s3:// sources come from an optional Secret the cluster owner creates.
    envFrom: [{ secretRef: { name: DATASET_CREDENTIALS_SECRET, optional: true } }],
    securityContext: containerSecurity(),
    resources: { requests: { cpu: '250m', memory: '256Mi' }, limits: { memory: '1Gi' } },
    volumeMounts: [
      { name: 'remote-inputs', mountPath: REMOTE_INPUTS },
      { name: 'tmp', mountPath: '/tmp' },
    ],
  };
  return { maps, volumes, mounts, fetch };
}

/** Secret with AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or other cloud credentials) for remote datasets. */
export const DATASET_CREDENTIALS_SECRET = 'tunepipe-dataset-credentials';

function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

function batchObjects(
  pipeline: Pipeline,
  draft: StageDraft,
  config: Record<string, unknown>,
  resourceName: string,
  out: string,
  labels: Record<string, string>,
  hash: string,
  ctx: ResolvedContext,
  upstreamMarkers: readonly string[],
): KubeObject[] {
  const fileName = configFileName(draft);
  const configData: Record<string, string> = { [fileName]: renderConfig(draft, config), 'stage.sh': stageScript() };
  if (draft.gate) configData['gate.json'] = `${JSON.stringify(draft.gate, null, 2)}\n`;
  const configMap: ConfigMap = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: metadata(resourceName, ctx.namespace, labels),
    immutable: true,
    data: configData,
  };
  const data = datasetDelivery(pipeline, draft, labels, ctx);
  const { mode, argv } = batchCommand(draft, out, `/config/${fileName}`);
  const plan = draft.plan;

  const env: EnvVar[] = [
    { name: 'TUNEPIPE_STAGE', value: draft.spec.name },
    { name: 'TUNEPIPE_HASH', value: hash },
    ...scratchEnv(),
  ];
  if (draft.spec.kind === 'fetch-model') {
    const source = modelSourceOf(draft.spec.options);
    if (source.kind === 'hub') {
      const token = (draft.spec.options as HubModelOptions).token ?? ctx.defaultHubToken;
      // Optional: public models need no token, and the cluster stack writes only the keys it was given.
      env.push(...secretEnv(source.hub === 'huggingface' ? 'HF_TOKEN' : 'MODELSCOPE_API_TOKEN', token, { optional: true }));
    } else if (source.kind === 'object-store') {
      env.push(...objectStoreEnv(source.uri, (draft.spec.options as ObjectStoreModelOptions).credentials));
    }
  } else if (LLAMAFACTORY_COMMAND[draft.kind]) {
    // Every model is already on the volume; a download attempt means a wrong path, so fail fast.
    env.push({ name: 'HF_HUB_OFFLINE', value: '1' }, { name: 'TRANSFORMERS_OFFLINE', value: '1' });
  }

  const podLabels = { ...labels };
  const jobLabels = { ...labels };
  if (plan.gpus > 0 && ctx.queueName) jobLabels[LABELS.kueueQueue] = ctx.queueName;

  const main: Container = {
    name: 'main',
    image: draft.image,
    command: ['/bin/sh', '/config/stage.sh', mode, out, '--'],
    args: argv,
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
  if (draft.gate) failureRules.push({ action: 'FailJob', onExitCodes: { containerName: 'gate', operator: 'In', values: [GATE_FAILED_EXIT_CODE] } });

  const job: Job = {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: metadata(resourceName, ctx.namespace, jobLabels, {
      [ANNOTATIONS.artifactPath]: out,
      [ANNOTATIONS.dependsOn]: JSON.stringify(draft.dependsOn),
      [ANNOTATIONS.expectedSeconds]: String(plan.expectedSeconds),
    }),
    spec: {
      backoffLimit: backoffLimitOf(draft.spec),
      activeDeadlineSeconds: plan.deadlineSeconds,
      // Preemption and node loss are not the stage's fault: they must not use up its retries.
      podFailurePolicy: { rules: failureRules },
      template: {
        metadata: { labels: podLabels },
        spec: {
          restartPolicy: 'Never',
          securityContext: podSecurity(),
          ...gpuPlacement(plan),
          ...containersOf(main, env, draft, mode, out, hash, ctx, upstreamMarkers, data.fetch),
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
  return [...data.maps, configMap, job];
}

/**
 * A pod waits for its inputs' completion markers before its tool starts. Pulumi and the runner
 * order stages themselves, but a GitOps controller may release a stage early (Flux counts a
 * Kueue-suspended Job as ready), and a stage must never read a half-written artifact.
 */
function waitForMarkers(name: string, markers: readonly string[], ctx: ResolvedContext): Container {
  const test = markers.map((marker) => `[ -f ${marker} ]`).join(' && ');
  return {
    name,
    image: ctx.images.runtime,
    command: ['/bin/sh', '-c'],
    args: [`until ${test}; do echo "waiting for: ${markers.join(' ')}"; sleep 15; done`],
    securityContext: containerSecurity(),
    resources: { requests: { cpu: '10m', memory: '16Mi' }, limits: { memory: '64Mi' } },
    volumeMounts: [{ name: 'artifacts', mountPath: ARTIFACTS_MOUNT, readOnly: true }],
  };
}

function containersOf(
  main: Container,
  env: EnvVar[],
  draft: StageDraft,
  mode: PublishMode,
  out: string,
  hash: string,
  ctx: ResolvedContext,
  upstreamMarkers: readonly string[],
  fetch: Container | undefined,
): { initContainers?: Container[]; containers: Container[] } {
  const wait = [...(upstreamMarkers.length > 0 ? [waitForMarkers('wait-for-inputs', upstreamMarkers, ctx)] : []), ...(fetch ? [fetch] : [])];
  if (draft.gate) {
    return {
      initContainers: [...wait, { ...main, env: [...env, { name: 'TUNEPIPE_STEP', value: 'run' }] }],
      containers: [gateContainer(draft, mode, out, hash, ctx)],
    };
  }
  return { ...(wait.length > 0 ? { initContainers: wait } : {}), containers: [main] };
}

/** Checks the predictions against the gate, then publishes: runs after LLaMA-Factory in the same pod. */
function gateContainer(draft: StageDraft, mode: PublishMode, out: string, hash: string, ctx: ResolvedContext): Container {
  const work = mode === 'rename' ? `${out}.partial` : out;
  return {
    name: 'gate',
    image: ctx.images.runtime,
    command: ['/bin/sh', '/config/stage.sh', mode, out, '--'],
    args: ['tunepipe', 'gate', '--rules', '/config/gate.json', '--results', `${work}/predict_results.json`, '--out', `${work}/gate.json`],
    env: [
      { name: 'TUNEPIPE_STAGE', value: draft.spec.name },
      { name: 'TUNEPIPE_HASH', value: hash },
      { name: 'TUNEPIPE_STEP', value: 'publish' },
    ],
    resources: { requests: { cpu: '100m', memory: '128Mi' }, limits: { memory: '256Mi' } },
    securityContext: containerSecurity(),
    volumeMounts: [
      { name: 'config', mountPath: '/config', readOnly: true },
      { name: 'artifacts', mountPath: ARTIFACTS_MOUNT },
    ],
  };
}

function backoffLimitOf(spec: StageSpec): number {
  return spec.kind === 'serve' || spec.kind === 'fetch-model' ? 2 : (spec.options.backoffLimit ?? 2);
}

function serveObjects(
  pipeline: Pipeline,
  draft: StageDraft,
  config: Record<string, unknown>,
  serviceName: string,
  labels: Record<string, string>,
  ctx: ResolvedContext,
): KubeObject[] {
  if (draft.spec.kind !== 'serve') throw new Error('internal: not a serve stage');
  const o = draft.spec.options;
  const plan = draft.plan;
  const port = o.port ?? 8000;
  const modelPath = String(config['model']);
  const args = config['args'] as string[];
  // Selector labels must not change between rollouts; the hash label lives on the pod template only.
  const selector = { [LABELS.pipeline]: pipeline.name, [LABELS.stage]: draft.spec.name };
  // Pods wait until the model is published and every required evaluation (gate) has passed, so a
  // GitOps controller that applies everything at once still rolls out in order.
  const waitFor = config['waitFor'] as string[];

  const deployment: Deployment = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: metadata(serviceName, ctx.namespace, labels, {
      [ANNOTATIONS.dependsOn]: JSON.stringify(draft.dependsOn),
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
          securityContext: podSecurity(),
          ...gpuPlacement(plan),
          initContainers: [waitForMarkers('wait-for-model', waitFor, ctx)],
          containers: [
            {
              name: 'vllm',
              image: draft.image,
              // The model is vLLM's positional argument; `command` makes that independent of the image's entrypoint.
              command: ['vllm', 'serve'],
              args: [modelPath, ...args],
              env: [
                ...scratchEnv(),
                { name: 'HF_HUB_OFFLINE', value: '1' },
                ...secretEnv('VLLM_API_KEY', o.apiKey),
              ],
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
  return [deployment, service];
}

/**
 * The post-deploy check: a Job, named by the serve stage's hash, that waits until the Service
 * answers with this model (old pods keep answering during a rollout) and then runs
 * `tunepipe verify`, writing its scores next to the other stages' artifacts.
 */
function verifyObjects(
  pipeline: Pipeline,
  draft: StageDraft,
  config: Record<string, unknown>,
  serviceName: string,
  labels: Record<string, string>,
  hash: string,
  ctx: ResolvedContext,
): { out: string; objects: KubeObject[] } | undefined {
  if (draft.spec.kind !== 'serve' || !draft.spec.options.verify) return undefined;
  const o = draft.spec.options;
  const verify = o.verify!;
  const name = `${pipeline.name}-${draft.spec.name}-verify-${shortHash(hash)}`;
  const out = artifactPath(pipeline.name, draft.spec.name, hash);
  const endpoint = `http://${serviceName}.${ctx.namespace}.svc:${o.port ?? 8000}`;
  const dataset = config['verifyData'] as { dir: string; entries: string[] } | undefined;
  const verifyLabels = { ...labels, [LABELS.component]: 'verify' };
  const env: EnvVar[] = [
    { name: 'TUNEPIPE_STAGE', value: draft.spec.name },
    { name: 'TUNEPIPE_HASH', value: hash },
    ...secretEnv('VLLM_API_KEY', o.apiKey),
  ];
  const mounts = [
    { name: 'config', mountPath: '/config', readOnly: true },
    { name: 'artifacts', mountPath: ARTIFACTS_MOUNT },
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
      [ANNOTATIONS.dependsOn]: JSON.stringify([draft.spec.name]),
    }),
    spec: {
      backoffLimit: 2,
      activeDeadlineSeconds: draft.plan.deadlineSeconds + 3600,
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
          securityContext: podSecurity(),
          initContainers: [
            {
              name: 'wait-for-rollout',
              image: ctx.images.runtime,
              command: ['tunepipe', 'wait-served'],
              args: ['--endpoint', endpoint, '--model-root', String(config['model']), '--timeout', String(draft.plan.deadlineSeconds)],
              env,
              securityContext: containerSecurity(),
              resources: { requests: { cpu: '10m', memory: '64Mi' }, limits: { memory: '128Mi' } },
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
                '--served-model-name', o.servedModelName ?? pipeline.name,
                '--expect-name', verify.expectName,
                ...(verify.identityPrompts ?? []).flatMap((prompt) => ['--identity-prompt', prompt]),
                ...(dataset ? ['--dataset-dir', dataset.dir, '--dataset', dataset.entries.join(',')] : []),
                ...(verify.limit !== undefined ? ['--limit', String(verify.limit)] : []),
                '--out', `${out}.partial`,
              ],
              env,
              securityContext: containerSecurity(),
              resources: { requests: { cpu: '250m', memory: '512Mi' }, limits: { memory: '1Gi' } },
              volumeMounts: mounts,
            },
          ],
          volumes: [
            { name: 'config', configMap: { name } },
            { name: 'artifacts', persistentVolumeClaim: { claimName: ctx.artifactsClaim } },
          ],
        },
      },
    },
  };
  return { out, objects: [configMap, job] };
}
