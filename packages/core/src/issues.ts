import { redactSecrets } from './rules/secrets.ts';
/** One problem found before anything runs: where it is, what was there, how to fix it. */
export interface Issue {
  /** Dotted path into the pipeline definition, e.g. `stages.merge.args.export_device`. */
  readonly path: string;
  readonly message: string;
  /** The offending value, when there is one. */
  readonly value?: unknown;
  /** What to do instead ("did you mean …"). */
  readonly fix?: string;
  /** Stable identifier of the rule that produced the issue, for tests and suppression. */
  readonly code: string;
  /** Warnings are shown but do not stop `compile()`. @default 'error' */
  readonly severity?: 'error' | 'warning';
}

export const isError = (issue: Issue): boolean => issue.severity !== 'warning';

/** Thrown by `compile()` when `check()` finds issues; carries all of them. */
export class CheckError extends Error {
  readonly issues: readonly Issue[];
  constructor(subject: string, issues: readonly Issue[]) {
    super(`${subject}: ${issues.length} problem${issues.length === 1 ? '' : 's'}\n${formatIssues(issues)}`);
    this.name = 'CheckError';
    this.issues = issues;
  }
}

function renderValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  // JSON has no NaN or Infinity (it would print null), and no undefined.
  if (typeof value === 'number' || value === undefined) return String(value);
  try {
    return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v)) ?? String(value);
  } catch {
    return String(value);
  }
}

/** Longest text an issue line shows of a path, value or fix; what a terminal line can still be read in. */
const SHOWN = 160;

/** Text cut to `SHOWN` characters with the length said, so a 100,000-character value stays one readable line. */
function clamp(text: string): string {
  return text.length <= SHOWN ? text : `${text.slice(0, SHOWN - 40)}… (${text.length.toLocaleString('en-US')} characters)`;
}

export function formatIssue(issue: Issue): string {
  // Redacted before cut: a cut could leave a secret's head too short to recognise.
  const shown = (text: string) => clamp(redactSecrets(text));
  const lines = [`${isError(issue) ? '✗' : '⚠'} ${shown(issue.path)}: ${redactSecrets(issue.message)}`];
  if (issue.value !== undefined) lines.push(`    value: ${shown(renderValue(issue.value))}`);
  if (issue.fix) lines.push(`    fix:   ${shown(issue.fix)}`);
  return lines.join('\n');
}

export function formatIssues(issues: readonly Issue[]): string {
  return issues.map(formatIssue).join('\n');
}

/** Levenshtein distance, for "did you mean" suggestions. */
export function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = prev[j]!;
      prev[j] = Math.min(above + 1, prev[j - 1]! + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return prev[b.length]!;
}

/** The closest candidates to `input` (at most 3), if any are reasonably close. */
export function suggest(input: string, candidates: Iterable<string>): string[] {
  const limit = Math.max(2, Math.floor(input.length / 3));
  return [...candidates]
    .map((c) => ({ c, d: editDistance(input.toLowerCase(), c.toLowerCase()) }))
    .filter(({ d }) => d <= limit)
    .sort((x, y) => x.d - y.d || x.c.localeCompare(y.c))
    .slice(0, 3)
    .map(({ c }) => c);
}

export function didYouMean(input: string, candidates: Iterable<string>): string | undefined {
  const close = suggest(input, candidates);
  return close.length > 0 ? `did you mean ${close.map((c) => `'${c}'`).join(' or ')}?` : undefined;
}

/** The value at a schema issue's path inside the input, to show it next to the problem. */
export function valueAtPath(root: unknown, path: readonly PropertyKey[]): unknown {
  let at: unknown = root;
  for (const key of path) {
    if (at === null || typeof at !== 'object') return undefined;
    at = (at as Record<PropertyKey, unknown>)[key];
  }
  return at;
}

/**
 * Issue codes are `area.rule`: lower-case kebab-case words joined by dots (`args.unknown`,
 * `dataset.file-path`, `convert.config.type`), so tests and suppressions can match them by prefix.
 */
export const ISSUE_CODE = /^[a-z][a-z0-9]*(?:-[a-z0-9]+)*(?:\.[a-z][a-z0-9]*(?:-[a-z0-9]+)*)+$/;

const PLAIN_KEY = /^[A-Za-z0-9_$@/:{}*+-]+$/;

/** Writes a path the way every Issue does: `stages.sft.args.lora_rank`, `sources[0].name`. */
export function issuePath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else {
      const key = String(part);
      // A key that would read as path syntax (a dot, a bracket, a space) is quoted so the path stays unambiguous.
      out += PLAIN_KEY.test(key) ? (out ? `.${key}` : key) : `[${JSON.stringify(key)}]`;
    }
  }
  return out;
}
