import { constants } from 'node:fs';
import { copyFile, mkdir, readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Command } from 'commander';
import { verifySha256Sums } from '@tunepipe/core';
import { UserError } from '../errors.ts';
import { folderDigest, modelFiles } from '@tunepipe/workspace';

interface FetchModelConfig {
  readonly source: 'local' | 'artifacts';
  readonly digest?: string;
  readonly path?: string;
  readonly version?: string;
}

/**
 * `tunepipe fetch-model`: the fetch-model Job of a local or artifacts-volume model. It verifies the
 * folder it copies from — a local model against the content digest its stage hash covers, an
 * artifacts folder against its own SHA256SUMS when it has one — then copies every model file into
 * the stage's folder (a reflink where the file system can), so later stages never read a folder
 * that changed under them.
 */
export async function fetchModel(flags: { config: string; from: string; out: string }, log: (line: string) => void): Promise<void> {
  const config = JSON.parse(await readFile(flags.config, 'utf8')) as FetchModelConfig;
  const from = flags.from;
  if (!(await stat(from).catch(() => undefined))?.isDirectory()) {
    const how =
      config.source === 'local'
        ? `copy the model folder to ${from} on the artifacts volume (e.g. kubectl cp <folder> <pod with the volume>:${from}); \`tunepipe run --target local\` links it there itself`
        : `put the model folder at ${from} on the artifacts volume, or fix baseModel({ artifacts }) in the pipeline`;
    throw new UserError(`no model folder at ${from}`, [{ code: 'model.missing', path: from, message: 'the fetch-model stage has nothing to copy', fix: how }]);
  }
  if (config.source === 'local') {
    const found = await folderDigest(from);
    if (found.digest !== config.digest) {
      throw new UserError(`the model folder at ${from} is not the one the pipeline names`, [
        { code: 'model.digest', path: from, value: found.digest, message: `its content digest is ${found.digest}, the pipeline was compiled for ${config.digest}`, fix: 'upload the folder the pipeline was compiled with, or re-run synth/run after changing it (the digest names the upload folder)' },
      ]);
    }
    log(`tunepipe fetch-model: ${from} verified (${found.files} files, ${found.bytes} bytes, sha256 ${found.digest})`);
  } else {
    // An artifacts folder without SHA256SUMS has nothing to be checked against.
    const bad = await verifySha256Sums(from);
    if (bad && bad.length > 0) throw new UserError(`${from} does not match its SHA256SUMS`, bad.map((f) => ({ code: 'model.sha256', path: join(from, f), message: 'differs from SHA256SUMS or is missing', fix: 'restore the file, or write a new SHA256SUMS and change the version in the pipeline' })));
    if (bad) log(`tunepipe fetch-model: ${from} matches its SHA256SUMS`);
  }
  const files = await modelFiles(from);
  for (const f of files) {
    await mkdir(dirname(join(flags.out, f)), { recursive: true });
    await copyFile(join(from, f), join(flags.out, f), constants.COPYFILE_FICLONE);
  }
  log(`tunepipe fetch-model: ${files.length} files copied to ${flags.out}`);
}

export function registerFetchModelCommand(program: Command, out: (text: string) => void): void {
  program
    .command('fetch-model')
    .description('verify and copy a local or artifacts-volume model folder (the fetch-model Job runs this)')
    .requiredOption('--config <file>', "the stage's fetch-model.json")
    .requiredOption('--from <dir>', 'the folder on the artifacts volume to copy from')
    .requiredOption('--out <dir>', 'artifact folder to write to')
    .action(async (flags: { config: string; from: string; out: string }) => {
      await fetchModel(flags, (line) => out(`${line}\n`));
    });
}
