import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Message, Plugin } from 'esbuild';
import type { Issue } from '@tunepipe/core';
import { WorkspaceError } from './errors.ts';

// A pipeline.ts is compiled with one esbuild call and imported as plain JavaScript: no TypeScript
// loader is registered in the process, which is what keeps the bundled CLI fast to start.
//
// The pipeline's imports of @tunepipe/core are served by the core this process already runs, never
// a second copy: the DSL recognises its own handles and stage objects, so a pipeline built with
// another instance of core would be refused.

/** Each @tunepipe/core entry point a pipeline may import, loaded on first need. */
const HOST_MODULES: Record<string, () => Promise<Record<string, unknown>>> = {
  '@tunepipe/core': () => import('@tunepipe/core'),
  '@tunepipe/core/labels': () => import('@tunepipe/core/labels'),
  '@tunepipe/core/compiled': () => import('@tunepipe/core/compiled'),
  '@tunepipe/core/artifacts': () => import('@tunepipe/core/artifacts'),
};

const HOST_REGISTRY = Symbol.for('tunepipe.pipeline-host-modules');
const HOST_NAMESPACE = 'tunepipe-host';

function hostRegistry(): Map<string, Record<string, unknown>> {
  const global = globalThis as { [HOST_REGISTRY]?: Map<string, Record<string, unknown>> };
  return (global[HOST_REGISTRY] ??= new Map());
}

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

/** Re-exports a module of this process, by name, to the compiled pipeline. */
async function hostModuleSource(specifier: string): Promise<string> {
  const namespace = await HOST_MODULES[specifier]!();
  hostRegistry().set(specifier, namespace);
  const names = Object.keys(namespace).filter((n) => n !== 'default' && IDENTIFIER.test(n));
  const lookup = `globalThis[Symbol.for(${JSON.stringify(HOST_REGISTRY.description)})].get(${JSON.stringify(specifier)})`;
  return [
    `const host = ${lookup};`,
    names.length > 0 ? `export const { ${names.join(', ')} } = host;` : '',
    'default' in namespace ? 'export default host.default;' : '',
  ].join('\n');
}

const hostModulesPlugin: Plugin = {
  name: 'tunepipe-host-modules',
  setup(build) {
    build.onResolve({ filter: /^@tunepipe\/core(\/[\w-]+)?$/ }, (args) =>
      args.path in HOST_MODULES ? { path: args.path, namespace: HOST_NAMESPACE } : undefined,
    );
    build.onLoad({ filter: /.*/, namespace: HOST_NAMESPACE }, async (args) => ({
      contents: await hostModuleSource(args.path),
      loader: 'js',
    }));
  },
};

function compileIssues(root: string, file: string, messages: readonly Message[]): Issue[] {
  return messages.map((m) => {
    return {
      code: 'workspace.pipeline-compile',
      path: m.location ? `${m.location.file}:${m.location.line}:${m.location.column + 1}` : relative(root, file),
      message: m.text,
      ...(m.location?.lineText ? { value: m.location.lineText.trim() } : {}),
      ...(m.notes[0]?.text ? { fix: m.notes[0].text } : {}),
    };
  });
}

/** Compiles pipeline.ts (and the local files it imports) to one ES module, as text. */
async function compilePipeline(root: string, file: string): Promise<string> {
  const { build } = await import('esbuild');
  const fileUrl = pathToFileURL(file).href;
  const result = await build({
    entryPoints: [file],
    absWorkingDir: root,
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    sourcemap: 'inline',
    sourcesContent: false,
    logLevel: 'silent',
    plugins: [hostModulesPlugin],
    // The module runs from a temporary file; what it asks about itself is answered for pipeline.ts.
    define: {
      'import.meta.url': JSON.stringify(fileUrl),
      'import.meta.filename': JSON.stringify(file),
      'import.meta.dirname': JSON.stringify(dirname(file)),
    },
    banner: { js: `import { createRequire as __tunepipeCreateRequire } from 'node:module'; const require = __tunepipeCreateRequire(${JSON.stringify(fileUrl)});` },
  }).catch((error: unknown) => {
    const errors = (error as { errors?: Message[] }).errors;
    if (!errors) throw error;
    throw new WorkspaceError(`${relative(root, file)} does not compile`, compileIssues(root, file, errors));
  });
  return result.outputFiles[0]!.text;
}

async function importCompiled(code: string, name: string): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'tunepipe-pipeline-'));
  const out = join(dir, `${name}.pipeline.mjs`);
  try {
    writeFileSync(out, code);
    return (await import(pathToFileURL(out).href)) as Record<string, unknown>;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const loaded = new Map<string, Promise<Record<string, unknown>>>();

/**
 * The module a pipeline.ts exports. Loaded once per process and version of the file, as `import()`
 * would: a pipeline is evaluated once however many commands read it.
 */
export function importPipelineModule(root: string, file: string, name: string): Promise<Record<string, unknown>> {
  const { mtimeMs, size } = statSync(file);
  const key = `${file}\0${mtimeMs}\0${size}`;
  let module = loaded.get(key);
  if (!module) {
    module = compilePipeline(root, file).then((code) => importCompiled(code, name));
    loaded.set(key, module);
  }
  return module;
}
