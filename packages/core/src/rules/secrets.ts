import type { Issue } from '../issues.ts';

/**
 * Secret-shaped values: credentials recognised by what they look like, not by the name of the key
 * that holds them, so a token pasted into a template variable, an env value, a vLLM flag or a
 * LLaMA-Factory key is found on every route into an object.
 *
 * False positives stop a compile, so each shape is narrow: a distinctive prefix, a length, and for
 * prefixes that ordinary names could carry (`sk-`) a mix of character classes that lower-case
 * Kubernetes names, hex digests (sha256, git SHAs) and identifiers do not have. Standard base64
 * (the gzip payloads of dataset ConfigMaps) has no `_`, `-` or `.`, which the prefixed shapes need,
 * and the bare 40-character AWS secret shape is only looked for next to an AWS access key id.
 */

export type SecretKind =
  | 'private-key'
  | 'huggingface-token'
  | 'openai-key'
  | 'github-token'
  | 'slack-token'
  | 'aws-access-key-id'
  | 'aws-secret-access-key'
  | 'google-api-key'
  | 'stripe-key'
  | 'jwt'
  | 'bearer-token';

interface Shape {
  readonly kind: SecretKind;
  /** Global, so every occurrence can be redacted. */
  readonly pattern: RegExp;
  /** Extra test on the matched text (character-class mix). */
  readonly accept?: (match: string) => boolean;
}

const hasUpper = (s: string) => /[A-Z]/.test(s);
const hasLower = (s: string) => /[a-z]/.test(s);
const hasDigit = (s: string) => /[0-9]/.test(s);
/** Mixed case: generated tokens have it, lower-case names and hex digests do not. */
const mixedCase = (s: string) => hasUpper(s) && hasLower(s);

/** Not preceded or followed by a character that would make the match the middle of a longer word. */
const START = '(?<![A-Za-z0-9_])';
const END = '(?![A-Za-z0-9_])';
/** For shapes made only of base64 characters: not inside a longer run of base64 either. */
const B64_START = '(?<![A-Za-z0-9_+/-])';

const SHAPES: readonly Shape[] = [
  // The whole block when it is there, so redaction removes the key material too.
  { kind: 'private-key', pattern: /-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----(?:[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----)?/g },
  // Hugging Face user access tokens: hf_ and 34 letters and digits.
  { kind: 'huggingface-token', pattern: new RegExp(`${START}hf_[A-Za-z0-9]{30,}${END}`, 'g'), accept: (m) => mixedCase(m.slice(3)) },
  // OpenAI (sk-…, sk-proj-…) and Anthropic (sk-ant-…) keys.
  { kind: 'openai-key', pattern: new RegExp(`${START}sk-[A-Za-z0-9_-]{20,}${END}`, 'g'), accept: (m) => mixedCase(m) && hasDigit(m) },
  { kind: 'github-token', pattern: new RegExp(`${START}(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{50,})${END}`, 'g') },
  { kind: 'slack-token', pattern: new RegExp(`${START}xox[abposr]-[A-Za-z0-9]+-[A-Za-z0-9-]{8,}${END}`, 'g') },
  { kind: 'aws-access-key-id', pattern: /(?<![A-Za-z0-9+/])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9+/])/g },
  { kind: 'google-api-key', pattern: new RegExp(`${B64_START}AIza[A-Za-z0-9_-]{35}${END}`, 'g') },
  { kind: 'stripe-key', pattern: new RegExp(`${START}(?:sk|rk)_live_[A-Za-z0-9]{20,}${END}`, 'g') },
  // header.payload.signature, the first two base64url JSON objects ('{"' encodes as eyJ).
  { kind: 'jwt', pattern: new RegExp(`${START}eyJ[A-Za-z0-9_-]{8,}\\.eyJ[A-Za-z0-9_-]{8,}\\.[A-Za-z0-9_-]{10,}${END}`, 'g') },
  // The token only, so the redacted text still reads "Bearer <redacted:bearer-token>". A shell
  // variable (`Bearer $KEY`, `Bearer ${KEY}`) is not a literal and does not match.
  { kind: 'bearer-token', pattern: /(?<=\bBearer\s+)[A-Za-z0-9._~+/-]{20,}=*/g, accept: (m) => hasDigit(m) && (hasUpper(m) || hasLower(m)) },
];

