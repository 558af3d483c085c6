// Bundles the CLI into one ESM file for the runtime image (images/runtime), which runs it with
// plain node: no tsx, no TypeScript at run time.
import { build } from 'esbuild';

await build({
  entryPoints: ['src/main.ts'],
  outfile: 'dist/tunepipe.mjs',
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  sourcemap: true,
  // Packages with native parts or dynamic requires stay outside the bundle and come from node_modules.
  external: ['@kubernetes/client-node', '@node-rs/jieba', 'cli-progress', 'esbuild', 'tsx'],
  banner: { js: "import { createRequire as __tunepipeRequire } from 'node:module'; const require = __tunepipeRequire(import.meta.url);" },
  logLevel: 'info',
});
