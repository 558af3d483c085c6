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
  /**
   * The artifact folders of the stages this one reads, one per line. The wrapper checks each
   * against its SHA256SUMS before the tool starts; a folder is named by its stage's hash.
   */
  inputs: 'TUNEPIPE_INPUTS',
  /**
   * Seconds a checkpoint must stay unchanged before the wrapper seals it without other proof
   * that the trainer moved on (default 30; tests shorten it). Never set by the compiler.
   */
  sealSeconds: 'TUNEPIPE_SEAL_SECONDS',
} as const;

/** Exit code of a failed evaluation gate: the Job fails at once instead of retrying the GPU work. */
export const GATE_FAILED_EXIT_CODE = 3;

/**
 * Exit code of a stage whose input folder does not match its SHA256SUMS (or lost its marker):
 * the Job fails at once, since a retry would read the same bytes.
 */
export const INPUT_CORRUPT_EXIT_CODE = 4;

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
  const tmp = `${SHA256SUMS}${TMP_SUFFIX}`;
  return [
    `${shellFindListed()} | LC_ALL=C sort | sed 's|^\\./||' |`,
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

/** A `find` that lists, from inside a folder, exactly the files `listedInSums` keeps. */
export function shellFindListed(): string {
  return `find . -type f ${PROTOCOL_FILES.map((f) => `! -path ${shellQuote(`./${f}`)}`).join(' ')}`;
}

/**
 * Shell defining two functions; both return 1 with the reason, naming the file, in `$tp_why`.
 * - `tp_check_sums <dir> <full|names>`: every file SHA256SUMS lists is there (`full`: with that
 *   digest) and the folder holds no other file the protocol would list; sets `$tp_listed`.
 * - `tp_check_folder <dir> <full|names> <hash>`: also the marker is there, for `<hash>`, and
 *   counts the files SHA256SUMS lists.
 * Lines are split as sumsLine writes them, never through `sha256sum -c`, which reads some names
 * as options or escapes; no failure depends on `set -e`, so callers may test them in `if`.
 */
export function shellCheckFunctions(): string {
  return `tp_nl='
'
tp_check_sums() {
  tp_why=""
  tp_listed=0
  if [ ! -f "$1/${SHA256SUMS}" ]; then tp_why="it has no ${SHA256SUMS}"; return 1; fi
  while IFS= read -r tp_line || [ -n "$tp_line" ]; do
    tp_sum=\${tp_line%%"  "*}
    tp_file=\${tp_line#*"  "}
    case $tp_sum in ''|*[!0-9a-f]*) tp_why="${SHA256SUMS} line $((tp_listed + 1)) is malformed"; return 1 ;; esac
    if [ "\${#tp_sum}" -ne 64 ] || [ "$tp_file" = "$tp_line" ] || [ -z "$tp_file" ]; then tp_why="${SHA256SUMS} line $((tp_listed + 1)) is malformed"; return 1; fi
    tp_listed=$((tp_listed + 1))
    if [ ! -f "$1/$tp_file" ]; then tp_why="$tp_file is missing"; return 1; fi
    if [ "$2" = full ]; then
      if ! tp_got=$(sha256sum < "$1/$tp_file"); then tp_why="$tp_file cannot be read"; return 1; fi
      if [ "\${tp_got%% *}" != "$tp_sum" ]; then tp_why="$tp_file does not match its ${SHA256SUMS} entry"; return 1; fi
    fi
  done < "$1/${SHA256SUMS}"
  if ! tp_present=$(cd "$1" && ${shellFindListed()} | wc -l); then tp_why="its files cannot be listed"; return 1; fi
  tp_present=$((tp_present))
  if [ "$tp_present" -ne "$tp_listed" ]; then
    tp_extra=$(cd "$1" && ${shellFindListed()} | sed 's|^\\./||' | while IFS= read -r tp_f; do
      tp_known=""
      while IFS= read -r tp_line; do if [ "\${tp_line#*"  "}" = "$tp_f" ]; then tp_known=1; break; fi; done < ${SHA256SUMS}
      if [ -z "$tp_known" ]; then printf '%s' "$tp_f"; break; fi
    done)
    tp_why="\${tp_extra:-a file} is not listed in ${SHA256SUMS} (it holds $tp_present files, ${SHA256SUMS} lists $tp_listed)"
    return 1
  fi
}
tp_check_folder() {
  tp_why=""
  if [ ! -f "$1/${COMPLETION_MARKER}" ]; then tp_why="it has no completion marker (${COMPLETION_MARKER})"; return 1; fi
  if ! tp_marker=$(cat "$1/${COMPLETION_MARKER}"); then tp_why="its completion marker cannot be read"; return 1; fi
  case $tp_marker in *'"hash":"'"$3"'"'*) ;; *) tp_why="its completion marker is not for hash $3"; return 1 ;; esac
  tp_check_sums "$1" "$2" || return 1
  case $tp_marker in *'"files":'"$tp_listed"'}'*) ;; *) tp_why="${SHA256SUMS} lists $tp_listed files, its completion marker another count"; return 1 ;; esac
}`;
}

/**
 * Shell: checks every folder in `$TUNEPIPE_INPUTS` (one per line) completely, digests
 * included, and exits with INPUT_CORRUPT_EXIT_CODE naming the folder and the file when one does
 * not match. Needs shellCheckFunctions.
 */
export function shellVerifyInputs(): string {
  return `tp_inputs="\${${STAGE_ENV.inputs}:-}"
while [ -n "$tp_inputs" ]; do
  tp_in=\${tp_inputs%%"$tp_nl"*}
  if [ "$tp_in" = "$tp_inputs" ]; then tp_inputs=""; else tp_inputs=\${tp_inputs#*"$tp_nl"}; fi
  tp_in=\${tp_in%/}
  [ -n "$tp_in" ] || continue
  if tp_check_folder "$tp_in" full "\${tp_in##*/}"; then
    echo "tunepipe: input $tp_in verified ($tp_listed files)"
  else
    echo "tunepipe: input $tp_in is corrupt: $tp_why. Retrying cannot fix this: run the stage that wrote it again (tunepipe run <pipeline> --force <that stage>)" >&2
    exit ${INPUT_CORRUPT_EXIT_CODE}
  fi
done`;
}
