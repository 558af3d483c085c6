import { shellQuote } from '../shell.ts';

// Pure: the stage wrapper (stage-script.ts) is generated from these definitions and the Node
// implementation (folder.ts) follows them, so a folder published by either is byte-identical.

/**
 * The artifact protocol. A stage's artifact folder is complete when it holds, written last and in
 * this order:
 * 1. `SHA256SUMS`: one line `<sha256>  <path>` per file of the folder (paths relative to it,
 *    `/`-separated, in byte order as `LC_ALL=C sort` gives), the protocol's own files left out;
 * 2. `.tunepipe-complete`: `{"stage":…,"hash":…,"files":<lines of SHA256SUMS>}` and a newline.
 * Each is written under `<name>.tmp` and renamed, so neither ever exists half-written; a folder
 * without the marker is never read as a result.
 */
export const COMPLETION_MARKER = '.tunepipe-complete';
export const SHA256SUMS = 'SHA256SUMS';
/** Suffix of the temporary name a protocol file is written under before its rename. */
export const TMP_SUFFIX = '.tmp';
/** `rename` mode: the tool writes `<out>.partial`, which becomes `<out>` once it succeeds. */
export const WORK_SUFFIX = '.partial';

/**
 * The one exclusion rule: exactly the files the protocol itself writes, at the top of the folder.
 * Every other file is listed, at any depth and whatever its name (a nested `SHA256SUMS` or a
 * `.tunepipe-complete-notes` is content like any other).
 */
export const PROTOCOL_FILES: readonly string[] = [SHA256SUMS, `${SHA256SUMS}${TMP_SUFFIX}`, COMPLETION_MARKER, `${COMPLETION_MARKER}${TMP_SUFFIX}`];

/** Whether a file (path relative to the artifact folder, `/`-separated) belongs in SHA256SUMS. */
export function listedInSums(relativePath: string): boolean {
  return !PROTOCOL_FILES.includes(relativePath);
}

export function workDirOf(outDir: string): string {
  return `${outDir}${WORK_SUFFIX}`;
}

/**
 * How a batch stage publishes its artifact folder:
 * - `rename`: the tool writes to `<out>.partial`, which is renamed to `<out>` when it succeeds, so
 *   a half-written export is never mistaken for a finished one;
 * - `in-place`: the tool writes straight to `<out>` because it must find its own earlier output
 *   there (SFT resumes from `checkpoint-N` after a preemption).
 * Either way the completion marker is written last, after the digests.
 */
export type PublishMode = 'rename' | 'in-place';

/**
 * Which part of the wrapper a container runs (env `TUNEPIPE_STEP`): `all` runs the tool and
 * publishes; a gated stage splits it into `run` (the tool, in an init container) and `publish`
 * (the gate check, then publication) so a failed gate never leaves a completion marker.
 */
export type WrapperStep = 'all' | 'run' | 'publish';

/** Environment of a stage's containers, read by the wrapper (and by `tunepipe convert`). */
export const STAGE_ENV = {
  /** The stage's name, written into the marker. */
  stage: 'TUNEPIPE_STAGE',
  /** The stage's hash, written into the marker; a marker with another hash is not this result. */
  hash: 'TUNEPIPE_HASH',
  /** A WrapperStep; unset means `all`. */
  step: 'TUNEPIPE_STEP',
  /** `1`: run even though the folder is complete (the runner's `--force`). */
  force: 'TUNEPIPE_FORCE',
} as const;

/** Exit code of a failed evaluation gate: the Job fails at once instead of retrying the GPU work. */
export const GATE_FAILED_EXIT_CODE = 3;

/** The marker's content. */
export interface CompletionMarker {
  readonly stage: string;
  readonly hash: string;
  /** Number of files listed in SHA256SUMS. */
  readonly files: number;
}

/** The marker's fields in the order they are written; `files` is a JSON number, the others strings. */
const MARKER_FIELDS = ['stage', 'hash', 'files'] as const;
type MarkerField = (typeof MARKER_FIELDS)[number];

