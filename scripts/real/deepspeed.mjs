#!/usr/bin/env node
// DeepSpeed for the real-tools tier: a layer over the tier's Python venv (scripts/real/python.mjs),
// so test/real/llamafactory/distributed.test.ts runs LLaMA-Factory's ZeRO strategies for real on
// the CPU. The venv itself stays exactly its lock: the layer is a separate `pip install --target`
// folder the tests put on PYTHONPATH (torchrun's workers inherit it), keyed by its own lock and the
// venv it builds against.
//
//   node scripts/real/deepspeed.mjs          install (or find) the layer, print its paths
//   node scripts/real/deepspeed.mjs --lock   re-resolve pins.json python.deepspeed against the venv
//
// DeepSpeed is an sdist. DS_BUILD_OPS=0 builds no kernels at install time (there is no CUDA here);
// on a CPU, DeepSpeed JIT-compiles the few C++ ops it uses (its shared-memory collective; CPU Adam
// for ZeRO-Offload) with the system's c++ on first use. The install warms that build into the
// layer's own TORCH_EXTENSIONS_DIR, so a test pays it once per layer, not once per run.
import { existsSync, readFileSync, rmSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cacheRoot, digest, ensure, formatSeconds, log, pins, repoRoot, run } from './lib.mjs';
import { install as installPython, pythonEnv } from './python.mjs';

export const deepSpeedLockFile = join(repoRoot, 'scripts', 'real', 'requirements.deepspeed.lock.txt');

/** LLaMA-Factory 0.9.4 refuses any other range (hparams/parser.py: deepspeed>=0.10.0,<=0.16.9). */
const LLAMAFACTORY_RANGE = { min: [0, 10, 0], max: [0, 16, 9] };

function inRange(version) {
  const v = version.split('.').map(Number);
  const cmp = (a, b) => a.map((x, i) => x - b[i]).find((d) => d !== 0) ?? 0;
  return v.length === 3 && v.every(Number.isInteger) && cmp(v, LLAMAFACTORY_RANGE.min) >= 0 && cmp(v, LLAMAFACTORY_RANGE.max) <= 0;
}

function pinnedVersion() {
  const version = pins.python.deepspeed;
  if (!version) throw new Error('pins.json python.deepspeed is missing; the DeepSpeed layer needs it');
  if (!inRange(version)) throw new Error(`pins.json python.deepspeed ${version} is outside what LLaMA-Factory ${pins.python.llamafactory} accepts (0.10.0 … 0.16.9)`);
  return version;
}

function pipEnv() {
  return { PIP_CACHE_DIR: join(cacheRoot(), 'pip-cache'), PIP_DISABLE_PIP_VERSION_CHECK: '1', PIP_NO_INPUT: '1', PYTHONNOUSERSITE: '1', DS_BUILD_OPS: '0' };
}

function lockedDeepSpeed(text) {
  return /^deepspeed==(\S+)/m.exec(text)?.[1];
}

/** The environment a process needs to import DeepSpeed from the layer (and find its built ops). */
export function deepSpeedEnv(layer) {
  return { PYTHONPATH: layer.sitePackages, TORCH_EXTENSIONS_DIR: layer.torchExtensions, DS_BUILD_OPS: '0' };
}

/**
 * Installs (or finds) the layer: `{ sitePackages, torchExtensions, version, key, installSeconds,
 * opsSeconds }` (the last two: how long the pip install and the C++ op warm-up took when built).
 */
export async function install() {
  const version = pinnedVersion();
  if (!existsSync(deepSpeedLockFile)) throw new Error(`${deepSpeedLockFile} is missing; run node scripts/real/deepspeed.mjs --lock`);
  const lockText = readFileSync(deepSpeedLockFile, 'utf8');
  if (lockedDeepSpeed(lockText) !== version) {
    throw new Error(`${deepSpeedLockFile} has deepspeed==${lockedDeepSpeed(lockText) ?? '(absent)'}, pins.json python.deepspeed is ${version}; run node scripts/real/deepspeed.mjs --lock`);
  }
  const python = await installPython();
  const key = digest(lockText, python.key);
  const logFile = join(cacheRoot(), 'logs', `deepspeed-${key}.log`);
  const dir = ensure('deepspeed', key, (tmp) => {
    const started = Date.now();
    // --no-build-isolation: the sdist builds with the venv's setuptools, nothing unlocked is fetched.
    run(python.python, ['-m', 'pip', 'install', '--no-deps', '--require-hashes', '--no-build-isolation', '--target', join(tmp, 'site'), '-r', deepSpeedLockFile], { env: pipEnv(), logFile });
    // Every requirement of DeepSpeed must come from the venv or the layer: pip check over both.
    run(python.python, ['-m', 'pip', 'check'], { env: pythonEnv({ PYTHONPATH: join(tmp, 'site') }), logFile });
    writeFileSync(join(tmp, 'layer.json'), `${JSON.stringify({ version, installSeconds: (Date.now() - started) / 1000 }, null, 2)}\n`);
  });
  const layer = { sitePackages: join(dir, 'site'), torchExtensions: join(dir, 'torch_extensions'), key, ...JSON.parse(readFileSync(join(dir, 'layer.json'), 'utf8')) };
  return { ...layer, opsSeconds: warmOps(python.python, layer, version, logFile) };
}

