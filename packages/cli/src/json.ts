import type { Issue } from '@tunepipe/core';
import type { PlanDiff } from '@tunepipe/gitops';
import type { StageState } from '@tunepipe/runner';

/**
 * What `--json` prints, command by command. Every document names its `schema`; within a schema
 * version fields are only ever added, never renamed or removed. packages/cli/README.md lists them.
 */

export function toJson(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

/** `tunepipe synth --json`: what was written per pipeline. */
export interface SynthJson {
  readonly schema: 'tunepipe.synth/v1';
  readonly pipelines: readonly {
    readonly pipeline: string;
    readonly flavor: 'plain' | 'argocd' | 'flux';
    readonly stages: number;
    readonly objects: number;
    /** Relative to the repository root. */
    readonly dir: string;
    /** File paths relative to `dir`. */
    readonly written: readonly string[];
    readonly unchanged: readonly string[];
    readonly deleted: readonly string[];
    readonly warnings: readonly Issue[];
  }[];
}

/** `tunepipe synth --check --json`: whether the committed manifests are what the sources produce. */
export interface SynthCheckJson {
  readonly schema: 'tunepipe.synth-check/v1';
  readonly ok: boolean;
  /** Files the sources produce. */
  readonly files: number;
  /** Repository-relative paths: committed with other content, produced but not committed, committed but no longer produced. */
  readonly changed: readonly string[];
  readonly missing: readonly string[];
  readonly extra: readonly string[];
}

/** `tunepipe diff --json`: gitops' PlanDiff (which stages re-run and why, GPU-hours). */
export interface DiffJson extends PlanDiff {
  readonly schema: 'tunepipe.diff/v1';
  /** The git ref compared with the working tree. */
  readonly base: string;
}

/** `tunepipe status --json`: every stage's state (cluster: from its Job or Deployment; local: from run records). */
export interface StatusJson {
  readonly schema: 'tunepipe.status/v1';
  readonly pipeline: string;
  readonly target: 'cluster' | 'local';
  /** Namespace (cluster) or artifacts folder (local). */
  readonly where: string;
  /** Times are epoch milliseconds; `progress` is what the stage's log said last, when known. */
  readonly stages: readonly StageState[];
}
