import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import {
  ApiException,
  AppsV1Api,
  BatchV1Api,
  CoreV1Api,
  KubeConfig,
  KubernetesObjectApi,
  Log,
  PatchStrategy,
  type KubernetesObject,
  type V1Deployment,
  type V1Job,
  type V1Pod,
} from '@kubernetes/client-node';
import { RunnerError } from '../types.ts';

/** Field manager of every server-side apply tunepipe makes. */
export const FIELD_MANAGER = 'tunepipe';

export interface KubeConfigOptions {
  /** Path of a kubeconfig file. @default $KUBECONFIG, ~/.kube/config, or the in-cluster service account */
  readonly kubeconfig?: string;
  /** Context to use. @default the current context */
  readonly context?: string;
}

/** Loads a kubeconfig from the usual places (or `options.kubeconfig`); fails with a fix when there is none. */
export function loadKubeConfig(options: KubeConfigOptions = {}): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (options.kubeconfig) kc.loadFromFile(options.kubeconfig);
    else {
      const candidates = [process.env['KUBECONFIG'], join(homedir(), '.kube', 'config')].filter(Boolean);
      const inCluster = Boolean(process.env['KUBERNETES_SERVICE_HOST']);
      if (!inCluster && !candidates.some((p) => p!.split(':').some((f) => f && existsSync(f)))) {
        throw new RunnerError(
          'no Kubernetes cluster configured: set KUBECONFIG or create ~/.kube/config (or pass --kubeconfig), or run with --target local',
        );
      }
      kc.loadFromDefault();
    }
  } catch (error) {
    if (error instanceof RunnerError) throw error;
    throw new RunnerError(`cannot read the kubeconfig: ${(error as Error).message}`);
  }
  if (options.context) {
    if (!kc.getContexts().some((c) => c.name === options.context)) {
      throw new RunnerError(
        `no context ${JSON.stringify(options.context)} in the kubeconfig; contexts are ${kc.getContexts().map((c) => c.name).join(', ') || '(none)'}`,
      );
    }
    kc.setCurrentContext(options.context);
  }
  if (!kc.getCurrentCluster()) throw new RunnerError('the kubeconfig has no current context with a cluster; set one with kubectl config use-context');
  return kc;
}

function isNotFound(error: unknown): boolean {
  return error instanceof ApiException && error.code === 404;
}

/**
 * The API server could not be reached or answered that it cannot serve right now (5xx, 429): a
 * restart, a failover, a rolling upgrade of the control plane. Worth waiting out; the cluster's
 * state is unchanged by it.
 */
export class TransientKubeError extends RunnerError {}

/** 403: missing rights, or (straight after an API server restart) an authorizer still warming up. */
export class ForbiddenKubeError extends RunnerError {}

/**
 * Turns client errors into messages a user can act on: unreachable API server, missing rights,
 * rejected objects. Anything else is passed through (a bug, shown with its stack by the CLI).
 */
export function explainKubeError(error: unknown, server: string, doing: string): Error {
  if (error instanceof RunnerError) return error;
  if (error instanceof ApiException) {
    const body = typeof error.body === 'string' ? safeJson(error.body) : error.body;
    const message = (body as { message?: string } | undefined)?.message ?? String(error.body ?? '').slice(0, 300);
    if (error.code === 401) return new RunnerError(`${doing}: the Kubernetes API at ${server} rejected the credentials (401); refresh your kubeconfig login`);
    if (error.code === 403) return new ForbiddenKubeError(`${doing}: forbidden (403): ${message}`);
    if (error.code >= 500 || error.code === 429) return new TransientKubeError(`${doing}: the Kubernetes API answered ${error.code}: ${message}`);
    return new RunnerError(`${doing}: the Kubernetes API answered ${error.code}: ${message}`);
  }
  const code = (error as { code?: string; cause?: { code?: string } }).code ?? (error as { cause?: { code?: string } }).cause?.code;
  if (typeof code === 'string' && /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|UND_ERR_SOCKET)/.test(code)) {
    return new TransientKubeError(
      `${doing}: cannot reach the Kubernetes API at ${server} (${code}); check the current context (kubectl config current-context) or run with --target local`,
    );
  }
  if (typeof code === 'string' && /^(ENOTFOUND|EHOSTUNREACH|CERT_|DEPTH_ZERO|SELF_SIGNED|UNABLE_TO)/.test(code)) {
    return new RunnerError(`${doing}: cannot reach the Kubernetes API at ${server} (${code}); check the current context (kubectl config current-context) or run with --target local`);
  }
  return error instanceof Error ? error : new Error(String(error));
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** The handful of API calls the runner makes, with 404 turned into `undefined`. */
export class KubeClient {
  readonly kc: KubeConfig;
  readonly server: string;
  readonly #objects: KubernetesObjectApi;
  readonly #core: CoreV1Api;
  readonly #batch: BatchV1Api;
  readonly #apps: AppsV1Api;
  readonly #log: Log;

  constructor(kc: KubeConfig) {
    this.kc = kc;
    this.server = kc.getCurrentCluster()?.server ?? '(no server)';
    this.#objects = KubernetesObjectApi.makeApiClient(kc);
    this.#core = kc.makeApiClient(CoreV1Api);
    this.#batch = kc.makeApiClient(BatchV1Api);
    this.#apps = kc.makeApiClient(AppsV1Api);
    this.#log = new Log(kc);
  }

