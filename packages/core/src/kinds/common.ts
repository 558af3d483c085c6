import type { EnvVar } from 'kubernetes-types/core/v1.js';
import type { SecretRef } from '../dsl.ts';
import { PLATFORM_SECRETS } from '../secrets.ts';
import type { ArtifactHandle, Dataset } from '../handles.ts';
import { didYouMean, type Issue } from '../issues.ts';
import { isDnsLabel, toDnsLabel } from '../names.ts';
import { LLAMAFACTORY_ARGS, LLAMAFACTORY_TEMPLATES } from '../reference/llamafactory-args.gen.ts';
import { PINS } from '../reference/pins.gen.ts';
import { llamaFactoryRangeIssues } from '../rules/ranges.ts';
import type { HandleKind, ResolveEnv, ResolvedResources, ResolvedStage, SpecOf, StageKind } from './types.ts';

type Add = (issue: Issue) => void;

/** Why a key may not be set by hand, and what to say instead of the generic message. */
export interface DerivedKey {
  readonly code?: string;
  readonly message?: string;
  readonly fix?: string;
}

/**
 * Merges a tool's keys in the one documented order: tunepipe's defaults, then the typed `args`,
 * then `extraArgs`. The same key in both `args` and `extraArgs` is an error (the pipeline would
 * say two things), and so is any key the compiler derives from handles, by whichever route it
 * comes (a spread into `args` included). Values that are `undefined` count as unset.
 */
export function mergeToolArgs(options: {
  readonly path: string;
  readonly defaults: Readonly<Record<string, unknown>>;
  readonly args: Readonly<Record<string, unknown>> | undefined;
  readonly extraArgs: Readonly<Record<string, unknown>> | undefined;
  readonly derived: Readonly<Record<string, DerivedKey>>;
  readonly add: Add;
}): { args: Record<string, unknown>; argPaths: Record<string, string> } {
  const { path, add } = options;
  const args: Record<string, unknown> = { ...options.defaults };
  const argPaths: Record<string, string> = {};
  const routes: [string, Readonly<Record<string, unknown>> | undefined][] = [
    ['args', plainObject(options.args, `${path}.args`, add)],
    ['extraArgs', plainObject(options.extraArgs, `${path}.extraArgs`, add)],
  ];
  for (const [route, values] of routes) {
    for (const [key, value] of Object.entries(values ?? {})) {
      if (value === undefined) continue;
      const at = `${path}.${route}.${key}`;
      const derived = Object.hasOwn(options.derived, key) ? options.derived[key] : undefined;
      if (derived) {
        add({
          code: derived.code ?? 'args.derived',
          path: at,
          value,
          message: derived.message ?? `${key} is derived from the stage's handles; a hand-written value would point at the wrong artifact`,
          fix: derived.fix ?? `remove ${key}`,
        });
        continue;
      }
      const earlier = argPaths[key];
      if (earlier !== undefined) {
        add({ code: 'args.conflict', path: at, value, message: `${key} is also set at ${earlier} (${JSON.stringify(args[key])}); a key has one value`, fix: `keep ${key} in one place (typed args when it has a type)` });
        continue;
      }
      args[key] = value;
      argPaths[key] = at;
    }
  }
  return { args, argPaths };
}

function plainObject(value: unknown, path: string, add: Add): Readonly<Record<string, unknown>> | undefined {
  if (value === undefined) return undefined;
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) return value as Record<string, unknown>;
  add({ code: 'args.type', path, value, message: 'must be a mapping of argument names to values', fix: 'use { key: value, … }' });
  return undefined;
}

/** The path of a key in a resolved stage: where the user set it, else its typed-args slot. */
export function argPath(stage: ResolvedStage, key: string): string {
  return stage.argPaths[key] ?? `${stage.path}.args.${key}`;
}

export function unique(names: readonly string[]): string[] {
  return [...new Set(names)];
}

