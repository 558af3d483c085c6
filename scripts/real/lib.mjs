// The cache of the real-tools tier (npm run test:real, npm run cluster:up): one folder, keyed by
// the pin set, that every installer writes into exactly once. Nothing here downloads anything but
// packages from the registries this project may use (PyPI, the Go module proxy, npm, Debian).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  appendFileSync,
  closeSync,
  cpSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const pins = JSON.parse(readFileSync(join(repoRoot, 'pins.json'), 'utf8'));

/** `TUNEPIPE_CACHE`, else `~/.cache/tunepipe`. Delete it to measure a cold start. */
export function cacheRoot() {
  return resolve(process.env.TUNEPIPE_CACHE ?? join(homedir(), '.cache', 'tunepipe'));
}

export function digest(...parts) {
  const h = createHash('sha256');
  for (const p of parts) h.update(typeof p === 'string' ? p : JSON.stringify(p)).update('\0');
  return h.digest('hex').slice(0, 12);
}

export function log(message) {
  process.stderr.write(`[real] ${message}\n`);
}

export function formatSeconds(s) {
  if (s < 90) return `${s.toFixed(1)} s`;
  const whole = Math.round(s);
  return `${Math.floor(whole / 60)} min ${whole % 60} s`;
}

/**
 * Runs a command; its output goes to `logFile` (kept for the post-mortem) and, on failure, the last
 * lines are thrown with the command so the user sees why an install failed.
 */
