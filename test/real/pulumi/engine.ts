// The real Pulumi engine (scripts/real/pulumi.mjs built it) driven through the Automation API.
//
// Programs run INLINE: @pulumi/pulumi serves the language runtime inside this test process and the
// CLI connects to it (`pulumi up --client=…`, the engine's "client" runtime). That is why no
// `pulumi-language-nodejs` binary is needed (the Go module proxy does not serve it). Everything
// else is the real thing: the CLI's engine (diff, replace, dependsOn, state), the local file
// backend with passphrase-encrypted secrets, and the real Kubernetes provider, found on PATH as an
// ambient plugin. Nothing is downloaded at run time (PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION).
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { automation } from '@pulumi/pulumi';
import { tools } from '../support/tools.ts';

const { LocalWorkspace, PulumiCommand } = automation;
type ConfigMap = automation.ConfigMap;
type EngineEvent = automation.EngineEvent;
type PulumiFn = automation.PulumiFn;
type Stack = automation.Stack;
type PulumiCommand = automation.PulumiCommand;

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

export interface PulumiTools {
  readonly pulumi: string;
  readonly kubernetesProvider: string;
  readonly bin: string;
  readonly pulumiVersion: string;
  readonly kubernetesProviderVersion: string;
  readonly env: Record<string, string>;
}

/** A passphrase for the test stacks' secrets provider (a test value, not a credential). */
export const PASSPHRASE = 'tunepipe-real-tier-passphrase';

export function pulumiTools(): PulumiTools {
  const t = tools<PulumiTools>('pulumi');
  for (const path of [t.pulumi, t.kubernetesProvider]) {
    if (!existsSync(path)) throw new Error(`${path} (from tools.json) is missing: run \`node scripts/real/install.mjs pulumi\``);
  }
  return t;
}

/** One local file backend and PULUMI_HOME, shared by the stacks of one test file. */
export interface Backend {
  readonly dir: string;
  readonly url: string;
  readonly env: Record<string, string>;
  readonly command: PulumiCommand;
  /** The state file of a stack, as the DIY backend writes it. */
  stateFile(project: string, stack: string): string;
  dispose(): void;
}