/** The upstream stages' names a resolved stage reads, for `dependsOn`. */
export function stagesOf(handles: readonly (ArtifactHandle | undefined)[]): string[] {
  return unique(handles.filter((h): h is ArtifactHandle => !!h && typeof h === 'object' && typeof h.stage === 'string').map((h) => h.stage));
}

export function resolvedResources(options: { readonly resources?: ResolvedResources & { readonly gpusPerNode?: number }; readonly strategy?: ResolvedResources['strategy'] }): ResolvedResources {
  const r = options.resources;
  const strategy = options.strategy !== undefined ? { strategy: options.strategy } : {};
  if (!r) return strategy;
  // `gpus` and `gpusPerNode` name the same count; both set is the sft kind's error (gpus wins here).
  const gpus = r.gpus ?? r.gpusPerNode;
  return {
    ...(gpus !== undefined ? { gpus } : {}),
    ...(r.nodes !== undefined ? { nodes: r.nodes } : {}),
    ...strategy,
    ...(r.gpuType !== undefined ? { gpuType: r.gpuType } : {}),
    ...(r.cpu !== undefined ? { cpu: r.cpu } : {}),
    ...(r.memory !== undefined ? { memory: r.memory } : {}),
  };
}

/**
 * Checks that a handle is one an earlier stage of this pipeline really produced, of a kind the
 * option accepts. Reports a missing value, a stage that does not exist, a forward reference (the
 * definition order is the graph's order, so this is also how a cycle shows) and a handle whose
 * stage makes something else. Returns whether the handle can be followed.
 */
export function checkInput(handle: unknown, path: string, accepts: readonly HandleKind[], env: ResolveEnv, wrongKind?: Pick<Issue, 'code' | 'message' | 'fix'>): handle is ArtifactHandle {
  const followed = followInput(handle, path, accepts, env, wrongKind);
  // A stage that cannot follow one of its inputs is not sized: what it would read is unknown.
  if (!followed) env.blocked();
  return followed;
}

function followInput(handle: unknown, path: string, accepts: readonly HandleKind[], env: ResolveEnv, wrongKind: Pick<Issue, 'code' | 'message' | 'fix'> | undefined): handle is ArtifactHandle {
  const h = handle as Partial<ArtifactHandle> | undefined;
  if (!h || typeof h !== 'object' || typeof h.stage !== 'string' || typeof h.kind !== 'string') {
    env.add({ code: 'wiring.missing', path, value: handle === undefined ? undefined : describe(handle), message: 'expects an artifact handle returned by a stage of this pipeline', fix: `pass the value a p.<stage>(…) call returned (${accepts.join(' or ')})` });
    return false;
  }
  const producer = env.resolved.get(h.stage);
  if (!producer && env.unresolved.has(h.stage)) return false;
  if (!producer) {
    if (env.declared.has(h.stage)) {
      env.add({ code: 'wiring.forward', path, value: h.stage, message: `refers to stage '${h.stage}', which is defined later: a stage reads only what earlier stages made (a cycle shows up this way too)`, fix: `define '${h.stage}' before this stage` });
    } else {
      env.add({ code: 'wiring.foreign', path, value: h.stage, message: `refers to stage '${h.stage}', which this pipeline does not have`, fix: didYouMean(h.stage, env.declared.keys()) ?? 'use a handle produced by a stage of this pipeline' });
    }
    return false;
  }
  if (env.produces(producer.kind) !== h.kind) {
    env.add({ code: 'wiring.kind', path, value: `${h.kind} from ${producer.kind} '${h.stage}'`, message: `a ${producer.kind} stage produces no ${h.kind}`, fix: 'pass the handle the stage returned, unchanged' });
    return false;
  }
  if (!wellFormed(h)) {
    env.add({ code: 'wiring.forged', path, value: describe(handle), message: `is not the ${h.kind} handle stage '${h.stage}' returned (fields are missing or of the wrong type)`, fix: 'pass the value the stage returned, unchanged (no spreading or hand-built copies)' });
    return false;
  }
  if (!accepts.includes(h.kind)) {
    env.add({ code: 'wiring.input', path, value: `${h.kind} from ${producer.kind} '${h.stage}'`, message: `takes ${accepts.join(' or ')}, not ${h.kind}`, fix: `pass what a ${accepts.join(' or ')} stage returned`, ...wrongKind });
    return false;
  }
  // Following a handle out of a stage with errors would read facts nobody vouched for.
  return !env.broken.has(h.stage);
}

