import { canonicalJson, type CompiledPipeline, type CompiledStage, type StageKind } from '@tunepipe/core';

/**
 * What merging a change does to a stage: `run` (its hash changed), `cached` (same hash: the
 * artifact and the Job exist, nothing runs), `added` (a new stage, runs), `removed`.
 */
export type StageAction = 'run' | 'cached' | 'added' | 'removed';

export type ReasonKind = 'config' | 'input' | 'upstream' | 'image' | 'kind' | 'graph' | 'resources' | 'added' | 'removed' | 'unexplained';

/** One cause of a stage's new hash. `path`, `before` and `after` are set for config and input changes. */
export interface StageReason {
  readonly kind: ReasonKind;
  readonly text: string;
  readonly path?: string;
  readonly before?: unknown;
  readonly after?: unknown;
}

export interface StageDiff {
  readonly stage: string;
  readonly kind: StageKind;
  readonly action: StageAction;
  readonly workload: 'Job' | 'JobSet' | 'Deployment';
  readonly beforeHash?: string;
  readonly afterHash?: string;
  readonly gpus: number;
  readonly gpuType?: string;
  readonly expectedSeconds: number;
  /** GPU-hours the change spends on this stage: gpus × expected hours of a batch stage that runs; 0 otherwise. */
  readonly gpuHours: number;
  readonly reasons: readonly StageReason[];
}

export interface DiffCounts {
  /** Stages that will run: changed and added ones. */
  readonly run: number;
  readonly cached: number;
  readonly added: number;
  readonly removed: number;
}

export interface PipelineDiff {
  readonly pipeline: string;
  readonly status: 'changed' | 'unchanged' | 'added' | 'removed';
  readonly stages: readonly StageDiff[];
  readonly counts: DiffCounts;
  readonly gpuHours: number;
}

export interface PlanDiff {
  readonly pipelines: readonly PipelineDiff[];
  readonly counts: DiffCounts;
  readonly gpuHours: number;
}

/** Shown in place of a long value: enough to tell two digests apart. */
const VALUE_LIMIT = 80;
const DIGEST = /^(sha256:)?[0-9a-f]{16,}$/;

export function formatValue(value: unknown): string {
  if (value === undefined) return '(unset)';
  if (typeof value === 'string' && DIGEST.test(value)) {
    const prefix = value.startsWith('sha256:') ? 'sha256:' : '';
    return `${prefix}${value.slice(prefix.length, prefix.length + 12)}`;
  }
  const text = typeof value === 'string' ? JSON.stringify(value) : canonicalJson(value);
  return text.length > VALUE_LIMIT ? `${text.slice(0, VALUE_LIMIT - 1)}…` : text;
}

function pathKey(parent: string, key: string): string {
  const safe = /^[A-Za-z_][\w-]*$/.test(key) ? key : JSON.stringify(key);
  if (parent === '') return safe === key ? key : `[${safe}]`;
  return safe === key ? `${parent}.${key}` : `${parent}[${safe}]`;
}

/** A command line (`['--max-num-seqs', '64', …]`): diffed by flag, so one new flag does not shift every index. */
function isArgv(value: unknown): value is string[] {
  return Array.isArray(value) && value.length > 0 && value.every((v) => typeof v === 'string') && value.some((v) => v.startsWith('--'));
}

function argvEntries(argv: readonly string[]): [string, unknown][] {
  const entries: [string, unknown][] = [];
  const seen = new Map<string, number>();
  const key = (name: string): string => {
    const n = (seen.get(name) ?? 0) + 1;
    seen.set(name, n);
    return n === 1 ? name : `${name}#${n}`;
  };
  for (let i = 0; i < argv.length; i++) {
    const item = argv[i]!;
    if (!item.startsWith('--')) {
      entries.push([String(i), item]);
      continue;
    }
    const eq = item.indexOf('=');
    if (eq > 0) entries.push([key(item.slice(0, eq)), item.slice(eq + 1)]);
    else if (i + 1 < argv.length && !argv[i + 1]!.startsWith('--')) entries.push([key(item), argv[++i]!]);
    else entries.push([key(item), true]);
  }
  return entries;
}

