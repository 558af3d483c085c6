// Bundles the CLI into one ESM file, dist/tunepipe.mjs, run with plain node (no TypeScript at run
// time): by the `tunepipe` bin, which rebuilds it when a source is newer (bin/tunepipe.mjs), and by
// the runtime image (images/runtime).
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const packageDir = fileURLToPath(new URL('.', import.meta.url));
export const BUNDLE = fileURLToPath(new URL('./dist/tunepipe.mjs', import.meta.url));

/** Builds the bundle; each file is renamed into place, so a CLI starting meanwhile reads a whole one. */
export async function buildCli({ quiet = false } = {}) {
  const started = performance.now();
  const result = await build({
    absWorkingDir: packageDir,
    entryPoints: ['src/main.ts'],
    outfile: BUNDLE,
    write: false,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    sourcemap: true,
    // Packages with native parts or dynamic requires stay outside the bundle and come from node_modules;
    // the code loads each on first use (client-node alone took half a second to import).
    external: ['@kubernetes/client-node', '@node-rs/jieba', 'esbuild', 'tsx'],
    banner: { js: "import { createRequire as __tunepipeRequire } from 'node:module'; const require = __tunepipeRequire(import.meta.url);" },
    logLevel: 'error',
  });
  mkdirSync(dirname(BUNDLE), { recursive: true });
  // The map first: a bundle is never newer than its map.
  const files = [...result.outputFiles].sort((a, b) => Number(b.path.endsWith('.map')) - Number(a.path.endsWith('.map')));
  for (const file of files) {
    const partial = `${file.path}.${process.pid}.partial`;
    writeFileSync(partial, file.contents);
    renameSync(partial, file.path);
  }
  if (!quiet) {
    const size = (files.find((f) => f.path === BUNDLE)?.contents.length ?? 0) / 1e6;
    console.log(`${relative(process.cwd(), BUNDLE)}: ${size.toFixed(1)} MB in ${Math.round(performance.now() - started)} ms`);
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await buildCli();
