import { Command } from 'commander';
import { CheckError, formatIssues } from '@tunepipe/core';
import { writeFiles } from '@tunepipe/gitops';
import {
  assertScaffoldable,
  DEFAULT_SCAFFOLD_MODEL_ID,
  findRepoRoot,
  loadPipeline,
  loadRepoConfig,
  planScaffold,
  registerWorkspacePackage,
  scaffoldModel,
  synthPipeline,
  writeScaffold,
  type ScaffoldRequest,
} from '@tunepipe/workspace';
import { EXIT_USER_ERROR } from '../errors.ts';
import { distDir, gitopsOptions, renderFor } from '../synth.ts';

interface NewFlags {
  model?: string;
  from?: string;
  dataset?: string;
}

/**
 * `tunepipe new <name>`: a pipeline folder that is a workspace package from the start, its manifests
 * synthesized, so `npm ci` and `npm test` pass before the user has edited anything.
 */
export function registerNewCommand(program: Command, out: (text: string) => void, err: (text: string) => void): void {
  program
    .command('new')
    .description('scaffold pipelines/<name>/ (pipeline.ts, package.json, tsconfig.json) and its lockfile entry; with --dataset, datasets/<dataset>/ too')
    .argument('<name>', 'pipeline name (a DNS label)')
    .option('--model <id>', `base model hub id (default: ${DEFAULT_SCAFFOLD_MODEL_ID})`)
    .option('--from <pipeline>', 'copy a pipeline of this repository instead of the template')
    .option('--dataset <name>', 'dataset source to train on; a new one gets datasets/<name>/ with a commented dataset.yaml')
    .action(async (name: string, flags: NewFlags) => {
      process.exitCode = await newPipeline(findRepoRoot(), name, flags, out, err);
    });
}

export async function newPipeline(root: string, name: string, flags: NewFlags, out: (text: string) => void, err: (text: string) => void): Promise<number> {
  const request: ScaffoldRequest = {
    name,
    ...(flags.model !== undefined ? { model: scaffoldModel(flags.model) } : {}),
    ...(flags.from !== undefined ? { from: flags.from } : {}),
    ...(flags.dataset !== undefined ? { dataset: flags.dataset } : {}),
  };
  // A copy keeps the example's stage names; the name-length rule needs them.
  let exampleStages: string[] | undefined;
  if (flags.from !== undefined) {
    try {
      exampleStages = (await loadPipeline(root, flags.from)).stages.map((s) => s.name);
    } catch {
      exampleStages = undefined; // an unknown --from is reported with the other problems below
    }
  }
  assertScaffoldable(root, request, exampleStages);

  const plan = planScaffold(root, request);
  writeScaffold(root, plan);
  const locked = registerWorkspacePackage(root, name);
  for (const file of plan.files) out(`created ${file.path}\n`);
  if (locked) out(`updated package-lock.json (workspace @tunepipe/pipeline-${name})\n`);

  // The committed manifests are part of a pipeline: synth --check and the golden test expect them.
  const config = loadRepoConfig(root);
  try {
    const { compiled, warnings } = await synthPipeline(root, name, { namespace: config.namespace, cloud: config.cloud, ...(config.queue ? { queueName: config.queue } : {}) });
    writeFiles(distDir(root, name), renderFor(compiled, gitopsOptions(config, config.gitops.flavor, name)));
    out(`synthesized pipelines/${name}/dist/ (${compiled.stages.length} stages, ${compiled.objects.length} objects)\n`);
    if (warnings.length > 0) err(`${formatIssues(warnings)}\n`);
  } catch (error) {
    if (!(error instanceof CheckError)) throw error;
    err(`\npipelines/${name} is written but does not compile yet; check() finds:\n${formatIssues(error.issues)}\n`);
    err(`fix these in pipelines/${name}/pipeline.ts, then: tunepipe synth ${name}\n`);
    return EXIT_USER_ERROR;
  }

  const next = [
    ...(plan.dataset?.created ? [`put your rows in datasets/${plan.dataset.name}/data.jsonl and name their license in datasets/${plan.dataset.name}/dataset.yaml`] : []),
    `edit pipelines/${name}/pipeline.ts`,
    `tunepipe plan ${name}      # GPUs, memory, time and cost per stage`,
    `tunepipe synth ${name}     # rewrite pipelines/${name}/dist/ after each edit (npm test compares them)`,
    `tunepipe run ${name}       # on the cluster of your kubeconfig (--target local: one GPU box)`,
  ];
  out(`\nnext:\n${next.map((line) => `  ${line}`).join('\n')}\n`);
  return 0;
}
