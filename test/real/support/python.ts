// The real-tools venv (scripts/real/python.mjs) from a test: its interpreter, and long-lived python
// processes that answer one JSON line per request, so a test file pays the interpreter + torch
// import (tens of seconds here) once instead of per case.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pythonEnv, type PythonTools } from '../../../scripts/real/python.mjs';
import { tools } from './tools.ts';

export const repoRoot = fileURLToPath(new URL('../../..', import.meta.url));

/** The venv's python; a clear failure when `npm run test:real` has not installed it. */
export function venvPython(): string {
  const python = tools<PythonTools>('python').python;
  if (!existsSync(python)) {
    throw new Error(`the Python venv of the real-tools tier is gone (${python}); run \`node scripts/real/install.mjs python\``);
  }
  return python;
}

export interface LineServer {
  request<T = Record<string, unknown>>(message: unknown): Promise<T>;
  close(): Promise<void>;
  readonly stderr: string;
}

/**
 * Starts `python <script> [...args]` from scripts/real/ and waits for its `{"ready": true}` line.
 * Each request is one JSON line in, one JSON line out, in order.
 */
export async function startLineServer(script: string, args: readonly string[] = [], env: Record<string, string> = {}): Promise<LineServer> {
  const child = spawn(venvPython(), ['-u', join(repoRoot, 'scripts/real', script), ...args], {
    env: { ...process.env, ...pythonEnv(env) },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  let buffer = '';
  let exited: string | undefined;
  const waiting: { resolve: (v: unknown) => void; reject: (e: Error) => void }[] = [];
  child.stderr.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-30000);
  });
  child.stdout.on('data', (d: Buffer) => {
    buffer += d.toString();
    for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      const w = waiting.shift();
      if (!w) continue;
      try {
        w.resolve(JSON.parse(line));
      } catch {
        w.reject(new Error(`${script} wrote a line that is not JSON: ${line.slice(0, 300)}`));
      }
    }
  });
  child.on('exit', (code, signal) => {
    exited = `${script} exited (${signal ?? code}); its stderr ends with:\n${stderr.slice(-4000)}`;
    for (const w of waiting.splice(0)) w.reject(new Error(exited));
  });
  const next = () =>
    new Promise<unknown>((resolve, reject) => {
      if (exited) reject(new Error(exited));
      else waiting.push({ resolve, reject });
    });
  const ready = (await next()) as { ready?: boolean };
  if (!ready.ready) throw new Error(`${script} did not start: ${JSON.stringify(ready)}`);
  return {
    async request<T>(message: unknown): Promise<T> {
      const reply = next();
      child.stdin.write(`${JSON.stringify(message)}\n`);
      return (await reply) as T;
    },
    close() {
      if (exited) return Promise.resolve();
      return new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.stdin.end();
      });
    },
    get stderr() {
      return stderr;
    },
  };
}
