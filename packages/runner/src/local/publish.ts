import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, join, relative } from 'node:path';

/** The completion marker's content, as the in-pod wrapper writes it. */
export interface CompletionMarker {
  readonly stage: string;
  readonly hash: string;
  readonly files: number;
}

async function listFiles(dir: string, root = dir): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await listFiles(path, root)));
    else if (entry.isFile()) out.push(relative(root, path).split('\\').join('/'));
  }
  return out;
}

function sha256File(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(path)
      .on('data', (chunk) => hash.update(chunk))
      .on('error', reject)
      .on('end', () => resolve(hash.digest('hex')));
  });
}

/** Byte order of `LC_ALL=C sort`, which the wrapper uses. */
const byteOrder = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

/**
 * Marks a finished stage folder complete the way the in-pod wrapper does: `SHA256SUMS`
 * (`<hex>  <path>` per file, C-sorted), then `.tunepipe-complete` (`{"stage","hash","files"}`),
 * each written to a temp name and renamed so a crash never leaves a half-written one.
 */
export async function writeCompletion(outDir: string, markerPath: string, stage: string, hash: string): Promise<CompletionMarker> {
  const markerName = basename(markerPath);
  const files = (await listFiles(outDir))
    .filter((f) => f !== 'SHA256SUMS' && f !== 'SHA256SUMS.tmp' && !basename(f).startsWith(markerName))
    .sort(byteOrder);
  const lines: string[] = [];
  for (const f of files) lines.push(`${await sha256File(join(outDir, f))}  ${f}`);
  await writeFile(join(outDir, 'SHA256SUMS.tmp'), lines.map((l) => `${l}\n`).join(''));
  await rename(join(outDir, 'SHA256SUMS.tmp'), join(outDir, 'SHA256SUMS'));
  const marker: CompletionMarker = { stage, hash, files: files.length };
  await writeFile(`${markerPath}.tmp`, `${JSON.stringify(marker)}\n`);
  await rename(`${markerPath}.tmp`, markerPath);
  return marker;
}

/** The marker if it exists and names this hash; `undefined` otherwise. */
export async function readCompletion(markerPath: string, hash: string): Promise<CompletionMarker | undefined> {
  try {
    const marker = JSON.parse(await readFile(markerPath, 'utf8')) as Partial<CompletionMarker>;
    return marker.hash === hash && typeof marker.stage === 'string' ? (marker as CompletionMarker) : undefined;
  } catch {
    return undefined;
  }
}

/** Replaces `outDir` with the finished `workDir` (rename mode). */
export async function promote(workDir: string, outDir: string): Promise<void> {
  await rm(outDir, { recursive: true, force: true });
  await rename(workDir, outDir);
}
