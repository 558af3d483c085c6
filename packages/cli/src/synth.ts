import { join } from 'node:path';
import { check, compile, isError, type CompileContext, type CompiledPipeline, type Issue, type Pipeline } from '@tunepipe/core';
import { distPath, renderGitops, type GitopsFile, type GitopsOptions } from '@tunepipe/gitops';
import { loadCompileContext, type ContextOverrides } from './context.ts';
import type { RepoConfig } from './config.ts';
import { UserError } from './errors.ts';
import { loadPipeline } from './repo.ts';

export interface SynthResult {
  readonly compiled: CompiledPipeline;
  readonly warnings: readonly Issue[];
  readonly pipeline: Pipeline;
  readonly context: CompileContext;
}

/** Loads, checks and compiles one pipeline of the repo. */
export async function synthPipeline(root: string, name: string, overrides: ContextOverrides = {}): Promise<SynthResult> {
  const pipeline = await loadPipeline(root, name);
  const context = await loadCompileContext(root, pipeline, overrides);
  const warnings = check(pipeline, context).filter((i) => !isError(i));
  return { compiled: compile(pipeline, context), warnings, pipeline, context };
}

export function distDir(root: string, name: string): string {
  return join(root, distPath(name));
}

export type Flavor = GitopsOptions['flavor'];

/** The renderer options for a pipeline, from the committed repo config. */
export function gitopsOptions(config: RepoConfig, flavor: Flavor, pipeline: string): GitopsOptions {
  if (flavor === 'plain') return { flavor };
  if (!config.gitops.repoUrl) {
    throw new UserError(`--gitops ${flavor} needs the repository URL the reconciler clones`, [
      { code: 'config.repo-url', path: 'tunepipe.json:gitops.repoUrl', message: 'is not set', fix: 'add "gitops": { "repoUrl": "https://host/org/repo.git", "revision": "main" } to tunepipe.json' },
    ]);
  }
  return { flavor, repoUrl: config.gitops.repoUrl, revision: config.gitops.revision, path: distPath(pipeline) };
}

export function renderFor(compiled: CompiledPipeline, options: GitopsOptions): GitopsFile[] {
  return renderGitops(compiled, options);
}
