import { join, posix } from 'node:path';
import type { CompiledStage } from '@tunepipe/core/compiled';
import { COMPLETION_MARKER } from '@tunepipe/core';
import type { ConfigMap, Container, PodSpec } from 'kubernetes-types/core/v1.js';
import type { Job } from 'kubernetes-types/batch/v1.js';
import type { Deployment } from 'kubernetes-types/apps/v1.js';
import { parseDocument, visit } from 'yaml';

export type PublishMode = 'rename' | 'in-place';

/** A folder the pod sees, and where it is on this machine. */
export interface Mount {
  readonly podPath: string;
  readonly localPath: string;
}

/** One process of a stage: a container's tool command, as the stage wrapper would run it. */
export interface LocalStep {
  readonly container: string;
  /** The command after the wrapper's `--`, with pod paths mapped to local ones. */
  readonly command: readonly string[];
  readonly env: Readonly<Record<string, string>>;
}

/** A stage translated from its Kubernetes objects into local processes. */
export interface LocalStagePlan {
  readonly stage: CompiledStage;
  /** Init containers' tools first (a gated evaluation trains in one), then the main container's. */
  readonly steps: readonly LocalStep[];
  readonly mode: PublishMode;
  /** Local artifact folder (the pod's `artifactPath`). */
  readonly outDir: string;
  /** Where the tool writes: `outDir` in place, or `<outDir>.partial` renamed on success. */
  readonly workDir: string;
  readonly markerPath: string;
  /** Per-run folder: config files (under `root/`, mirroring the pod's paths) and the log. */
  readonly runDir: string;
  readonly logFile: string;
  /** ConfigMap files to write: key → local path and content. */
  readonly files: readonly { readonly key: string; readonly path: string; readonly content: string | Buffer }[];
  /** Env vars the pod gets from Secrets and the local environment does not have. */
  readonly secretEnv: readonly { readonly name: string; readonly secret: string; readonly key: string }[];
  /** serve: the port vLLM listens on. */
  readonly port?: number;
  readonly mounts: readonly Mount[];
  /** Maps a pod path (`/artifacts/...`, `/config/...`) to the local one. */
  readonly mapPath: (podPath: string) => string;
}

const MODES = new Set<string>(['rename', 'in-place']);
const SHELLS = new Set(['sh', 'bash', '/bin/sh', '/bin/bash']);

function podSpecOf(stage: CompiledStage): PodSpec | undefined {
  for (const o of stage.objects) {
    if (o.kind === 'Job') return (o as Job).spec?.template.spec;
    if (o.kind === 'Deployment') return (o as Deployment).spec?.template.spec;
  }
  return undefined;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Rewrites every occurrence of a mounted pod path inside `text` (whole path segments only). */
export function rewritePaths(text: string, mounts: readonly Mount[]): string {
  let out = text;
  for (const m of [...mounts].sort((a, b) => b.podPath.length - a.podPath.length)) {
    const re = new RegExp(`(^|[\\s=:,'"\\[(])${escapeRegExp(m.podPath)}(?=/|$|[\\s,'"\\])])`, 'g');
    out = out.replace(re, (_all, lead: string) => `${lead}${m.localPath}`);
  }
  return out;
}

/** YAML-aware rewrite: only string scalars change; comments and key order stay. */
export function rewriteYaml(text: string, mounts: readonly Mount[]): string {
  const doc = parseDocument(text);
  if (doc.errors.length > 0) return rewritePaths(text, mounts);
  visit(doc, {
    Scalar(_key, node) {
      if (typeof node.value === 'string') {
        const next = rewritePaths(node.value, mounts);
        if (next !== node.value) node.value = next;
      }
    },
  });
  return doc.toString({ lineWidth: 0 });
}

function rewriteJsonValue(value: unknown, mounts: readonly Mount[]): unknown {
  if (typeof value === 'string') return rewritePaths(value, mounts);
  if (Array.isArray(value)) return value.map((v) => rewriteJsonValue(v, mounts));
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, rewriteJsonValue(v, mounts)]));
  }
  return value;
}

