#!/usr/bin/env node
// The tiny Llama-3-architecture model of the real-tools tier, built once into the cache by
// scripts/real/make-tiny-model.py in the tier's Python venv. Nothing is downloaded: the tokenizer is
// trained on datasets/ and the weights are random from a fixed seed.
//
//   node scripts/real/tiny-model.mjs      build (or find) it, print its paths
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { digest, ensure, formatSeconds, log, pins, repoRoot } from './lib.mjs';
import { install as installPython, runPython } from './python.mjs';

const script = join(repoRoot, 'scripts', 'real', 'make-tiny-model.py');
const datasetsDir = join(repoRoot, 'datasets');
/** Fixed: the same seed gives the same weights, so the tier's numbers repeat run to run. */
const SEED = 1234;

/** Every data file under datasets/, hashed: the tokenizer is trained on them, so they key the cache. */
function datasetsDigest() {
  const h = createHash('sha256');
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.isFile()) h.update(relative(datasetsDir, path)).update('\0').update(readFileSync(path)).update('\0');
    }
  };
  walk(datasetsDir);
  return h.digest('hex');
}

/**
 * Builds (or finds) the model. Returns `{ dir, summary }`: `dir` is the model folder (config.json,
 * model.safetensors, tokenizer files), `summary` what the script reported (parameter count,
 * vocabulary, special-token ids, file digests, package versions).
 */
export async function install() {
  const python = await installPython();
  const scriptText = readFileSync(script, 'utf8');
  const key = digest(scriptText, SEED, pins.python.torch, pins.python.transformers, python.key, datasetsDigest());
  const dir = ensure('tiny-model', key, (tmp) => {
    const r = runPython(python.python, [script, '--datasets', datasetsDir, '--out', join(tmp, 'model'), '--seed', String(SEED)]);
    writeFileSync(join(tmp, 'summary.json'), r.stdout);
  });
  const summary = JSON.parse(readFileSync(join(dir, 'summary.json'), 'utf8'));
  const bytes = readdirSync(join(dir, 'model')).reduce((sum, f) => sum + statSync(join(dir, 'model', f)).size, 0);
  return { dir: join(dir, 'model'), key, bytes, parameters: summary.parameters, vocabSize: summary.vocab_size, summary };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const started = Date.now();
  const result = await install();
  log(`tiny model ready in ${formatSeconds((Date.now() - started) / 1000)}`);
  console.log(JSON.stringify(result, null, 2));
}
