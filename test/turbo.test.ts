// turbo replays a task's logs and outputs when the hash of its declared inputs is unchanged, so an
// input left out of turbo.json means stale output (tunepipe.json once was, and synth replayed
// manifests for the old namespace). Each class of input is changed in a copy of the repository and
// every task that reads it must hash differently; `turbo run --dry=json` hashes without running.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { appendFileSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const turbo = join(root, 'node_modules', '.bin', 'turbo');
const TASKS = ['synth', 'plan', 'build', 'typecheck', 'typecheck:repo'];

let copy = '';
let baseline = new Map<string, string>();
let baselineTasks = new Map<string, DryTask>();

/** The files of a clone (tracked, and new ones not ignored), without node_modules or .git. */
function copyRepo(): string {
  const dir = mkdtempSync(join(tmpdir(), 'tunepipe-turbo-'));
  const listed = spawnSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: root, encoding: 'utf8' });
  assert.equal(listed.status, 0, listed.stderr);
  for (const file of listed.stdout.split('\0').filter(Boolean)) {
    mkdirSync(dirname(join(dir, file)), { recursive: true });
    try {
      copyFileSync(join(root, file), join(dir, file));
    } catch (error) {
      // Deleted in the work tree but still in the index.
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
  }
  return dir;
}

interface DryTask {
  readonly taskId: string;
  readonly hash: string;
  readonly command: string;
  /** Input files, relative to the task's package. */
  readonly inputs: Record<string, string>;
  readonly directory: string;
}

/** The tasks a package has a script for, by id. */
function dryRun(): Map<string, DryTask> {
  const r = spawnSync(turbo, ['run', ...TASKS, '--dry=json', '--skip-infer'], {
    cwd: copy,
    encoding: 'utf8',
    // The dry run's JSON grows with every pipeline (1.3 MB with five); spawnSync's default buffer is 1 MB.
    maxBuffer: 64 * 1024 * 1024,
    env: { ...process.env, TURBO_TELEMETRY_DISABLED: '1', TURBO_NO_UPDATE_NOTIFIER: '1' },
  });
  assert.equal(r.status, 0, r.stderr);
  const dry = JSON.parse(r.stdout) as { tasks: DryTask[] };
  return new Map(dry.tasks.filter((t) => t.command !== '<NONEXISTENT>').map((t) => [t.taskId, t]));
}

function taskHashes(): Map<string, string> {
  return new Map([...dryRun()].map(([id, t]) => [id, t.hash]));
}

/** Changes a file in the copy, hashes, and puts the file back. */
function hashesWith(file: string, change: (path: string) => void): Map<string, string> {
  const path = join(copy, file);
  const original = readFileSync(path);
  change(path);
  try {
    return taskHashes();
  } finally {
    writeFileSync(path, original);
  }
}

const appendLine = (line: string) => (path: string) => appendFileSync(path, `\n${line}\n`);

function tasksOf(hashes: Map<string, string>, pattern: RegExp): string[] {
  return [...hashes.keys()].filter((id) => pattern.test(id)).sort();
}

function assertMisses(changed: Map<string, string>, expected: readonly string[], what: string) {
  assert.ok(expected.length > 0, `no task expected to read ${what}`);
  const hits = expected.filter((id) => changed.get(id) === baseline.get(id));
  assert.deepEqual(hits, [], `a change to ${what} leaves these tasks replaying stale results`);
}

