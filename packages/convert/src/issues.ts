/**
 * The problem shape every tunepipe package reports (structurally the same as `@tunepipe/core`'s
 * `Issue`, so the CLI renders converter problems with the same printer).
 */
export interface Issue {
  /** Where: a file path (`datasets/x/dataset.yaml:12`) or a dotted config path. */
  readonly path: string;
  readonly message: string;
  readonly value?: unknown;
  readonly fix?: string;
  readonly code: string;
  /** @default 'error' */
  readonly severity?: 'error' | 'warning';
}

/** Bad input to the converter: carries every problem found, never a stack trace for the user. */
export class ConvertError extends Error {
  readonly issues: readonly Issue[];
  constructor(subject: string, issues: readonly Issue[]) {
    super(`${subject}: ${issues.length} problem${issues.length === 1 ? '' : 's'}\n${formatIssues(issues)}`);
    this.name = 'ConvertError';
    this.issues = issues;
  }
}

function renderValue(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

export function formatIssues(issues: readonly Issue[]): string {
  return issues
    .map((issue) => {
      const lines = [`${issue.severity === 'warning' ? '⚠' : '✗'} ${issue.path}: ${issue.message}`];
      if (issue.value !== undefined) lines.push(`    value: ${renderValue(issue.value)}`);
      if (issue.fix) lines.push(`    fix:   ${issue.fix}`);
      return lines.join('\n');
    })
    .join('\n');
}