/** Leaves of a JSON value by dotted path (`a.b`, `list[0].c`); empty objects and arrays are leaves. */
export function flatten(value: unknown, prefix = '', out = new Map<string, unknown>()): Map<string, unknown> {
  if (isArgv(value)) {
    for (const [key, item] of argvEntries(value)) out.set(`${prefix}[${key}]`, item);
  } else if (Array.isArray(value) && value.length > 0) {
    value.forEach((item, i) => flatten(item, `${prefix}[${i}]`, out));
  } else if (value !== null && typeof value === 'object' && !Array.isArray(value) && Object.keys(value).length > 0) {
    for (const [key, item] of Object.entries(value)) {
      if (item !== undefined) flatten(item, pathKey(prefix, key), out);
    }
  } else {
    out.set(prefix, value);
  }
  return out;
}

/** Replaces every old hash of `renames` in the strings of `value` by its new hash. */
function substitute(value: unknown, renames: ReadonlyMap<string, string>): unknown {
  if (typeof value === 'string') {
    let text = value;
    for (const [from, to] of renames) if (from.length > 0) text = text.split(from).join(to);
    return text;
  }
  if (Array.isArray(value)) return value.map((v) => substitute(v, renames));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, substitute(v, renames)]));
  }
  return value;
}

const same = (a: unknown, b: unknown): boolean => canonicalJson(a) === canonicalJson(b);

function gpuHoursOf(stage: CompiledStage, action: StageAction): number {
  // Serving is capacity held until the next rollout, not a one-off spend; plan it separately.
  if (action === 'cached' || action === 'removed' || stage.workload.kind === 'Deployment') return 0;
  // `gpus` is per pod; a gang runs one pod per node.
  return (stage.gpus * (stage.layout?.nodes ?? 1) * stage.expectedSeconds) / 3600;
}

const UPSTREAM_INPUT = /^stage:(.+)$/;

function stageReasons(
  before: CompiledStage,
  after: CompiledStage,
  renames: ReadonlyMap<string, string>,
  actions: ReadonlyMap<string, StageAction>,
): StageReason[] {
  const reasons: StageReason[] = [];
  const upstream = new Set<string>();

  for (const dep of after.dependsOn) {
    const action = actions.get(dep);
    if (action === 'run' || action === 'added') {
      upstream.add(dep);
      reasons.push({ kind: 'upstream', text: action === 'added' ? `upstream ${dep} is new` : `upstream ${dep} changed` });
    }
  }
  const added = after.dependsOn.filter((d) => !before.dependsOn.includes(d));
  const dropped = before.dependsOn.filter((d) => !after.dependsOn.includes(d));
  if (added.length > 0 || dropped.length > 0) {
    const parts = [...added.map((d) => `+${d}`), ...dropped.map((d) => `-${d}`)];
    reasons.push({ kind: 'graph', text: `upstream stages ${parts.join(' ')}` });
  }
  if (before.kind !== after.kind) reasons.push({ kind: 'kind', text: `kind ${before.kind} → ${after.kind}` });
  if (before.image !== after.image) {
    reasons.push({ kind: 'image', text: `image ${before.image} → ${after.image}`, before: before.image, after: after.image });
  }

  const keys = new Set([...Object.keys(before.inputs), ...Object.keys(after.inputs)]);
  for (const key of [...keys].sort()) {
    const from = before.inputs[key];
    const to = after.inputs[key];
    if (from === to) continue;
    const dep = UPSTREAM_INPUT.exec(key)?.[1];
    // Upstream stages that changed, or joined or left the graph, have their own reason above.
    if (dep !== undefined && (upstream.has(dep) || added.includes(dep) || dropped.includes(dep))) continue;
    if (dep !== undefined && from !== undefined && to !== undefined && renames.get(from) === to) continue;
    reasons.push({ kind: 'input', path: key, before: from, after: to, text: `${key}: ${formatValue(from)} → ${formatValue(to)}` });
  }

  // Artifact paths embed stage hashes: a renamed upstream (or own) folder is not a config change.
  const renamedConfig = flatten(substitute(before.config, renames));
  const oldConfig = flatten(before.config);
  const newConfig = flatten(after.config);
  const paths = new Set([...oldConfig.keys(), ...newConfig.keys()]);
  for (const path of [...paths].sort()) {
    const from = oldConfig.get(path);
    const to = newConfig.get(path);
    if (same(renamedConfig.get(path), to)) continue;
    reasons.push({ kind: 'config', path, before: from, after: to, text: `${path}: ${formatValue(from)} → ${formatValue(to)}` });
  }

  if (before.gpus !== after.gpus || before.gpuType !== after.gpuType) {
    const gpu = (s: CompiledStage): string => (s.gpus === 0 ? 'no GPU' : `${s.gpus}${s.gpuType ? ` × ${s.gpuType}` : ' GPU'}`);
    reasons.push({ kind: 'resources', text: `GPUs ${gpu(before)} → ${gpu(after)}` });
  }
  if (reasons.length === 0) {
    reasons.push({ kind: 'unexplained', text: 'hash changed with equal config, inputs and image (a different compiler version?)' });
  }
  return reasons;
}

