import { z } from 'zod';
import { didYouMean, issuePath, valueAtPath, type Issue } from './issues.ts';

// The one place zod's errors become Issues. Messages are written from zod's structured fields
// (expected, values, keys, minimum, …), never from zod's English text, so they read like every
// other Issue and survive a zod upgrade or locale change.

type ZodIssue = z.core.$ZodIssue;

/** What a `fix` callback gets to decide on: zod's issue, where it is and what the adapter made of it. */
export interface ZodIssueContext {
  /** zod's issue; `path` is relative to the parsed value. */
  readonly zod: ZodIssue;
  /** The issue's path inside the parsed value (for an unknown key, the key included). */
  readonly path: readonly PropertyKey[];
  /** The rule part of the code: `type`, `missing`, `unknown-key`, `choice`, `range`, … */
  readonly rule: string;
  /** The value at `path` in `root`, when `root` was given. */
  readonly value: unknown;
  /** The fix the adapter would give on its own ("did you mean …", a custom issue's `params.fix`). */
  readonly suggestion: string | undefined;
}

export interface ZodIssueOptions {
  /**
   * Leading part of every code, one or more dot-separated kebab-case words: `dataset` gives
   * `dataset.type`, `dataset.unknown-key`, …; `convert.config` gives `convert.config.range`.
   */
  readonly area: string;
  /** The value that was parsed: issues then show the offending value, and a missing key reads as `missing`. */
  readonly root?: unknown;
  /** The schema that was parsed: an unknown key then gets "did you mean" from the keys the schema accepts there. */
  readonly schema?: z.core.$ZodType;
  /**
   * Where the parsed value came from, written before the path with a space between:
   * `tunepipe.json` gives `tunepipe.json gates[0].metric`; at the root the path is the prefix alone.
   */
  readonly pathPrefix?: string;
  /** Writes the whole issue path instead (e.g. with a line number); gets zod's path, unknown key included. */
  readonly formatPath?: (path: readonly PropertyKey[]) => string;
  /**
   * What to do about it. A string is used when the adapter has no fix of its own; a function has
   * the last word (return `context.suggestion` to keep the adapter's, undefined for none).
   */
  readonly fix?: string | ((context: ZodIssueContext) => string | undefined);
}

/**
 * The `params` a schema author may put on a custom issue (`refine`, `superRefine`, `z.custom`):
 * `rule` becomes the code's rule (`<area>.<rule>`), `fix` the issue's fix.
 */
export interface ZodIssueParams {
  readonly rule?: string;
  readonly fix?: string;
}

// What zod writes when no schema author gave a message. `zodParse` passes a parse-time error map
// returning it, which zod consults only after every author-set message, so any other text is the
// author's own.
const ZOD_DEFAULT = '\u0000tunepipe:zod-default';
const markDefaults: z.core.ParseContext<z.core.$ZodIssue> = { error: () => ZOD_DEFAULT };

/**
 * Parses `input` with `schema`, returning the value or every problem as Issues. Prefer this to
 * `safeParse` + `zodIssues`: only here can messages the schema author set on built-in checks
 * (`.min(1, { error: 'list at least one file' })`) be told apart from zod's defaults and kept.
 */
export function zodParse<S extends z.core.$ZodType>(
  schema: S,
  input: unknown,
  options: ZodIssueOptions,
): { readonly ok: true; readonly value: z.core.output<S> } | { readonly ok: false; readonly issues: Issue[] } {
  const parsed = z.safeParse(schema, input, markDefaults);
  if (parsed.success) return { ok: true, value: parsed.data };
  return { ok: false, issues: convert(parsed.error.issues, { root: input, schema, ...options }, true) };
}

/**
 * Turns a ZodError into Issues: code `<area>.<rule>`, the path as `a.b[0].c`, the value found
 * there, a message from zod's structured fields and a fix. An error from a plain `safeParse`
 * keeps author-set messages of custom issues only; use `zodParse` to keep the others too.
 */
export function zodIssues(error: z.core.$ZodError, options: ZodIssueOptions): Issue[] {
  return convert(error.issues, options, false);
}

function convert(issues: readonly ZodIssue[], options: ZodIssueOptions, marked: boolean): Issue[] {
  return issues.flatMap((issue) => adapt(issue, [], options, marked));
}

