import { existsSync } from 'node:fs';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { KubeConfig, KubernetesObject, V1Deployment, V1Job, V1Pod } from '@kubernetes/client-node';
import { RunnerError } from '../types.ts';

// Objects come back as parsed JSON: timestamps are ISO strings although the client-node types
// say Date (classify/inspect read both).

/** Field manager of every server-side apply tunepipe makes. */
export const FIELD_MANAGER = 'tunepipe';

export interface KubeConfigOptions {
  /** Path of a kubeconfig file. @default $KUBECONFIG, ~/.kube/config, or the in-cluster service account */
  readonly kubeconfig?: string;
  /** Context to use. @default the current context */
  readonly context?: string;
}

/** Loads a kubeconfig from the usual places (or `options.kubeconfig`); fails with a fix when there is none. */
export async function loadKubeConfig(options: KubeConfigOptions = {}): Promise<KubeConfig> {
  // Imported here, not at the top: loading client-node takes over half a second, which every CLI
  // command (--help included) paid before any of them needed a cluster.
  const clientNode = await import('@kubernetes/client-node');
  const kc = new clientNode.KubeConfig();
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

// ------------------------------------------------------------------------------------ errors

export interface KubeErrorDetail {
  /** What the runner was doing, e.g. `reading Job x`. */
  readonly doing: string;
  /** HTTP status, when the API server answered. */
  readonly status?: number;
  /** Status reason (`Conflict`, `Expired`, `AlreadyExists`). */
  readonly reason?: string;
  /** Socket-level code (`ECONNRESET`), or `ETIMEDOUT` for a request that got no answer in time. */
  readonly errno?: string;
  /** From a 429/503 `Retry-After`. */
  readonly retryAfterMs?: number;
}

/** A failed API call, with a message a user can act on. */
export class KubeError extends RunnerError {
  readonly detail: KubeErrorDetail;
  constructor(message: string, detail: KubeErrorDetail) {
    super(message);
    this.detail = detail;
  }
  get status(): number | undefined {
    return this.detail.status;
  }
}

/**
 * The API server could not be reached, did not answer in time, or answered that it cannot serve
 * right now (5xx, 429): a restart, a failover, a rolling upgrade of the control plane. Worth
 * waiting out; the cluster's state is unchanged by it.
 */
export class TransientKubeError extends KubeError {}

/** 403: missing rights, or (straight after an API server restart) an authorizer still warming up. */
export class ForbiddenKubeError extends KubeError {}

/**
 * Transient failures went on longer than the retry budget: the run cannot see or steer the
 * cluster any more. Carries what was in flight, for the message that ends the run.
 */
export class ApiOutageError extends RunnerError {
  readonly doing: string;
  readonly server: string;
  readonly lastError: KubeError;
  /** How long contact had been lost when the call gave up. */
  readonly lostForMs: number;
  constructor(server: string, doing: string, lastError: KubeError, lostForMs: number) {
    super(`lost contact with the Kubernetes API for ${formatSeconds(lostForMs)}; last error: ${lastError.message.split(';')[0]}`);
    this.doing = doing;
    this.server = server;
    this.lastError = lastError;
    this.lostForMs = lostForMs;
  }
}

/** The call was given up because the run's (or the call's) signal was aborted: Ctrl-C, or the run ending. */
export class RequestAbortedError extends Error {
  constructor() {
    super('request aborted');
    this.name = 'AbortError';
  }
}

export const formatSeconds = (ms: number) => (ms < 10_000 ? `${(ms / 1000).toFixed(1)}s` : `${Math.round(ms / 1000)}s`);

const TRANSIENT_ERRNO = /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|ECONNABORTED|EAI_AGAIN|ENETUNREACH|EHOSTUNREACH|ENETDOWN|UND_ERR_SOCKET|ERR_STREAM_PREMATURE_CLOSE)/;
const CONFIG_ERRNO = /^(ENOTFOUND|CERT_|DEPTH_ZERO|SELF_SIGNED|UNABLE_TO|ERR_TLS|ERR_SSL|ERR_INVALID_URL)/;
/** Refused before the API server ever answered: a wrong context far more often than a restart. */
const NEVER_REACHED_ERRNO = /^(ECONNREFUSED|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH)/;