const PIPELINE_TASKS = /^@tunepipe\/pipeline-[^#]+#(synth|plan)$/;

before(() => {
  copy = copyRepo();
  baselineTasks = dryRun();
  baseline = new Map([...baselineTasks].map(([id, t]) => [id, t.hash]));
});

after(() => {
  if (copy) rmSync(copy, { recursive: true, force: true });
});

test('the tasks exist: synth and plan for each pipeline, build of the CLI, typecheck, typecheck:repo', () => {
  const pipelines = readdirSync(join(copy, 'pipelines')).sort();
  assert.deepEqual(tasksOf(baseline, PIPELINE_TASKS), pipelines.flatMap((p) => [`@tunepipe/pipeline-${p}#plan`, `@tunepipe/pipeline-${p}#synth`]));
  assert.ok(baseline.has('@tunepipe/cli#build'));
  assert.ok(baseline.has('//#typecheck:repo'));
  assert.ok(tasksOf(baseline, /#typecheck$/).length >= pipelines.length);
});

test('a README change is no input of synth, plan or typecheck (so a miss below means something)', () => {
  const changed = hashesWith('README.md', appendLine('changed'));
  assert.deepEqual(
    [...baseline.keys()].filter((id) => changed.get(id) !== baseline.get(id)),
    [],
  );
});

test("pipeline.ts: its pipeline's synth, plan and typecheck miss, the other pipeline's synth does not", () => {
  const changed = hashesWith('pipelines/llama3-fintech/pipeline.ts', appendLine('// changed'));
  assertMisses(changed, ['@tunepipe/pipeline-llama3-fintech#synth', '@tunepipe/pipeline-llama3-fintech#plan', '@tunepipe/pipeline-llama3-fintech#typecheck', '//#typecheck:repo'], 'pipeline.ts');
  assert.equal(changed.get('@tunepipe/pipeline-qwen-support#synth'), baseline.get('@tunepipe/pipeline-qwen-support#synth'));
});

test('tunepipe.json: every synth and plan misses (the namespace is in every manifest)', () => {
  const changed = hashesWith('tunepipe.json', (path) => {
    const config = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
    writeFileSync(path, `${JSON.stringify({ ...config, namespace: 'elsewhere' }, null, 2)}\n`);
  });
  assertMisses(changed, tasksOf(baseline, PIPELINE_TASKS), 'tunepipe.json');
});

/** Files under `dir` of the copy, relative to the repository root. */
function filesUnder(dir: string): string[] {
  return readdirSync(join(copy, dir), { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => relative(copy, join(e.parentPath, e.name)))
    .sort();
}

/** Repository-relative input files of a task. */
function inputsOf(taskId: string): Set<string> {
  const task = baselineTasks.get(taskId)!;
  return new Set(Object.keys(task.inputs).map((f) => relative(copy, join(copy, task.directory, f))));
}

test('datasets/*: a changed descriptor makes every synth and plan miss; every dataset file is an input', () => {
  const descriptor = filesUnder('datasets').find((f) => f.endsWith('/dataset.yaml'))!;
  assertMisses(hashesWith(descriptor, appendLine('')), tasksOf(baseline, PIPELINE_TASKS), descriptor);
  for (const id of tasksOf(baseline, PIPELINE_TASKS)) {
    const inputs = inputsOf(id);
    assert.deepEqual(filesUnder('datasets').filter((f) => !inputs.has(f)), [], `${id} does not read these`);
  }
});

test('packages/*/src: a change to gitops (it renders the manifests) makes synth, plan, the CLI build and the type checks miss; every source is an input', () => {
  const changed = hashesWith('packages/gitops/src/index.ts', appendLine('// changed'));
  assertMisses(changed, [...tasksOf(baseline, PIPELINE_TASKS), '@tunepipe/cli#build', '@tunepipe/gitops#typecheck', '@tunepipe/cli#typecheck', '//#typecheck:repo'], 'packages/gitops/src');
  // The CLI bundles every package: each one's sources are inputs of what runs the CLI.
  const sources = readdirSync(join(copy, 'packages')).flatMap((pkg) => filesUnder(`packages/${pkg}/src`));
  for (const id of [...tasksOf(baseline, PIPELINE_TASKS), '@tunepipe/cli#build', '//#typecheck:repo']) {
    const inputs = inputsOf(id);
    assert.deepEqual(sources.filter((f) => !inputs.has(f)), [], `${id} does not read these`);
  }
});

test('the CLI launcher and bundle build: synth, plan and build miss', () => {
  for (const file of ['packages/cli/build.mjs', 'packages/cli/bin/tunepipe.mjs']) {
    assertMisses(hashesWith(file, appendLine('// changed')), [...tasksOf(baseline, PIPELINE_TASKS), '@tunepipe/cli#build'], file);
  }
});

test('the lockfile: every task misses (dependency versions shape output and types)', () => {
  const changed = hashesWith('package-lock.json', appendLine(''));
  assertMisses(changed, [...baseline.keys()], 'package-lock.json');
});

test('tsconfig.base.json: every type check misses', () => {
  const changed = hashesWith('tsconfig.base.json', appendLine(''));
  assertMisses(changed, tasksOf(baseline, /#typecheck(:repo)?$/), 'tsconfig.base.json');
});