function adapt(issue: ZodIssue, base: readonly PropertyKey[], options: ZodIssueOptions, marked: boolean): Issue[] {
  const path = [...base, ...issue.path];
  const authored = issue.message !== ZOD_DEFAULT && (marked || issue.code === 'custom') ? issue.message : undefined;
  const make = (at: readonly PropertyKey[], rule: string, message: string, suggestion?: string): Issue => {
    // For a bad record key the offending value is the key itself, not what it maps to.
    const value = issue.code === 'invalid_key' && issue.origin === 'record' ? at[at.length - 1] : options.root === undefined ? undefined : valueAtPath(options.root, at);
    const context: ZodIssueContext = { zod: issue, path: at, rule, value, suggestion };
    const fix = typeof options.fix === 'function' ? options.fix(context) : (suggestion ?? options.fix);
    return {
      path: locate(at, options),
      message: authored ?? message,
      ...(value === undefined ? {} : { value }),
      ...(fix === undefined ? {} : { fix }),
      code: `${options.area}.${rule}`,
    };
  };
  const at = (p: readonly PropertyKey[]) => (options.root === undefined ? undefined : valueAtPath(options.root, p));

  switch (issue.code) {
    case 'invalid_type': {
      const value = at(path);
      const absent = options.root !== undefined && value === undefined && !hasKey(options.root, path);
      if (absent) return [make(path, 'missing', `is required (${describeType(issue.expected)})`)];
      const got = options.root === undefined ? undefined : typeName(value);
      return [make(path, 'type', `must be ${describeType(issue.expected)}${got ? `, not ${got}` : ''}`)];
    }
    case 'invalid_value': {
      const value = at(path);
      const choices = issue.values.map(String);
      const message = issue.values.length === 1 ? `must be ${literal(issue.values[0])}` : `must be one of ${issue.values.map(literal).join(', ')}`;
      return [make(path, 'choice', message, typeof value === 'string' ? didYouMean(value, choices) : undefined)];
    }
    case 'unrecognized_keys': {
      const allowed = options.schema ? keysAt(options.schema, path, options.root) : [];
      return issue.keys.map((key) =>
        make([...path, key], 'unknown-key', `unknown key '${key}'`, didYouMean(key, allowed) ?? (allowed.length > 0 ? `remove it (allowed here: ${allowed.join(', ')})` : 'remove it')),
      );
    }
    case 'too_small':
    case 'too_big':
      return [make(path, 'range', describeBound(issue))];
    case 'not_multiple_of':
      return [make(path, 'range', `must be a multiple of ${issue.divisor}`)];
    case 'invalid_format':
      return [make(path, 'format', describeFormat(issue))];
    case 'invalid_union':
      return adaptUnion(issue, path, options, marked, make);
    case 'invalid_key':
      // A record key (path ends with it) or a map key that fails the key schema: report the key itself.
      return [make(path, 'key', `key is not valid: ${innerMessages(issue.issues, options, marked)}`)];
    case 'invalid_element':
      return issue.issues.flatMap((inner) => adapt(inner, path, options, marked));
    case 'custom': {
      const params = (issue.params ?? {}) as ZodIssueParams;
      return [make(path, params.rule ?? 'invalid', 'is not valid', params.fix)];
    }
    default: {
      const unknown = issue as { code?: string };
      return [make(path, 'invalid', `is not valid (${unknown.code ?? 'unknown check'})`)];
    }
  }
}