function rewriteFile(key: string, text: string, mounts: readonly Mount[]): string {
  if (/\.ya?ml$/i.test(key)) return rewriteYaml(text, mounts);
  if (/\.json$/i.test(key)) {
    try {
      return `${JSON.stringify(rewriteJsonValue(JSON.parse(text), mounts), null, 2)}\n`;
    } catch {
      return rewritePaths(text, mounts);
    }
  }
  return rewritePaths(text, mounts);
}

export interface PlanOptions {
  /** Local folder standing in for the artifacts volume. */
  readonly artifactsDir: string;
  /** The local environment: Secret-backed variables are taken from it. */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Replaces a leading `tunepipe` in a step's command (our own CLI, e.g. `[node, cli.js]`). */
  readonly selfCommand?: readonly string[];
}

/**
 * Translates a stage's pod spec into local processes: the artifacts claim's mount becomes
 * `artifactsDir`; every other mount (ConfigMaps, scratch) lives under the stage's run folder at
 * the same relative path, so `/config/train.yaml` becomes `<runDir>/root/config/train.yaml`;
 * YAML and JSON config values are rewritten to those local paths. Each container runs what the
 * stage wrapper would run (`stage.sh <mode> <out> -- <command…>`). Environment values that point
 * into pod-only scratch (emptyDir, e.g. HOME=/tmp) are left out: locally the user's own apply.
 */
