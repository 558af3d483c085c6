#!/usr/bin/env node
// Runs the TypeScript CLI through tsx, so the repo needs no build step to be used.
import { register } from 'tsx/esm/api';
import { fileURLToPath } from 'node:url';

register();
const { main } = await import(fileURLToPath(new URL('../src/main.ts', import.meta.url)));
process.exitCode = await main(process.argv.slice(2));
