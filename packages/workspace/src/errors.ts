import type { Issue } from '@tunepipe/core';

/**
 * A problem with the repository as the user laid it out (a pipeline folder, `tunepipe.json`, dataset
 * files): the CLI prints it without a stack, infra lists it with the stack's other problems.
 */
export class WorkspaceError extends Error {
  readonly issues: readonly Issue[];
  constructor(message: string, issues: readonly Issue[] = []) {
    super(message);
    this.name = 'WorkspaceError';
    this.issues = issues;
  }
}
