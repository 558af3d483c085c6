// Runs the real `tunepipe` CLI (packages/cli/bin/tunepipe.mjs) as a user would, against the local
// control plane, with the kubeconfig of the runner's ServiceAccount.
import { spawn, type ChildProcess } from 'node:child_process';
import { join, resolve } from 'node:path';

export const repoRoot = resolve(import.meta.dirname, '..', '..', '..');
const bin = join(repoRoot, 'packages', 'cli', 'bin', 'tunepipe.mjs');

export interface CliResult {
  readonly status: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  /** stdout + stderr, for assertions and failure messages. */
  readonly output: string;
}

export interface RunningCli {
  readonly child: ChildProcess;
  /** Output so far. */
  output(): string;
  /** Resolves when the process ends. */
  readonly done: Promise<CliResult>;
  /** Resolves once `pattern` appears in the output (rejects after `timeoutMs` or when the process ends first). */
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<void>;
}

/** Starts `tunepipe <args>` in the repository, with `kubeconfig` as KUBECONFIG and the plain (CI) progress lines. */
export function startCli(args: readonly string[], kubeconfig: string, options: { timeoutMs?: number } = {}): RunningCli {
  const child = spawn(process.execPath, [bin, ...args], {
    cwd: repoRoot,
    env: { ...process.env, KUBECONFIG: kubeconfig, NO_COLOR: '1', CI: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const listeners = new Set<() => void>();
  child.stdout!.on('data', (c: Buffer) => {
    stdout += c.toString();
    for (const l of listeners) l();
  });
  child.stderr!.on('data', (c: Buffer) => {
    stderr += c.toString();
    for (const l of listeners) l();
  });
  const timeoutMs = options.timeoutMs ?? 240_000;
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const done = new Promise<CliResult>((resolveDone) => {
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      for (const l of listeners) l();
      resolveDone({ status, signal, stdout, stderr, output: `${stdout}${stderr}` });
    });
  });
  let ended = false;
  void done.then(() => (ended = true));
  return {
    child,
    output: () => `${stdout}${stderr}`,
    done,
    waitForOutput(pattern, waitMs = 120_000) {
      return new Promise<void>((resolveWait, reject) => {
        const check = () => {
          if (pattern.test(`${stdout}${stderr}`)) {
            cleanup();
            resolveWait();
          } else if (ended) {
            cleanup();
            reject(new Error(`tunepipe ${args.join(' ')} ended before printing ${pattern}:\n${stdout}${stderr}`));
          }
        };
        const t = setTimeout(() => {
          cleanup();
          reject(new Error(`no ${pattern} after ${waitMs} ms from tunepipe ${args.join(' ')}:\n${stdout}${stderr}`));
        }, waitMs);
        const cleanup = () => {
          clearTimeout(t);
          listeners.delete(check);
        };
        listeners.add(check);
        check();
      });
    },
  };
}

/** Runs `tunepipe <args>` to the end. */
export function cli(args: readonly string[], kubeconfig: string, options: { timeoutMs?: number } = {}): Promise<CliResult> {
  return startCli(args, kubeconfig, options).done;
}
