export { synthPipeline, distDir, gitopsOptions, renderFor, type SynthResult, type Flavor } from './synth.ts';
export { loadCompileContext, type ContextOverrides } from './context.ts';
export { findRepoRoot, selectPipelines, discoverPipelines, loadPipeline } from './repo.ts';
export { loadRepoConfig, type RepoConfig } from './config.ts';
export { UserError, renderError } from './errors.ts';
export { buildProgram, main } from './main.ts';
