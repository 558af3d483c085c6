// The real tools' paths, as `npm run test:real` installed them (scripts/real/install.mjs writes
// <cache>/tools.json). A test whose tool is missing fails with this message instead of skipping.
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

export function cacheRoot(): string {
  return resolve(process.env.TUNEPIPE_CACHE ?? join(homedir(), '.cache', 'tunepipe'));
}

export function toolsFile(): string {
  return process.env.TUNEPIPE_TOOLS ?? join(cacheRoot(), 'tools.json');
}

/** The object `install()` of scripts/real/<component>.mjs returned. */
export function tools<T = Record<string, unknown>>(component: string): T {
  const file = toolsFile();
  const all = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>) : {};
  const entry = all[component];
  if (entry === undefined || entry === null) {
    throw new Error(`the real tool '${component}' is not installed (${file} has no entry): run \`npm run test:real\` (or \`node scripts/real/install.mjs ${component}\`) first`);
  }
  return entry as T;
}
