#!/usr/bin/env node
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { checkStale, formatStaleReport, underDir, writeFiles } from '@tunepipe/gitops';
import { reportCommand, verifyCommand } from '@tunepipe/eval';
import { renderError, EXIT_USER_ERROR, UserError } from './errors.ts';
import { resolve } from 'node:path';
import { didYouMean, type Gate } from '@tunepipe/core';
import { localRunRecords } from './runs.ts';
import packageJson from '../package.json' with { type: 'json' };
import { findRepoRoot, loadPipeline, loadRepoConfig, selectPipelines, synthPipeline, type ContextOverrides, type RepoConfig } from '@tunepipe/workspace';
import { distDir, gitopsOptions, renderFor, type Flavor } from './synth.ts';
import { planJson, renderExplain, renderPlan, type PipelinePlanJson, type PlanJson } from './plan.ts';
import { coloursFor, paint } from './colour.ts';
import { toJson, type SynthCheckJson, type SynthJson } from './json.ts';
import { gateCommand } from './commands/gate.ts';
import { diffCommand } from './commands/diff.ts';
import { waitServed } from './commands/wait-served.ts';
import { registerRunCommands } from './commands/run.ts';
import { registerConvertCommand } from './commands/convert.ts';
import { registerFetchModelCommand } from './commands/fetch-model.ts';
import { registerNewCommand } from './commands/new.ts';

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
    .version(packageJson.version, '-V, --version', 'print the version of tunepipe')
    .exitOverride();
  // Colour only on a terminal that wants it; what goes to pipes and files stays plain.
  const colours = { out: coloursFor(process.stdout), err: coloursFor(process.stderr) };

  const clusterOptions = (command: Command) =>
    command.option('-n, --namespace <ns>', 'namespace of every object (default: tunepipe.json, else tunepipe)').option('--queue <name>', 'Kueue LocalQueue for GPU Jobs (default: tunepipe.json)');

  clusterOptions(
    program
      .command('synth')
      .description('compile pipelines and write deterministic manifests to pipelines/<name>/dist/')
      .argument('[pipelines...]', 'pipeline names (default: all under pipelines/)')
      .addOption(new Option('--gitops <flavor>', 'layout of the output (default: tunepipe.json gitops.flavor, else plain)').choices(['plain', 'argocd', 'flux']))
      .option('--check', 'write nothing; exit 1 and name the files when the committed manifests are stale')
      .option('--json', 'print the result as JSON (schema tunepipe.synth/v1, with --check tunepipe.synth-check/v1)'),
  ).action(async (names: string[], flags: ClusterFlags & { gitops?: Flavor; check?: boolean; json?: boolean }) => {
    const root = findRepoRoot();
    const config = loadRepoConfig(root);
    const flavor = flags.gitops ?? config.gitops.flavor;
    const expected = [];
    const written: SynthJson['pipelines'][number][] = [];
    for (const name of selectPipelines(root, names)) {
      const { compiled, warnings } = await synthPipeline(root, name, overridesOf(config, flags));
      const files = renderFor(compiled, gitopsOptions(config, flavor, name));
      if (flags.check) {
        expected.push(...underDir(`pipelines/${name}/dist`, files));
        continue;
      }
      const result = writeFiles(distDir(root, name), files);
      if (flags.json) {
        written.push({ pipeline: name, flavor, stages: compiled.stages.length, objects: compiled.objects.length, dir: `pipelines/${name}/dist`, ...result, warnings });
        continue;
      }
      out(`${colours.out.bold(`synth ${name}`)} (${flavor}): ${compiled.stages.length} stages, ${compiled.objects.length} objects → pipelines/${name}/dist/ (${result.written.length} written, ${result.unchanged.length} unchanged, ${result.deleted.length} removed)\n`);
      for (const warning of warnings) err(`${colours.err.yellow(`  ⚠ ${warning.path}: ${warning.message}`)}\n`);
    }
    if (flags.check) {
      const report = checkStale(root, expected, { dirs: [...new Set(expected.map((f) => f.path.split('/').slice(0, 3).join('/')))] });
      if (flags.json) {
        out(toJson({ schema: 'tunepipe.synth-check/v1', ok: report.ok, files: expected.length, changed: report.changed, missing: report.missing, extra: report.extra } satisfies SynthCheckJson));
        if (!report.ok) process.exitCode = EXIT_USER_ERROR;
        return;
      }
      if (!report.ok) {
        err(`${colours.err.red(formatStaleReport(report))}\nrun \`tunepipe synth\` and commit the result\n`);
        process.exitCode = EXIT_USER_ERROR;
        return;
      }
      out(`${colours.out.green('✓')} committed manifests are up to date (${expected.length} files)\n`);
    }
    if (flags.json) out(toJson({ schema: 'tunepipe.synth/v1', pipelines: written } satisfies SynthJson));
  });

  clusterOptions(
    program
      .command('plan')
      .description('print the stage graph and, per stage, memory, GPU, expected time, GPU-hours and cost')
      .argument('[pipelines...]', 'pipeline names (default: all under pipelines/)')
      .option('--wide', 'every column in full, nothing wrapped (the default fits 100 columns)')
      .option('--explain <stage>', "one stage in full: the planner's memory terms, time per step, cost and its trainable-parameter line")
      .option('--json', 'the plan as JSON for tools (schema tunepipe.plan/v1; with --explain, only that stage)'),
  ).action(async (names: string[], flags: ClusterFlags & { wide?: boolean; explain?: string; json?: boolean }) => {
    const root = findRepoRoot();
    const config = loadRepoConfig(root);
    const options = { cloud: config.cloud, ...(flags.wide ? { wide: true } : {}) };
    const plans: PipelinePlanJson[] = [];
    const stageNames: string[] = [];
    for (const name of selectPipelines(root, names)) {
      const { compiled, warnings } = await synthPipeline(root, name, overridesOf(config, flags));
      stageNames.push(...compiled.stages.map((s) => s.name));
      const explain = flags.explain;
      if (explain !== undefined && !compiled.stages.some((s) => s.name === explain)) continue;
      if (flags.json) {
        const plan = planJson(compiled, warnings, options);
        plans.push(explain === undefined ? plan : { ...plan, stages: plan.stages.filter((s) => s.name === explain) });
        continue;
      }
      out(`${paint(explain === undefined ? renderPlan(compiled, warnings, options) : renderExplain(compiled, explain, options), colours.out)}\n\n`);
    }
    if (flags.explain !== undefined && !stageNames.includes(flags.explain)) {
      throw new UserError(`no stage '${flags.explain}' to explain`, [
        { code: 'plan.explain-stage', path: '--explain', value: flags.explain, message: 'is not a stage of the pipelines planned', fix: didYouMean(flags.explain, new Set(stageNames)) ?? `one of: ${[...new Set(stageNames)].join(', ')}` },
      ]);
    }
    if (flags.json) out(toJson({ schema: 'tunepipe.plan/v1', pipelines: plans } satisfies PlanJson));
  });

  program
    .command('diff')
    .description('which stages a change re-runs (and why), which stay cached, and the GPU-hours it spends')
    .argument('[pipelines...]', 'pipeline names (default: all under pipelines/)')
    .option('--base <ref>', 'git ref to compare the working tree with', 'HEAD')
    .addOption(new Option('--format <format>', 'output format').choices(['table', 'markdown']).default('table'))
    .option('--json', 'print the diff as JSON (schema tunepipe.diff/v1)')
    .action(async (names: string[], flags: { base: string; format: 'table' | 'markdown'; json?: boolean }) => {
      const root = findRepoRoot();
      const config = loadRepoConfig(root);
      const only = names.length > 0 ? selectPipelines(root, names) : undefined;
      out(`${await diffCommand(root, flags.base, flags.json ? 'json' : flags.format, overridesOf(config, {}), only)}\n`);
    });

  registerRunCommands(program, { out, err, overrides: (flags) => {
    const root = findRepoRoot();
    return overridesOf(loadRepoConfig(root), flags);
  } });
  registerConvertCommand(program, out);
  registerFetchModelCommand(program, out);
  registerNewCommand(program, out, err);

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
      .option('--out <dir>', 'where to write report.html and report.md (default: <artifacts>/<pipeline>/report)')
      .option('--json', 'print the paths written as JSON'),
  ).action(async (name: string, flags: ClusterFlags & { artifacts: string; out?: string; json?: boolean }) => {
    const root = findRepoRoot();
    const config = loadRepoConfig(root);
    selectPipelines(root, [name]);
    const { compiled } = await synthPipeline(root, name, overridesOf(config, flags));
    // Gate verdicts come from the run's gate.json when there is one; the definition says what was required.
    const gates: Record<string, { gate: Gate; baseline?: string }> = {};
    for (const stage of (await loadPipeline(root, name)).stages) {
      if (stage.kind === 'evaluate' && stage.options.gate) gates[stage.name] = { gate: stage.options.gate, ...(stage.options.baseline ? { baseline: stage.options.baseline.stage } : {}) };
    }
    // Durations and failure reasons come from the records local runs leave next to each stage's log.
    const artifactsDir = resolve(root, flags.artifacts);
    const runs = localRunRecords(compiled, artifactsDir);
    const result = await reportCommand({ compiled, artifactsDir, gates, runs, ...(flags.out ? { outDir: resolve(flags.out) } : {}) });
    if (flags.json) out(toJson({ schema: 'tunepipe.report/v1', html: result.htmlPath, markdown: result.markdownPath }));
    else out(`report: ${result.htmlPath}\n        ${result.markdownPath}\n`);
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