function counts(stages: readonly StageDiff[]): DiffCounts {
  return {
    run: stages.filter((s) => s.action === 'run' || s.action === 'added').length,
    cached: stages.filter((s) => s.action === 'cached').length,
    added: stages.filter((s) => s.action === 'added').length,
    removed: stages.filter((s) => s.action === 'removed').length,
  };
}

function entry(stage: CompiledStage, action: StageAction, reasons: StageReason[], beforeHash?: string): StageDiff {
  return {
    stage: stage.name,
    kind: stage.kind,
    action,
    workload: stage.workload.kind,
    ...(beforeHash !== undefined ? { beforeHash } : {}),
    ...(action !== 'removed' ? { afterHash: stage.hash } : { beforeHash: stage.hash }),
    gpus: stage.gpus,
    ...(stage.gpuType !== undefined ? { gpuType: stage.gpuType } : {}),
    expectedSeconds: stage.expectedSeconds,
    gpuHours: gpuHoursOf(stage, action),
    reasons,
  };
}

/**
 * Per stage: will it run, is it cached, added or removed, and why. `base` is the pipeline at the
 * base revision (undefined when the pipeline is new), `head` the pipeline with the change
 * (undefined when it is removed). Stages follow head's order; removed ones come last.
 */
export function diffPipelines(base: CompiledPipeline | undefined, head: CompiledPipeline | undefined): PipelineDiff {
  const name = head?.pipeline ?? base?.pipeline;
  if (name === undefined) throw new Error('diffPipelines: neither a base nor a head pipeline');
  const beforeStages = new Map((base?.stages ?? []).map((s) => [s.name, s]));
  const afterNames = new Set((head?.stages ?? []).map((s) => s.name));
  const actions = new Map<string, StageAction>();
  const renames = new Map<string, string>();
  for (const stage of head?.stages ?? []) {
    const old = beforeStages.get(stage.name);
    if (old && old.hash !== stage.hash) renames.set(old.hash, stage.hash);
  }
  const stages: StageDiff[] = [];

  for (const stage of head?.stages ?? []) {
    const before = beforeStages.get(stage.name);
    if (!before) {
      actions.set(stage.name, 'added');
      stages.push(entry(stage, 'added', [{ kind: 'added', text: 'new stage' }]));
    } else if (before.hash === stage.hash) {
      actions.set(stage.name, 'cached');
      stages.push(entry(stage, 'cached', [], before.hash));
    } else {
      actions.set(stage.name, 'run');
      stages.push(entry(stage, 'run', stageReasons(before, stage, renames, actions), before.hash));
    }
  }
  for (const stage of base?.stages ?? []) {
    if (!afterNames.has(stage.name)) stages.push(entry(stage, 'removed', [{ kind: 'removed', text: 'no longer in the pipeline' }]));
  }

  const c = counts(stages);
  const status = !base ? 'added' : !head ? 'removed' : c.run + c.removed === 0 ? 'unchanged' : 'changed';
  return { pipeline: name, status, stages, counts: c, gpuHours: sum(stages.map((s) => s.gpuHours)) };
}

const sum = (values: readonly number[]): number => values.reduce((a, b) => a + b, 0);

/** `diffPipelines` over every pipeline of either revision, paired by name, in name order. */
export function diffPipelineSets(base: readonly CompiledPipeline[], head: readonly CompiledPipeline[]): PlanDiff {
  const names = [...new Set([...base.map((p) => p.pipeline), ...head.map((p) => p.pipeline)])].sort();
  const pipelines = names.map((n) => diffPipelines(base.find((p) => p.pipeline === n), head.find((p) => p.pipeline === n)));
  const all = pipelines.flatMap((p) => p.stages);
  return { pipelines, counts: counts(all), gpuHours: sum(pipelines.map((p) => p.gpuHours)) };
}
