import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { check, compile, isError, renderManifests, type CompiledPipeline, type Issue, type RenderedFile } from '@tunepipe/core';
import { loadCompileContext, type ContextOverrides } from './context.ts';
import { loadPipeline } from './repo.ts';

export interface SynthResult {
  readonly compiled: CompiledPipeline;
  readonly warnings: readonly Issue[];
}

/** Loads, checks and compiles one pipeline of the repo. */
export async function synthPipeline(root: string, name: string, overrides: ContextOverrides = {}): Promise<SynthResult> {
  const pipeline = await loadPipeline(root, name);
  const context = await loadCompileContext(root, pipeline, overrides);
  const warnings = check(pipeline, context).filter((i) => !isError(i));
  return { compiled: compile(pipeline, context), warnings };
}

export function distDir(root: string, name: string): string {
  return join(root, 'pipelines', name, 'dist');
}

/** Replaces the dist folder's YAML with `files`, so objects that disappeared do not linger. */
export function writeFiles(dir: string, files: readonly RenderedFile[]): void {
  mkdirSync(dir, { recursive: true });
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.isFile() && entry.name.endsWith('.yaml')) rmSync(join(dir, entry.name));
  }
  for (const file of files) {
    const path = join(dir, file.path);
    mkdirSync(join(path, '..'), { recursive: true });
    writeFileSync(path, file.content);
  }
}

export function manifestFiles(compiled: CompiledPipeline): RenderedFile[] {
  return renderManifests(compiled);
}
