import { Command } from 'commander';
import { STAGE_ENV } from '@tunepipe/core';
import { convertFromConfigFile } from '@tunepipe/convert';

/** `tunepipe convert`: the convert Job's entry point inside the runtime image. */
export function registerConvertCommand(program: Command, out: (text: string) => void): void {
  program
    .command('convert')
    .description('convert dataset sources as configured by a convert stage (the convert Job runs this)')
    .requiredOption('--config <file>', "the stage's convert.json")
    .requiredOption('--inputs <dir>', 'folder holding the dataset files (the Job mounts them at /inputs)')
    .option('--work <dir>', 'work folder to write into; the stage wrapper publishes it (the convert Job)')
    .option('--out <dir>', 'artifact folder to publish to (standalone use)')
    .option('--force', 'with --out: re-run even when the output is complete')
    .action(async (flags: { config: string; inputs: string; work?: string; out?: string; force?: boolean }) => {
      const name = process.env[STAGE_ENV.stage];
      const hash = process.env[STAGE_ENV.hash];
      await convertFromConfigFile({
        configPath: flags.config,
        inputsDir: flags.inputs,
        ...(flags.work !== undefined ? { workDir: flags.work } : {}),
        ...(flags.out !== undefined ? { outDir: flags.out } : {}),
        ...(name && hash ? { stage: { stage: name, hash } } : {}),
        ...(flags.force ? { force: true } : {}),
        log: (line) => out(`${line}\n`),
      });
    });
}
