#!/usr/bin/env node
// Installs (or finds in the cache) every real tool the test:real tier runs, and says how long each
// took. `node scripts/real/install.mjs [component …]` installs only those.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cacheRoot, formatSeconds, log } from './lib.mjs';

/** Each module exports `install()`: idempotent, returns the paths tests need (written to tools.json). */
export const components = {
  python: () => import('./python.mjs'),
  // Built in the python venv from datasets/ (no download): the model test/real/llamafactory trains.
  tinyModel: () => import('./tiny-model.mjs'),
  // A layer over the python venv: LLaMA-Factory's DeepSpeed strategies, run on the CPU.
  deepspeed: () => import('./deepspeed.mjs'),
  controlplane: () => import('./controlplane.mjs'),
  pulumi: () => import('./pulumi.mjs'),
  flux: () => import('./flux.mjs'),
};

export async function installAll(names = Object.keys(components)) {
  const tools = {};
  for (const name of names) {
    const load = components[name];
    if (!load) throw new Error(`unknown component ${name}; known: ${Object.keys(components).join(', ')}`);
    const started = Date.now();
    const mod = await load();
    tools[name] = await mod.install();
    log(`${name} ready (${formatSeconds((Date.now() - started) / 1000)})`);
  }
  return tools;
}

export function toolsFile() {
  return join(cacheRoot(), 'tools.json');
}

export function readTools() {
  const f = toolsFile();
  return existsSync(f) ? JSON.parse(readFileSync(f, 'utf8')) : {};
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { writeFileSync, mkdirSync } = await import('node:fs');
  const names = process.argv.slice(2);
  const tools = await installAll(names.length > 0 ? names : undefined);
  mkdirSync(cacheRoot(), { recursive: true });
  writeFileSync(toolsFile(), JSON.stringify({ ...readTools(), ...tools }, null, 2) + '\n');
  console.log(JSON.stringify(tools, null, 2));
}
