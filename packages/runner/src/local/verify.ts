import { mkdir, readdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { artifactFolderProblem, type FolderProblem } from '@tunepipe/core';

/**
 * Checking a finished folder reads every byte of it (a 16 GB model: about a minute at
 * 300 MB/s), and the local runner checks each folder it trusts: a cached stage's own, and each
 * input before a stage reads it. So a full check leaves a record of what it read (path, size,
 * modification time and inode of every file); while the folder still looks exactly so, later
 * checks trust it without reading it again. Anything written through the file system changes
 * that record (a truncation, an overwrite, a partial copy, a deleted or added file); what it
 * cannot see is bytes changed under the file system, which a full check (deleting the record)
 * still catches.
 */
export const VERIFIED_FILE = 'verified.json';

type Snapshot = Record<string, readonly [size: number, mtimeMs: number, ino: number]>;

async function snapshot(dir: string, prefix = '', into: Snapshot = {}): Promise<Snapshot> {
  for (const entry of await readdir(prefix ? join(dir, prefix) : dir, { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) await snapshot(dir, rel, into);
    else if (entry.isFile()) {
      const info = await stat(join(dir, rel));
      into[rel] = [info.size, info.mtimeMs, info.ino];
    }
  }
  return into;
}

const same = (a: Snapshot, b: Snapshot) => JSON.stringify(a) === JSON.stringify(b);

/**
 * Why `dir` is not the complete artifact folder of `hash`, or undefined when it is; `record` is
 * where the last full check's snapshot lives (the stage's run folder). A failed record write is
 * ignored: it only saves time.
 */
export async function verifyArtifactFolder(dir: string, hash: string, record: string): Promise<FolderProblem | undefined> {
  const before = await snapshot(dir).catch(() => undefined);
  if (before) {
    const saved = await readFile(record, 'utf8').then((t) => JSON.parse(t) as { dir?: string; hash?: string; files?: Snapshot }).catch(() => undefined);
    if (saved?.dir === dir && saved.hash === hash && saved.files && same(saved.files, before)) return undefined;
  }
  const problem = await artifactFolderProblem(dir, hash);
  if (problem || !before) return problem;
  // Unchanged while it was read: what was read is what the record describes.
  const after = await snapshot(dir).catch(() => undefined);
  if (after && same(before, after)) {
    const tmp = `${record}.${process.pid}.tmp`;
    await mkdir(dirname(record), { recursive: true })
      .then(() => writeFile(tmp, `${JSON.stringify({ dir, hash, files: after })}\n`))
      .then(() => rename(tmp, record))
      .catch(() => undefined);
  }
  return undefined;
}