const isObject = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);
const isText = (v: unknown): v is string => typeof v === 'string';

/** The fields the DSL's methods put on each handle, which the kinds read. */
function wellFormed(h: Partial<ArtifactHandle> & Record<string, unknown>): boolean {
  const base = (v: unknown) => isObject(v) && isObject(v['source']) && isText(v['template']) && isText(v['stage']);
  switch (h.kind as string) {
    case 'base-model':
      return base(h);
    case 'dataset':
      return isText(h['split']) && Array.isArray(h['entries']) && (h['entries'] as unknown[]).every(isText);
    case 'adapter':
      return base(h['base']) && isText(h['template']);
    case 'merged-model':
      return base(h['base']) && isObject(h['adapter']) && isText(h['template']);
    case 'quantized-model':
      return base(h['base']) && isObject(h['source']) && isText(h['template']) && typeof h['bits'] === 'number';
    case 'eval-report':
    case 'predictions':
      return isObject(h['model']) && isObject(h['data']);
    default:
      return true;
  }
}

function describe(value: unknown): unknown {
  return value !== null && typeof value === 'object' ? Object.keys(value as object).slice(0, 5).join(',') || '{}' : value;
}

/** Checks a dataset handle names entries its convert stage really makes. */
export function checkDatasetEntries(data: Dataset, path: string, env: ResolveEnv): void {
  const producer = env.resolved.get(data.stage);
  if (producer?.kind !== 'convert') return;
  const made = new Set(datasetEntriesOf(producer as ResolvedStage<'convert'>, data.split));
  const entries = Array.isArray(data.entries) ? data.entries : [];
  if (entries.length === 0) {
    env.add({ code: 'wiring.dataset-entry', path, value: data.entries, message: 'names no dataset entry', fix: `pass convert '${data.stage}''s ${data.split} output unchanged` });
  }
  for (const entry of entries) {
    if (!made.has(entry)) {
      env.add({ code: 'wiring.dataset-entry', path, value: entry, message: `convert '${data.stage}' makes no ${data.split} entry '${entry}' (it makes ${[...made].join(', ') || 'none'})`, fix: didYouMean(String(entry), made) ?? `pass convert '${data.stage}''s ${data.split} output unchanged` });
    }
  }
}

/** The dataset_info.json entries a convert stage writes for a split. */
export function datasetEntriesOf(convert: ResolvedStage<'convert'>, split: Dataset['split']): string[] {
  if (split === 'calibration') return convert.spec.options.calibration ? ['calibration'] : [];
  const suffix = split === 'train' ? '' : `.${split}`;
  const sources = Array.isArray(convert.spec.options.sources) ? convert.spec.options.sources : [];
  return sources.map((source) => `${source}${suffix}`);
}

export function checkImage(image: unknown, path: string, add: Add): void {
  if (typeof image !== 'string' || image.trim() === '') {
    add({ code: 'image.invalid', path, value: image, message: 'is not a container image reference', fix: 'use registry/name:tag or registry/name@sha256:…' });
    return;
  }
  const lastSegment = image.split('/').pop() ?? '';
  const hasDigest = image.includes('@sha256:');
  const tag = lastSegment.includes(':') ? lastSegment.split(':').pop() : undefined;
  if (!hasDigest && (!tag || tag === 'latest')) {
    add({ code: 'image.unpinned', path, value: image, message: 'image is not pinned: a re-run could use different code than the stage hash says', fix: 'pin a version tag or a digest (image:1.2.3 or image@sha256:…)' });
  }
}

