// Every shell text tunepipe writes, run by /bin/sh with hostile values wherever a user's input can
// reach it: paths, URLs, names and arguments holding `$(…)`, backticks, quotes, spaces, newlines,
// `;`, globs and Unicode. Each planted command would create a canary file; none may. The values
// must also arrive intact: a word that reaches a program must reach it as the one word it was.
//
// Targets: the stage wrapper (core/src/stage-script.ts), the fetch-inputs init container's script
// (core/src/delivery.ts), the wait-for-markers init container and the runner's marker check
// (core/src/pods.ts), and the local runner, which maps pod paths into those scripts
// (runner/src/local/plan.ts).
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import fc from 'fast-check';
import { compile, COMPLETION_MARKER, datasetDelivery, definePipeline, STAGE_ENV, stageScript, type CompileContext, type DatasetSourceInput } from '@tunepipe/core';
// Not exported by their packages: the wait container and the local plan.
import { markerCheckJob, waitForMarkers } from '../../packages/core/src/pods.ts';
import { planLocalStage } from '../../packages/runner/src/local/plan.ts';

/**
 * Shell syntax a planted command hides in. The command, `cd; touch canary`, creates the canary in
 * $HOME (the sandbox) without a `/`, so it survives inside a path segment too.
 */
const PLANTED = [
  '$(cd;touch canary)',
  '`cd;touch canary`',
  "'; cd;touch canary; '",
  '"; cd;touch canary; "',
  '\ncd;touch canary\n',
  '; cd;touch canary',
  '&& cd;touch canary',
  '| cd;touch canary',
  '${IFS}$(cd;touch${IFS}canary)',
  '"$(cd;touch canary)"',
  "'$(cd;touch canary)'",
  '\\$(cd;touch canary)',
  '\\`cd;touch canary`',
  ') ; cd;touch canary ; (',
  '$((1))$(cd;touch canary)',
] as const;
const pieces = fc.constantFrom(' ', '\t', '\n', ';', '&', '|', '>', '<', '*', '?', '[a]', '~', '#', '\\', "'", '"', '$', '$HOME', '${IFS}', '!', '{a,b}', '-rf', '--', '=', 'é', '😀', '名前', 'a', 'data', '.jsonl');

/** A hostile value: fragments of shell syntax and plain text, one planted command at least. */
export const hostile = fc
  .tuple(fc.array(pieces, { maxLength: 4 }), fc.constantFrom(...PLANTED), fc.array(pieces, { maxLength: 4 }))
  .map(([before, planted, after]) => [...before, planted, ...after].join(''));