function statusMessage(text: string): { message: string; reason?: string; code?: number } {
  try {
    const body = JSON.parse(text) as { message?: string; reason?: string; code?: number };
    if (body && typeof body === 'object') {
      return { message: body.message ?? text.slice(0, 300), ...(body.reason ? { reason: body.reason } : {}), ...(typeof body.code === 'number' ? { code: body.code } : {}) };
    }
  } catch {
    // not JSON: a proxy's HTML error page, say
  }
  return { message: text.slice(0, 300) };
}

function retryAfter(value: string | string[] | undefined): number | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  if (!text) return undefined;
  const seconds = Number(text);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(text);
  return Number.isFinite(at) ? Math.max(0, at - Date.now()) : undefined;
}

/** The error for an answer with a non-2xx status. */
export function statusError(status: number, text: string, headers: http.IncomingHttpHeaders, doing: string, server: string): KubeError {
  const { message, reason } = statusMessage(text);
  const detail: KubeErrorDetail = { doing, status, ...(reason ? { reason } : {}) };
  if (status === 401) return new KubeError(`${doing}: the Kubernetes API at ${server} rejected the credentials (401); refresh your kubeconfig login`, detail);
  if (status === 403) return new ForbiddenKubeError(`${doing}: forbidden (403): ${message}`, detail);
  if (status >= 500 || status === 429) {
    const after = retryAfter(headers['retry-after']);
    return new TransientKubeError(`${doing}: the Kubernetes API answered ${status}: ${message}`, { ...detail, ...(after !== undefined ? { retryAfterMs: after } : {}) });
  }
  return new KubeError(`${doing}: the Kubernetes API answered ${status}: ${message}`, detail);
}

/** The error for a request that got no answer (socket error, timeout). */
export function transportError(error: unknown, doing: string, server: string): KubeError | RequestAbortedError {
  if (error instanceof RequestAbortedError || error instanceof KubeError) return error;
  const code = (error as { code?: string }).code ?? (error as { cause?: { code?: string } }).cause?.code;
  const waited = (error as { timeoutMs?: number }).timeoutMs;
  if (waited !== undefined) {
    return new TransientKubeError(`${doing}: no answer from the Kubernetes API at ${server} within ${formatSeconds(waited)} (ETIMEDOUT)`, { doing, errno: 'ETIMEDOUT' });
  }
  if (typeof code === 'string' && TRANSIENT_ERRNO.test(code)) {
    return new TransientKubeError(
      `${doing}: cannot reach the Kubernetes API at ${server} (${code}); check the current context (kubectl config current-context) or run with --target local`,
      { doing, errno: code },
    );
  }
  if (typeof code === 'string' && CONFIG_ERRNO.test(code)) {
    return new KubeError(`${doing}: cannot reach the Kubernetes API at ${server} (${code}); check the current context (kubectl config current-context) or run with --target local`, {
      doing,
      errno: code,
    });
  }
  const message = error instanceof Error ? error.message : String(error);
  return new KubeError(`${doing}: ${message}`, { doing, ...(typeof code === 'string' ? { errno: code } : {}) });
}

// ------------------------------------------------------------------------------------ client

export interface BackoffOptions {
  /** First delay. @default 250 */
  readonly initialMs: number;
  /** Longest delay. @default 8000 */
  readonly maxMs: number;
}

export interface KubeClientOptions {
  /** Aborts every request in flight and every wait between retries (Ctrl-C). */
  readonly signal?: AbortSignal;
  /**
   * Longest wait for one answer: the whole answer of a plain request; the headers of a watch or
   * log stream (a watch is also given up after `watchIdleMs` without a byte). @default 30000
   */
  readonly requestTimeoutMs?: number;
  /** How long one call retries transient failures before it gives up with ApiOutageError. @default 300000 */
  readonly retryBudgetMs?: number;
  readonly backoff?: BackoffOptions;
  /** Told once when contact is lost and once when it is back. */
  readonly onNote?: (message: string) => void;
  /** @default Math.random */
  readonly random?: () => number;
}

export interface CallOptions {
  /** Replaces the client's signal for this call (clean-up after the run was aborted). */
  readonly signal?: AbortSignal;
  readonly timeoutMs?: number;
  /** Retry transient failures. @default true */
  readonly retry?: boolean;
}

export interface ObjectList<T> {
  readonly items: T[];
  readonly resourceVersion: string;
}

export interface WatchEvent<T> {
  readonly type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK';
  readonly object: T;
}

export interface WatchParams {
  readonly labelSelector?: string;
  readonly fieldSelector?: string;
  readonly resourceVersion: string;
  /** Server-side end of the watch. @default 240 */
  readonly timeoutSeconds?: number;
  /** Give the watch up (TransientKubeError ETIMEDOUT) after this long without a byte. */
  readonly idleMs: number;
}

