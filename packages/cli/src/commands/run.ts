import { existsSync, readFileSync } from 'node:fs';
import { lstat, mkdir, open, stat, symlink } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, Option } from 'commander';
import { convertCommand } from '@tunepipe/convert';
import {
  RunnerError,
  cancelRun,
  clusterStatus,
  createConsoleReporter,
  detachOnInterrupt,
  formatCancel,
  formatStatus,
  loadKubeConfig,
  localCheckpointNotes,
  localStatus,
  stageRunDir,
  STAGE_LOG_FILE,
  runLocally,
  runOnCluster,
  streamStageLogs,
  waitForServers,
  type RunConvertStage,
} from '@tunepipe/runner';
import { didYouMean, uploadFolder, type CompileContext, type CompiledPipeline } from '@tunepipe/core';
import { UserError } from '../errors.ts';
import { toJson, type StatusJson } from '../json.ts';
import { findRepoRoot, selectPipelines, synthPipeline, type ContextOverrides } from '@tunepipe/workspace';

interface Io {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
  readonly overrides: (flags: { namespace?: string; queue?: string }) => ContextOverrides;
}

interface KubeFlags {
  namespace?: string;
  queue?: string;
  kubeconfig?: string;
  context?: string;
}

/** How the local target starts this CLI for container commands it runs as processes (`tunepipe gate`). */
function selfCommand(): string[] {
  // This code runs from src/commands/ or bundled in dist/: the bin is found from either.
  const bin = import.meta.url.endsWith('.ts') ? '../../bin/tunepipe.mjs' : '../bin/tunepipe.mjs';
  return [process.execPath, fileURLToPath(new URL(bin, import.meta.url))];
}

function kubeConfigOf(flags: KubeFlags) {
  return loadKubeConfig({ ...(flags.kubeconfig ? { kubeconfig: flags.kubeconfig } : {}), ...(flags.context ? { context: flags.context } : {}) });
}

function list(value: string, previous: string[] = []): string[] {
  return [...previous, ...value.split(',').map((s) => s.trim()).filter(Boolean)];
}

/** Runner problems are the user's to fix (missing tools, unreachable cluster): exit 1, no stack. */
async function asUserErrors<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof RunnerError) throw new UserError(error.message);
    throw error;
  }
}

interface ConvertManifest {
  rows_in: number;
  rows_out: number;
  rows_quarantined: number;
  quarantine_reasons: Record<string, number>;
  calibration?: { source?: string; qualifying: number; written: number; nsamples: number; maxlen: number };
  sources: Record<string, { rows_in: number; rows_out: number; rows_quarantined: number; splits: Record<string, number>; csv_multiline_records?: number; csv_multiline_lines?: number }>;
}

/** What the converter did, from its manifest: the numbers a user checks before spending GPU hours. */
function convertSummary(compiled: CompiledPipeline, artifactsDir: string, root: string): string[] {
  const lines: string[] = [];
  for (const stage of compiled.stages.filter((s) => s.kind === 'convert' && s.artifactPath)) {
    const dir = join(artifactsDir, relative('/artifacts', stage.artifactPath!));
    const manifestPath = join(dir, 'manifest.json');
    if (!existsSync(manifestPath)) continue;
    const m = JSON.parse(readFileSync(manifestPath, 'utf8')) as ConvertManifest;
    const conserved = m.rows_in === m.rows_out + m.rows_quarantined;
    lines.push(`${stage.name}: rows_in ${m.rows_in} = rows_out ${m.rows_out} + rows_quarantined ${m.rows_quarantined} ${conserved ? '✓' : '✗ (rows lost: this is a tunepipe bug)'}`);
    for (const [name, source] of Object.entries(m.sources)) {
      const splits = Object.entries(source.splits).map(([split, n]) => `${split} ${n}`).join(', ');
      const multiline = source.csv_multiline_records ? `, ${source.csv_multiline_records} CSV records over ${source.csv_multiline_lines} lines` : '';
      lines.push(`  ${name}: ${source.rows_in} in, ${source.rows_out} out (${splits}), ${source.rows_quarantined} quarantined${multiline}`);
    }
    const reasons = Object.entries(m.quarantine_reasons).map(([r, n]) => `${r} ${n}`).join(', ');
    if (reasons) lines.push(`  quarantined: ${reasons} (see quarantine.jsonl)`);
    if (m.calibration) {
      const c = m.calibration;
      lines.push(`  calibration: ${c.written} text rows${c.source ? ` from ${c.source}` : ''}, ${c.qualifying} longer than ${c.maxlen} tokens (GPTQ draws ${c.nsamples})`);
    }
    lines.push(`  output: ${relative(root, dir)}/`);
    if (!conserved) process.exitCode = 2;
  }
  return lines;
}

