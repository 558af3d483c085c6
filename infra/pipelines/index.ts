// Entry point of the `tunepipe-pipelines` Pulumi project (see Pulumi.yaml): deploys the pipelines
// named in `tunepipe:pipelines`, compiled from this repository exactly as `tunepipe synth` does.
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pipelinesProgram } from './src/program.ts';
import { compileFromRepo } from './src/repo.ts';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export default () => pipelinesProgram(compileFromRepo(repoRoot));
