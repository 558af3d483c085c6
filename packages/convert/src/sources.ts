import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createGzip } from 'node:zlib';
import { descriptorFiles, didYouMean, parseDescriptor, SOURCE_NAME, type DatasetDescriptor } from './descriptor.ts';
import { ConvertError, type Issue } from './issues.ts';
import { canonicalJson, CONFIGMAP_BUDGET_BYTES, CONFIGMAP_MAX_RAW_BYTES } from '@tunepipe/core';

export interface LoadedFile {
  /** Path relative to `datasets/<name>/`. */
  readonly path: string;
  readonly sha256: string;
  readonly size: number;
  /** gzip (level 9) of the file, base64, when it fits the ConfigMap budget; absent otherwise and for remote files. */
  readonly gzipBase64?: string;
  /** Where the convert Job downloads a remote file (from the descriptor). */
  readonly url?: string;
}

/** A dataset source as the compiler consumes it (assignable to core's DatasetSourceInput). */
export interface LoadedSource {
  readonly name: string;
  readonly descriptor: DatasetDescriptor;
  /** sha256 of the canonical descriptor and every file's path + digest: the source's identity. */
  readonly digest: string;
  readonly files: readonly LoadedFile[];
}

export { canonicalJson } from '@tunepipe/core';

/** Remote URL of a file, if its descriptor declares one. */
export function remoteUrl(source: { readonly descriptor: DatasetDescriptor }, path: string): string | undefined {
  return descriptorFiles(source.descriptor).find((f) => f.path === path)?.url;
}

export function sourceDigest(name: string, descriptor: DatasetDescriptor, files: readonly { path: string; sha256: string }[]): string {
  return createHash('sha256')
    .update(canonicalJson({ name, descriptor, files: files.map((f) => ({ path: f.path, sha256: f.sha256 })) }))
    .digest('hex');
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** gzip of a file, base64, or undefined as soon as it cannot fit the budget (memory stays bounded by it). */
async function gzipWithinBudget(path: string, size: number): Promise<string | undefined> {
  if (size > CONFIGMAP_MAX_RAW_BYTES) return undefined;
  const maxRaw = Math.floor((CONFIGMAP_BUDGET_BYTES * 3) / 4);
  const gzip = createGzip({ level: 9 });
  const chunks: Buffer[] = [];
  let total = 0;
  let over = false;
  const done = new Promise<void>((resolve, reject) => {
    gzip.on('data', (c: Buffer) => {
      total += c.length;
      if (total > maxRaw) over = true;
      else chunks.push(c);
    });
    gzip.on('end', resolve);
    gzip.on('error', reject);
  });
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) {
    if (over) break;
    if (!gzip.write(chunk as Buffer)) await new Promise((r) => gzip.once('drain', r));
  }
  gzip.end();
  await done;
  return over ? undefined : Buffer.concat(chunks).toString('base64');
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Reads `datasets/<name>/dataset.yaml` for each name, validates it, and digests every local file
 * (sha256, size, gzip for the ConfigMap route). Remote files contribute their pinned sha256.
 * All problems of all sources are collected and thrown together as one ConvertError.
 */
export async function loadDatasetSources(repoRoot: string, names: readonly string[]): Promise<LoadedSource[]> {
  const datasetsDir = join(repoRoot, 'datasets');
  const issues: Issue[] = [];
  const out: LoadedSource[] = [];
  let available: string[] | undefined;
  for (const name of names) {
    const displayDir = `datasets/${name}`;
    if (!SOURCE_NAME.test(name)) {
      issues.push({ path: displayDir, message: 'dataset names are lower-case letters, digits, - and _ (they become file and entry names)', value: name, fix: 'rename the folder and the reference', code: 'dataset.name' });
      continue;
    }
    const descriptorPath = join(datasetsDir, name, 'dataset.yaml');
    let text: string;
    try {
      text = await readFile(descriptorPath, 'utf8');
    } catch {
      available ??= await readdir(datasetsDir, { withFileTypes: true })
        .then((entries) => entries.filter((e) => e.isDirectory()).map((e) => e.name))
        .catch(() => []);
      const hint = didYouMean(name, available);
      issues.push({
        path: `${displayDir}/dataset.yaml`,
        message: `dataset '${name}' has no descriptor`,
        value: name,
        fix: hint ?? (available.length > 0 ? `known datasets: ${available.join(', ')}; or create ${displayDir}/dataset.yaml` : `create ${displayDir}/dataset.yaml`),
        code: 'dataset.unknown',
      });
      continue;
    }
    const parsed = parseDescriptor(text, `${displayDir}/dataset.yaml`);
    if (!parsed.ok) {
      issues.push(...parsed.issues);
      continue;
    }
    const files: LoadedFile[] = [];
    let missing = false;
    for (const file of descriptorFiles(parsed.descriptor)) {
      const abs = join(datasetsDir, name, file.path);
      if (file.url !== undefined && file.sha256 !== undefined) {
        files.push({ path: file.path, sha256: file.sha256, size: file.size ?? 0, url: file.url });
        continue;
      }
      if (!(await exists(abs))) {
        missing = true;
        issues.push({
          path: `${displayDir}/${file.path}`,
          message: 'listed in dataset.yaml but not found',
          value: file.path,
          fix: `add the file, or remove it from ${displayDir}/dataset.yaml`,
          code: 'dataset.file-missing',
        });
        continue;
      }
      const { size } = await stat(abs);
      const sha256 = await sha256File(abs);
      const gzipBase64 = await gzipWithinBudget(abs, size);
      files.push(gzipBase64 === undefined ? { path: file.path, sha256, size } : { path: file.path, sha256, size, gzipBase64 });
    }
    if (missing) continue;
    out.push({ name, descriptor: parsed.descriptor, digest: sourceDigest(name, parsed.descriptor, files), files });
  }
  if (issues.length > 0) throw new ConvertError('dataset sources', issues);
  return out;
}