function adaptUnion(
  issue: Extract<ZodIssue, { code: 'invalid_union' }>,
  path: readonly PropertyKey[],
  options: ZodIssueOptions,
  marked: boolean,
  make: (at: readonly PropertyKey[], rule: string, message: string, suggestion?: string) => Issue,
): Issue[] {
  if (issue.inclusive === false) return [make(path, 'type', `matches more than one accepted shape (options ${issue.matches.map((m) => m + 1).join(', ')})`)];
  if (issue.discriminator !== undefined) {
    // A discriminated union's tag matched no option; zod already points the path at the tag.
    const choices = (issue.options ?? []).map(String);
    const value = options.root === undefined ? undefined : valueAtPath(options.root, path);
    const absent = value === undefined;
    return [
      make(
        path,
        absent ? 'missing' : 'choice',
        absent ? `is required (one of ${(issue.options ?? []).map(literal).join(', ')})` : `must be one of ${(issue.options ?? []).map(literal).join(', ')}`,
        typeof value === 'string' ? didYouMean(value, choices) : undefined,
      ),
    ];
  }
  // Options that got past the shape check at the union's own level failed on details: when only one
  // did, its issues are the useful ones. Otherwise the value had none of the accepted shapes.
  const deeper = issue.errors.filter((branch) => branch.length > 0 && !branch.some((b) => b.path.length === 0 && (b.code === 'invalid_type' || b.code === 'invalid_value')));
  if (deeper.length === 1) return deeper[0]!.flatMap((inner) => adapt(inner, path, options, marked));
  const expected = [...new Set(issue.errors.flatMap((branch) => branch.filter((b) => b.path.length === 0).map(shapeOf)).filter((s): s is string => s !== undefined))];
  const got = options.root === undefined ? undefined : typeName(valueAtPath(options.root, path));
  return [make(path, 'type', `must be ${expected.length > 0 ? expected.join(' or ') : 'one of the accepted shapes'}${got ? `, not ${got}` : ''}`)];
}

function shapeOf(issue: ZodIssue): string | undefined {
  if (issue.code === 'invalid_type') return describeType(issue.expected);
  if (issue.code === 'invalid_value') return issue.values.map(literal).join(' or ');
  return undefined;
}

function innerMessages(issues: readonly ZodIssue[], options: ZodIssueOptions, marked: boolean): string {
  return issues.flatMap((inner) => adapt(inner, [], { area: options.area }, marked)).map((i) => i.message).join('; ');
}

function locate(path: readonly PropertyKey[], options: ZodIssueOptions): string {
  if (options.formatPath) return options.formatPath(path);
  const written = issuePath(path);
  if (options.pathPrefix) return written ? `${options.pathPrefix} ${written}` : options.pathPrefix;
  return written || '(root)';
}

function hasKey(root: unknown, path: readonly PropertyKey[]): boolean {
  if (path.length === 0) return root !== undefined;
  const parent = valueAtPath(root, path.slice(0, -1));
  return parent !== null && typeof parent === 'object' && Object.prototype.hasOwnProperty.call(parent, path[path.length - 1]!);
}

const TYPE_NAMES: Readonly<Record<string, string>> = {
  int: 'an integer',
  array: 'a list',
  tuple: 'a list',
  object: 'an object',
  record: 'an object',
  map: 'a map',
  set: 'a set',
  date: 'a date',
  file: 'a file',
  nan: 'NaN',
  null: 'null',
  undefined: 'absent',
  void: 'absent',
  never: 'absent',
  nonoptional: 'set',
  function: 'a function',
  symbol: 'a symbol',
  bigint: 'a big integer',
};

function describeType(expected: string): string {
  return TYPE_NAMES[expected] ?? `${/^[aeiou]/.test(expected) ? 'an' : 'a'} ${expected}`;
}

/** How a value reads in "must be a string, not …". */
function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'absent';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'number') {
    if (Number.isNaN(value)) return 'NaN';
    return Number.isInteger(value) ? 'a whole number' : `a fraction (${value})`;
  }
  if (typeof value === 'string') return 'a string';
  if (typeof value === 'boolean') return `${value}`;
  if (typeof value === 'object') return 'an object';
  return `a ${typeof value}`;
}

function literal(value: unknown): string {
  return typeof value === 'string' ? `'${value}'` : typeof value === 'bigint' ? `${value}` : JSON.stringify(value) ?? String(value);
}

