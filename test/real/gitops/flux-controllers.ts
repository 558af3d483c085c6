// Flux's source-controller and kustomize-controller (built by scripts/real/flux.mjs) as local
// processes against the local control plane, plus the Flux CRDs of the same release.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { pathToFileURL } from 'node:url';
import type { LocalCluster } from '../support/cluster.ts';
import { tools } from '../support/tools.ts';

export interface FluxTools {
  readonly versions: Record<string, string>;
  readonly fluxRelease: string;
  readonly sourceController: string;
  readonly kustomizeController: string;
  readonly crds: readonly string[];
  readonly lua: string;
  readonly luaVersion: string;
}

export function fluxTools(): FluxTools {
  const flux = tools<FluxTools>('flux');
  for (const path of [flux.sourceController, flux.kustomizeController, flux.lua, ...flux.crds]) {
    if (!path || !existsSync(path)) throw new Error(`Flux tool missing at ${path}: run \`node scripts/real/install.mjs flux\``);
  }
  return flux;
}

export const FLUX_NAMESPACE = 'flux-system';

const { freePort } = (await import(pathToFileURL(join(import.meta.dirname, '..', '..', '..', 'scripts', 'real', 'cluster.mjs')).href)) as {
  freePort(): Promise<number>;
};

export interface RunningFlux {
  /** Where source-controller serves artifacts (kustomize-controller downloads them from here). */
  readonly storageUrl: string;
  readonly logDir: string;
  stop(): Promise<void>;
}

async function waitHealthy(name: string, url: string, child: ChildProcess, log: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${name} exited with ${child.exitCode}:\n${tail(log)}`);
    try {
      const r = await fetch(url);
      if (r.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${name} not ready at ${url} within ${timeoutMs / 1000} s:\n${tail(log)}`);
}

export function tail(file: string, lines = 30): string {
  return existsSync(file) ? readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n') : '(no log)';
}

/** Applies the Flux CRDs of the built release and waits until the API server serves them. */
export async function installFluxCrds(cluster: LocalCluster, flux: FluxTools): Promise<string[]> {
  const names: string[] = [];
  for (const file of flux.crds) {
    for (const doc of parseAllDocuments(readFileSync(file, 'utf8'))) {
      const crd = doc.toJS() as { kind?: string; metadata: { name: string } } | null;
      if (!crd || crd.kind !== 'CustomResourceDefinition') continue;
      await cluster.api.apply(crd);
      names.push(crd.metadata.name);
    }
  }
  for (const name of names) {
    await cluster.waitFor(`CRD ${name} established`, async () => {
      const crd = await cluster.api.get('apiextensions.k8s.io/v1', 'CustomResourceDefinition', name);
      return crd?.status?.conditions?.some((c: { type: string; status: string }) => c.type === 'Established' && c.status === 'True');
    }, { timeoutMs: 30_000 });
  }
  cluster.api.resetDiscovery();
  await cluster.api.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: FLUX_NAMESPACE } });
  return names;
}

/**
 * Starts both controllers with the admin kubeconfig, leader election off, and source-controller's
 * artifact server on loopback. `--requeue-dependency=5s` (default 30 s) only shortens how often a
 * Kustomization whose dependencies are not Ready looks again, so the test runs in minutes.
 */
export async function startFlux(cluster: LocalCluster, flux: FluxTools, dir: string): Promise<RunningFlux> {
  const logDir = join(dir, 'flux-logs');
  mkdirSync(logDir, { recursive: true });
  const storagePort = await freePort();
  // source-controller refuses a storage path that does not exist yet.
  const storage = join(dir, 'flux-storage');
  mkdirSync(storage, { recursive: true });
  const env = { ...process.env, KUBECONFIG: cluster.kubeconfig, RUNTIME_NAMESPACE: FLUX_NAMESPACE };
  const children: ChildProcess[] = [];
  const launch = async (name: string, bin: string, args: string[]) => {
    const health = await freePort();
    const metrics = await freePort();
    const log = join(logDir, `${name}.log`);
    const out = createWriteStream(log);
    const child = spawn(bin, [...args, `--health-addr=127.0.0.1:${health}`, `--metrics-addr=127.0.0.1:${metrics}`, '--enable-leader-election=false', '--log-level=debug'], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.pipe(out);
    child.stderr!.pipe(out);
    children.push(child);
    await waitHealthy(name, `http://127.0.0.1:${health}/readyz`, child, log);
  };
  const stop = async () => {
    await Promise.all(
      children.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) return resolve();
            c.once('exit', () => resolve());
            c.kill('SIGTERM');
            setTimeout(() => c.kill('SIGKILL'), 5_000).unref();
          }),
      ),
    );
  };
  try {
    await launch('source-controller', flux.sourceController, [
      `--storage-path=${storage}`,
      `--storage-addr=127.0.0.1:${storagePort}`,
      `--storage-adv-addr=127.0.0.1:${storagePort}`,
      '--watch-all-namespaces=true',
    ]);
    await launch('kustomize-controller', flux.kustomizeController, ['--watch-all-namespaces=true', '--requeue-dependency=5s']);
  } catch (error) {
    await stop();
    throw error;
  }
  return { storageUrl: `http://127.0.0.1:${storagePort}`, logDir, stop };
}