export function checkTemplate(template: unknown, path: string, add: Add): void {
  if (typeof template !== 'string' || !LLAMAFACTORY_TEMPLATES.includes(template)) {
    add({ code: 'template.unknown', path, value: template, message: `LLaMA-Factory has no template '${String(template)}' (it stops with "Template ${String(template)} does not exist." after the pod starts)`, fix: (typeof template === 'string' ? didYouMean(template, LLAMAFACTORY_TEMPLATES) : undefined) ?? 'use a registered template, e.g. llama3, qwen, chatml' });
  }
}

export function checkSecretRef(ref: SecretRef, path: string, add: Add): void {
  if (!ref || typeof ref !== 'object' || typeof ref.secretName !== 'string' || typeof ref.key !== 'string') {
    add({ code: 'secret.ref', path, message: 'must name a Secret and a key: { secretName, key }', fix: `e.g. { secretName: '${PLATFORM_SECRETS.vllmApiKey.secretName}', key: '${PLATFORM_SECRETS.vllmApiKey.key}' } (PLATFORM_SECRETS.vllmApiKey)` });
    return;
  }
  if (!isDnsLabel(ref.secretName) && !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(ref.secretName)) {
    add({ code: 'name.dns', path: `${path}.secretName`, value: ref.secretName, message: 'Secret name is not a DNS-1123 subdomain', fix: `use '${toDnsLabel(ref.secretName)}'` });
  }
  if (!/^[-._a-zA-Z0-9]+$/.test(ref.key)) {
    add({ code: 'secret.key', path: `${path}.key`, value: ref.key, message: 'is not a valid Secret key', fix: 'use letters, digits, -, _ and .' });
  }
}

function typeMatches(type: string, value: unknown): boolean {
  switch (type) {
    case 'bool':
      return typeof value === 'boolean';
    case 'int':
      return typeof value === 'number' && Number.isInteger(value);
    case 'float':
      return typeof value === 'number' && Number.isFinite(value);
    case 'str':
      return typeof value === 'string';
    case 'dict':
      return typeof value === 'object' && value !== null && !Array.isArray(value);
    default:
      return true;
  }
}

const TYPE_NAMES: Record<string, string> = { bool: 'true or false', int: 'an integer', float: 'a number', str: 'a string', dict: 'a mapping' };
const SECRET_LIKE_KEY = /(token|api[-_]?key|password|secret)/i;

/**
 * Every resolved LLaMA-Factory key against the argument table of the pinned LLaMA-Factory: does
 * the command accept it, is the value of the declared type and one of the declared choices.
 * Reads the resolved stage, so a key is checked whichever route set it.
 */
