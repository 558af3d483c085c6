export { synthPipeline, type SynthResult } from './synth.ts';
export { loadCompileContext, localModelPaths, type ContextOverrides } from './context.ts';
export { findRepoRoot, selectPipelines, discoverPipelines, loadPipeline } from './repo.ts';
export { loadRepoConfig, REPO_CONFIG_FILE, type RepoConfig } from './config.ts';
export { DigestCache, folderDigest, loadLocalModel, modelFiles, safetensorsParameters } from './model-folder.ts';
export { WorkspaceError } from './errors.ts';
export { assertScaffoldable, DEFAULT_SCAFFOLD_MODEL_ID, packageName, planScaffold, registerWorkspacePackage, scaffoldIssues, scaffoldModel, writeScaffold, type ScaffoldFile, type ScaffoldModel, type ScaffoldPlan, type ScaffoldRequest } from './scaffold.ts';
