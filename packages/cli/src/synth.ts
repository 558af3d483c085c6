import { join } from 'node:path';
import type { CompiledPipeline } from '@tunepipe/core';
import { distPath, renderGitops, type GitopsFile, type GitopsOptions } from '@tunepipe/gitops';
import type { RepoConfig } from '@tunepipe/workspace';
import { UserError } from './errors.ts';

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