  async #call<T>(doing: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (error) {
      throw explainKubeError(error, this.server, doing);
    }
  }

  async #maybe<T>(doing: string, fn: () => Promise<T>): Promise<T | undefined> {
    try {
      return await fn();
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw explainKubeError(error, this.server, doing);
    }
  }

  /** Server-side apply, field manager `tunepipe`, taking over conflicting fields. */
  apply(object: KubernetesObject): Promise<KubernetesObject> {
    const copy = structuredClone(object);
    return this.#call(`applying ${object.kind} ${object.metadata?.name}`, () =>
      this.#objects.patch(copy, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply),
    );
  }

  readJob(namespace: string, name: string): Promise<V1Job | undefined> {
    return this.#maybe(`reading Job ${name}`, () => this.#batch.readNamespacedJob({ name, namespace }));
  }

  async listJobs(namespace: string, labelSelector: string): Promise<V1Job[]> {
    return (await this.#call(`listing Jobs (${labelSelector})`, () => this.#batch.listNamespacedJob({ namespace, labelSelector }))).items;
  }

  async listPods(namespace: string, labelSelector: string): Promise<V1Pod[]> {
    return (await this.#call(`listing pods (${labelSelector})`, () => this.#core.listNamespacedPod({ namespace, labelSelector }))).items;
  }

  readDeployment(namespace: string, name: string): Promise<V1Deployment | undefined> {
    return this.#maybe(`reading Deployment ${name}`, () => this.#apps.readNamespacedDeployment({ name, namespace }));
  }

  async listDeployments(namespace: string, labelSelector: string): Promise<V1Deployment[]> {
    return (await this.#call(`listing Deployments (${labelSelector})`, () => this.#apps.listNamespacedDeployment({ namespace, labelSelector }))).items;
  }

  /** Deletes a Job and lets the garbage collector remove its pods. Returns false if it was gone. */
  async deleteJob(namespace: string, name: string): Promise<boolean> {
    const result = await this.#maybe(`deleting Job ${name}`, () =>
      this.#batch.deleteNamespacedJob({ name, namespace, propagationPolicy: 'Background' }),
    );
    return result !== undefined;
  }

  async scaleDeployment(namespace: string, name: string, replicas: number): Promise<void> {
    await this.#call(`scaling Deployment ${name}`, () =>
      this.#objects.patch(
        { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name, namespace }, spec: { replicas } } as KubernetesObject,
        undefined,
        undefined,
        FIELD_MANAGER,
        undefined,
        PatchStrategy.MergePatch,
      ),
    );
  }

  /**
   * The last `tailLines` lines of a pod's log; empty when the container never started, and when
   * the API server could not get it from the node (5xx: the kubelet is unreachable, e.g. the node
   * was scaled down after the pod finished). A log is detail: the Job's conditions decide a
   * stage, so an unreadable log must never fail one.
   */
  async podLogTail(namespace: string, pod: string, tailLines: number, container?: string): Promise<string[]> {
    try {
      const text = await this.#core.readNamespacedPodLog({ name: pod, namespace, tailLines, ...(container ? { container } : {}) });
      return splitLogLines(typeof text === 'string' ? text : String(text ?? ''));
    } catch (error) {
      if (error instanceof ApiException && (error.code === 404 || error.code === 400 || error.code >= 500)) return [];
      throw explainKubeError(error, this.server, `reading the log of pod ${pod}`);
    }
  }

  /**
   * Streams a pod's log (following it while the container runs) into `onText`. Resolves when the
   * stream ends (`ended`: the container stopped or `signal` aborted) or when the log cannot be
   * read yet (`unavailable`: container not started, pod gone).
   */
  async followPodLog(
    namespace: string,
    pod: string,
    container: string,
    onText: (text: string) => void,
    signal: AbortSignal,
    sinceTime?: Date,
  ): Promise<'ended' | 'unavailable'> {
    if (signal.aborted) return 'ended';
    return new Promise<'ended' | 'unavailable'>((resolve, reject) => {
      let controller: AbortController | undefined;
      let settled = false;
      const finish = (error?: unknown, outcome: 'ended' | 'unavailable' = 'ended') => {
        if (settled) return;
        settled = true;
        signal.removeEventListener('abort', onAbort);
        if (error && !signal.aborted) reject(error);
        else resolve(outcome);
      };
      const sink = new Writable({
        decodeStrings: false,
        write(chunk: Buffer | string, _enc, callback) {
          onText(typeof chunk === 'string' ? chunk : chunk.toString('utf8'));
          callback();
        },
        final(callback) {
          callback();
          finish();
        },
      });
      sink.on('error', () => finish());
      // node-fetch reports an aborted request as an 'error' event on the body it pipes from;
      // without a listener that event would crash the process.
      sink.on('pipe', (source: NodeJS.ReadableStream) => source.on('error', () => finish()));
      const onAbort = () => {
        controller?.abort();
        sink.end();
        finish();
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.#log
        .log(namespace, pod, container, sink, { follow: true, ...(sinceTime ? { sinceTime: sinceTime.toISOString() } : {}) })
        .then((c) => {
          controller = c;
          if (signal.aborted) c.abort();
        })
        .catch((error: unknown) =>
          isNotFound(error) || (error instanceof ApiException && error.code === 400)
            ? finish(undefined, 'unavailable')
            : finish(explainKubeError(error, this.server, `following the log of pod ${pod}`)),
        );
    });
  }
}

/** Splits log text into lines, treating tqdm's carriage-return redraws as line ends. */
export function splitLogLines(text: string): string[] {
  const lines = text.split(/\r\n|\n/).flatMap((l) => {
    const parts = l.split('\r').filter((p) => p.trim() !== '');
    return parts.length > 0 ? [parts.at(-1)!] : [l];
  });
  while (lines.length > 0 && lines.at(-1) === '') lines.pop();
  return lines;
}