/**
 * Local models reach a local run the way they reach a cluster, through their content-named upload
 * folder on the artifacts volume; here that folder is a link to the model folder itself (no copy),
 * and the fetch-model stage still verifies the digest before it copies the files.
 */
async function linkLocalModels(root: string, artifactsDir: string, context: CompileContext, log: (line: string) => void): Promise<void> {
  for (const model of Object.values(context.models ?? {})) {
    if (!model.found || !model.digest) continue;
    const link = join(artifactsDir, uploadFolder(model.digest));
    if (await lstat(link).catch(() => undefined)) continue;
    await mkdir(dirname(link), { recursive: true });
    await symlink(resolve(root, model.path), link, 'dir');
    log(`linked ${model.path} as ${relative(root, link)}`);
  }
}

export function registerRunCommands(program: Command, io: Io): void {
  const kube = (command: Command) =>
    command
      .option('-n, --namespace <ns>', 'namespace (default: tunepipe.json, else tunepipe)')
      .option('--kubeconfig <file>', 'kubeconfig (default: $KUBECONFIG, ~/.kube/config or in-cluster)')
      .option('--context <name>', 'kubeconfig context');

  kube(
    program
      .command('run')
      .description('run a pipeline stage by stage with live progress; finished stages are cached by their hash')
      .argument('<pipeline>', 'pipeline name')
      .addOption(new Option('--target <target>', 'where stages run').choices(['cluster', 'local']).default('cluster'))
      .option('--only <stages>', 'run only these stages (comma-separated); their inputs must be complete', list)
      .option('--force <stages>', 're-run these stages and everything after them (comma-separated)', list)
      .option('--queue <name>', 'Kueue LocalQueue for GPU Jobs')
      .option('--no-wait', 'cluster: when another run of this pipeline holds its run lock, stop at once instead of following its stages and taking over when it ends')
      .option('--artifacts <dir>', 'local target: folder standing in for the artifacts volume', '.tunepipe/artifacts'),
  ).action(async (name: string, flags: KubeFlags & { target: 'cluster' | 'local'; only?: string[]; force?: string[]; artifacts: string; wait: boolean }) => {
    const root = findRepoRoot();
    selectPipelines(root, [name]);
    const { compiled, context } = await synthPipeline(root, name, io.overrides(flags));
    const interrupt = detachOnInterrupt();
    const selection = { ...(flags.only ? { only: flags.only } : {}), ...(flags.force ? { force: flags.force } : {}) };
    try {
      if (flags.target === 'local') {
        await linkLocalModels(root, resolve(root, flags.artifacts), context, (line) => io.err(`${line}\n`));
        const convert: RunConvertStage = async (stage, paths) => {
          await convertCommand({ config: stage.config, workDir: paths.workDir, repoRoot: root, log: paths.log });
        };
        const result = await asUserErrors(() =>
          runLocally(compiled, { ...selection, artifactsDir: resolve(root, flags.artifacts), runConvertStage: convert, selfCommand: selfCommand(), reporter: createConsoleReporter({ command: 'tunepipe' }), signal: interrupt.signal }),
        );
        for (const line of convertSummary(compiled, resolve(root, flags.artifacts), root)) io.out(`${line}\n`);
        if (result.servers.length > 0) {
          io.out(`serving: ${result.servers.map((s) => `${s.stage} at ${s.url}`).join(', ')} (Ctrl-C stops)\n`);
          await waitForServers(result.servers, interrupt.signal);
        }
        if (process.exitCode !== 2) process.exitCode = result.outcome === 'succeeded' ? 0 : 1;
        return;
      }
      const result = await asUserErrors(async () =>
        runOnCluster(compiled, {
          ...selection,
          kubeConfig: await kubeConfigOf(flags),
          namespace: compiled.namespace,
          reporter: createConsoleReporter({ command: 'tunepipe' }),
          signal: interrupt.signal,
          lock: { whenHeld: flags.wait === false ? 'fail' : 'follow' },
        }),
      );
      process.exitCode = result.outcome === 'failed' ? 1 : 0;
    } finally {
      interrupt.dispose();
    }
  });

  const target = (command: Command) =>
    command
      .addOption(new Option('--target <target>', 'where the pipeline ran').choices(['cluster', 'local']).default('cluster'))
      .option('--artifacts <dir>', 'local target: folder standing in for the artifacts volume', '.tunepipe/artifacts');

  kube(
    target(
      program
        .command('status')
        .description('the state of every stage of a pipeline, on the cluster or (--target local) on this machine')
        .argument('<pipeline>', 'pipeline name')
        .option('--json', 'print the states as JSON (schema tunepipe.status/v1)'),
    ),
  ).action(async (name: string, flags: KubeFlags & { target: 'cluster' | 'local'; artifacts: string; json?: boolean }) => {
    const root = findRepoRoot();
    selectPipelines(root, [name]);
    const { compiled } = await synthPipeline(root, name, io.overrides(flags));
    const local = flags.target === 'local';
    const where = local ? resolve(root, flags.artifacts) : compiled.namespace;
    const states = local ? localStatus(compiled, where) : await asUserErrors(async () => clusterStatus(compiled, { namespace: compiled.namespace, kubeConfig: await kubeConfigOf(flags) }));
    if (flags.json) {
      io.out(toJson({ schema: 'tunepipe.status/v1', pipeline: name, target: flags.target, where, stages: states } satisfies StatusJson));
      return;
    }
    const text = formatStatus(name, compiled.namespace, states);
    const shown = relative(root, where).startsWith('..') ? where : relative(root, where) || '.';
    io.out(`${local ? text.replace(/^.*\n/, `${name} on this machine, artifacts in ${shown}\n`) : text}\n`);
    // A newer checkpoint that was not trusted (unsealed, changed, half-written) cost training steps: say so.
    if (local) for (const note of localCheckpointNotes(compiled, where)) io.out(`checkpoint: ${note}\n`);
  });

  kube(
    target(
      program
        .command('logs')
        .description("a stage's log: its pod's on the cluster, or (--target local) the last local run's")
        .argument('<pipeline>', 'pipeline name')
        .argument('<stage>', 'stage name')
        .option('-f, --follow', 'keep streaming until the stage ends (Ctrl-C detaches)'),
    ),
  ).action(async (name: string, stage: string, flags: KubeFlags & { target: 'cluster' | 'local'; artifacts: string; follow?: boolean }) => {
    const interrupt = detachOnInterrupt();
    try {
      if (flags.target === 'local') {
        const root = findRepoRoot();
        selectPipelines(root, [name]);
        const { compiled } = await synthPipeline(root, name, io.overrides(flags));
        await localLogs(compiled, stage, resolve(root, flags.artifacts), flags.follow === true, interrupt.signal, (t) => io.out(t));
        return;
      }
      const config = io.overrides(flags);
      await asUserErrors(async () =>
        streamStageLogs(name, stage, { namespace: config.namespace ?? 'tunepipe', kubeConfig: await kubeConfigOf(flags), follow: flags.follow === true, out: process.stdout, signal: interrupt.signal }),
      );
    } finally {
      interrupt.dispose();
    }
  });

  kube(
    program
      .command('cancel')
      .description("stop a pipeline's running Jobs on the cluster (finished stages stay cached)")
      .argument('<pipeline>', 'pipeline name')
      .option('--scale-serve', 'also scale the serving Deployment to zero'),
  ).action(async (name: string, flags: KubeFlags & { scaleServe?: boolean }) => {
    const config = io.overrides(flags);
    const namespace = config.namespace ?? 'tunepipe';
    const result = await asUserErrors(async () => cancelRun(name, { namespace, kubeConfig: await kubeConfigOf(flags), scaleServe: flags.scaleServe === true }));
    io.out(`${formatCancel(name, namespace, result)}\n`);
  });
}

