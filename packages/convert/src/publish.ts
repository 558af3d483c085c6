import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

import { COMPLETION_MARKER } from '@tunepipe/core';

export { COMPLETION_MARKER };
export const SHA256SUMS = 'SHA256SUMS';

export interface CompletionMarker {
  readonly stage: string;
  readonly hash: string;
  /** Number of files listed in SHA256SUMS. */
  readonly files: number;
}

/** A fresh sibling work folder `<outDir>.partial-<random>` (same filesystem, so the final rename is atomic). */
export async function createPartialDir(outDir: string): Promise<string> {
  const partial = `${outDir}.partial-${randomBytes(6).toString('hex')}`;
  await mkdir(dirname(outDir), { recursive: true });
  await mkdir(partial);
  return partial;
}

/**
 * Moves a finished work folder into place. An existing `outDir` without a completion marker is a
 * leftover of an interrupted run and is replaced; one with a marker is never overwritten.
 */
export async function publishDirectory(partialDir: string, outDir: string): Promise<void> {
  if (await readCompletionMarker(outDir)) {
    throw new Error(`refusing to replace ${outDir}: it is complete (${COMPLETION_MARKER} exists); remove it to re-run`);
  }
  await rm(outDir, { recursive: true, force: true });
  await rename(partialDir, outDir);
}

async function listFiles(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(join(dir, prefix), { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) out.push(...(await listFiles(dir, rel)));
    else if (entry.isFile()) out.push(rel);
  }
  return out;
}

async function sha256Of(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Byte-wise order, as `LC_ALL=C sort` gives, so the file matches what the in-pod wrapper writes. */
const byteOrder = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b));

/**
 * Writes `SHA256SUMS` (sha256sum format: `<hex>  <path>`) over every file in `dir` except itself
 * and the marker; digests already known (`known`, by relative path) are not recomputed.
 * Returns the number of files listed.
 */
export async function writeSha256Sums(dir: string, known: ReadonlyMap<string, string> = new Map()): Promise<number> {
  const files = (await listFiles(dir)).filter((f) => f !== SHA256SUMS && !f.startsWith(COMPLETION_MARKER) && !f.startsWith(`${SHA256SUMS}.`)).sort(byteOrder);
  const lines: string[] = [];
  for (const f of files) lines.push(`${known.get(f) ?? (await sha256Of(join(dir, f)))}  ${f}`);
  await writeFile(join(dir, `${SHA256SUMS}.tmp`), lines.length ? `${lines.join('\n')}\n` : '');
  await rename(join(dir, `${SHA256SUMS}.tmp`), join(dir, SHA256SUMS));
  return files.length;
}

/** Writes the completion marker last, via a temporary name, so it never exists half-written. */
export async function writeCompletionMarker(dir: string, marker: CompletionMarker): Promise<void> {
  await writeFile(join(dir, `${COMPLETION_MARKER}.tmp`), `${JSON.stringify({ stage: marker.stage, hash: marker.hash, files: marker.files })}\n`);
  await rename(join(dir, `${COMPLETION_MARKER}.tmp`), join(dir, COMPLETION_MARKER));
}

export async function readCompletionMarker(dir: string): Promise<CompletionMarker | undefined> {
  try {
    const value: unknown = JSON.parse(await readFile(join(dir, COMPLETION_MARKER), 'utf8'));
    if (value && typeof value === 'object' && typeof (value as CompletionMarker).stage === 'string' && typeof (value as CompletionMarker).hash === 'string') {
      return value as CompletionMarker;
    }
    return undefined;
  } catch {
    return undefined;
  }
}

/**
 * The whole publication: rename the work folder into place, then SHA256SUMS, then the marker.
 * A crash at any point leaves either no `outDir` or one without a marker (re-run replaces it).
 */
export async function publishStage(partialDir: string, outDir: string, stage: { stage: string; hash: string }, known?: ReadonlyMap<string, string>): Promise<CompletionMarker> {
  await publishDirectory(partialDir, outDir);
  const files = await writeSha256Sums(outDir, known);
  const marker = { stage: stage.stage, hash: stage.hash, files };
  await writeCompletionMarker(outDir, marker);
  return marker;
}
