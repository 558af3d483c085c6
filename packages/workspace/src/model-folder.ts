import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { sha256File, SHA256SUMS, sumsLine, type LocalModelInput } from '@tunepipe/core';

/**
 * The files that make a model folder, as (C-sorted) paths relative to it. Dot files and folders
 * (`.cache/` of `huggingface-cli download --local-dir`, tunepipe's completion marker) and a
 * `SHA256SUMS` are not the model; symlinks are followed (Hugging Face cache snapshots are links).
 */
export async function modelFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (at: string) => {
    for (const entry of await readdir(at, { withFileTypes: true })) {
      if (entry.name.startsWith('.')) continue;
      const path = join(at, entry.name);
      const st = await stat(path);
      if (st.isDirectory()) await walk(path);
      else if (st.isFile()) {
        const rel = relative(dir, path).split('\\').join('/');
        if (rel !== SHA256SUMS) out.push(rel);
      }
    }
  };
  await walk(dir);
  return out.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
}

/** Remembers file digests by path, size and mtime, so planning a 16 GB model hashes it once. */
export class DigestCache {
  private entries: Record<string, { size: number; mtimeMs: number; sha256: string }> = {};
  private dirty = false;
  constructor(private readonly file: string | undefined) {}

  static async open(file: string | undefined): Promise<DigestCache> {
    const cache = new DigestCache(file);
    if (file && existsSync(file)) {
      try {
        cache.entries = JSON.parse(await readFile(file, 'utf8')) as DigestCache['entries'];
      } catch {
        cache.entries = {};
      }
    }
    return cache;
  }

  async digest(path: string): Promise<{ sha256: string; size: number }> {
    const st = await stat(path);
    const key = resolve(path);
    const known = this.entries[key];
    if (known && known.size === st.size && known.mtimeMs === st.mtimeMs) return { sha256: known.sha256, size: st.size };
    const sha256 = await sha256File(path);
    this.entries[key] = { size: st.size, mtimeMs: st.mtimeMs, sha256 };
    this.dirty = true;
    return { sha256, size: st.size };
  }

  async save(): Promise<void> {
    if (!this.file || !this.dirty) return;
    await mkdir(dirname(this.file), { recursive: true });
    await writeFile(`${this.file}.tmp`, JSON.stringify(this.entries));
    await rename(`${this.file}.tmp`, this.file);
  }
}

/** SHA256SUMS text of a model folder (`<sha256>  <path>` per file) and its sha256: the folder's content digest. */
export async function folderDigest(dir: string, cache?: DigestCache): Promise<{ digest: string; sums: string; files: number; bytes: number }> {
  const files = await modelFiles(dir);
  let sums = '';
  let bytes = 0;
  for (const f of files) {
    const d = cache ? await cache.digest(join(dir, f)) : { sha256: await sha256File(join(dir, f)), size: (await stat(join(dir, f))).size };
    sums += sumsLine(d.sha256, f);
    bytes += d.size;
  }
  return { digest: createHash('sha256').update(sums).digest('hex'), sums, files: files.length, bytes };
}

/** Element count of every tensor in a safetensors file, read from its JSON header only. */
export async function safetensorsParameters(path: string): Promise<number> {
  const handle = await open(path, 'r');
  try {
    const head = Buffer.alloc(8);
    await handle.read(head, 0, 8, 0);
    const length = Number(head.readBigUInt64LE(0));
    if (!(length > 0 && length < 100 * 2 ** 20)) throw new Error(`${path}: not a safetensors file (header length ${length})`);
    const json = Buffer.alloc(length);
    await handle.read(json, 0, length, 8);
    const header = JSON.parse(json.toString('utf8')) as Record<string, { shape?: number[] }>;
    let count = 0;
    for (const [name, tensor] of Object.entries(header)) {
      if (name === '__metadata__') continue;
      count += (tensor.shape ?? []).reduce((p, d) => p * d, 1);
    }
    return count;
  } finally {
    await handle.close();
  }
}

const WEIGHTS = /(^|\/)([^/]+\.safetensors|pytorch_model[^/]*\.bin)$/;
const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer.model', 'tokenizer_config.json'];

/**
 * Loads what `compile()` needs to know about a local model folder: its content digest, config.json
 * and exact parameter count. A missing folder or config is not thrown: check() reports it with a fix.
 */
export async function loadLocalModel(root: string, declared: string, cache?: DigestCache): Promise<LocalModelInput> {
  const dir = resolve(root, declared);
  const st = await stat(dir).catch(() => undefined);
  if (!st?.isDirectory()) return { path: declared, found: false };
  const { digest, files, bytes } = await folderDigest(dir, cache);
  const names = await modelFiles(dir);
  const weights = names.filter((f) => WEIGHTS.test(f) && !f.includes('/'));
  let config: Record<string, unknown> | undefined;
  let configError: string | undefined;
  try {
    const parsed: unknown = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'));
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) config = parsed as Record<string, unknown>;
    else configError = 'is not a JSON object';
  } catch (error) {
    configError = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'is missing' : `is not JSON (${(error as Error).message})`;
  }
  const safetensors = weights.filter((f) => f.endsWith('.safetensors'));
  let parameterCount: number | undefined;
  // Only when every weight file is safetensors is the header count the whole model.
  if (safetensors.length > 0 && safetensors.length === weights.length) {
    parameterCount = 0;
    for (const f of safetensors) parameterCount += await safetensorsParameters(join(dir, f));
  }
  return {
    path: declared,
    found: true,
    digest,
    files,
    bytes,
    ...(config ? { config } : {}),
    ...(configError ? { configError } : {}),
    ...(parameterCount !== undefined ? { parameterCount } : {}),
    hasWeights: weights.length > 0,
    hasTokenizer: TOKENIZER_FILES.some((f) => names.includes(f)),
  };
}
