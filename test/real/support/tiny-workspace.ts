// A throwaway tunepipe repository around one pipeline that trains the tier's tiny model: the
// repository's datasets and the tiny model linked in, and the environment its tools run under.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pythonEnv, type PythonTools } from '../../../scripts/real/python.mjs';
import { repoRoot } from './python.ts';
import { tools } from './tools.ts';

export interface TinyWorkspace {
  readonly python: PythonTools;
  /** The environment LLaMA-Factory runs under: the venv first on PATH, one thread per process. */
  readonly env: Record<string, string>;
}

/** Writes `<root>/pipelines/<pipeline>/pipeline.ts` (from `source`) into a fresh repository at `root`. */
export function tinyWorkspace(root: string, pipeline: string, source: string): TinyWorkspace {
  const python = tools<PythonTools>('python');
  const tiny = tools<{ readonly dir: string }>('tinyModel');
  assert.ok(existsSync(join(python.bin, 'llamafactory-cli')), `no llamafactory-cli in ${python.bin}: reinstall with node scripts/real/install.mjs python`);
  rmSync(root, { recursive: true, force: true });
  mkdirSync(join(root, 'pipelines', pipeline), { recursive: true });
  mkdirSync(join(root, 'models'), { recursive: true });
  writeFileSync(join(root, 'package.json'), `${JSON.stringify({ name: `${pipeline}-real`, private: true, type: 'module', workspaces: [] }, null, 2)}\n`);
  writeFileSync(join(root, 'pipelines', pipeline, 'pipeline.ts'), source);
  symlinkSync(join(repoRoot, 'datasets'), join(root, 'datasets'), 'dir');
  symlinkSync(tiny.dir, join(root, 'models', 'tiny-llama3'), 'dir');
  const env = {
    ...(process.env as Record<string, string>),
    ...pythonEnv(),
    PATH: `${python.bin}:${process.env['PATH'] ?? ''}`,
    NO_COLOR: '1',
    // Two cores shared with other work: torch's second thread spins against the other processes
    // and makes a step ten times slower than one thread.
    OMP_NUM_THREADS: '1',
  };
  return { python, env };
}
