#!/usr/bin/env node
// The Python side of the real-tools tier: ONE Python 3.11 venv holding LLaMA-Factory and vLLM at the
// versions of pins.json `python`, so tests can ask the pinned tools themselves what they accept.
//
// The venv is installed from scripts/real/requirements.lock.txt: every distribution pinned by
// version AND sha256 and installed with --no-deps, so what lands in the cache is exactly the lock,
// never whatever PyPI resolves to today. The cache key is a hash of that lock (plus the interpreter
// and installer), so editing the lock builds a new venv and an unchanged lock reuses the old one.
//
//   node scripts/real/python.mjs            install (or find) the venv, print its paths
//   node scripts/real/python.mjs --lock     re-resolve pins.json `python` on PyPI and rewrite the lock
//
// GPTQ (optimum, gptqmodel) is deliberately NOT in this venv: it needs its own build and lives with
// the GPTQ image work.
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cacheRoot, digest, ensure, formatSeconds, log, pins, repoRoot, run } from './lib.mjs';

export const lockFile = join(repoRoot, 'scripts', 'real', 'requirements.lock.txt');

/** The interpreter minor version the lock is resolved for (wheels are cp311). */
const PYTHON_MINOR = '3.11';
/** The installer used inside the venv; pinned so resolution and install behave the same everywhere. */
const PIP_VERSION = '25.2';

/** What the lock is resolved from: LLaMA-Factory + vLLM, and every pins.json `python` pin they use. */
const LOCKED_PINS = ['llamafactory', 'vllm', 'transformers', 'peft', 'accelerate', 'trl', 'datasets', 'torch'];

export function lockRequirements() {
  const p = pins.python;
  for (const name of LOCKED_PINS) {
    if (!p[name]) throw new Error(`pins.json python.${name} is missing; the Python venv needs it`);
  }
  // LLaMA-Factory 0.9.4 has no `torch` extra (torch is a plain dependency); `metrics` brings the
  // packages its evaluation (predict_with_generate / BLEU / ROUGE) imports.
  return [`llamafactory[metrics]==${p.llamafactory}`, ...LOCKED_PINS.filter((n) => n !== 'llamafactory').map((n) => `${n}==${p[n]}`)];
}

function findInterpreter() {
  const candidates = [process.env.TUNEPIPE_PYTHON, `python${PYTHON_MINOR}`, 'python3'].filter(Boolean);
  for (const c of candidates) {
    const r = run(c, ['-c', 'import sys; print(sys.executable); print("%d.%d.%d" % sys.version_info[:3])'], { allowFail: true });
    if (r.status !== 0) continue;
    const [executable, version] = r.stdout.trim().split('\n');
    if (version.startsWith(`${PYTHON_MINOR}.`)) return { executable, version };
  }
  throw new Error(`Python ${PYTHON_MINOR} not found (tried ${candidates.join(', ')}). Install it or set TUNEPIPE_PYTHON to its path.`);
}

/** pip's own cache lives inside the tier's cache, so deleting the cache makes a cold start truly cold. */
function pipEnv() {
  return {
    PIP_CACHE_DIR: join(cacheRoot(), 'pip-cache'),
    PIP_DISABLE_PIP_VERSION_CHECK: '1',
    PIP_NO_INPUT: '1',
    PYTHONNOUSERSITE: '1',
  };
}

function parseLock(text) {
  const pinsInLock = new Map();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^([A-Za-z0-9._-]+)==([^\s;]+)/.exec(line);
    if (!m) throw new Error(`${lockFile}: unreadable line ${JSON.stringify(line)}`);
    pinsInLock.set(normalizeName(m[1]), m[2]);
  }
  return pinsInLock;
}

/** Where the lock disagrees with pins.json `python` (empty when it follows it). */
function lockDrift(locked) {
  return LOCKED_PINS.filter((name) => locked.get(name) !== pins.python[name]).map(
    (name) => `lock has ${name}==${locked.get(name) ?? '(absent)'}, pins.json python.${name} is ${pins.python[name]}`,
  );
}

/** Whether the committed lock was resolved from the current pins.json. */
export function lockIsCurrent() {
  return existsSync(lockFile) && lockDrift(parseLock(readFileSync(lockFile, 'utf8'))).length === 0;
}