/**
 * Prints the log the last local run of a stage wrote; with `follow`, keeps printing what is
 * appended until the stage's record says it ended (or Ctrl-C).
 */
async function localLogs(compiled: CompiledPipeline, stageName: string, artifactsDir: string, follow: boolean, signal: AbortSignal, write: (text: string) => void): Promise<void> {
  const stage = compiled.stages.find((s) => s.name === stageName);
  if (!stage) {
    const names = compiled.stages.map((s) => s.name);
    throw new UserError(`no stage '${stageName}' in pipeline ${compiled.pipeline}`, [
      { code: 'logs.stage', path: stageName, value: stageName, message: 'is not a stage of the pipeline', fix: didYouMean(stageName, names) ?? `one of: ${names.join(', ')}` },
    ]);
  }
  const file = join(stageRunDir(artifactsDir, stage), STAGE_LOG_FILE);
  if (!existsSync(file)) {
    write(`(${stageName} has not run on this machine for hash ${stage.hash.slice(0, 8)}: no ${file})\n`);
    return;
  }
  let offset = 0;
  const drain = async () => {
    const size = (await stat(file)).size;
    if (size <= offset) return;
    const handle = await open(file, 'r');
    try {
      const buffer = Buffer.alloc(size - offset);
      await handle.read(buffer, 0, buffer.length, offset);
      offset = size;
      write(buffer.toString('utf8'));
    } finally {
      await handle.close();
    }
  };
  await drain();
  if (!follow) return;
  // A record left `running` by a runner that is gone counts as ended (localStatus says stopped).
  const ended = () => {
    const status = localStatus(compiled, artifactsDir).find((s) => s.stage === stageName)?.status;
    return status !== 'starting' && status !== 'running' && status !== 'retrying';
  };
  while (!signal.aborted && !ended()) {
    await new Promise((r) => setTimeout(r, 500));
    await drain();
  }
  await drain();
}