/** 40 characters of base64 with both cases and a digit: an AWS secret access key's shape. */
const AWS_SECRET = /(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{40}(?![A-Za-z0-9+/=])/g;
/** An AWS secret written as an assignment (`aws_secret_access_key = …`, `AWS_SECRET_ACCESS_KEY: …`). */
const AWS_SECRET_ASSIGNED = /(?<=aws_?secret_?access_?key["']?\s*[:=]\s*["']?)[A-Za-z0-9+/]{40}(?![A-Za-z0-9+/=])/gi;
const AWS_KEY_ID = SHAPES.find((s) => s.kind === 'aws-access-key-id')!.pattern;

const awsSecretAccepted = (m: string) => mixedCase(m) && hasDigit(m);

interface Match {
  readonly kind: SecretKind;
  readonly start: number;
  readonly end: number;
}

function matches(text: string): Match[] {
  const found: Match[] = [];
  const collect = (kind: SecretKind, pattern: RegExp, accept?: (m: string) => boolean) => {
    pattern.lastIndex = 0;
    for (const m of text.matchAll(pattern)) {
      if (!accept || accept(m[0])) found.push({ kind, start: m.index, end: m.index + m[0].length });
    }
  };
  for (const shape of SHAPES) collect(shape.kind, shape.pattern, shape.accept);
  collect('aws-secret-access-key', AWS_SECRET_ASSIGNED, awsSecretAccepted);
  // The bare shape is also how ordinary base64 looks, so only next to an access key id.
  AWS_KEY_ID.lastIndex = 0;
  if (AWS_KEY_ID.test(text)) collect('aws-secret-access-key', AWS_SECRET, awsSecretAccepted);
  // Overlaps (a JWT inside a Bearer header, a PEM block) keep the earliest, then the longest.
  found.sort((a, b) => a.start - b.start || b.end - a.end);
  const kept: Match[] = [];
  for (const m of found) if (kept.length === 0 || m.start >= kept[kept.length - 1]!.end) kept.push(m);
  return kept;
}

/** The kind of the first secret-shaped value in `value`, if any. */
export function secretShape(value: string): SecretKind | undefined {
  return matches(value)[0]?.kind;
}

/** `text` with every secret-shaped value replaced by `<redacted:kind>`. */
export function redactSecrets(text: string): string {
  const found = matches(text);
  if (found.length === 0) return text;
  let out = '';
  let at = 0;
  for (const m of found) {
    out += `${text.slice(at, m.start)}<redacted:${m.kind}>`;
    at = m.end;
  }
  return out + text.slice(at);
}

export interface SecretScanOptions {
  /** Paths not to descend into or report (e.g. a field that is known to hold a SecretRef name). */
  readonly skip?: (path: string) => boolean;
}

const MESSAGE: Record<SecretKind, string> = {
  'private-key': 'a private key',
  'huggingface-token': 'a Hugging Face access token',
  'openai-key': 'an OpenAI/Anthropic-style API key',
  'github-token': 'a GitHub token',
  'slack-token': 'a Slack token',
  'aws-access-key-id': 'an AWS access key id',
  'aws-secret-access-key': 'an AWS secret access key',
  'google-api-key': 'a Google API key',
  'stripe-key': 'a Stripe live key',
  jwt: 'a JSON Web Token',
  'bearer-token': 'a bearer token',
};

/**
 * Every string under `value` (objects and arrays walked, paths `a.b[0].c`) that holds a
 * secret-shaped value, as `secret.literal` errors. The secret itself is never repeated: the value
 * is `<redacted>` and the message names only its kind.
 */
export function scanForSecrets(value: unknown, path: string, options: SecretScanOptions = {}): Issue[] {
  const issues: Issue[] = [];
  const seen = new Set<object>();
  const walk = (node: unknown, at: string): void => {
    if (options.skip?.(at)) return;
    if (typeof node === 'string') {
      const kinds = [...new Set(matches(node).map((m) => m.kind))];
      if (kinds.length > 0) {
        issues.push({
          code: 'secret.literal',
          path: at,
          value: '<redacted>',
          message: `holds ${kinds.map((k) => MESSAGE[k]).join(' and ')} written as a literal; it would end up in ConfigMaps, manifests in Git and Pulumi state`,
          fix: 'revoke it, and pass it from a Kubernetes Secret instead (a SecretRef: { secretName, key })',
        });
      }
      return;
    }
    if (node === null || typeof node !== 'object' || seen.has(node)) return;
    seen.add(node);
    if (Array.isArray(node)) {
      node.forEach((item, i) => walk(item, `${at}[${i}]`));
      return;
    }
    for (const [key, child] of Object.entries(node)) walk(child, at === '' ? key : `${at}.${key}`);
  };
  walk(value, path);
  return issues;
}

/** `value` with secret-shaped strings redacted; the same object (or array) when nothing changed. */
function redactDeep(value: unknown, seen = new WeakMap<object, unknown>()): unknown {
  if (typeof value === 'string') return redactSecrets(value);
  if (value === null || typeof value !== 'object') return value;
  if (seen.has(value)) return seen.get(value);
  // A cycle resolves to the original until the copy is known to differ; issue values are small trees.
  seen.set(value, value);
  let changed = false;
  if (Array.isArray(value)) {
    const out = value.map((item) => {
      const r = redactDeep(item, seen);
      if (r !== item) changed = true;
      return r;
    });
    const result = changed ? out : value;
    seen.set(value, result);
    return result;
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    const r = redactDeep(v, seen);
    if (r !== v) changed = true;
    out[k] = r;
  }
  const result = changed ? out : value;
  seen.set(value, result);
  return result;
}

/**
 * The issue with secret-shaped text in its message, value (deeply) and fix replaced by
 * `<redacted:kind>`: applied to every issue before it is shown, so no message prints a secret,
 * whichever rule produced it. Returns the same object when there is nothing to redact.
 */
export function redactIssue(issue: Issue): Issue {
  const message = redactSecrets(issue.message);
  const fix = issue.fix === undefined ? undefined : redactSecrets(issue.fix);
  const path = redactSecrets(issue.path);
  const value = redactDeep(issue.value);
  if (message === issue.message && fix === issue.fix && path === issue.path && value === issue.value) return issue;
  return { ...issue, path, message, ...(fix === undefined ? {} : { fix }), ...(issue.value === undefined ? {} : { value }) };
}
