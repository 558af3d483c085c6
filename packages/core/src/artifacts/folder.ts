import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { COMPLETION_MARKER, formatMarker, listedInSums, parseMarker, parseSumsLine, SHA256SUMS, sumsLine, TMP_SUFFIX, type CompletionMarker } from './protocol.ts';

/** What the marker says a folder is: the stage that wrote it and that stage's hash. */
export interface StageIdentity {
  readonly stage: string;
  readonly hash: string;
}

/** Digests already known by relative path (a tool that hashed its output while writing it). */
export type KnownDigests = ReadonlyMap<string, string>;

/** Regular files under `dir`, relative and `/`-separated; symlinks are skipped as `find -type f` does. */
async function listFiles(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(prefix ? join(dir, prefix) : dir, { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) out.push(...(await listFiles(dir, rel)));
    else if (entry.isFile()) out.push(rel);
  }
  return out;
}

/** sha256 of a file, streamed (model shards are gigabytes). */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Byte order of UTF-8 paths, as `LC_ALL=C sort` gives. */
const byteOrder = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b));

async function writeViaTmp(dir: string, name: string, content: string): Promise<void> {
  await writeFile(join(dir, `${name}${TMP_SUFFIX}`), content);
  await rename(join(dir, `${name}${TMP_SUFFIX}`), join(dir, name));
}

/** Writes `SHA256SUMS` over every file of `dir` the protocol lists; returns how many it lists. */
export async function writeSha256Sums(dir: string, known: KnownDigests = new Map()): Promise<number> {
  const files = (await listFiles(dir)).filter(listedInSums).sort(byteOrder);
  let text = '';
  for (const f of files) text += sumsLine(known.get(f) ?? (await sha256File(join(dir, f))), f);
  await writeViaTmp(dir, SHA256SUMS, text);
  return files.length;
}

export async function writeCompletionMarker(dir: string, marker: CompletionMarker): Promise<void> {
  await writeViaTmp(dir, COMPLETION_MARKER, formatMarker(marker));
}

/**
 * The files of `dir` that differ from its SHA256SUMS or are missing (none: the folder is intact);
 * undefined when it has no SHA256SUMS.
 */
export async function verifySha256Sums(dir: string): Promise<string[] | undefined> {
  let text: string;
  try {
    text = await readFile(join(dir, SHA256SUMS), 'utf8');
  } catch {
    return undefined;
  }
  const bad: string[] = [];
  for (const line of text.split('\n')) {
    const entry = parseSumsLine(line);
    if (entry && (await sha256File(join(dir, entry.path)).catch(() => 'missing')) !== entry.sha256) bad.push(entry.path);
  }
  return bad;
}

/** Why a folder is not what its SHA256SUMS (and marker) say; `file` names the file when one is to blame. */
export interface FolderProblem {
  readonly file?: string;
  readonly problem: string;
}

/**
 * Checks `dir` against its SHA256SUMS: every listed file is there (with its digest when
 * `contents`), and no other file the protocol would list is. Undefined: the folder is intact.
 * Listing is cheap; `contents` reads every byte (a 16 GB model takes about a minute at 300 MB/s).
 */
export async function sumsProblem(dir: string, options: { readonly contents?: boolean } = {}): Promise<FolderProblem | undefined> {
  let text: string;
  try {
    text = await readFile(join(dir, SHA256SUMS), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { problem: `it has no ${SHA256SUMS}` };
    throw error;
  }
  const listed = new Set<string>();
  const lines = text.split('\n');
  if (lines.at(-1) === '') lines.pop();
  for (const [i, line] of lines.entries()) {
    const entry = parseSumsLine(line);
    if (!entry) return { problem: `${SHA256SUMS} line ${i + 1} is malformed` };
    listed.add(entry.path);
  }
  const present = (await listFiles(dir)).filter(listedInSums);
  const unlisted = present.filter((f) => !listed.has(f)).sort(byteOrder);
  const have = new Set(present);
  for (const path of listed) if (!have.has(path)) return { file: path, problem: 'is missing' };
  if (unlisted.length > 0) return { file: unlisted[0]!, problem: `is not listed in ${SHA256SUMS} (${unlisted.length} such file${unlisted.length === 1 ? '' : 's'})` };
  if (options.contents !== false) {
    const bad = await verifySha256Sums(dir);
    if (bad && bad.length > 0) return { file: bad[0]!, problem: `does not match its ${SHA256SUMS} entry${bad.length > 1 ? ` (nor do ${bad.length - 1} more)` : ''}` };
  }
  return undefined;
}

/**
 * Why `dir` is not a finished artifact folder for `hash` (no marker, another hash's, files that
 * differ from SHA256SUMS), or undefined when it is one.
 */
export async function artifactFolderProblem(dir: string, hash: string, options: { readonly contents?: boolean } = {}): Promise<FolderProblem | undefined> {
  let text: string;
  try {
    text = await readFile(join(dir, COMPLETION_MARKER), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { problem: `it has no completion marker (${COMPLETION_MARKER})` };
    throw error;
  }
  const marker = parseMarker(text);
  if (!marker) return { file: COMPLETION_MARKER, problem: 'is not a completion marker' };
  if (marker.hash !== hash) return { file: COMPLETION_MARKER, problem: `is for hash ${marker.hash}, not ${hash}` };
  const problem = await sumsProblem(dir, options);
  if (problem) return problem;
  const lines = (await readFile(join(dir, SHA256SUMS), 'utf8')).split('\n').filter((l) => parseSumsLine(l)).length;
  if (lines !== marker.files) return { file: SHA256SUMS, problem: `lists ${lines} files, the completion marker ${marker.files}` };
  return undefined;
}

/**
 * The marker of `dir` if it has a valid one (and, when `hash` is given, one for that hash): the
 * folder is then a finished result.
 */
export async function readCompletionMarker(dir: string, hash?: string): Promise<CompletionMarker | undefined> {
  let text: string;
  try {
    text = await readFile(join(dir, COMPLETION_MARKER), 'utf8');
  } catch {
    return undefined;
  }
  const marker = parseMarker(text);
  return marker && (hash === undefined || marker.hash === hash) ? marker : undefined;
}

/** Marks a folder whose files are final complete: SHA256SUMS, then the marker (in-place mode). */
export async function completeFolder(dir: string, identity: StageIdentity, known?: KnownDigests): Promise<CompletionMarker> {
  const files = await writeSha256Sums(dir, known);
  const marker: CompletionMarker = { stage: identity.stage, hash: identity.hash, files };
  await writeCompletionMarker(dir, marker);
  return marker;
}

/**
 * Rename-mode publication, as the wrapper does it: whatever is at `outDir` is replaced by
 * `workDir`, then SHA256SUMS and the marker are written. A crash at any point leaves no `outDir`
 * or one without a marker, which the next run replaces.
 */
export async function publishFolder(workDir: string, outDir: string, identity: StageIdentity, known?: KnownDigests): Promise<CompletionMarker> {
  await rm(outDir, { recursive: true, force: true });
  await rename(workDir, outDir);
  return completeFolder(outDir, identity, known);
}
