import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { issuePath, MULTI_NODE_ENGINES, zodParse } from '@tunepipe/core';
import { WorkspaceError } from './errors.ts';

/**
 * `tunepipe.json` at the repository root: what every synth must agree on, committed so that a
 * laptop and CI produce byte-identical manifests (never read from `git remote` at synth time).
 */
const RepoConfigSchema = z.strictObject({
  /** Namespace of every object. */
  namespace: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a DNS label').max(63).default('tunepipe'),
  /**
   * Kueue LocalQueue for GPU Jobs; omit on clusters without Kueue. The long form also says how
   * many GPUs of each type its ClusterQueue admits (copy infra/cluster's quota), so check()
   * rejects a training gang the queue could never admit.
   */
  queue: z
    .union([
      z.string().min(1),
      z.strictObject({
        name: z.string().min(1),
        gpus: z.record(z.string().min(1), z.number().int().min(0)).optional(),
      }),
    ])
    .optional(),
  /** What a training stage on several nodes compiles to: an Indexed Job + headless Service, or a JobSet. */
  multiNode: z.enum(MULTI_NODE_ENGINES).optional(),
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

/** The parsed config; `queue` is the LocalQueue's name whichever form named it. */
export type RepoConfig = Omit<z.infer<typeof RepoConfigSchema>, 'queue'> & {
  readonly queue?: string;
  /** GPUs by GPU type the queue admits (`queue.gpus`). */
  readonly queueGpus?: Readonly<Record<string, number>>;
};
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
  const { queue, ...rest } = parsed.value;
  if (queue === undefined) return rest;
  if (typeof queue === 'string') return { ...rest, queue };
  return { ...rest, queue: queue.name, ...(queue.gpus ? { queueGpus: queue.gpus } : {}) };
}
