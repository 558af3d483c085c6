import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { issuePath, zodParse } from '@tunepipe/core';
import { WorkspaceError } from './errors.ts';

/**
 * `tunepipe.json` at the repository root: what every synth must agree on, committed so that a
 * laptop and CI produce byte-identical manifests (never read from `git remote` at synth time).
 */
const RepoConfigSchema = z.strictObject({
  /** Namespace of every object. */
  namespace: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a DNS label').max(63).default('tunepipe'),
  /** Kueue LocalQueue for GPU Jobs; omit on clusters without Kueue. */
  queue: z.string().min(1).optional(),
  /** Cloud whose GPU catalogue and prices the planner uses. */
  cloud: z.enum(['aws', 'gcp']).default('aws'),
  gitops: z
    .strictObject({
      flavor: z.enum(['plain', 'argocd', 'flux']).default('plain'),
      repoUrl: z.string().min(1).optional(),
      revision: z.string().min(1).default('main'),
    })
    .default({ flavor: 'plain', revision: 'main' }),
});

export type RepoConfig = z.infer<typeof RepoConfigSchema>;
export const REPO_CONFIG_FILE = 'tunepipe.json';

export function loadRepoConfig(root: string): RepoConfig {
  const path = join(root, REPO_CONFIG_FILE);
  let raw: unknown = {};
  if (existsSync(path)) {
    try {
      raw = JSON.parse(readFileSync(path, 'utf8'));
    } catch (error) {
      throw new WorkspaceError(`${REPO_CONFIG_FILE} is not JSON: ${(error as Error).message}`);
    }
  }
  const parsed = zodParse(RepoConfigSchema, raw, {
    area: 'config.repo',
    schema: RepoConfigSchema,
    formatPath: (path) => `${REPO_CONFIG_FILE}:${issuePath(path) || '(root)'}`,
    fix: 'see the README section "Repository config"',
  });
  if (!parsed.ok) throw new WorkspaceError(`${REPO_CONFIG_FILE} is invalid`, parsed.issues);
  return parsed.value;
}