export function run(cmd, args, { cwd, env, logFile, input, allowFail = false } = {}) {
  const r = spawnSync(cmd, args, {
    cwd,
    env: { ...process.env, ...env },
    input,
    encoding: 'utf8',
    maxBuffer: 512 * 1024 * 1024,
  });
  const out = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  if (logFile) {
    mkdirSync(dirname(logFile), { recursive: true });
    appendFileSync(logFile, `$ ${cmd} ${args.join(' ')}\n${out}\n`);
  }
  if (!allowFail && (r.status !== 0 || r.error)) {
    const tail = out.split('\n').slice(-40).join('\n');
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.error?.message ?? `exit ${r.status}`})${logFile ? `; full log: ${logFile}` : ''}\n${tail}`);
  }
  return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '', output: out };
}

/** A crude inter-process lock so two test runs never build the same thing at once. */
function withLock(lockPath, fn) {
  mkdirSync(dirname(lockPath), { recursive: true });
  const deadline = Date.now() + 3 * 60 * 60 * 1000;
  for (;;) {
    try {
      const fd = openSync(lockPath, 'wx');
      writeFileSync(fd, String(process.pid));
      closeSync(fd);
      break;
    } catch (err) {
      if (err.code !== 'EEXIST') throw err;
      const holder = Number(readFileSync(lockPath, 'utf8') || 0);
      let alive = false;
      try {
        if (holder > 0) process.kill(holder, 0);
        alive = holder > 0;
      } catch {
        alive = false;
      }
      if (!alive) {
        rmSync(lockPath, { force: true });
        continue;
      }
      if (Date.now() > deadline) throw new Error(`${lockPath} is held by pid ${holder}`);
      spawnSync('sleep', ['2']);
    }
  }
  try {
    return fn();
  } finally {
    rmSync(lockPath, { force: true });
  }
}

const timingsFile = () => join(cacheRoot(), 'timings.jsonl');

/**
 * `<cache>/<name>/<key>/`, built once by `build(tmpDir)` and published by rename with a completion
 * marker, so an interrupted install is redone rather than half-trusted. Returns the folder.
 */
export function ensure(name, key, build) {
  const dir = join(cacheRoot(), name, key);
  const marker = join(dir, '.complete');
  if (existsSync(marker)) return dir;
  return withLock(`${dir}.lock`, () => {
    if (existsSync(marker)) return dir;
    const tmp = `${dir}.partial`;
    rmSync(tmp, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    log(`installing ${name} (${key}) into ${dir} …`);
    const started = process.hrtime.bigint();
    build(tmp);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    writeFileSync(join(tmp, '.complete'), JSON.stringify({ name, key, seconds, at: new Date().toISOString() }) + '\n');
    renameSync(tmp, dir);
    appendFileSync(timingsFile(), JSON.stringify({ name, key, seconds, at: new Date().toISOString() }) + '\n');
    log(`installed ${name} in ${formatSeconds(seconds)}`);
    return dir;
  });
}

/** Shared Go caches inside the tier's cache, so a cold start really is cold and a warm one reuses. */
export function goEnv() {
  const base = join(cacheRoot(), 'go');
  return {
    GOPATH: join(base, 'path'),
    GOMODCACHE: join(base, 'mod'),
    GOCACHE: join(base, 'build'),
    GOFLAGS: '-modcacherw',
    GOTOOLCHAIN: 'local',
    CGO_ENABLED: '0',
  };
}

/**
 * Builds `packages` (import paths relative to the module root, e.g. `./cmd/kube-apiserver`) of the
 * Go module `module@version` from the Go module proxy into `<outDir>`.
 *
 * Release modules often keep `replace` directives that point at sibling folders of their monorepo
 * (Kubernetes' staging/, etcd's api/, Flux's api/). Those folders are separate modules and are not
 * in the module's zip, so each such replacement is swapped for the published version of the same
 * module: `localVersion(path)` names it, else the version the module requires.
 */
export function buildGoModule({ name, module, version, packages, outDir, localVersion, ldflags = '', tags = '', prepare, env: extraEnv = {} }) {
  const env = { ...goEnv(), ...extraEnv };
  const logFile = join(cacheRoot(), 'logs', `${name}-${version}.log`);
  const dl = JSON.parse(run('go', ['mod', 'download', '-json', `${module}@${version}`], { env, logFile, cwd: cacheRoot() }).stdout);
  if (dl.Error) throw new Error(`go mod download ${module}@${version}: ${dl.Error}`);
  const src = join(cacheRoot(), 'go', 'src', `${name}-${version}`);
  rmSync(src, { recursive: true, force: true });
  mkdirSync(dirname(src), { recursive: true });
  cpSync(dl.Dir, src, { recursive: true });
  run('chmod', ['-R', 'u+w', src]);
  const mod = JSON.parse(run('go', ['mod', 'edit', '-json'], { cwd: src, env }).stdout);
  const required = new Map((mod.Require ?? []).map((r) => [r.Path, r.Version]));
  const edits = [];
  for (const r of mod.Replace ?? []) {
    if (!r.New.Path.startsWith('.') && !r.New.Path.startsWith('/')) continue;
    if (existsSync(join(src, r.New.Path, 'go.mod'))) continue;
    // A replacement of a module nothing requires is a guard (etcd's FORBIDDEN_DEPENDENCY): drop it.
    if (!required.has(r.Old.Path)) {
      edits.push(`-dropreplace=${r.Old.Path}`);
      continue;
    }
    const v = localVersion?.(r.Old.Path) ?? required.get(r.Old.Path);
    if (!v || v === 'v0.0.0') throw new Error(`${module}: no published version known for ${r.Old.Path} (replaced by ${r.New.Path})`);
    edits.push(`-dropreplace=${r.Old.Path}`, `-require=${r.Old.Path}@${v}`);
  }
  if (edits.length > 0) run('go', ['mod', 'edit', ...edits], { cwd: src, env, logFile });
  prepare?.(src, env, logFile);
  mkdirSync(outDir, { recursive: true });
  const args = ['build', '-mod=mod', '-trimpath', '-o', outDir];
  if (ldflags) args.push('-ldflags', ldflags);
  if (tags) args.push('-tags', tags);
  run('go', [...args, ...packages], { cwd: src, env, logFile });
  return src;
}

export function fileSize(path) {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}
