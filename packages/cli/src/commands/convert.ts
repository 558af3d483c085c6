import { Command } from 'commander';
import { convertFromConfigFile } from '@tunepipe/convert';

/** `tunepipe convert`: the convert Job's entry point inside the runtime image. */
export function registerConvertCommand(program: Command, out: (text: string) => void): void {
  program
    .command('convert')
    .description('convert dataset sources as configured by a convert stage (the convert Job runs this)')
    .requiredOption('--config <file>', "the stage's convert.json")
    .requiredOption('--inputs <dir>', 'folder holding the dataset files (the Job mounts them at /inputs)')
    .requiredOption('--out <dir>', 'artifact folder to publish to')
    .option('--force', 're-run even when the output is complete')
    .action(async (flags: { config: string; inputs: string; out: string; force?: boolean }) => {
      const stage = process.env['TUNEPIPE_STAGE'] && process.env['TUNEPIPE_HASH'] ? { stage: process.env['TUNEPIPE_STAGE'], hash: process.env['TUNEPIPE_HASH'] } : undefined;
      await convertFromConfigFile({ configPath: flags.config, inputsDir: flags.inputs, outDir: flags.out, ...(stage ? { stage } : {}), ...(flags.force ? { force: true } : {}), log: (line) => out(`${line}\n`) });
    });
}
