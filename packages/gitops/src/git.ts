import { spawn } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readlinkSync, realpathSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { GitopsError } from './pipeline.ts';

interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a program with an argument array (no shell), collecting its output. */
function run(command: string, args: readonly string[], cwd: string): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', reject);
    child.on('close', (code) => resolvePromise({ code: code ?? 1, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') }));
  });
}

/** `git archive <commit> | tar -x -C <dir>`, both with argument arrays. */
function extractCommit(repoRoot: string, commit: string, dir: string): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const archive = spawn('git', ['-C', repoRoot, 'archive', '--format=tar', commit], { stdio: ['ignore', 'pipe', 'pipe'] });
    const tar = spawn('tar', ['-x', '-f', '-', '-C', dir], { stdio: ['pipe', 'ignore', 'pipe'] });
    const errors: string[] = [];
    archive.stderr.on('data', (d: Buffer) => errors.push(d.toString('utf8')));
    tar.stderr.on('data', (d: Buffer) => errors.push(d.toString('utf8')));
    archive.stdout.pipe(tar.stdin);
    let pending = 2;
    let failed = false;
    const done = (name: string) => (code: number | null) => {
      if (code !== 0) failed = true;
      if (code !== 0) errors.push(`${name} exited with ${code}`);
      if (--pending === 0) {
        if (failed) reject(new Error(`extracting ${commit} failed: ${errors.join(' ').trim()}`));
        else resolvePromise();
      }
    };
    archive.on('error', reject);
    tar.on('error', reject);
    archive.on('close', done('git archive'));
    tar.on('close', done('tar'));
  });
}

/** The commit a ref names, or a GitopsError saying why there is none. */
export async function resolveCommit(repoRoot: string, ref: string): Promise<string> {
  if (ref.trim() === '' || ref.startsWith('-')) {
    throw new GitopsError('git ref', [{ code: 'gitops.git-ref', path: '--base', value: ref, message: 'not a git ref', fix: 'name a branch, tag or commit, e.g. origin/main' }]);
  }
  const result = await run('git', ['-C', repoRoot, 'rev-parse', '--verify', '--quiet', '--end-of-options', `${ref}^{commit}`], repoRoot);
  const sha = result.stdout.trim();
  if (result.code !== 0 || !/^[0-9a-f]{40,64}$/.test(sha)) {
    throw new GitopsError('git ref', [
      {
        code: 'gitops.git-ref',
        path: '--base',
        value: ref,
        message: `no commit named ${ref} in ${repoRoot}${result.stderr.trim() ? ` (${result.stderr.trim()})` : ''}`,
        fix: 'fetch it first (git fetch origin; in GitHub Actions use actions/checkout with fetch-depth: 0)',
      },
    ]);
  }
  return sha;
}

/**
 * Gives the extracted tree the repo's installed packages: every top-level entry of the repo's
 * node_modules is linked, except workspace links into the repo, which are re-pointed into the
 * extracted tree so the base revision's own workspace packages (compiler included) are imported.
 */
function linkNodeModules(repoRoot: string, tree: string): void {
  const source = join(repoRoot, 'node_modules');
  if (!existsSync(source)) return;
  const target = join(tree, 'node_modules');
  const realRoot = realpathSync(repoRoot);
  mkdirSync(target, { recursive: true });
  const linkEntry = (from: string, to: string): void => {
    const stat = lstatSync(from);
    if (stat.isSymbolicLink()) {
      // The link is relative to where it really is (node_modules may itself be a link).
      const pointsTo = resolve(realpathSync(dirname(from)), readlinkSync(from));
      const inRepo = relative(realRoot, pointsTo);
      if (!inRepo.startsWith('..') && !isAbsolute(inRepo)) {
        const moved = join(tree, inRepo);
        if (existsSync(moved)) {
          symlinkSync(relative(dirname(to), moved), to);
          // A workspace's own node_modules (versions npm could not hoist) is not in git either.
          if (existsSync(join(pointsTo, 'node_modules')) && !existsSync(join(moved, 'node_modules'))) {
            symlinkSync(join(pointsTo, 'node_modules'), join(moved, 'node_modules'));
          }
          return;
        }
      }
      symlinkSync(pointsTo, to);
      return;
    }
    symlinkSync(from, to);
  };
  for (const entry of readdirSync(source)) {
    const from = join(source, entry);
    if (entry.startsWith('@') && lstatSync(from).isDirectory()) {
      mkdirSync(join(target, entry), { recursive: true });
      for (const scoped of readdirSync(from)) linkEntry(join(from, scoped), join(target, entry, scoped));
    } else if (entry !== '.bin' && entry !== '.package-lock.json') {
      linkEntry(from, join(target, entry));
    }
  }
}

/**
 * Runs `synth` on the tree of `ref` (a branch, tag or commit of the repo at `repoRoot`), extracted
 * into a temporary folder with `git archive` (the repo, its index and its worktrees are not
 * touched), with the repo's node_modules linked in. The folder is removed afterwards.
 */
export async function synthAtRef<T>(repoRoot: string, ref: string, synth: (treeRoot: string) => T | Promise<T>): Promise<T> {
  const commit = await resolveCommit(repoRoot, ref);
  const tree = mkdtempSync(join(tmpdir(), 'tunepipe-base-'));
  try {
    try {
      await extractCommit(repoRoot, commit, tree);
    } catch (error) {
      throw new GitopsError(`base ${ref}`, [{ code: 'gitops.git', path: '--base', value: ref, message: `could not extract ${commit.slice(0, 12)}: ${(error as Error).message}`, fix: 'check that git and tar are installed and the ref exists (git fetch)' }]);
    }
    linkNodeModules(repoRoot, tree);
    return await synth(tree);
  } finally {
    rmSync(tree, { recursive: true, force: true });
  }
}