export function checkLlamaFactoryArgs(stage: ResolvedStage, command: 'train' | 'export', add: Add): void {
  for (const [key, value] of Object.entries(stage.args)) {
    if (value === undefined) continue;
    const at = argPath(stage, key);
    if (key === 'warmup_ratio' && typeof value === 'number') {
      // The pinned transformers takes a fraction of the steps and raises outside [0, 1] when the
      // arguments are parsed; transformers 5.0 deprecates the key (removal announced for 5.2).
      if (!(value >= 0 && value <= 1)) {
        add({ code: 'args.warmup-ratio', path: at, value, message: 'warmup_ratio is a fraction of the training steps; transformers stops with "warmup_ratio must lie in range [0,1]"', fix: 'use a value between 0 and 1, or warmup_steps (a step count)' });
        continue;
      }
      add({ code: 'args.warmup-ratio', path: at, value, message: `works with the pinned transformers ${PINS.python.transformers}, but transformers 5 deprecates warmup_ratio (removal announced for 5.2)`, fix: 'use warmup_steps (a step count) so the pipeline survives a transformers 5 image', severity: 'warning' });
    }
    const spec = Object.hasOwn(LLAMAFACTORY_ARGS, key) ? LLAMAFACTORY_ARGS[key] : undefined;
    // export_size's own rule explains the unit (whole GB), which a bare type error would not.
    if (spec && ((typeof value === 'number' && !Number.isFinite(value)) || key === 'export_size')) {
      for (const issue of llamaFactoryRangeIssues(key, value, at)) add(issue);
      continue;
    }
    if (!spec) {
      add({ code: 'args.unknown', path: at, value, message: `llamafactory-cli ${command} has no argument '${key}' ("Some keys are not used by the HfArgumentParser")`, fix: didYouMean(key, Object.keys(LLAMAFACTORY_ARGS)) ?? 'remove it' });
      continue;
    }
    if (command === 'train' && !spec.train) {
      add({ code: 'args.unknown', path: at, value, message: `'${key}' is accepted by llamafactory-cli export only; train stops with "Some keys are not used by the HfArgumentParser"`, fix: `remove ${key}` });
      continue;
    }
    if (command === 'export' && !spec.export) {
      add({ code: 'args.training-key', path: at, value, message: `'${key}' is a training argument; llamafactory-cli export accepts no training keys and fails on it`, fix: `remove ${key} from the export config` });
      continue;
    }
    if (SECRET_LIKE_KEY.test(key) && typeof value === 'string') {
      add({ code: 'secret.literal', path: at, value: '<redacted>', message: 'a secret written as a literal ends up in ConfigMaps, Git and Pulumi state', fix: 'remove it; give the base model a token SecretRef (fetch-model reads it from the Secret)' });
      continue;
    }
    if (!typeMatches(spec.type, value)) {
      add({ code: 'args.type', path: at, value, message: `must be ${TYPE_NAMES[spec.type] ?? spec.type} (${spec.pyType})`, fix: spec.default !== null ? `LLaMA-Factory's default is ${JSON.stringify(spec.default)}` : `give ${TYPE_NAMES[spec.type] ?? spec.type}` });
      continue;
    }
    if (key === 'export_device' && !spec.choices?.includes(value)) {
      add({ code: 'export.device', path: at, value, message: "export_device is 'cpu' or 'auto'; 'cuda' is not a value", fix: "use 'auto' to merge on the GPUs (device_map=auto) or 'cpu' to merge in host memory" });
      continue;
    }
    // A list value (report_to: [tensorboard, wandb]) is checked entry by entry.
    if (spec.choices && !(Array.isArray(value) ? value.length > 0 && value.every((v) => spec.choices!.includes(v)) : spec.choices.includes(value))) {
      const candidates = spec.choices.filter((c): c is string => typeof c === 'string');
      add({ code: 'args.choice', path: at, value, message: `is not one of ${spec.choices.map((c) => JSON.stringify(c)).join(', ')}`, fix: (typeof value === 'string' ? didYouMean(value, candidates) : undefined) ?? `use one of ${spec.choices.map((c) => JSON.stringify(c)).join(', ')}` });
      continue;
    }
    // warmup_ratio's range is the rule above; every other number is checked against what it means.
    if (key !== 'warmup_ratio') for (const issue of llamaFactoryRangeIssues(key, value, at, { finetuningType: stringArg(stage, 'finetuning_type') ?? 'lora' })) add(issue);
  }
}

