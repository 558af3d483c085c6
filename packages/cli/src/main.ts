#!/usr/bin/env node
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { checkStale, formatStaleReport, underDir, writeFiles } from '@tunepipe/gitops';
import { reportCommand, verifyCommand } from '@tunepipe/eval';
import { renderError, EXIT_USER_ERROR } from './errors.ts';
import { resolve } from 'node:path';
import type { Gate } from '@tunepipe/core';
import { findRepoRoot, loadPipeline, loadRepoConfig, selectPipelines, synthPipeline, type ContextOverrides, type RepoConfig } from '@tunepipe/workspace';
import { distDir, gitopsOptions, renderFor, type Flavor } from './synth.ts';
import { renderPlan } from './plan.ts';
import { gateCommand } from './commands/gate.ts';
import { diffCommand } from './commands/diff.ts';
import { waitServed } from './commands/wait-served.ts';
import { registerRunCommands } from './commands/run.ts';
import { registerConvertCommand } from './commands/convert.ts';
import { registerFetchModelCommand } from './commands/fetch-model.ts';

interface ClusterFlags {
  namespace?: string;
  queue?: string;
}

function overridesOf(config: RepoConfig, flags: ClusterFlags): ContextOverrides {
  const queue = flags.queue ?? config.queue;
  return { namespace: flags.namespace ?? config.namespace, cloud: config.cloud, ...(queue ? { queueName: queue } : {}) };
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('must be a positive whole number');
  return n;
}

function number(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n)) throw new InvalidArgumentError('must be a number');
  return n;
}

export type Output = (text: string) => void;