function describeBound(issue: Extract<ZodIssue, { code: 'too_small' | 'too_big' }>): string {
  const small = issue.code === 'too_small';
  const bound = small ? issue.minimum : issue.maximum;
  const n = Number(bound);
  const unit = (one: string, many: string) => (n === 1 ? one : many);
  switch (issue.origin) {
    case 'string':
      if (small && n === 1 && issue.inclusive !== false && !issue.exact) return 'must not be empty';
      return `must be ${issue.exact ? 'exactly' : small ? 'at least' : 'at most'} ${bound} ${unit('character', 'characters')} long`;
    case 'array':
    case 'set':
      if (small && n === 1 && issue.inclusive !== false && !issue.exact) return 'must not be empty';
      return `must have ${issue.exact ? 'exactly' : small ? 'at least' : 'at most'} ${bound} ${unit('entry', 'entries')}`;
    case 'file':
      return `must be ${small ? 'at least' : 'at most'} ${bound} ${unit('byte', 'bytes')}`;
    case 'date':
      return `must be ${small ? 'on or after' : 'on or before'} ${new Date(n).toISOString()}`;
    default:
      if (issue.exact) return `must be exactly ${bound}`;
      return `must be ${issue.inclusive === false ? (small ? 'more than' : 'less than') : small ? 'at least' : 'at most'} ${bound}`;
  }
}

function describeFormat(issue: Extract<ZodIssue, { code: 'invalid_format' }>): string {
  const detail = issue as { prefix?: string; suffix?: string; includes?: string; pattern?: string };
  switch (issue.format) {
    case 'regex':
      return `must match ${detail.pattern ?? 'the expected pattern'}`;
    case 'starts_with':
      return `must start with '${detail.prefix}'`;
    case 'ends_with':
      return `must end with '${detail.suffix}'`;
    case 'includes':
      return `must contain '${detail.includes}'`;
    default:
      return `must be a valid ${issue.format.replaceAll('_', ' ')}`;
  }
}

type Def = { type: string; [key: string]: unknown };
const defOf = (schema: unknown): Def | undefined => (schema as { _zod?: { def?: Def } } | undefined)?._zod?.def;

/** Peels wrappers (optional, default, lazy, a pipe's validating side…) down to the schema that checks shape. */
function unwrap(schema: unknown): unknown {
  for (let depth = 0; depth < 32; depth++) {
    const def = defOf(schema);
    if (!def) return schema;
    if ('innerType' in def) schema = def.innerType;
    else if (def.type === 'lazy') schema = (def.getter as () => unknown)();
    else if (def.type === 'pipe') schema = defOf(def.in)?.type === 'transform' ? def.out : def.in;
    else return schema;
  }
  return schema;
}

/** The keys the object schema at `path` accepts; for a union, the keys of the option the value's tag picks, else of all options. */
function keysAt(schema: unknown, path: readonly PropertyKey[], root: unknown): string[] {
  let at = unwrap(schema);
  let value = root;
  for (const part of [...path, undefined]) {
    const def = defOf(at);
    if (def?.type === 'union' || def?.type === 'intersection') {
      const options = def.type === 'union' ? (def.options as unknown[]) : [def.left, def.right];
      const discriminator = def.discriminator as string | undefined;
      const tag = discriminator !== undefined ? (value as Record<string, unknown> | undefined)?.[discriminator] : undefined;
      const chosen = options.filter((o) => {
        const shape = defOf(unwrap(o))?.shape as Record<string, unknown> | undefined;
        if (!shape) return false;
        if (discriminator === undefined || tag === undefined) return true;
        const values = (unwrap(shape[discriminator]) as { _zod?: { values?: Set<unknown> } } | undefined)?._zod?.values;
        return values?.has(tag) ?? true;
      });
      if (part === undefined) return [...new Set(chosen.flatMap((o) => Object.keys(defOf(unwrap(o))!.shape as object)))];
      const next = chosen.map((o) => (defOf(unwrap(o))!.shape as Record<string, unknown>)[String(part)]).find((s) => s !== undefined);
      if (next === undefined) return [];
      at = unwrap(next);
    } else if (part === undefined) {
      return def?.type === 'object' ? Object.keys(def.shape as object) : [];
    } else if (def?.type === 'object') {
      const next = (def.shape as Record<string, unknown>)[String(part)];
      if (next === undefined) return [];
      at = unwrap(next);
    } else if (def?.type === 'array' && typeof part === 'number') at = unwrap(def.element);
    else if (def?.type === 'record') at = unwrap(def.valueType);
    else if (def?.type === 'tuple' && typeof part === 'number') at = unwrap((def.items as unknown[])[part] ?? def.rest);
    else return [];
    value = value !== null && typeof value === 'object' ? (value as Record<PropertyKey, unknown>)[part] : undefined;
  }
  return [];
}