/** The number a resolved key holds, when it holds one. */
export function numberArg(stage: ResolvedStage, key: string): number | undefined {
  const v = stage.args[key];
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

/**
 * A LLaMA-Factory key's value as the tool will see it: the resolved value, else the default of the
 * pinned LLaMA-Factory's argument table (introspected, so it cannot drift from the image).
 */
export function effectiveArg(stage: ResolvedStage, key: string): unknown {
  const value = stage.args[key];
  if (value !== undefined) return value;
  return Object.hasOwn(LLAMAFACTORY_ARGS, key) ? LLAMAFACTORY_ARGS[key]!.default : undefined;
}

export function stringArg(stage: ResolvedStage, key: string): string | undefined {
  const v = stage.args[key];
  return typeof v === 'string' ? v : undefined;
}

/** Upstream stages' hashes and the stage's own identities: every input the hash covers. */
export function hashInputs(stage: ResolvedStage, hashOf: (stage: string) => string): Record<string, string> {
  return { ...Object.fromEntries(stage.dependsOn.map((d) => [`stage:${d}`, hashOf(d)])), ...stage.identities };
}

/** The planner's placement overrides: GPUs and their type only. */
export function placement(r: ResolvedResources): { gpus?: number; gpuType?: string } {
  return { ...(r.gpus !== undefined ? { gpus: r.gpus } : {}), ...(r.gpuType !== undefined ? { gpuType: r.gpuType } : {}) };
}

/** What the planner needs to know about a split of a convert stage's output, from its resolved settings and the data's stats. */
export function splitRows(data: Dataset, env: ResolveEnv): { rows: number; meanTokens?: number; maxTokens?: number } | undefined {
  const convert = env.resolved.get(data.stage);
  if (convert?.kind !== 'convert') return undefined;
  const o = (convert as ResolvedStage<'convert'>).spec.options;
  const split = convert.args['split'] as { validation: number; test: number };
  const maxSamples = convert.args['maxSamples'] as number | undefined;
  let rows = 0;
  let tokens = 0;
  let maxTokens = 0;
  for (const name of o.sources) {
    const stats = env.ctx.datasets[name]?.stats;
    if (!stats) return undefined;
    const kept = Math.min(stats.rows, maxSamples ?? Infinity);
    const held = (size: number) => (size < 1 ? Math.round(kept * size) : Math.min(kept, size));
    const validation = held(split.validation);
    const test = held(split.test);
    const share = data.split === 'validation' ? validation : data.split === 'test' ? test : Math.max(0, kept - validation - test);
    rows += share;
    tokens += share * stats.meanTokens;
    maxTokens = Math.max(maxTokens, stats.maxTokens);
  }
  return rows > 0 ? { rows, meanTokens: tokens / rows, maxTokens } : { rows: 0 };
}

/** LLaMA-Factory reads every model from the volume: a download attempt means a wrong path, so fail fast. */
export function offlineEnv(): EnvVar[] {
  return [{ name: 'HF_HUB_OFFLINE', value: '1' }, { name: 'TRANSFORMERS_OFFLINE', value: '1' }];
}

/** A resolved stage from its spec and what its kind worked out; placement and retries come from the common options. */
export function resolvedStage<K extends StageKind>(
  spec: SpecOf<K>,
  fields: {
    readonly image: string;
    readonly dependsOn: readonly string[];
    readonly args: Readonly<Record<string, unknown>>;
    readonly argPaths?: Readonly<Record<string, string>>;
    readonly identities?: Readonly<Record<string, string>>;
  },
): ResolvedStage<K> {
  const options = spec.options as { readonly resources?: ResolvedResources; readonly strategy?: ResolvedResources['strategy']; readonly backoffLimit?: number };
  return {
    kind: spec.kind,
    name: spec.name,
    path: `stages.${spec.name}`,
    spec,
    image: fields.image,
    dependsOn: fields.dependsOn,
    identities: fields.identities ?? {},
    resources: resolvedResources(options),
    backoffLimit: options.backoffLimit ?? 2,
    args: fields.args,
    argPaths: fields.argPaths ?? {},
  } as ResolvedStage<K>;
}

/** What every planner input starts with: the stage's name, its path and the placement the user chose. */
export function plannerBase(stage: ResolvedStage): { name: string; path: string; resources: { gpus?: number; gpuType?: string } } {
  return { name: stage.name, path: stage.path, resources: placement(stage.resources) };
}