export function buildProgram(out: Output = (t) => process.stdout.write(t), err: Output = (t) => process.stderr.write(t)): Command {
  const program = new Command('tunepipe')
    .description('LoRA fine-tuning pipelines as code: compile typed pipelines to Kubernetes objects, plan and run them')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();

  const clusterOptions = (command: Command) =>
    command.option('-n, --namespace <ns>', 'namespace of every object (default: tunepipe.json, else tunepipe)').option('--queue <name>', 'Kueue LocalQueue for GPU Jobs (default: tunepipe.json)');

  clusterOptions(
    program
      .command('synth')
      .description('compile pipelines and write deterministic manifests to pipelines/<name>/dist/')
      .argument('[pipelines...]', 'pipeline names (default: all under pipelines/)')
      .addOption(new Option('--gitops <flavor>', 'layout of the output (default: tunepipe.json gitops.flavor, else plain)').choices(['plain', 'argocd', 'flux']))
      .option('--check', 'write nothing; exit 1 and name the files when the committed manifests are stale'),
  ).action(async (names: string[], flags: ClusterFlags & { gitops?: Flavor; check?: boolean }) => {
    const root = findRepoRoot();
    const config = loadRepoConfig(root);
    const flavor = flags.gitops ?? config.gitops.flavor;
    const expected = [];
    for (const name of selectPipelines(root, names)) {
      const { compiled, warnings } = await synthPipeline(root, name, overridesOf(config, flags));
      const files = renderFor(compiled, gitopsOptions(config, flavor, name));
      if (flags.check) {
        expected.push(...underDir(`pipelines/${name}/dist`, files));
        continue;
      }
      const result = writeFiles(distDir(root, name), files);
      out(`synth ${name} (${flavor}): ${compiled.stages.length} stages, ${compiled.objects.length} objects → pipelines/${name}/dist/ (${result.written.length} written, ${result.unchanged.length} unchanged, ${result.deleted.length} removed)\n`);
      for (const warning of warnings) err(`  ⚠ ${warning.path}: ${warning.message}\n`);
    }
    if (flags.check) {
      const report = checkStale(root, expected, { dirs: [...new Set(expected.map((f) => f.path.split('/').slice(0, 3).join('/')))] });
      if (!report.ok) {
        err(`${formatStaleReport(report)}\nrun \`tunepipe synth\` and commit the result\n`);
        process.exitCode = EXIT_USER_ERROR;
        return;
      }
      out(`committed manifests are up to date (${expected.length} files)\n`);
    }
  });

  clusterOptions(
    program
      .command('plan')
      .description('print the stage graph and, per stage, memory, GPU, expected time, GPU-hours and cost')
      .argument('[pipelines...]', 'pipeline names (default: all under pipelines/)'),
  ).action(async (names: string[], flags: ClusterFlags) => {
    const root = findRepoRoot();
    const config = loadRepoConfig(root);
    for (const name of selectPipelines(root, names)) {
      const { compiled, warnings } = await synthPipeline(root, name, overridesOf(config, flags));
      out(`${renderPlan(compiled, warnings, { cloud: config.cloud })}\n\n`);
    }
  });

  program
    .command('diff')
    .description('which stages a change re-runs (and why), which stay cached, and the GPU-hours it spends')
    .option('--base <ref>', 'git ref to compare the working tree with', 'HEAD')
    .addOption(new Option('--format <format>', 'output format').choices(['table', 'markdown']).default('table'))
    .action(async (flags: { base: string; format: 'table' | 'markdown' }) => {
      const root = findRepoRoot();
      const config = loadRepoConfig(root);
      out(`${await diffCommand(root, flags.base, flags.format, overridesOf(config, {}))}\n`);
    });

  registerRunCommands(program, { out, err, overrides: (flags) => {
    const root = findRepoRoot();
    return overridesOf(loadRepoConfig(root), flags);
  } });
  registerConvertCommand(program, out);
  registerFetchModelCommand(program, out);

  program
    .command('gate')
    .description('judge an evaluation against its gate (runs inside the evaluate Job); exit 3 when it fails')
    .requiredOption('--rules <file>', 'gate.json written by the compiler')
    .requiredOption('--results <file>', "LLaMA-Factory's predict_results.json")
    .option('--out <file>', 'where to write the verdicts as JSON')
    .action((flags: { rules: string; results: string; out?: string }) => {
      process.exitCode = gateCommand(flags, out);
    });

  program
    .command('verify')
    .description('post-deploy check of a served model: /health, /v1/models, identity answers, test-split scores; exit 3 when a check fails')
    .requiredOption('--endpoint <url>', 'server root, e.g. http://llama3-fintech-serve.tunepipe.svc:8000')
    .requiredOption('--served-model-name <name>', 'the name /v1/models must list')
    .requiredOption('--expect-name <name>', 'the name identity answers must contain')
    .option('--identity-prompt <text...>', 'identity prompts (default: 你是谁？ and Who are you?)')
    .option('--testset <file>', 'a test split file (.json or .jsonl)')
    .option('--dataset-dir <dir>', "or: the convert stage's output folder")
    .option('--dataset <names>', 'with --dataset-dir: comma-separated entries, e.g. identity.test,fintech.test')
    .option('--limit <n>', 'score at most n rows', positiveInt)
    .option('--max-new-tokens <n>', 'tokens per answer', positiveInt)
    .option('--concurrency <n>', 'requests in flight', positiveInt)
    .option('--temperature <t>', 'sampling temperature (default 0)', number)
    .option('--top-p <p>', 'nucleus sampling', number)
    .option('--api-key-env <var>', 'environment variable holding the API key', 'VLLM_API_KEY')
    .option('--gate <json>', 'gate on the served scores, as JSON')
    .option('--baseline-results <file>', 'predict_results.json that relative gate rules compare with')
    .option('--out <dir>', 'folder for post_deploy_check.json, predict_results.json, generated_predictions.jsonl')
    .option('--word-bleu', 'also report word-level BLEU-4 (for English)')
    .action(async (flags: Record<string, unknown>) => {
      const { identityPrompt, dataset, ...rest } = flags as { identityPrompt?: string[]; dataset?: string } & Record<string, unknown>;
      process.exitCode = await verifyCommand({
        ...(rest as unknown as Parameters<typeof verifyCommand>[0]),
        ...(identityPrompt ? { identityPrompts: identityPrompt } : {}),
        ...(dataset ? { datasets: dataset.split(',').map((d) => d.trim()).filter(Boolean) } : {}),
      });
    });

  program
    .command('wait-served')
    .description('wait until a vLLM Service answers with the given model on every request (used before verify)')
    .requiredOption('--endpoint <url>', 'server root')
    .requiredOption('--model-root <path>', 'model path vLLM reports as root in /v1/models')
    .option('--timeout <seconds>', 'give up after this long', positiveInt, 7200)
    .option('--api-key-env <var>', 'environment variable holding the API key', 'VLLM_API_KEY')
    .action(async (flags: { endpoint: string; modelRoot: string; timeout: number; apiKeyEnv: string }) => {
      const apiKey = process.env[flags.apiKeyEnv];
      process.exitCode = await waitServed(
        { endpoint: flags.endpoint, modelRoot: flags.modelRoot, timeoutMs: flags.timeout * 1000, ...(apiKey ? { apiKey } : {}) },
        (line) => out(`${line}\n`),
      );
    });

  clusterOptions(
    program
      .command('report')
      .description('write a self-contained HTML (and Markdown) run report from a pipeline\'s artifacts')
      .argument('<pipeline>', 'pipeline name')
      .option('--artifacts <dir>', 'local artifacts folder (the layout of the /artifacts volume)', '.tunepipe/artifacts')
      .option('--out <dir>', 'where to write report.html and report.md (default: <artifacts>/<pipeline>/report)'),
  ).action(async (name: string, flags: ClusterFlags & { artifacts: string; out?: string }) => {
    const root = findRepoRoot();
    const config = loadRepoConfig(root);
    selectPipelines(root, [name]);
    const { compiled } = await synthPipeline(root, name, overridesOf(config, flags));
    // Gate verdicts come from the run's gate.json when there is one; the definition says what was required.
    const gates: Record<string, { gate: Gate; baseline?: string }> = {};
    for (const stage of (await loadPipeline(root, name)).stages) {
      if (stage.kind === 'evaluate' && stage.options.gate) gates[stage.name] = { gate: stage.options.gate, ...(stage.options.baseline ? { baseline: stage.options.baseline.stage } : {}) };
    }
    const result = await reportCommand({ compiled, artifactsDir: resolve(root, flags.artifacts), gates, ...(flags.out ? { outDir: resolve(flags.out) } : {}) });
    out(`report: ${result.htmlPath}\n        ${result.markdownPath}\n`);
  });

  return program;
}

export async function main(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  try {
    process.exitCode = 0;
    await program.parseAsync([...argv], { from: 'user' });
    return Number(process.exitCode ?? 0);
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version exit with 0; usage errors were already printed by commander.
      return error.exitCode === 0 ? 0 : EXIT_USER_ERROR;
    }
    return renderError(error, (t) => process.stderr.write(t));
  }
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('/main.ts')) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