function normalizeName(name) {
  return name.toLowerCase().replace(/[-_.]+/g, '-');
}

function dirSizeBytes(dir) {
  const r = run('du', ['-sb', dir], { allowFail: true });
  return Number(r.stdout.split(/\s/)[0]) || 0;
}

/**
 * Installs (or finds) the venv. Returns `{ python, bin, sitePackages, venv }`, plus the versions that
 * were really installed so tests can show them.
 */
export async function install() {
  if (!existsSync(lockFile)) throw new Error(`${lockFile} is missing; run node scripts/real/python.mjs --lock`);
  const lockText = readFileSync(lockFile, 'utf8');
  const locked = parseLock(lockText);
  const behind = lockDrift(locked);
  if (behind.length > 0) {
    throw new Error(`${lockFile} does not follow pins.json (${behind.join('; ')}); regenerate it: npm run pins:apply (or node scripts/real/python.mjs --lock)`);
  }
  const interpreter = findInterpreter();
  const key = digest(lockText, PYTHON_MINOR, PIP_VERSION);
  const env = pipEnv();
  const dir = ensure('python', key, (tmp) => {
    const finalDir = join(cacheRoot(), 'python', key);
    const venv = join(tmp, 'venv');
    const logFile = join(cacheRoot(), 'logs', `python-${key}.log`);
    run(interpreter.executable, ['-m', 'venv', venv], { env, logFile });
    const py = join(venv, 'bin', 'python');
    run(py, ['-m', 'pip', 'install', `pip==${PIP_VERSION}`], { env, logFile });
    // --no-deps + --require-hashes: install exactly the lock; `pip check` below proves it is complete.
    run(py, ['-m', 'pip', 'install', '--no-deps', '--require-hashes', '-r', lockFile], {
      env,
      logFile,
    });
    run(py, ['-m', 'pip', 'check'], { env, logFile });
    const frozen = parseLock(run(py, ['-m', 'pip', 'freeze', '--all', '--exclude', 'pip'], { env }).stdout);
    const missing = [...locked].filter(([n, v]) => frozen.get(n) !== v).map(([n, v]) => `${n}==${v} (got ${frozen.get(n) ?? 'nothing'})`);
    const extra = [...frozen].filter(([n]) => !locked.has(n)).map(([n, v]) => `${n}==${v}`);
    if (missing.length || extra.length) {
      throw new Error(`the venv is not the lock: missing/wrong ${missing.join(', ') || 'none'}; extra ${extra.join(', ') || 'none'}`);
    }
    // A venv records its own absolute path (console-script shebangs, activate). It is built in the
    // `.partial` folder and renamed into place, so point those at the final path before the rename.
    const binDir = join(venv, 'bin');
    for (const f of [...readdirSync(binDir).map((n) => join(binDir, n)), join(venv, 'pyvenv.cfg')]) {
      const st = statSync(f, { throwIfNoEntry: false });
      if (!st?.isFile() || st.size > 1024 * 1024) continue;
      const buf = readFileSync(f);
      if (buf.includes(0)) continue;
      const text = buf.toString('utf8');
      if (text.includes(tmp)) writeFileSync(f, text.split(tmp).join(finalDir));
    }
    writeFileSync(join(tmp, 'size.txt'), `${dirSizeBytes(venv)}\n`);
  });
  const venv = join(dir, 'venv');
  const python = join(venv, 'bin', 'python');
  // A venv links to the interpreter it was made from; if that one is gone the cached venv is dead.
  const probe = run(python, ['-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'], { env: pythonEnv(), allowFail: true });
  if (probe.status !== 0) {
    throw new Error(`the cached venv ${venv} does not start (${probe.output.trim().split('\n').pop()}); delete ${dir} and run again`);
  }
  return {
    venv,
    python,
    bin: join(venv, 'bin'),
    sitePackages: probe.stdout.trim(),
    key,
    sizeBytes: Number(readFileSync(join(dir, 'size.txt'), 'utf8')) || 0,
    versions: Object.fromEntries(LOCKED_PINS.map((n) => [n, locked.get(n)])),
  };
}

