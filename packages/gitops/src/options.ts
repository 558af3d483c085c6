import type { Issue } from '@tunepipe/core';
import { GitopsError } from './pipeline.ts';

export type GitopsFlavor = 'plain' | 'argocd' | 'flux';
export const GITOPS_FLAVORS: readonly GitopsFlavor[] = ['plain', 'argocd', 'flux'];

/** Where the reconciler finds the committed output. */
export interface RepoSource {
  /** Git URL the reconciler clones (https://…, ssh://…, or git@host:org/repo.git). */
  readonly repoUrl: string;
  /**
   * Branch, tag or commit to follow. Flux reads a 40-hex commit as a commit, `refs/tags/<t>` as a
   * tag, any other `refs/…` as a ref name, and anything else as a branch.
   */
  readonly revision: string;
  /** Repo-relative folder the rendered files are committed to, e.g. `pipelines/llama3-fintech/dist`. */
  readonly path: string;
}

export interface PlainOptions {
  readonly flavor: 'plain';
}

export interface ArgoCdSettings extends RepoSource {
  /** Namespace Argo CD watches for Applications. @default 'argocd' */
  readonly argocdNamespace?: string;
  /** Argo CD project of the Application. @default 'default' */
  readonly project?: string;
  /** API server of the destination cluster. @default 'https://kubernetes.default.svc' (the cluster Argo CD runs in) */
  readonly destinationServer?: string;
}

export interface FluxSettings extends RepoSource {
  /** Namespace of the GitRepository and the Kustomizations. @default 'flux-system' */
  readonly fluxNamespace?: string;
  /** Secret with Git credentials for a private repository (GitRepository `secretRef`). @default none */
  readonly secretName?: string;
  /** How often Flux re-applies each stage and corrects drift. @default '10m' */
  readonly interval?: string;
}

export type ArgoCdOptions = ArgoCdSettings & { readonly flavor: 'argocd' };
export type FluxOptions = FluxSettings & { readonly flavor: 'flux' };
export type GitopsOptions = PlainOptions | ArgoCdOptions | FluxOptions;

const GO_DURATION = /^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$/;
const GIT_URL = /^(https?:\/\/|ssh:\/\/|git:\/\/|file:\/\/)\S+$|^[\w.-]+@[\w.-]+:\S+$/;

/** The repo-relative folder without `./` or trailing slashes. */
export function normalizeRepoPath(path: string): string {
  return path.replace(/^(\.\/)+/, '').replace(/\/+$/, '');
}

export function sourceIssues(source: RepoSource, extra: { interval?: string | undefined } = {}): Issue[] {
  const issues: Issue[] = [];
  if (/^[a-z][a-z+.-]*:\/\/[^/@]+:[^/@]*@/i.test(source.repoUrl)) {
    issues.push({ code: 'gitops.repo-url-credentials', path: 'repoUrl', value: source.repoUrl.replace(/\/\/[^/@]+@/, '//<redacted>@'), message: 'carries credentials, which would be committed with the manifests', fix: 'use the URL without user:token@; give the reconciler its credentials in a Secret (Flux secretName, an Argo CD repository Secret)' });
  }
  if (!GIT_URL.test(source.repoUrl)) {
    issues.push({ code: 'gitops.repo-url', path: 'repoUrl', value: source.repoUrl, message: 'not a Git URL a reconciler can clone', fix: 'use https://host/org/repo.git, ssh://git@host/org/repo.git or git@host:org/repo.git' });
  }
  if (source.revision.trim() === '' || /\s/.test(source.revision)) {
    issues.push({ code: 'gitops.revision', path: 'revision', value: source.revision, message: 'not a branch, tag or commit', fix: 'name the branch the reconciler follows, e.g. main' });
  }
  const path = normalizeRepoPath(source.path);
  if (path === '' || path.startsWith('/') || path.split('/').some((part) => part === '..' || part === '.' || part === '')) {
    issues.push({ code: 'gitops.path', path: 'path', value: source.path, message: 'not a folder inside the repository', fix: 'give the repo-relative folder the files are committed to, e.g. pipelines/<name>/dist' });
  }
  if (extra.interval !== undefined && !GO_DURATION.test(extra.interval)) {
    issues.push({ code: 'gitops.interval', path: 'interval', value: extra.interval, message: 'not a duration', fix: 'write a Go duration such as 10m or 1h' });
  }
  return issues;
}

export function assertSource(subject: string, source: RepoSource, extra: { interval?: string | undefined } = {}): void {
  const issues = sourceIssues(source, extra);
  if (issues.length > 0) throw new GitopsError(subject, issues);
}