/** A hostile path segment: no `/`, not `.`/`..`, no line break (SHA256SUMS cannot list such a name), at most 120 bytes. */
const segment = (value: string) => {
  const s = value.replace(/\//g, '_').replace(/\n/g, '_');
  return s === '' || s === '.' || s === '..' ? '_' : Buffer.from(s).subarray(0, 120).toString('utf8').replace(/\uFFFD/g, '_');
};

export interface ShellFuzzStats {
  runs: number;
  /** Shell processes started. */
  shells: number;
  wrapper: number;
  fetchScripts: number;
  waitScripts: number;
  markerChecks: number;
  localSteps: number;
  /** Planted commands that ran (canary files found). */
  injections: number;
  /** Values that reached a program changed (split, expanded, lost). */
  mangled: number;
}

interface Sandbox {
  readonly root: string;
  readonly canary: string;
  readonly bin: string;
  readonly records: string;
}

function sandbox(root: string): Sandbox {
  const bin = join(root, 'bin');
  mkdirSync(bin, { recursive: true });
  // Records its argv, one NUL-terminated word each, in the next free numbered file.
  const recorder = '#!/bin/sh\nn=0\nwhile [ -e "$RECORDS/$n" ]; do n=$((n+1)); done\nfor a in "$@"; do printf \'%s\\0\' "$a"; done > "$RECORDS/$n"\n';
  writeFileSync(join(bin, 'tunepipe-fetch-file'), recorder);
  // The wrapped tool: records its argv and writes a file with a hostile name into the work folder.
  writeFileSync(join(bin, 'tool'), `${recorder}if [ -n "\${TP_WORK:-}" ]; then : > "$TP_WORK/$TP_NAME"; fi\n`);
  // `sleep` in the wait loop: one round is enough, so end the loop's shell.
  writeFileSync(join(bin, 'sleep'), '#!/bin/sh\nkill -TERM "$PPID"\n');
  for (const f of ['tunepipe-fetch-file', 'tool', 'sleep']) chmodSync(join(bin, f), 0o755);
  return { root, canary: join(root, 'canary'), bin, records: join(root, 'records') };
}

const plant = (value: string) => value.replace(/\0/g, '');

function run(box: Sandbox, stats: ShellFuzzStats, argv: readonly string[], env: Record<string, string> = {}, timeout = 10_000): SpawnSyncReturns<string> {
  rmSync(box.records, { recursive: true, force: true });
  mkdirSync(box.records, { recursive: true });
  stats.shells++;
  const result = spawnSync(argv[0]!, argv.slice(1), {
    cwd: box.root,
    encoding: 'utf8',
    timeout,
    env: { PATH: `${box.bin}:/usr/bin:/bin`, HOME: box.root, LC_ALL: 'C.UTF-8', RECORDS: box.records, ...env },
  });
  if (result.error) throw result.error;
  if (existsSync(box.canary)) {
    stats.injections++;
    throw new Error(`a planted command ran: ${JSON.stringify(argv).slice(0, 2000)}\n${result.stderr}`);
  }
  return result;
}

/** What the recorder programs received, one argv per call, in call order. */
function recorded(box: Sandbox): string[][] {
  const files = readdirSync(box.records).map(Number).sort((a, b) => a - b);
  return files.map((n) => {
    const text = readFileSync(join(box.records, String(n)), 'utf8');
    return text === '' ? [] : text.slice(0, -1).split('\0');
  });
}

function expectSame(stats: ShellFuzzStats, what: string, actual: unknown, expected: unknown): void {
  if (JSON.stringify(actual) !== JSON.stringify(expected)) {
    stats.mangled++;
    throw new Error(`${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
  }
}

/** The stage wrapper around a tool, in both publish modes, with hostile folder, argv, names and environment. */
function fuzzWrapper(box: Sandbox, stats: ShellFuzzStats, values: readonly string[], mode: 'rename' | 'in-place', step: 'all' | 'run' | 'publish', force: boolean): void {
  stats.wrapper++;
  const wrapper = join(box.root, 'stage.sh');
  writeFileSync(wrapper, stageScript());
  const out = join(box.root, 'artifacts', segment(values[0]!), segment(values[1]!));
  rmSync(join(box.root, 'artifacts'), { recursive: true, force: true });
  const work = mode === 'rename' ? `${out}.partial` : out;
  if (mode === 'in-place') {
    // Checkpoints for the repair script: a broken one, and one whose name is shell syntax.
    mkdirSync(join(out, 'checkpoint-3'), { recursive: true });
    mkdirSync(join(out, `checkpoint-${segment(values[2]!)}`), { recursive: true });
  }
  if (step === 'publish') mkdirSync(work, { recursive: true });
  if (force) {
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, COMPLETION_MARKER), '{}');
  }
  const args = values.slice(3);
  const name = segment(values[2]!);
  const result = run(box, stats, ['/bin/sh', wrapper, mode, out, '--', 'tool', ...args], {
    [STAGE_ENV.stage]: values[0]!,
    [STAGE_ENV.hash]: values[1]!,
    [STAGE_ENV.step]: step,
    [STAGE_ENV.force]: force ? '1' : '0',
    TP_WORK: work,
    TP_NAME: name,
  });
  if (result.status !== 0) throw new Error(`the wrapper failed (${result.status}): ${result.stderr}`);
  expectSame(stats, 'the tool argv', recorded(box), [args]);
  if (step !== 'run') {
    if (!existsSync(join(out, COMPLETION_MARKER))) throw new Error(`no marker in ${out}`);
    if (step === 'all') {
      const sums = readFileSync(join(out, 'SHA256SUMS'), 'utf8');
      if (!sums.includes(`  ${name}\n`)) throw new Error(`SHA256SUMS does not list ${JSON.stringify(name)}: ${sums}`);
    }
  }
}

function remoteSource(name: string, files: readonly { path: string; url: string }[]): DatasetSourceInput {
  return {
    name,
    digest: 'd'.repeat(64),
    descriptor: { format: 'alpaca', license: 'MIT', files: files.map((f) => ({ path: f.path, url: f.url, sha256: 'e'.repeat(64) })) },
    files: files.map((f) => ({ path: f.path, url: f.url, sha256: 'e'.repeat(64), size: 10_000_000 })),
  };
}

/** The fetch-inputs script with hostile source names, file paths and URLs: each download gets exactly its words. */
function fuzzFetchScript(box: Sandbox, stats: ShellFuzzStats, values: readonly string[]): void {
  stats.fetchScripts++;
  const sources = [values[0]!, values[1]!];
  const datasets = Object.fromEntries(sources.map((s, i) => [s, remoteSource(s, [{ path: values[2 + i]!, url: values[3 - i]! }, { path: `plain-${i}.jsonl`, url: values[4]! }])]));
  const delivery = datasetDelivery({ pipeline: 'p', sources, datasets, namespace: 'ns', labels: {}, fetchImage: 'fetch', hubToken: undefined });
  const container = delivery.fetch!;
  const result = run(box, stats, [...container.command!, ...container.args!]);
  if (result.status !== 0) throw new Error(`the fetch script failed (${result.status}): ${result.stderr}`);
  const expected = sources.flatMap((s) => datasets[s]!.files.map((f) => ['--url', f.url!, '--sha256', f.sha256, '--dest', `/inputs/.remote/${s}/${f.path}`]));
  expectSame(stats, 'the downloads', recorded(box), expected);
}

/** The init container that waits for markers, and the runner's marker check, with hostile marker paths. */
function fuzzMarkerScripts(box: Sandbox, stats: ShellFuzzStats, values: readonly string[]): void {
  const markers = values.slice(0, 3).map((v, i) => join(box.root, 'markers', String(i), segment(v), COMPLETION_MARKER));
  rmSync(join(box.root, 'markers'), { recursive: true, force: true });
  for (const m of markers.slice(0, 2)) {
    mkdirSync(dirname(m), { recursive: true });
    writeFileSync(m, '{}');
  }
  // The check prints what exists, each path as given.
  stats.markerChecks++;
  const check = markerCheckJob({ pipeline: 'p', namespace: 'ns', artifactsClaim: 'c', runtimeImage: 'i' }, markers, { timeoutSeconds: 60 });
  const command = check.spec!.template.spec!.containers[0]!.command!;
  const present = run(box, stats, command);
  expectSame(stats, 'the marker check', present.stdout, markers.slice(0, 2).map((m) => `present ${m}\n`).join(''));

  // Waiting: done at once when every marker is there; one round of waiting (its message) when one is not.
  stats.waitScripts++;
  const ready = waitForMarkers('wait-for-inputs', markers.slice(0, 2), 'i');
  const done = run(box, stats, [...ready.command!, ...ready.args!], {}, 5_000);
  if (done.status !== 0 || done.stdout !== '') throw new Error(`waiting for present markers did not end at once (${done.status}, ${done.signal}): ${done.stdout}${done.stderr}`);
  const waiting = waitForMarkers('wait-for-inputs', markers, 'i');
  const once = run(box, stats, [...waiting.command!, ...waiting.args!], {}, 5_000);
  // (A log line, printed by echo: dash reads backslashes in it as escapes, so those paths are not compared.)
  if (!markers.some((m) => m.includes('\\'))) expectSame(stats, 'the waiting message', once.stdout, `waiting for: ${markers.join(' ')}\n`);
}

/** A compiled convert stage with a remote file, run by the local runner's plan under a hostile artifacts folder. */
function fuzzLocalFetch(box: Sandbox, stats: ShellFuzzStats, values: readonly string[]): void {
  stats.localSteps++;
  // A URL as dataset.yaml accepts it (no whitespace), the file path as it does (plain characters).
  const url = `https://example.org/${values[1]!.replace(/\s/g, '')}`;
  const context: CompileContext = { datasets: { remote: remoteSource('remote', [{ path: 'train.jsonl', url }]) } };
  const pipeline = definePipeline({ name: 'shellfuzz' }, (p) => {
    p.convert({ sources: ['remote'], cutoffLen: 1024 });
  });
  const stage = compile(pipeline, context).stages.find((s) => s.kind === 'convert')!;
  const artifactsDir = join(box.root, 'local', segment(values[0]!), segment(values[2]!));
  const plan = planLocalStage(stage, { artifactsDir, env: {} });
  const step = plan.steps.find((s) => s.container === 'fetch-inputs');
  if (!step) throw new Error('the convert stage has no fetch step');
  // As the local runner starts it: argv, no shell of its own.
  const result = run(box, stats, step.command, step.env);
  if (result.status !== 0) throw new Error(`the local fetch step failed (${result.status}): ${result.stderr}`);
  expectSame(stats, 'the local download', recorded(box), [['--url', url, '--sha256', 'e'.repeat(64), '--dest', plan.mapPath('/inputs/.remote/remote/train.jsonl')]]);
}

/** Runs the shell fuzzer; throws (with fast-check's counterexample) on the first planted command that runs or value that is mangled. */
export function fuzzShell(root: string, runs: number, seed?: number): ShellFuzzStats {
  const box = sandbox(root);
  const stats: ShellFuzzStats = { runs: 0, shells: 0, wrapper: 0, fetchScripts: 0, waitScripts: 0, markerChecks: 0, localSteps: 0, injections: 0, mangled: 0 };
  fc.assert(
    fc.property(
      fc.array(hostile, { minLength: 6, maxLength: 6 }),
      fc.constantFrom('rename' as const, 'in-place' as const),
      fc.constantFrom('all' as const, 'run' as const, 'publish' as const),
      fc.boolean(),
      (raw, mode, step, force) => {
        stats.runs++;
        const values = raw.map(plant);
        fuzzWrapper(box, stats, values, mode, step, force);
        fuzzFetchScript(box, stats, values);
        fuzzMarkerScripts(box, stats, values);
        fuzzLocalFetch(box, stats, values);
      },
    ),
    { numRuns: runs, includeErrorInReport: true, ...(seed !== undefined ? { seed } : {}) },
  );
  return stats;
}
