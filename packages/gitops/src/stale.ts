import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, join, normalize, relative, sep } from 'node:path';
import { GitopsError, type GitopsFile } from './pipeline.ts';

/** Where synth writes a pipeline's output, relative to the repo root. */
export function distPath(pipeline: string): string {
  return `pipelines/${pipeline}/dist`;
}

/** The files with `dir/` put in front of their paths. */
export function underDir(dir: string, files: readonly GitopsFile[]): GitopsFile[] {
  const prefix = dir.replace(/\/+$/, '');
  return files.map((f) => ({ path: `${prefix}/${f.path}`, content: f.content }));
}

function toPosix(path: string): string {
  return path.split(sep).join('/');
}

function listFiles(root: string, dir: string, out: string[] = []): string[] {
  const abs = join(root, dir);
  if (!existsSync(abs)) return out;
  for (const entry of readdirSync(abs, { withFileTypes: true })) {
    const rel = dir === '' ? entry.name : `${dir}/${entry.name}`;
    if (entry.isDirectory()) listFiles(root, rel, out);
    else out.push(rel);
  }
  return out;
}

function assertInside(files: readonly GitopsFile[], where: string): void {
  const bad = files.filter((f) => isAbsolute(f.path) || normalize(f.path).split(sep).includes('..') || f.path.trim() === '');
  if (bad.length > 0) {
    throw new GitopsError(`files for ${where}`, bad.map((f) => ({ code: 'gitops.file-path', path: f.path, value: f.path, message: 'file path leaves the output folder', fix: 'use paths relative to the output folder' })));
  }
}

/** `pipelines/<name>/dist` folders present in the repo. */
function distDirs(repoRoot: string): string[] {
  const pipelines = join(repoRoot, 'pipelines');
  if (!existsSync(pipelines)) return [];
  return readdirSync(pipelines, { withFileTypes: true })
    .filter((e) => e.isDirectory() && existsSync(join(pipelines, e.name, 'dist')))
    .map((e) => distPath(e.name));
}

export interface StaleReport {
  readonly ok: boolean;
  /** Committed with other content than the sources produce. */
  readonly changed: readonly string[];
  /** Produced by the sources, not committed. */
  readonly missing: readonly string[];
  /** Committed under a dist folder, no longer produced. */
  readonly extra: readonly string[];
}

const normalizeNewlines = (text: string): string => text.replace(/\r\n/g, '\n');

/**
 * Compares the manifests in the repo with what the sources produce. `expected` paths are
 * repo-relative (see `underDir`); every file under `pipelines/<name>/dist/` and under the folders
 * of `expected` is compared, so files of removed stages or pipelines show up as extra.
 */
export function checkStale(repoRoot: string, expected: readonly GitopsFile[], options: { dirs?: readonly string[] } = {}): StaleReport {
  assertInside(expected, repoRoot);
  const want = new Map(expected.map((f) => [toPosix(normalize(f.path)), f.content]));
  const dirs = new Set([...(options.dirs ?? distDirs(repoRoot)), ...[...want.keys()].map(distRoot).filter((d): d is string => d !== undefined)]);
  const present = new Set([...dirs].flatMap((d) => listFiles(repoRoot, d)));
  const changed: string[] = [];
  const missing: string[] = [];
  for (const [path, content] of want) {
    const abs = join(repoRoot, path);
    if (!existsSync(abs) || !statSync(abs).isFile()) missing.push(path);
    else if (normalizeNewlines(readFileSync(abs, 'utf8')) !== normalizeNewlines(content)) changed.push(path);
  }
  const extra = [...present].filter((p) => !want.has(p));
  const sorted = (list: string[]): string[] => [...list].sort();
  return { ok: changed.length + missing.length + extra.length === 0, changed: sorted(changed), missing: sorted(missing), extra: sorted(extra) };
}

/** `pipelines/<name>/dist` of a path under it. */
function distRoot(path: string): string | undefined {
  const match = /^(pipelines\/[^/]+\/dist)\//.exec(path);
  return match?.[1];
}

/** The report as lines naming every file, with the fix; empty when nothing is stale. */
export function formatStaleReport(report: StaleReport): string {
  if (report.ok) return '';
  const lines = [
    `committed manifests are stale: ${report.changed.length} changed, ${report.missing.length} missing, ${report.extra.length} extra`,
    ...report.changed.map((p) => `  changed  ${p}`),
    ...report.missing.map((p) => `  missing  ${p}`),
    ...report.extra.map((p) => `  extra    ${p}`),
    'fix: run `npm run tunepipe -- synth` and commit the result',
  ];
  return `${lines.join('\n')}\n`;
}

export interface WriteResult {
  readonly written: readonly string[];
  readonly unchanged: readonly string[];
  readonly deleted: readonly string[];
}

/**
 * Makes folder `dir` hold exactly `files` (paths relative to it, subfolders included): writes new
 * and changed files, leaves equal ones untouched, deletes files no longer produced and the folders
 * that become empty.
 */
export function writeFiles(dir: string, files: readonly GitopsFile[]): WriteResult {
  assertInside(files, dir);
  // It deletes what it did not render: only ever inside a pipeline's dist folder.
  if (!/(^|[\\/])dist[\\/]?$/.test(dir)) {
    throw new GitopsError('output folder', [{ code: 'gitops.out-dir', path: dir, message: 'is not a dist/ folder; writing there would delete files tunepipe did not write', fix: 'write to pipelines/<name>/dist' }]);
  }
  const want = new Map(files.map((f) => [toPosix(normalize(f.path)), f.content]));
  const written: string[] = [];
  const unchanged: string[] = [];
  const deleted: string[] = [];
  for (const path of listFiles(dir, '')) {
    if (!want.has(path)) {
      rmSync(join(dir, path));
      deleted.push(path);
    }
  }
  for (const [path, content] of want) {
    const abs = join(dir, path);
    if (existsSync(abs) && readFileSync(abs, 'utf8') === content) {
      unchanged.push(path);
      continue;
    }
    mkdirSync(dirname(abs), { recursive: true });
    writeFileSync(abs, content);
    written.push(path);
  }
  removeEmptyDirs(dir, dir);
  return { written: written.sort(), unchanged: unchanged.sort(), deleted: deleted.sort() };
}

function removeEmptyDirs(root: string, dir: string): void {
  if (!existsSync(dir)) return;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) removeEmptyDirs(root, join(dir, entry.name));
  }
  if (dir !== root && readdirSync(dir).length === 0 && toPosix(relative(root, dir)) !== '') rmdirSync(dir);
}