export interface Lease extends KubernetesObject {
  spec?: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

interface Resource {
  readonly plural: string;
  readonly namespaced: boolean;
}

/** Kinds the compiler emits; anything else is looked up through discovery. */
const KNOWN_RESOURCES: Record<string, Resource> = {
  'v1/ConfigMap': { plural: 'configmaps', namespaced: true },
  'v1/Service': { plural: 'services', namespaced: true },
  'v1/Secret': { plural: 'secrets', namespaced: true },
  'v1/PersistentVolumeClaim': { plural: 'persistentvolumeclaims', namespaced: true },
  'v1/ServiceAccount': { plural: 'serviceaccounts', namespaced: true },
  'v1/Pod': { plural: 'pods', namespaced: true },
  'batch/v1/Job': { plural: 'jobs', namespaced: true },
  'apps/v1/Deployment': { plural: 'deployments', namespaced: true },
  'coordination.k8s.io/v1/Lease': { plural: 'leases', namespaced: true },
};

const groupPath = (apiVersion: string) => (apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`);
const enc = encodeURIComponent;

export const collectionPath = (apiVersion: string, plural: string, namespace: string) => `${groupPath(apiVersion)}/namespaces/${enc(namespace)}/${plural}`;
export const JOBS = (namespace: string) => collectionPath('batch/v1', 'jobs', namespace);
export const PODS = (namespace: string) => collectionPath('v1', 'pods', namespace);
export const DEPLOYMENTS = (namespace: string) => collectionPath('apps/v1', 'deployments', namespace);
export const LEASES = (namespace: string) => collectionPath('coordination.k8s.io/v1', 'leases', namespace);
/** Kueue's Workloads (one per queued Job), as infra/cluster's Kueue serves them. */
export const KUEUE_API = 'kueue.x-k8s.io/v1beta2';
export const WORKLOADS = (namespace: string) => collectionPath(KUEUE_API, 'workloads', namespace);

interface Answer {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly text: string;
}

const isStatus = (error: unknown, ...codes: number[]) => error instanceof KubeError && codes.includes(error.detail.status ?? -1);

/**
 * The API calls the runner makes, over plain HTTP(S) with the kubeconfig's credentials. Every
 * call has a timeout and is aborted with the run's signal; transient failures (5xx, 429, resets,
 * timeouts) are retried with capped exponential backoff and jitter for up to `retryBudgetMs`,
 * then end in an ApiOutageError naming what was in flight. 404 on a read is `undefined`.
 */
export class KubeClient {
  readonly kc: KubeConfig;
  readonly server: string;
  readonly requestTimeoutMs: number;
  readonly retryBudgetMs: number;
  readonly #signal: AbortSignal;
  readonly #backoff: BackoffOptions;
  readonly #onNote: (message: string) => void;
  readonly #random: () => number;
  readonly #discovered = new Map<string, Resource | undefined>();
  #reached = false;
  #lostSince: number | undefined;
  #backSince = Number.NEGATIVE_INFINITY;

  constructor(kc: KubeConfig, options: KubeClientOptions = {}) {
    this.kc = kc;
    this.server = (kc.getCurrentCluster()?.server ?? '(no server)').replace(/\/+$/, '');
    this.requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
    this.retryBudgetMs = options.retryBudgetMs ?? 300_000;
    this.#signal = options.signal ?? new AbortController().signal;
    this.#backoff = options.backoff ?? { initialMs: 250, maxMs: 8000 };
    this.#onNote = options.onNote ?? (() => undefined);
    this.#random = options.random ?? Math.random;
  }

  /**
   * Whether calls are failing now, or were less than 30 s ago. A restarted kube-apiserver
   * answers before its RBAC caches are filled and refuses everyone (403) for a few seconds
   * (seen on the real server in test:real), some calls before others: within an outage and
   * just after one that is part of it; otherwise a 403 is a real lack of rights.
   */
  get inOutage(): boolean {
    return this.#lostSince !== undefined || Date.now() - this.#backSince < 30_000;
  }

  /**
   * The wait before retry `attempt` (0-based): capped exponential, half of it jittered so that
   * runs (and the calls of one run) that failed together do not come back together. A server's
   * Retry-After is honoured up to a minute.
   */
  backoffMs(attempt: number, retryAfterMs?: number): number {
    const ceiling = Math.min(this.#backoff.maxMs, this.#backoff.initialMs * 2 ** Math.min(attempt, 30));
    const jittered = ceiling / 2 + (this.#random() * ceiling) / 2;
    return retryAfterMs !== undefined ? Math.max(jittered, Math.min(retryAfterMs, 60_000)) : jittered;
  }

  // ---------------------------------------------------------------- transport

  async #open(
    method: string,
    path: string,
    query: Record<string, string | number | boolean | undefined>,
    options: { body?: string; contentType?: string; signal: AbortSignal; timeoutMs: number; stream: boolean; doing: string },
  ): Promise<Answer | IncomingMessage> {
    if (options.signal.aborted) throw new RequestAbortedError();
    const url = new URL(this.server + path);
    for (const [k, v] of Object.entries(query)) if (v !== undefined) url.searchParams.set(k, String(v));
    const tls: { headers?: Record<string, string>; agent?: http.Agent; auth?: string } = {};
    await this.kc.applyToHTTPSOptions(tls as never);
    const headers: Record<string, string> = {
      ...(tls.headers ?? {}),
      Accept: 'application/json, */*',
      'User-Agent': 'tunepipe-runner',
      ...(options.contentType ? { 'Content-Type': options.contentType } : {}),
    };
    const lib = url.protocol === 'https:' ? https : http;
    return new Promise<Answer | IncomingMessage>((resolve, reject) => {
      let settled = false;
      const req = lib.request(url, { method, headers, ...(tls.agent ? { agent: tls.agent } : {}), ...(tls.auth ? { auth: tls.auth } : {}) });
      const timer = setTimeout(() => {
        const error = Object.assign(new Error(`no answer within ${formatSeconds(options.timeoutMs)}`), { code: 'ETIMEDOUT', timeoutMs: options.timeoutMs });
        fail(error);
      }, options.timeoutMs);
      const onAbort = () => fail(new RequestAbortedError());
      options.signal.addEventListener('abort', onAbort, { once: true });
      const done = () => {
        settled = true;
        clearTimeout(timer);
        options.signal.removeEventListener('abort', onAbort);
      };
      function fail(error: unknown) {
        if (settled) return;
        done();
        req.destroy();
        reject(error);
      }
      req.on('error', fail);
      req.on('response', (res) => {
        const status = res.statusCode ?? 0;
        if (options.stream && status >= 200 && status < 300) {
          done();
          resolve(res);
          return;
        }
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', fail);
        res.on('aborted', () => fail(Object.assign(new Error('connection closed mid-answer'), { code: 'ECONNRESET' })));
        res.on('end', () => {
          if (settled) return;
          done();
          resolve({ status, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') });
        });
      });
      if (options.body !== undefined) req.write(options.body);
      req.end();
    });
  }

  /** One request, no retry: the answer, or a KubeError/RequestAbortedError. */
  async #once(
    method: string,
    path: string,
    doing: string,
    options: { query?: Record<string, string | number | boolean | undefined>; body?: unknown; contentType?: string; signal: AbortSignal; timeoutMs: number },
  ): Promise<Answer> {
    let answer: Answer;
    try {
      answer = (await this.#open(method, path, options.query ?? {}, {
        ...(options.body !== undefined ? { body: typeof options.body === 'string' ? options.body : JSON.stringify(options.body) } : {}),
        ...(options.contentType ? { contentType: options.contentType } : options.body !== undefined ? { contentType: 'application/json' } : {}),
        signal: options.signal,
        timeoutMs: options.timeoutMs,
        stream: false,
        doing,
      })) as Answer;
    } catch (error) {
      throw transportError(error, doing, this.server);
    }
    this.#reached = true;
    return answer;
  }

  #contact(): void {
    if (this.#lostSince === undefined) return;
    const lost = Date.now() - this.#lostSince;
    this.#lostSince = undefined;
    this.#backSince = Date.now();
    this.#onNote(`the Kubernetes API answers again after ${formatSeconds(lost)}`);
  }

  #lost(error: KubeError): void {
    if (this.#lostSince !== undefined) return;
    this.#lostSince = Date.now();
    this.#onNote(`${error.message.split(';')[0]}; retrying for up to ${Math.round(this.retryBudgetMs / 1000)}s (the Jobs keep running in the cluster)`);
  }

  /**
   * Runs `attempt` until it succeeds, retrying transient failures with backoff within the budget.
   * `recover` may handle other errors (409 on apply, 410 on a list) and ask for another attempt.
   */
  async #retrying<T>(
    doing: string,
    attempt: (signal: AbortSignal, timeoutMs: number) => Promise<T>,
    options: CallOptions & { recover?: (error: KubeError, signal: AbortSignal) => Promise<boolean> } = {},
  ): Promise<T> {
    const signal = options.signal ?? this.#signal;
    const timeoutMs = options.timeoutMs ?? this.requestTimeoutMs;
    const started = Date.now();
    let failures = 0;
    for (;;) {
      if (signal.aborted) throw new RequestAbortedError();
      let error: KubeError;
      try {
        const value = await attempt(signal, timeoutMs);
        this.#contact();
        return value;
      } catch (raw) {
        const explained = transportError(raw, doing, this.server);
        if (explained instanceof RequestAbortedError || signal.aborted) throw new RequestAbortedError();
        error = explained;
      }
      if (options.retry === false) throw error;
      const warmingUp = error instanceof ForbiddenKubeError && this.inOutage;
      const transient = error instanceof TransientKubeError || warmingUp;
      if (!transient) {
        if (error.detail.status !== undefined) this.#contact();
        if (options.recover && failures < 50 && Date.now() - started < this.retryBudgetMs && (await options.recover(error, signal))) {
          failures++;
          await this.#sleep(this.backoffMs(Math.min(failures - 1, 3)), signal);
          continue;
        }
        throw error;
      }
      const neverReached = !this.#reached && error.detail.errno !== undefined && NEVER_REACHED_ERRNO.test(error.detail.errno);
      if (neverReached && failures >= 1) throw error;
      if (!neverReached) this.#lost(error);
      const lostFor = Date.now() - started;
      if (lostFor >= this.retryBudgetMs) throw new ApiOutageError(this.server, doing, error, Date.now() - (this.#lostSince ?? started));
      const wait = Math.min(this.backoffMs(failures, error.detail.retryAfterMs), Math.max(0, this.retryBudgetMs - lostFor));
      failures++;
      await this.#sleep(wait, signal);
    }
  }

  #sleep(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (signal.aborted) return reject(new RequestAbortedError());
      const timer = setTimeout(() => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      const onAbort = () => {
        clearTimeout(timer);
        reject(new RequestAbortedError());
      };
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** A request whose 2xx answer is JSON; other statuses become KubeErrors (404: `undefined` when `maybe`). */
  async #json<T>(
    method: string,
    path: string,
    doing: string,
    options: CallOptions & {
      query?: Record<string, string | number | boolean | undefined>;
      body?: unknown;
      contentType?: string;
      maybe?: boolean;
      recover?: (error: KubeError, signal: AbortSignal) => Promise<boolean>;
    } = {},
  ): Promise<T | undefined> {
    return this.#retrying(
      doing,
      async (signal, timeoutMs) => {
        const answer = await this.#once(method, path, doing, { ...options, signal, timeoutMs });
        if (answer.status >= 200 && answer.status < 300) {
          try {
            return JSON.parse(answer.text) as T;
          } catch {
            throw new TransientKubeError(`${doing}: the Kubernetes API sent an unreadable answer (${answer.text.slice(0, 80)})`, { doing, status: answer.status });
          }
        }
        if (answer.status === 404 && options.maybe) return undefined;
        throw statusError(answer.status, answer.text, answer.headers, doing, this.server);
      },
      options,
    );
  }

  // ---------------------------------------------------------------- resources

  async #resource(apiVersion: string, kind: string, options: CallOptions = {}): Promise<Resource> {
    const known = KNOWN_RESOURCES[`${apiVersion}/${kind}`];
    if (known) return known;
    if (!this.#discovered.has(apiVersion)) {
      const list = await this.#json<{ resources?: { name: string; kind: string; namespaced: boolean }[] }>('GET', groupPath(apiVersion), `discovering ${apiVersion}`, {
        ...options,
        maybe: true,
      });
      for (const r of list?.resources ?? []) {
        if (!r.name.includes('/')) this.#discovered.set(`${apiVersion}/${r.kind}`, { plural: r.name, namespaced: r.namespaced });
      }
      this.#discovered.set(apiVersion, undefined);
    }
    const found = this.#discovered.get(`${apiVersion}/${kind}`);
    if (!found) throw new KubeError(`the Kubernetes API at ${this.server} does not serve ${kind} (${apiVersion}); is the CRD installed?`, { doing: `applying ${kind}` });
    return found;
  }

  async #objectPath(object: KubernetesObject, options: CallOptions = {}): Promise<string> {
    const apiVersion = object.apiVersion ?? 'v1';
    const kind = object.kind ?? '';
    const resource = await this.#resource(apiVersion, kind, options);
    const name = object.metadata?.name ?? '';
    if (!resource.namespaced) return `${groupPath(apiVersion)}/${resource.plural}/${enc(name)}`;
    return `${collectionPath(apiVersion, resource.plural, object.metadata?.namespace ?? 'default')}/${enc(name)}`;
  }

  /**
   * Server-side apply, field manager `tunepipe`, taking over conflicting fields. A 409 (the
   * object changed under the apply, or is being deleted) is answered by reading it again,
   * waiting for a deletion to finish, and applying again.
   */
  async apply<T extends KubernetesObject = KubernetesObject>(object: KubernetesObject, options: CallOptions = {}): Promise<T> {
    const doing = `applying ${object.kind} ${object.metadata?.name}`;
    const path = await this.#objectPath(object, options);
    const body = JSON.stringify(object);
    const applied = await this.#json<T>('PATCH', path, doing, {
      ...options,
      query: { fieldManager: FIELD_MANAGER, force: true },
      body,
      contentType: 'application/apply-patch+yaml',
      recover: async (error, signal) => {
        if (!isStatus(error, 409)) return false;
        const current = await this.#json<KubernetesObject>('GET', path, `reading ${object.kind} ${object.metadata?.name} again after a conflict`, { signal, maybe: true });
        // Being deleted (a Job another run forced): wait for it to be gone before re-creating it.
        if (current?.metadata?.deletionTimestamp) await this.#sleep(this.backoffMs(2), signal);
        return true;
      },
    });
    return applied!;
  }

  readJob(namespace: string, name: string, options: CallOptions = {}): Promise<V1Job | undefined> {
    return this.#json<V1Job>('GET', `${JOBS(namespace)}/${enc(name)}`, `reading Job ${name}`, { ...options, maybe: true });
  }

  readDeployment(namespace: string, name: string, options: CallOptions = {}): Promise<V1Deployment | undefined> {
    return this.#json<V1Deployment>('GET', `${DEPLOYMENTS(namespace)}/${enc(name)}`, `reading Deployment ${name}`, { ...options, maybe: true });
  }

  /** A list with its resourceVersion (to watch from). A 410 (expired continue token) lists again. */
  async list<T>(path: string, selectors: { labelSelector?: string; fieldSelector?: string }, doing: string, options: CallOptions = {}): Promise<ObjectList<T>> {
    const list = await this.#json<{ items?: T[]; metadata?: { resourceVersion?: string } }>('GET', path, doing, {
      ...options,
      query: { ...selectors },
      recover: async (error) => isStatus(error, 410),
    });
    return { items: list?.items ?? [], resourceVersion: list?.metadata?.resourceVersion ?? '' };
  }

  async listJobs(namespace: string, labelSelector: string, options: CallOptions = {}): Promise<V1Job[]> {
    return (await this.list<V1Job>(JOBS(namespace), { labelSelector }, `listing Jobs (${labelSelector})`, options)).items;
  }

  async listPods(namespace: string, labelSelector: string, options: CallOptions = {}): Promise<V1Pod[]> {
    return (await this.list<V1Pod>(PODS(namespace), { labelSelector }, `listing pods (${labelSelector})`, options)).items;
  }

  async listDeployments(namespace: string, labelSelector: string, options: CallOptions = {}): Promise<V1Deployment[]> {
    return (await this.list<V1Deployment>(DEPLOYMENTS(namespace), { labelSelector }, `listing Deployments (${labelSelector})`, options)).items;
  }

  /**
   * Watches a collection from `resourceVersion`, calling `onEvent` for each change, until the
   * server ends the watch (resolves) or it fails: 410 Gone (the version is too old: list again),
   * a transport error, `idleMs` without a byte, or the signal. No retry here: informers decide.
   */
  async watch<T>(path: string, params: WatchParams, doing: string, onEvent: (event: WatchEvent<T>) => void, options: CallOptions = {}): Promise<void> {
    const signal = options.signal ?? this.#signal;
    let res: IncomingMessage;
    try {
      const opened = await this.#open(
        'GET',
        path,
        {
          watch: true,
          allowWatchBookmarks: true,
          resourceVersion: params.resourceVersion,
          timeoutSeconds: params.timeoutSeconds ?? 240,
          labelSelector: params.labelSelector,
          fieldSelector: params.fieldSelector,
        },
        { signal, timeoutMs: options.timeoutMs ?? this.requestTimeoutMs, stream: true, doing },
      );
      if (!(opened instanceof http.IncomingMessage)) {
        this.#reached = true;
        throw statusError(opened.status, opened.text, opened.headers, doing, this.server);
      }
      res = opened;
    } catch (error) {
      const explained = transportError(error, doing, this.server);
      // No retry here, but an unreachable server is an outage all the same (and noted once).
      if (explained instanceof TransientKubeError && this.#reached) this.#lost(explained);
      throw explained;
    }
    this.#reached = true;
    this.#contact();
    await new Promise<void>((resolve, reject) => {
      let buffered = '';
      let settled = false;
      let idle: NodeJS.Timeout | undefined;
      const finish = (error?: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(idle);
        signal.removeEventListener('abort', onAbort);
        res.destroy();
        if (error) reject(error);
        else resolve();
      };
      const armIdle = () => {
        clearTimeout(idle);
        idle = setTimeout(
          () => finish(new TransientKubeError(`${doing}: the watch was silent for ${formatSeconds(params.idleMs)}`, { doing, errno: 'ETIMEDOUT' })),
          params.idleMs,
        );
      };
      const onAbort = () => finish(new RequestAbortedError());
      signal.addEventListener('abort', onAbort, { once: true });
      armIdle();
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        armIdle();
        buffered += chunk;
        let newline: number;
        while (!settled && (newline = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, newline).trim();
          buffered = buffered.slice(newline + 1);
          if (!line) continue;
          let event: { type?: string; object?: { code?: number; message?: string; reason?: string } };
          try {
            event = JSON.parse(line) as typeof event;
          } catch {
            return finish(new TransientKubeError(`${doing}: unreadable watch event`, { doing, errno: 'EBADMSG' }));
          }
          if (event.type === 'ERROR') {
            const status = event.object?.code ?? 500;
            const error =
              status === 410
                ? new KubeError(`${doing}: ${event.object?.message ?? 'resource version too old'} (410 Gone)`, { doing, status, reason: event.object?.reason ?? 'Expired' })
                : statusError(status, JSON.stringify(event.object ?? {}), {}, doing, this.server);
            return finish(error);
          }
          if (event.type === 'ADDED' || event.type === 'MODIFIED' || event.type === 'DELETED' || event.type === 'BOOKMARK') {
            try {
              onEvent(event as WatchEvent<T>);
            } catch (error) {
              return finish(error);
            }
          }
        }
      });
      res.on('end', () => finish());
      res.on('aborted', () => finish(new TransientKubeError(`${doing}: the watch was cut`, { doing, errno: 'ECONNRESET' })));
      res.on('error', (error) => finish(transportError(error, doing, this.server)));
      res.on('close', () => finish(settled ? undefined : new TransientKubeError(`${doing}: the watch was cut`, { doing, errno: 'ECONNRESET' })));
    });
  }

  /** Deletes a Job and lets the garbage collector remove its pods. Returns false if it was gone. */
  async deleteJob(namespace: string, name: string, options: CallOptions = {}): Promise<boolean> {
    const doing = `deleting Job ${name}`;
    let attempts = 0;
    return this.#retrying(
      doing,
      async (signal, timeoutMs) => {
        attempts++;
        const answer = await this.#once('DELETE', `${JOBS(namespace)}/${enc(name)}`, doing, { query: { propagationPolicy: 'Background' }, signal, timeoutMs });
        if (answer.status >= 200 && answer.status < 300) return true;
        // A retried delete whose first attempt went through finds nothing the second time.
        if (answer.status === 404) return attempts > 1;
        throw statusError(answer.status, answer.text, answer.headers, doing, this.server);
      },
      options,
    );
  }

  async scaleDeployment(namespace: string, name: string, replicas: number, options: CallOptions = {}): Promise<void> {
    await this.#json('PATCH', `${DEPLOYMENTS(namespace)}/${enc(name)}`, `scaling Deployment ${name}`, {
      ...options,
      query: { fieldManager: FIELD_MANAGER },
      body: { spec: { replicas } },
      contentType: 'application/merge-patch+json',
    });
  }

  readLease(namespace: string, name: string, options: CallOptions = {}): Promise<Lease | undefined> {
    return this.#json<Lease>('GET', `${LEASES(namespace)}/${enc(name)}`, `reading Lease ${name}`, { ...options, maybe: true });
  }

  /** Creates a Lease; a KubeError with status 409 when it exists. */
  async createLease(namespace: string, lease: Lease, options: CallOptions = {}): Promise<Lease> {
    return (await this.#json<Lease>('POST', LEASES(namespace), `creating Lease ${lease.metadata?.name}`, { ...options, body: lease }))!;
  }

  /** Replaces a Lease (optimistic: its resourceVersion must be current, else a 409 KubeError). */
  async replaceLease(namespace: string, lease: Lease, options: CallOptions = {}): Promise<Lease> {
    const name = lease.metadata?.name ?? '';
    return (await this.#json<Lease>('PUT', `${LEASES(namespace)}/${enc(name)}`, `updating Lease ${name}`, { ...options, body: lease }))!;
  }

  /**
   * The last `tailLines` lines of a pod's log; empty when the container never started, and when
   * the API server could not get it from the node (5xx: the kubelet is unreachable, e.g. the node
   * was scaled down after the pod finished). A log is detail: the Job's conditions decide a
   * stage, so an unreadable log must never fail one.
   */
  async podLogTail(namespace: string, pod: string, tailLines: number, container?: string, options: CallOptions = {}): Promise<string[]> {
    const doing = `reading the log of pod ${pod}`;
    return this.#retrying(
      doing,
      async (signal, timeoutMs) => {
        const answer = await this.#once('GET', `${PODS(namespace)}/${enc(pod)}/log`, doing, { query: { tailLines, ...(container ? { container } : {}) }, signal, timeoutMs });
        if (answer.status >= 200 && answer.status < 300) return splitLogLines(answer.text);
        if (answer.status === 404 || answer.status === 400 || answer.status >= 500) return [];
        throw statusError(answer.status, answer.text, answer.headers, doing, this.server);
      },
      options,
    );
  }

  /**
   * The first `limitBytes` of a pod's log, as lines (a cut last line dropped): where the stage
   * wrapper says what it did before its tool started, which a long run's tail no longer holds.
   * Empty when unreadable, like podLogTail.
   */
  async podLogHead(namespace: string, pod: string, limitBytes: number, container?: string, options: CallOptions = {}): Promise<string[]> {
    const doing = `reading the start of the log of pod ${pod}`;
    return this.#retrying(
      doing,
      async (signal, timeoutMs) => {
        const answer = await this.#once('GET', `${PODS(namespace)}/${enc(pod)}/log`, doing, { query: { limitBytes, ...(container ? { container } : {}) }, signal, timeoutMs });
        if (answer.status >= 200 && answer.status < 300) {
          const cut = answer.text.length >= limitBytes && !answer.text.endsWith('\n');
          const lines = splitLogLines(answer.text);
          return cut ? lines.slice(0, -1) : lines;
        }
        if (answer.status === 404 || answer.status === 400 || answer.status >= 500) return [];
        throw statusError(answer.status, answer.text, answer.headers, doing, this.server);
      },
      options,
    );
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
    const doing = `following the log of pod ${pod}`;
    let res: IncomingMessage;
    try {
      const opened = await this.#open(
        'GET',
        `${PODS(namespace)}/${enc(pod)}/log`,
        { follow: true, container, ...(sinceTime ? { sinceTime: sinceTime.toISOString() } : {}) },
        { signal, timeoutMs: this.requestTimeoutMs, stream: true, doing },
      );
      if (!(opened instanceof http.IncomingMessage)) {
        if (opened.status === 404 || opened.status === 400) return 'unavailable';
        throw statusError(opened.status, opened.text, opened.headers, doing, this.server);
      }
      res = opened;
    } catch (error) {
      if (error instanceof RequestAbortedError || signal.aborted) return 'ended';
      throw transportError(error, doing, this.server);
    }
    return new Promise<'ended' | 'unavailable'>((resolve, reject) => {
      let settled = false;
      const finish = (error?: unknown) => {
        if (settled) return;
        settled = true;
        signal.removeEventListener('abort', onAbort);
        res.destroy();
        if (error && !signal.aborted) reject(transportError(error, doing, this.server));
        else resolve('ended');
      };
      const onAbort = () => finish();
      signal.addEventListener('abort', onAbort, { once: true });
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => onText(chunk));
      res.on('end', () => finish());
      res.on('error', (error) => finish(error));
      res.on('close', () => finish());
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