/**
 * Builds the C++ ops DeepSpeed JIT-compiles on a CPU into the layer's extensions folder, once (the
 * build's inputs include the layer's final path, so it happens after the layer is in place; torch's
 * own lock file serialises two builders). Returns the seconds the build took when this call built them.
 */
function warmOps(python, layer, version, logFile) {
  const marker = join(layer.torchExtensions, '.built.json');
  if (existsSync(marker)) return JSON.parse(readFileSync(marker, 'utf8')).seconds;
  const started = Date.now();
  const warm = 'import deepspeed\nfrom deepspeed.ops.op_builder.cpu import CPUAdamBuilder, ShareMemCommBuilder\nShareMemCommBuilder().load()\nCPUAdamBuilder().load()\nprint(deepspeed.__version__)';
  const r = run(python, ['-c', warm], { env: pythonEnv({ ...deepSpeedEnv(layer), OMP_NUM_THREADS: '1' }), logFile });
  const imported = r.stdout.trim().split('\n').pop();
  if (imported !== version) throw new Error(`the DeepSpeed layer imports deepspeed ${imported}, not ${version}`);
  const seconds = (Date.now() - started) / 1000;
  writeFileSync(marker, `${JSON.stringify({ seconds, at: new Date().toISOString() })}\n`);
  return seconds;
}

/**
 * Re-resolves the layer's lock: pip's resolver in the venv itself (--dry-run), so only what the venv
 * lacks (DeepSpeed and what it needs beyond the venv) is listed, each with the sha256 of its file.
 */
function writeLock() {
  const version = pinnedVersion();
  const started = Date.now();
  return installPython().then((python) => {
    const scratch = join(cacheRoot(), 'deepspeed', 'lock-scratch');
    rmSync(scratch, { recursive: true, force: true });
    mkdirSync(scratch, { recursive: true });
    const report = join(scratch, 'report.json');
    run(python.python, ['-m', 'pip', 'install', '--dry-run', '--quiet', '--no-build-isolation', '--report', report, `deepspeed==${version}`], { env: pipEnv(), logFile: join(cacheRoot(), 'logs', 'deepspeed-lock.log') });
    const lines = JSON.parse(readFileSync(report, 'utf8'))
      .install.map((i) => {
        const sha = i.download_info?.archive_info?.hashes?.sha256;
        if (!sha) throw new Error(`no sha256 for ${i.metadata.name} in pip's report`);
        return `${i.metadata.name.toLowerCase().replace(/[-_.]+/g, '-')}==${i.metadata.version} --hash=sha256:${sha}`;
      })
      .sort();
    const header = [
      '# The DeepSpeed layer of the real-tools tier (scripts/real/deepspeed.mjs installs it with',
      '# `pip install --no-deps --require-hashes --no-build-isolation --target` beside the venv of',
      '# requirements.lock.txt). Produced by `node scripts/real/deepspeed.mjs --lock`: pip resolved',
      `# deepspeed==${version} (pins.json python.deepspeed) inside that venv, so only what it lacks is here.`,
      '# Do not edit by hand: change pins.json and run the command above.',
      '',
    ];
    writeFileSync(deepSpeedLockFile, header.join('\n') + lines.join('\n') + '\n');
    rmSync(scratch, { recursive: true, force: true });
    log(`wrote ${deepSpeedLockFile} (${lines.length} distributions) in ${formatSeconds((Date.now() - started) / 1000)}`);
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  if (process.argv.includes('--lock')) {
    await writeLock();
  } else {
    const started = Date.now();
    const result = await install();
    log(`deepspeed layer ready in ${formatSeconds((Date.now() - started) / 1000)}`);
    console.log(JSON.stringify(result, null, 2));
  }
}
