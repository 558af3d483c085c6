import { CheckError, formatIssues, type Issue } from '@tunepipe/core';
import { WorkspaceError } from '@tunepipe/workspace';

/** A problem with what the user asked for or wrote: printed without a stack, exit code 1. */
export class UserError extends Error {
  readonly issues: readonly Issue[];
  constructor(message: string, issues: readonly Issue[] = []) {
    super(message);
    this.name = 'UserError';
    this.issues = issues;
  }
}

export const EXIT_USER_ERROR = 1;
export const EXIT_INTERNAL_ERROR = 2;

/** Renders an error for the terminal and returns the exit code. */
export function renderError(error: unknown, write: (text: string) => void): number {
  if (error instanceof CheckError) {
    write(`${error.message}\n`);
    return EXIT_USER_ERROR;
  }
  if (error instanceof UserError || error instanceof WorkspaceError) {
    write(`error: ${error.message}\n`);
    if (error.issues.length > 0) write(`${formatIssues(error.issues)}\n`);
    return EXIT_USER_ERROR;
  }
  const detail = error instanceof Error ? (error.stack ?? error.message) : String(error);
  write(`internal error (this is a tunepipe bug, please report it):\n${detail}\n`);
  return EXIT_INTERNAL_ERROR;
}
