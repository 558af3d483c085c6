import { join } from 'node:path';
import type { CompiledStage } from '@tunepipe/core/compiled';
import { ARTIFACTS_MOUNT, COMPLETION_MARKER, workDirOf, type PublishMode, type WrapperStep } from '@tunepipe/core';
import { quotingAfter, shellQuoteIn, type ShellQuoting } from '@tunepipe/core/shell';
import { parseDocument, visit } from 'yaml';

export type { PublishMode };

/** A folder the pod sees, and where it is on this machine. */
export interface Mount {
  readonly podPath: string;
  readonly localPath: string;
}

/** One process of a stage, with pod paths mapped to local ones. */
export interface LocalStep {
  readonly container: string;
  /** The tool's command line (what the stage wrapper runs after its `--`). */
  readonly command: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  /** The part of the stage wrapper the pod runs around it; none for the input download and serve. */
  readonly wrapper?: WrapperStep;
}

/** A file of the stage's pod (config, wrapper, delivered dataset file), written locally. */
export interface LocalFile {
  readonly podPath: string;
  readonly path: string;
  readonly content: string | Buffer;
}

/** A compiled stage's run description, mapped onto this machine. */
export interface LocalStagePlan {
  readonly stage: CompiledStage;
  /** In the order the pod runs them: input download, the tool, the gate. */
  readonly steps: readonly LocalStep[];
  /** How the artifact folder is published; `in-place` for serve, which publishes nothing. */
  readonly mode: PublishMode;
  /** Local artifact folder (the pod's `artifactPath`). */
  readonly outDir: string;
  /** Where the tool writes: `outDir` in place, or `<outDir>.partial` renamed on success. */
  readonly workDir: string;
  readonly markerPath: string;
  /** Per-run folder: the pod's files and scratch (under `root/`, mirroring pod paths) and the log. */
  readonly runDir: string;
  readonly logFile: string;
  readonly files: readonly LocalFile[];
  /** Local folders standing in for the pod's scratch (emptyDir) volumes. */
  readonly scratch: readonly string[];
  /** Env vars the pod gets from Secrets and the local environment does not have. */
  readonly secretEnv: readonly { readonly name: string; readonly secret: string; readonly key: string }[];
  /** serve: the port the server listens on. */
  readonly port?: number;
  readonly mounts: readonly Mount[];
  /** Maps a pod path (`/artifacts/...`, `/config/...`) to the local one. */
  readonly mapPath: (podPath: string) => string;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Rewrites every occurrence of a mounted pod path inside `text` (whole path segments only, the
 * longest mount first). One pass: a local path is never rewritten again, even when it lies under
 * another mount's pod path (an artifacts folder under `/tmp` while `/tmp` is pod scratch).
 */
export function rewritePaths(text: string, mounts: readonly Mount[]): string {
  if (mounts.length === 0) return text;
  const { pattern, local } = mountPattern(mounts);
  return text.replace(pattern, (_all, lead: string, podPath: string) => `${lead}${local.get(podPath)}`);
}

/** Pod paths as whole path segments (the longest mount first), each with its local folder. */
function mountPattern(mounts: readonly Mount[]): { pattern: RegExp; local: Map<string, string> } {
  const sorted = [...mounts].sort((a, b) => b.podPath.length - a.podPath.length);
  const local = new Map(sorted.map((m) => [m.podPath, m.localPath]));
  const pattern = new RegExp(`(^|[\\s=:,'"\\[(])(${sorted.map((m) => escapeRegExp(m.podPath)).join('|')})(?=/|$|[\\s,'"\\])])`, 'g');
  return { pattern, local };
}

/**
 * rewritePaths for the text of a shell script (`sh -c <script>`, such as the pod's input download):
 * each local path is quoted for the place it lands in, so a folder named with spaces, quotes,
 * `$(…)` or backticks stays one literal word instead of becoming shell syntax.
 */
export function rewriteShellScript(script: string, mounts: readonly Mount[]): string {
  if (mounts.length === 0) return script;
  const { pattern, local } = mountPattern(mounts);
  let out = '';
  let last = 0;
  let quoting: ShellQuoting = 'none';
  for (const m of script.matchAll(pattern)) {
    const at = m.index + m[1]!.length;
    const before = script.slice(last, at);
    quoting = quotingAfter(before, quoting);
    out += before + shellQuoteIn(local.get(m[2]!)!, quoting);
    last = at + m[2]!.length;
  }
  return out + script.slice(last);
}

/** A step that hands its third argument to a shell as a script. */
const SHELLS = new Set(['sh', 'bash', '/bin/sh', '/bin/bash']);
const isShellScript = (argv: readonly string[]) => argv.length >= 3 && SHELLS.has(argv[0]!) && argv[1] === '-c';

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

function rewriteFile(path: string, text: string, mounts: readonly Mount[]): string {
  if (/\.ya?ml$/i.test(path)) return rewriteYaml(text, mounts);
  if (/\.json$/i.test(path)) {
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

/** `/config/train.yaml` → `/config`: the folder a file's pod path is mapped by. */
function topFolder(podPath: string): string {
  const [first] = podPath.split('/').filter(Boolean);
  return first === undefined ? podPath : `/${first}`;
}

const under = (path: string, folder: string) => path === folder || path.startsWith(`${folder}/`);

/**
 * Maps a stage's run description (`stage.run`) onto this machine: `/artifacts` becomes
 * `artifactsDir`; every other pod path (the pod's files, its scratch) lives under the stage's run
 * folder at the same path, so `/config/train.yaml` becomes `<runDir>/root/config/train.yaml`; YAML
 * and JSON file contents are rewritten to those local paths. Environment values that point into
 * pod scratch (HOME=/tmp) are left out: locally the user's own apply. Secret-backed variables come
 * from the local environment, or are listed in `secretEnv`.
 */
export function planLocalStage(stage: CompiledStage, options: PlanOptions): LocalStagePlan {
  const { run } = stage;
  const artifactsDir = options.artifactsDir;
  const runDir = join(artifactsDir, '.tunepipe-runs', stage.resourceName);
  const root = join(runDir, 'root');
  const local = (podPath: string) => join(root, podPath);

  const folders = new Set([...run.files.map((f) => topFolder(f.path)), ...run.scratch]);
  folders.delete(ARTIFACTS_MOUNT);
  const mounts: Mount[] = [{ podPath: ARTIFACTS_MOUNT, localPath: artifactsDir }, ...[...folders].map((podPath) => ({ podPath, localPath: local(podPath) }))];
  const mapPath = (podPath: string) => rewritePaths(podPath, mounts);

  const files = run.files.map(
    (f): LocalFile => ({
      podPath: f.path,
      path: local(f.path),
      content: f.base64 !== undefined ? Buffer.from(f.base64, 'base64') : rewriteFile(f.path, f.text ?? '', mounts),
    }),
  );

  const secretEnv: { name: string; secret: string; key: string }[] = [];
  const steps = run.steps.map((step): LocalStep => {
    const script = isShellScript(step.argv);
    let command = step.argv.map((arg, i) => (script && i === 2 ? rewriteShellScript(arg, mounts) : rewritePaths(arg, mounts)));
    if (command[0] === 'tunepipe' && options.selfCommand) command = [...options.selfCommand, ...command.slice(1)];
    const env: Record<string, string> = {};
    for (const e of step.env) {
      if (e.value !== undefined) {
        if (!run.scratch.some((s) => under(e.value!, s))) env[e.name] = rewritePaths(e.value, mounts);
      } else if (e.valueFrom?.secretKeyRef) {
        const fromEnv = options.env[e.name];
        if (fromEnv !== undefined) env[e.name] = fromEnv;
        else if (!secretEnv.some((s) => s.name === e.name)) {
          secretEnv.push({ name: e.name, secret: e.valueFrom.secretKeyRef.name ?? '', key: e.valueFrom.secretKeyRef.key });
        }
      }
    }
    return { container: step.container, command, env, ...(step.wrapper ? { wrapper: step.wrapper } : {}) };
  });

  const outDir = stage.artifactPath ? mapPath(stage.artifactPath) : join(artifactsDir, stage.name);
  const markerPath = stage.completionMarker ? mapPath(stage.completionMarker) : join(outDir, COMPLETION_MARKER);
  const mode = run.mode ?? 'in-place';
  return {
    stage,
    steps,
    mode,
    outDir,
    workDir: mode === 'rename' ? workDirOf(outDir) : outDir,
    markerPath,
    runDir,
    logFile: join(runDir, 'stage.log'),
    files,
    scratch: run.scratch.map(local),
    secretEnv,
    ...(run.port !== undefined ? { port: run.port } : {}),
    mounts,
    mapPath,
  };
}