export function planLocalStage(stage: CompiledStage, options: PlanOptions): LocalStagePlan {
  const artifactsDir = options.artifactsDir;
  const runDir = join(artifactsDir, '.tunepipe-runs', stage.resourceName);
  const root = join(runDir, 'root');
  const spec = podSpecOf(stage);
  const isJob = stage.workload.kind === 'Job';
  const containers: Container[] = [...(isJob ? (spec?.initContainers ?? []) : []), ...(spec?.containers.slice(0, 1) ?? [])];
  const configMaps = new Map(
    stage.objects.filter((o): o is ConfigMap => o.kind === 'ConfigMap').map((cm) => [cm.metadata?.name ?? '', cm]),
  );

  const mounts = new Map<string, Mount>();
  const scratch = new Set<string>();
  const local = (podPath: string) => join(root, podPath);
  const addMount = (podPath: string, localPath: string) => {
    if (!mounts.has(podPath)) mounts.set(podPath, { podPath, localPath });
  };
  const pending: { key: string; path: string; text?: string; binary?: string }[] = [];
  let artifactsMount: string | undefined;
  for (const container of containers) {
    for (const vm of container.volumeMounts ?? []) {
      const volume = spec?.volumes?.find((v) => v.name === vm.name);
      if (volume?.persistentVolumeClaim) {
        artifactsMount = vm.mountPath;
        addMount(vm.mountPath, artifactsDir);
      } else if (volume?.emptyDir) {
        scratch.add(vm.mountPath);
      } else if (volume?.configMap) {
        if (mounts.has(vm.mountPath)) continue;
        const cm = configMaps.get(volume.configMap.name ?? '');
        const items = volume.configMap.items;
        const entries: { key: string; rel: string }[] = [];
        for (const key of [...Object.keys(cm?.data ?? {}), ...Object.keys(cm?.binaryData ?? {})]) {
          const item = items?.find((i) => i.key === key);
          if (items && !item) continue;
          entries.push({ key, rel: item?.path ?? key });
        }
        addMount(vm.mountPath, local(vm.mountPath));
        // Parent folders too (`--inputs /inputs` over `/inputs/<source>` mounts).
        for (let dir = posix.dirname(vm.mountPath); dir !== '/' && dir !== '.'; dir = posix.dirname(dir)) addMount(dir, local(dir));
        const selected = vm.subPath ? entries.filter((e) => e.rel === vm.subPath) : entries;
        for (const e of selected) {
          pending.push({ key: e.key, path: vm.subPath ? local(vm.mountPath) : join(local(vm.mountPath), e.rel), ...fileContent(cm, e.key) });
        }
      }
    }
  }
  if (!artifactsMount) {
    artifactsMount = '/artifacts';
    addMount(artifactsMount, artifactsDir);
  }
  const mountList = [...mounts.values()];
  const files = pending.map((p) => ({
    key: p.key,
    path: p.path,
    content: p.binary !== undefined ? Buffer.from(p.binary, 'base64') : rewriteFile(p.key, p.text ?? '', mountList),
  }));
  const mapPath = (podPath: string) => rewritePaths(podPath, mountList);
  const inScratch = (value: string) => [...scratch].some((s) => value === s || value.startsWith(`${s}/`));

  const secretEnv: { name: string; secret: string; key: string }[] = [];
  let mode: PublishMode = stage.kind === 'sft' ? 'in-place' : 'rename';
  const steps: LocalStep[] = containers.map((container) => {
    const argv = [...(container.command ?? []), ...(container.args ?? [])];
    const sep = argv.indexOf('--');
    let tool = sep >= 0 ? argv.slice(sep + 1) : argv;
    const declaredMode = sep >= 2 ? argv[sep - 2] : undefined;
    if (declaredMode && MODES.has(declaredMode)) mode = declaredMode as PublishMode;
    if (tool.length >= 3 && SHELLS.has(tool[0]!) && tool[1] === '-c') tool = [tool[0]!, '-c', rewritePaths(tool[2]!, mountList), ...tool.slice(3)];
    let command = tool.map((arg) => rewritePaths(arg, mountList));
    if (command[0] === 'tunepipe' && options.selfCommand) command = [...options.selfCommand, ...command.slice(1)];
    const env: Record<string, string> = {};
    for (const e of container.env ?? []) {
      if (e.value !== undefined) {
        if (!inScratch(e.value)) env[e.name] = rewritePaths(e.value, mountList);
      } else if (e.valueFrom?.secretKeyRef) {
        const fromEnv = options.env[e.name];
        if (fromEnv !== undefined) env[e.name] = fromEnv;
        else if (!secretEnv.some((s) => s.name === e.name)) {
          secretEnv.push({ name: e.name, secret: e.valueFrom.secretKeyRef.name ?? '', key: e.valueFrom.secretKeyRef.key });
        }
      }
    }
    env['TUNEPIPE_STAGE'] ??= stage.name;
    env['TUNEPIPE_HASH'] ??= stage.hash;
    return { container: container.name, command, env };
  });

  const outDir = stage.artifactPath ? mapPath(stage.artifactPath) : join(artifactsDir, stage.name);
  const markerPath = stage.completionMarker ? mapPath(stage.completionMarker) : join(outDir, COMPLETION_MARKER);
  const main = steps.at(-1)?.command ?? [];
  const portAt = main.indexOf('--port');
  const portArg = portAt >= 0 ? Number(main[portAt + 1]) : Number(main.find((a) => a.startsWith('--port='))?.slice(7));
  const containerPort = spec?.containers[0]?.ports?.[0]?.containerPort;
  const port = Number.isFinite(portArg) && portArg > 0 ? portArg : (containerPort ?? (stage.kind === 'serve' ? 8000 : undefined));

  return {
    stage,
    steps,
    mode,
    outDir,
    workDir: mode === 'rename' ? `${outDir}.partial` : outDir,
    markerPath,
    runDir,
    logFile: join(runDir, 'stage.log'),
    files,
    secretEnv,
    ...(port !== undefined ? { port } : {}),
    mounts: mountList,
    mapPath,
  };
}

function fileContent(cm: ConfigMap | undefined, key: string): { text?: string; binary?: string } {
  const text = cm?.data?.[key];
  if (text !== undefined) return { text };
  const binary = cm?.binaryData?.[key];
  return binary !== undefined ? { binary } : {};
}