function markerJson(value: (field: MarkerField) => string): string {
  return `{${MARKER_FIELDS.map((field) => `"${field}":${value(field)}`).join(',')}}`;
}

/** Stage names are DNS labels and hashes hex: text the shell's printf writes as JSON unchanged. */
const PLAIN_JSON_STRING = /^[A-Za-z0-9._-]*$/;

/** The marker file's bytes. */
export function formatMarker(marker: CompletionMarker): string {
  for (const field of ['stage', 'hash'] as const) {
    if (!PLAIN_JSON_STRING.test(marker[field])) throw new Error(`internal: marker ${field} ${JSON.stringify(marker[field])} is not a plain name`);
  }
  if (!Number.isInteger(marker.files) || marker.files < 0) throw new Error(`internal: marker files ${marker.files} is not a count`);
  return `${markerJson((field) => JSON.stringify(marker[field]))}\n`;
}

/** The marker in `text`, or undefined when it is not one (a partial write, another tool's file). */
export function parseMarker(text: string): CompletionMarker | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!value || typeof value !== 'object') return undefined;
  const { stage, hash, files } = value as Record<string, unknown>;
  if (typeof stage !== 'string' || typeof hash !== 'string' || typeof files !== 'number' || !Number.isInteger(files) || files < 0) return undefined;
  return { stage, hash, files };
}

/** One line of SHA256SUMS. */
export function sumsLine(sha256: string, relativePath: string): string {
  // The wrapper reads `find`'s output line by line: such a name cannot be listed by either side.
  if (relativePath.includes('\n')) throw new Error(`cannot list ${JSON.stringify(relativePath)} in ${SHA256SUMS}: file names with a line break are not supported`);
  return `${sha256}  ${relativePath}\n`;
}

/** A line of SHA256SUMS read back; undefined for anything else (a blank last line). */
export function parseSumsLine(line: string): { readonly sha256: string; readonly path: string } | undefined {
  const m = /^([0-9a-f]{64}) {2}(.+)$/.exec(line);
  return m ? { sha256: m[1]!, path: m[2]! } : undefined;
}

/**
 * Shell, run inside the artifact folder: writes SHA256SUMS as `listedInSums` and `sumsLine` define
 * it. The name is printed by the script, not by sha256sum, which escapes some names (`\`, line
 * ends) differently across coreutils versions.
 */
export function shellWriteSums(): string {
  const excluded = PROTOCOL_FILES.map((f) => `! -path ${shellQuote(`./${f}`)}`).join(' ');
  const tmp = `${SHA256SUMS}${TMP_SUFFIX}`;
  return [
    `find . -type f ${excluded} | LC_ALL=C sort | sed 's|^\\./||' |`,
    `  while IFS= read -r f; do sum=$(sha256sum < "$f"); printf '%s  %s\\n' "\${sum%% *}" "$f"; done > ${tmp}`,
    `mv ${tmp} ${SHA256SUMS}`,
  ].join('\n');
}

/**
 * Shell, run inside the artifact folder after shellWriteSums: writes the marker as formatMarker
 * does, from the stage environment and `$files` (the line count of SHA256SUMS).
 */
export function shellWriteMarker(): string {
  const values: Record<MarkerField, string> = { stage: `"\${${STAGE_ENV.stage}}"`, hash: `"\${${STAGE_ENV.hash}}"`, files: '"$files"' };
  const format = markerJson((field) => (field === 'files' ? '%s' : '"%s"'));
  const tmp = `${COMPLETION_MARKER}${TMP_SUFFIX}`;
  return [
    `files=$(wc -l < ${SHA256SUMS} | tr -d ' ')`,
    `printf '${format}\\n' ${MARKER_FIELDS.map((f) => values[f]).join(' ')} > "${tmp}"`,
    `mv "${tmp}" "${COMPLETION_MARKER}"`,
  ].join('\n');
}