export async function localBackend(): Promise<Backend> {
  const t = pulumiTools();
  const dir = mkdtempSync(join(tmpdir(), 'tunepipe-pulumi-'));
  const state = join(dir, 'state');
  const home = join(dir, 'home');
  mkdirSync(state);
  mkdirSync(home);
  const url = `file://${state}`;
  const env: Record<string, string> = {
    ...t.env,
    PATH: `${t.bin}:${process.env['PATH'] ?? ''}`,
    PULUMI_HOME: home,
    PULUMI_BACKEND_URL: url,
    PULUMI_CONFIG_PASSPHRASE: PASSPHRASE,
  };
  const command = await PulumiCommand.get({ root: dirname(dirname(t.pulumi)) });
  return {
    dir,
    url,
    env,
    command,
    stateFile: (project, stack) => join(state, '.pulumi', 'stacks', project, `${stack}.json`),
    dispose: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export async function inlineStack(backend: Backend, project: string, stackName: string, program: PulumiFn): Promise<Stack> {
  const workDir = join(backend.dir, 'work', project);
  mkdirSync(workDir, { recursive: true });
  return LocalWorkspace.createOrSelectStack(
    { projectName: project, stackName, program },
    {
      workDir,
      pulumiHome: backend.env['PULUMI_HOME']!,
      pulumiCommand: backend.command,
      envVars: backend.env,
      secretsProvider: 'passphrase',
      projectSettings: { name: project, runtime: 'nodejs', backend: { url: backend.url } },
    },
  );
}

/** Stack config as `pulumi config set` stores it: scalars as strings, structures as JSON text. */
export function configMap(project: string, values: Record<string, unknown>, secrets: Record<string, string> = {}): ConfigMap {
  const out: ConfigMap = {};
  for (const [k, v] of Object.entries(values)) out[`${project}:${k}`] = { value: typeof v === 'string' ? v : JSON.stringify(v) };
  for (const [k, v] of Object.entries(secrets)) out[`${project}:${k}`] = { value: v, secret: true };
  return out;
}

/** What one `pulumi up`/`destroy` did, from the engine's event stream. */
export interface Recorded {
  readonly events: EngineEvent[];
  /** `op` per URN, in the order steps started. */
  readonly steps: { urn: string; type: string; name: string; op: string; seq: number }[];
  /** Sequence number at which each URN's step finished (its outputs were recorded). */
  readonly finished: Map<string, number>;
  readonly output: string[];
}

export function recorder(): { onEvent: (e: EngineEvent) => void; onOutput: (s: string) => void; recorded: Recorded } {
  const recorded: Recorded = { events: [], steps: [], finished: new Map(), output: [] };
  let seq = 0;
  return {
    recorded,
    onOutput: (s) => recorded.output.push(s),
    onEvent: (e) => {
      recorded.events.push(e);
      seq++;
      const pre = e.resourcePreEvent?.metadata;
      if (pre && pre.op !== 'same') {
        recorded.steps.push({ urn: pre.urn, type: pre.type, name: pre.urn.split('::').at(-1)!, op: pre.op, seq });
      }
      const out = e.resOutputsEvent?.metadata;
      if (out) recorded.finished.set(out.urn, seq);
    },
  };
}

/** Resources (by `type::name`) that a recorded operation created, deleted, updated or replaced. */
export function changed(recorded: Recorded, typePrefix = 'kubernetes:'): Record<string, string[]> {
  const by: Record<string, string[]> = {};
  for (const s of recorded.steps) {
    if (!s.type.startsWith(typePrefix)) continue;
    (by[s.op] ??= []).push(`${s.type.split(':').at(-1)}/${s.name}`);
  }
  for (const list of Object.values(by)) list.sort();
  return by;
}

/**
 * A copy of the repository's pipelines and datasets (what `tunepipe synth` reads) in a fresh folder,
 * with node_modules linked, optionally edited. A separate folder per revision: pipeline files are ES
 * modules, and a module imported once keeps its first version for the rest of the process.
 */
export function repoCopy(name: string, edits: Record<string, (text: string) => string> = {}, parent = tmpdir()): string {
  const dir = mkdtempSync(join(parent, `tunepipe-repo-${name}-`));
  for (const file of ['package.json', 'tunepipe.json']) cpSync(join(repoRoot, file), join(dir, file));
  cpSync(join(repoRoot, 'datasets'), join(dir, 'datasets'), { recursive: true });
  for (const pipeline of readdirSync(join(repoRoot, 'pipelines'))) {
    const from = join(repoRoot, 'pipelines', pipeline);
    if (!existsSync(join(from, 'pipeline.ts'))) continue;
    mkdirSync(join(dir, 'pipelines', pipeline), { recursive: true });
    for (const file of ['pipeline.ts', 'package.json']) cpSync(join(from, file), join(dir, 'pipelines', pipeline, file));
  }
  symlinkSync(join(repoRoot, 'node_modules'), join(dir, 'node_modules'));
  applyEdits(dir, edits);
  return dir;
}

/** `edits`: repo-relative path → text transformation; each must change its file. */
export function applyEdits(dir: string, edits: Record<string, (text: string) => string>): void {
  for (const [path, edit] of Object.entries(edits)) {
    const file = join(dir, path);
    const before = readFileSync(file, 'utf8');
    const after = edit(before);
    if (after === before) throw new Error(`the edit of ${path} changed nothing`);
    writeFileSync(file, after);
  }
}

/** Every plaintext occurrence of `needles` in a file (reported by needle name, never by value). */
export function plaintextIn(file: string, needles: Record<string, string>): string[] {
  const text = readFileSync(file, 'utf8');
  return Object.entries(needles)
    .filter(([, value]) => text.includes(value))
    .map(([name]) => name);
}

/**
 * Runs an operation whose inline program is expected to fail, and returns the engine's error.
 *
 * An inline program's uncaught errors reach the process as `unhandledRejection` events, exactly as
 * under the Node.js language host; the Automation API's language server records them and fails the
 * update with their text. node:test listens for the same events and would blame the test file, also
 * for stragglers that settle just after the update returned. So node:test's listeners are set aside
 * for the duration (plus a moment), and the program's errors are returned for the test to check.
 */
export async function expectProgramFailure(operation: () => Promise<unknown>): Promise<{ error: Error; programErrors: unknown[] }> {
  const saved = process.listeners('unhandledRejection');
  const programErrors: unknown[] = [];
  const record = (reason: unknown) => programErrors.push(reason);
  process.removeAllListeners('unhandledRejection');
  process.on('unhandledRejection', record);
  try {
    const error = await operation().then(
      () => {
        throw new Error('the operation was expected to fail, but it succeeded');
      },
      (e: unknown) => (e instanceof Error ? e : new Error(String(e))),
    );
    if (error.message === 'the operation was expected to fail, but it succeeded') throw error;
    await new Promise((resolve) => setTimeout(resolve, 500));
    return { error, programErrors };
  } finally {
    process.off('unhandledRejection', record);
    for (const listener of saved) process.on('unhandledRejection', listener);
  }
}
