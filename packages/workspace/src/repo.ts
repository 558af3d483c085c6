import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Pipeline } from '@tunepipe/core';
import { didYouMean } from '@tunepipe/core';
import { WorkspaceError } from './errors.ts';
import { importPipelineModule } from './pipeline-module.ts';

/** The monorepo root: the nearest folder up from `start` with a `pipelines/` folder and a workspaces package.json. */
export function findRepoRoot(start = process.cwd()): string {
  let dir = resolve(start);
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && existsSync(join(dir, 'pipelines'))) {
      const json = JSON.parse(readFileSync(pkg, 'utf8')) as { workspaces?: unknown };
      if (json.workspaces) return dir;
    }
    const parent = dirname(dir);
    if (parent === dir) throw new WorkspaceError(`no tunepipe repository above ${start} (looked for package.json with workspaces next to pipelines/)`);
    dir = parent;
  }
}

export function discoverPipelines(root: string): string[] {
  const dir = join(root, 'pipelines');
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory() && existsSync(join(dir, e.name, 'pipeline.ts')))
    .map((e) => e.name)
    .sort();
}

/** The pipelines named on the command line, or all of them; unknown names are one error listing each. */
export function selectPipelines(root: string, names: readonly string[]): string[] {
  const all = discoverPipelines(root);
  if (names.length === 0) {
    if (all.length === 0) throw new WorkspaceError(`no pipelines under ${join(root, 'pipelines')} (each needs pipelines/<name>/pipeline.ts)`);
    return all;
  }
  const unknown = names.filter((n) => !all.includes(n));
  if (unknown.length > 0) {
    throw new WorkspaceError(
      `unknown pipeline${unknown.length > 1 ? 's' : ''}`,
      unknown.map((n) => ({ code: 'workspace.pipeline', path: `pipelines/${n}`, value: n, message: 'no pipelines/<name>/pipeline.ts', fix: didYouMean(n, all) ?? `one of: ${all.join(', ')}` })),
    );
  }
  return [...names];
}

function isPipeline(value: unknown): value is Pipeline {
  return !!value && typeof value === 'object' && typeof (value as Pipeline).name === 'string' && Array.isArray((value as Pipeline).stages);
}

export async function loadPipeline(root: string, name: string): Promise<Pipeline> {
  const file = join(root, 'pipelines', name, 'pipeline.ts');
  const module = await importPipelineModule(root, file, name);
  if (!isPipeline(module.default)) {
    throw new WorkspaceError(`${file} must \`export default definePipeline({ name: '${name}' }, (p) => …)\``);
  }
  if (module.default.name !== name) {
    throw new WorkspaceError(`${file} defines pipeline '${module.default.name}', but its folder is '${name}'`, [
      { code: 'workspace.pipeline-name', path: `pipelines/${name}/pipeline.ts`, value: module.default.name, message: 'the pipeline name and its folder differ', fix: `rename the folder or use name: '${name}'` },
    ]);
  }
  return module.default;
}
