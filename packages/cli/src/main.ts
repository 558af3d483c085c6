#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { renderError, EXIT_USER_ERROR } from './errors.ts';
import { findRepoRoot, selectPipelines } from './repo.ts';
import { distDir, manifestFiles, synthPipeline, writeFiles } from './synth.ts';
import { renderPlan } from './plan.ts';
import type { ContextOverrides } from './context.ts';
import { gateCommand } from './commands/gate.ts';

interface ClusterFlags {
  namespace?: string;
  queue?: string;
}

function overridesOf(flags: ClusterFlags): ContextOverrides {
  return { ...(flags.namespace ? { namespace: flags.namespace } : {}), ...(flags.queue ? { queueName: flags.queue } : {}) };
}

export function buildProgram(out: (text: string) => void = (t) => process.stdout.write(t)): Command {
  const program = new Command('tunepipe')
    .description('LoRA fine-tuning pipelines as code: compile typed pipelines to Kubernetes objects, plan and run them')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();

  program
    .command('synth')
    .description('compile pipelines and write deterministic YAML to pipelines/<name>/dist/')
    .argument('[pipelines...]', 'pipeline names (default: all under pipelines/)')
    .option('-n, --namespace <ns>', 'namespace of every object', undefined)
    .option('--queue <name>', 'Kueue LocalQueue for GPU Jobs')
    .action(async (names: string[], flags: ClusterFlags) => {
      const root = findRepoRoot();
      for (const name of selectPipelines(root, names)) {
        const { compiled } = await synthPipeline(root, name, overridesOf(flags));
        const files = manifestFiles(compiled);
        const dir = distDir(root, name);
        writeFiles(dir, files);
        out(`synth ${name}: ${compiled.stages.length} stages, ${compiled.objects.length} objects → ${dir.slice(root.length + 1)}/ (${files.length} files)\n`);
      }
    });

  program
    .command('plan')
    .description('print the stage graph: kinds, images, GPUs, hashes, artifact paths and expected outputs')
    .argument('[pipelines...]', 'pipeline names (default: all under pipelines/)')
    .option('-n, --namespace <ns>', 'namespace of every object')
    .option('--queue <name>', 'Kueue LocalQueue for GPU Jobs')
    .action(async (names: string[], flags: ClusterFlags) => {
      const root = findRepoRoot();
      for (const name of selectPipelines(root, names)) {
        const { compiled, warnings } = await synthPipeline(root, name, overridesOf(flags));
        out(`${renderPlan(compiled, warnings)}\n\n`);
      }
    });

  program
    .command('gate')
    .description('judge an evaluation against its gate (runs inside the evaluate Job); exit 3 when it fails')
    .requiredOption('--rules <file>', 'gate.json written by the compiler')
    .requiredOption('--results <file>', "LLaMA-Factory's predict_results.json")
    .option('--out <file>', 'where to write the verdicts as JSON')
    .action((flags: { rules: string; results: string; out?: string }) => {
      process.exitCode = gateCommand(flags, out);
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
