import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createRequire, SourceMap, type SourceMapPayload } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Message, Plugin } from 'esbuild';
import { CheckError, type Issue } from '@tunepipe/core';
import { WorkspaceError } from './errors.ts';

// A pipeline.ts is compiled with one esbuild call and imported as plain JavaScript: no TypeScript
// loader is registered in the process, which is what keeps the bundled CLI fast to start.
//
// The pipeline's imports of @tunepipe/core are served by the core this process already runs, never
// a second copy: bundling core into each pipeline would cost more than the pipeline itself, and what
// a pipeline takes from core (architectures, secret names) stays the very object the checks see.

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

interface CompiledPipeline {
  readonly code: Uint8Array;
  readonly map: Uint8Array;
}

/** Compiles pipeline.ts (and the local files it imports) to one ES module meant to run from `out`. */
async function compilePipeline(root: string, file: string, out: string): Promise<CompiledPipeline> {
  // Required rather than imported: as an ES import, Node first scans esbuild's CommonJS for its
  // export names, which took longer than the build itself.
  const { build } = createRequire(import.meta.url)('esbuild') as typeof import('esbuild');
  const fileUrl = pathToFileURL(file).href;
  const result = await build({
    entryPoints: [file],
    outfile: out,
    absWorkingDir: root,
    bundle: true,
    write: false,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    sourcemap: 'linked',
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
  const output = (suffix: string) => result.outputFiles.find((f) => f.path.endsWith(suffix))!.contents;
  return { code: output('.mjs'), map: output('.mjs.map') };
}

/**
 * Where in the user's files an error thrown by the compiled pipeline was raised: its first stack
 * frame, when that is in the compiled module (mapped back through its source map) or, with source
 * maps on in the process, already in one of the files compiled. Undefined when the error was raised
 * elsewhere first (in core: tunepipe's to answer for, with its stack).
 */
function userFrame(error: unknown, out: string, map: Uint8Array): { file: string; line: number; column: number } | undefined {
  const frame = (error instanceof Error ? error.stack : undefined)?.split('\n').find((l) => /^\s+at /.test(l));
  const at = frame && /\(?((?:file:\/\/)?\/[^()]+?):(\d+):(\d+)\)?$/.exec(frame);
  if (!at) return undefined;
  const file = at[1]!.startsWith('file:') ? fileURLToPath(at[1]!) : at[1]!;
  const [line, column] = [Number(at[2]), Number(at[3])];
  const sourceMap = JSON.parse(Buffer.from(map).toString('utf8')) as SourceMapPayload;
  if (file === out) {
    const entry = new SourceMap(sourceMap).findEntry(line - 1, column - 1);
    if (!('originalSource' in entry)) return undefined;
    return { file: resolve(dirname(out), entry.originalSource), line: entry.originalLine + 1, column: entry.originalColumn + 1 };
  }
  const compiled = sourceMap.sources.map((source) => resolve(dirname(out), source));
  return compiled.includes(file) ? { file, line, column } : undefined;
}

async function importCompiled(root: string, file: string, name: string): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'tunepipe-pipeline-'));
  const out = join(dir, `${name}.pipeline.mjs`);
  try {
    const { code, map } = await compilePipeline(root, file, out);
    writeFileSync(out, code);
    writeFileSync(`${out}.map`, map);
    try {
      return (await import(pathToFileURL(out).href)) as Record<string, unknown>;
    } catch (error) {
      // The pipeline's own code threw (a typo, a bad value): the user's to fix, so a place in their
      // file, not a stack trace through a temporary file.
      const where = userFrame(error, out, map);
      if (!where || error instanceof WorkspaceError || error instanceof CheckError) throw error;
      const path = `${relative(root, where.file)}:${where.line}:${where.column}`;
      throw new WorkspaceError(`${relative(root, file)} failed while defining the pipeline`, [
        { code: 'workspace.pipeline-threw', path, message: `${(error as Error).name}: ${(error as Error).message}` },
      ]);
    }
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
    module = importCompiled(root, file, name);
    loaded.set(key, module);
  }
  return module;
}