/**
 * The environment every run of the venv's python gets: offline (this tier may only reach PyPI, and
 * a test that silently downloads is a test that depends on the network), no user site, quiet.
 */
export function pythonEnv(extra = {}) {
  return {
    PYTHONNOUSERSITE: '1',
    PYTHONDONTWRITEBYTECODE: '1',
    HF_HUB_OFFLINE: '1',
    HF_DATASETS_OFFLINE: '1',
    TRANSFORMERS_OFFLINE: '1',
    HF_HUB_DISABLE_TELEMETRY: '1',
    DO_NOT_TRACK: '1',
    VLLM_NO_USAGE_STATS: '1',
    TOKENIZERS_PARALLELISM: 'false',
    ...extra,
  };
}

/** The venv's python from `<cache>/tools.json` (written by scripts/real/install.mjs). */
export function venvPython(tools) {
  const python = tools?.python?.python;
  if (!python || !existsSync(python)) {
    throw new Error('the Python venv of the real-tools tier is not installed; run `node scripts/real/install.mjs python` (or npm run test:real)');
  }
  return python;
}

/** Runs `python args…` in the venv, synchronously; throws with the output tail on failure. */
export function runPython(python, args, { env, cwd, input, allowFail, logFile } = {}) {
  return run(python, args, { env: pythonEnv(env), cwd, input, allowFail, logFile });
}

/**
 * Re-resolves the lock on PyPI: pip's resolver in a scratch venv (metadata only, --dry-run), its
 * JSON report turned into `name==version --hash=sha256:…` lines for this platform (linux x86_64,
 * CPython 3.11), sorted.
 */
function writeLock() {
  const interpreter = findInterpreter();
  const scratch = join(cacheRoot(), 'python', 'lock-scratch');
  rmSync(scratch, { recursive: true, force: true });
  mkdirSync(scratch, { recursive: true });
  const env = pipEnv();
  const logFile = join(cacheRoot(), 'logs', 'python-lock.log');
  run(interpreter.executable, ['-m', 'venv', join(scratch, 'venv')], { env, logFile });
  const py = join(scratch, 'venv', 'bin', 'python');
  run(py, ['-m', 'pip', 'install', `pip==${PIP_VERSION}`], { env, logFile });
  const report = join(scratch, 'report.json');
  const requirements = lockRequirements();
  run(py, ['-m', 'pip', 'install', '--dry-run', '--ignore-installed', '--quiet', '--report', report, ...requirements], { env, logFile });
  const installs = JSON.parse(readFileSync(report, 'utf8')).install;
  const lines = installs
    .map((i) => {
      const sha = i.download_info?.archive_info?.hashes?.sha256;
      if (!sha) throw new Error(`no sha256 for ${i.metadata.name} in pip's report`);
      return `${normalizeName(i.metadata.name)}==${i.metadata.version} --hash=sha256:${sha}`;
    })
    .sort();
  const header = [
    '# The one Python environment of the real-tools tier (scripts/real/python.mjs installs it with',
    '# `pip install --no-deps --require-hashes -r` into <cache>/python/<hash of this file>/venv).',
    '#',
    '# Produced by `node scripts/real/python.mjs --lock`: a scratch Python ' + PYTHON_MINOR + ' venv with pip ' + PIP_VERSION + ' ran',
    `#   pip install --dry-run --ignore-installed --report … ${requirements.join(' ')}`,
    '# (the versions come from pins.json `python`) and every resolved distribution was written here with',
    '# the sha256 of the file pip chose for linux x86_64 / CPython 3.11. After installing, python.mjs',
    '# checks that `pip freeze` of the venv equals this list exactly and that `pip check` passes.',
    '# Do not edit by hand: change pins.json and run the command above.',
    '',
  ];
  writeFileSync(lockFile, header.join('\n') + lines.join('\n') + '\n');
  rmSync(scratch, { recursive: true, force: true });
  log(`wrote ${lockFile} (${lines.length} distributions)`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  if (process.argv.includes('--lock')) {
    writeLock();
  } else {
    const started = Date.now();
    const result = await install();
    log(`python venv ready in ${formatSeconds((Date.now() - started) / 1000)}`);
    console.log(JSON.stringify(result, null, 2));
  }
}
