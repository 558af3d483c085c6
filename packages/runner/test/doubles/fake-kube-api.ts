/**
 * TEST DOUBLE of the Kubernetes API server (plus the bits of the Job controller, Kueue, the
 * scheduler and the kubelet the runner observes). An in-process node:http server answering the
 * calls @kubernetes/client-node makes for the runner: discovery, server-side apply
 * (`application/apply-patch+yaml`) and merge patch, get/list with label selectors, DELETE of
 * Jobs, and pod logs with `follow`. A controller ticking every few milliseconds moves Jobs
 * through their conditions: Kueue-style suspension and admission, unschedulable pods (no GPU
 * node yet), preemption (DisruptionTarget, honoured by the Job's podFailurePolicy), failures
 * with backoffLimit, and completion. Pod logs are scripted per stage (e.g. the seed's
 * training log), and a stage retried after preemption resumes after its last checkpoint. A
 * queued Job gets Kueue's Workload (read-only, kueue.x-k8s.io/v1beta2: QuotaReserved, Admitted,
 * Evicted); an Indexed Job with parallelism > 1 runs as a gang, one pod per completion index
 * (labelled and annotated with it), which Kueue can evict and re-admit whole.
 *
 * Watches work as on the real server: every change (found by comparing each object with what
 * was last published, after every write and every controller tick) gets the next
 * resourceVersion and goes into a bounded event log; `?watch=true` replays the log from the
 * given resourceVersion (410 Gone when it was compacted away), then streams, with bookmarks.
 * Leases (coordination.k8s.io/v1) take create/update with optimistic concurrency. Faults are
 * injected per verb and path (`inject`): 5xx, 429, 409, 410, connection resets, cut watch
 * streams and black holes (accepted, never answered); `blackhole(ms)` swallows everything. With
 * `rbac`, requests the given Role rules do not allow are refused with 403.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export interface PodScript {
  /** Kueue: a queued Job is created suspended and admitted after this long. @default 0 */
  readonly admitAfterMs?: number;
  /** The first pod stays Pending/Unschedulable this long (no GPU node yet). */
  readonly unschedulableForMs?: number;
  /** What the container prints, replayed a few lines per tick. */
  readonly log?: readonly string[];
  /** The first pod is preempted after printing this many lines. */
  readonly preemptAfterLine?: number;
  /** Every attempt exits with this code after its log. */
  readonly failExitCode?: number;
  /** Hold the first pod Running after this many lines until `release()` (detach tests). */
  readonly holdAtLine?: number;
  /** Until admitted, the Workload's QuotaReserved=False message (Kueue's words for what is short). */
  readonly quotaMessage?: string;
  /**
   * A gang (Indexed Job, parallelism > 1): once rank 0 of the first gang printed this many lines,
   * Kueue preempts the Workload: the Job is suspended, every pod of the gang deleted, and the
   * gang admitted again after `readmitAfterMs`.
   */
  readonly evictGangAfterLine?: number;
  /** @default 60 */
  readonly readmitAfterMs?: number;
  /** What the ranks other than 0 of a gang print (each its own bars and numbers). */
  readonly rankLog?: readonly string[];
}

interface PodState {
  obj: Json;
  job?: string;
  deployment?: string;
  lines: string[];
  /** When each line was printed (for `sinceTime`). */
  times: number[];
  script: readonly string[];
  cursor: number;
  attempt: number;
  pendingUntil: number;
  preemptAt?: number;
  holdAt?: number;
  listeners: Set<(line: string | null) => void>;
  container: string;
  /** Deleted (deleteLostPods): no longer listed by the API. */
  gone?: boolean;
  /** Completion index of a gang's pod. */
  index?: number;
  /** Deleted with its whole gang when Kueue evicted the Workload. */
  evicted?: boolean;
  /** Rank 0 of the first gang: Kueue evicts the gang after this many lines. */
  evictAt?: number;
}

export interface FakeKubeOptions {
  /** Controller tick. @default 5 */
  readonly tickMs?: number;
  /** Log lines a running container prints per tick. @default 6 */
  readonly linesPerTick?: number;
  /** Time a serve pod needs to become ready. @default 30 */
  readonly serveReadyMs?: number;
  /** Job controller back-off before a replacement pod after a failed or lost one. @default 40 */
  readonly retryDelayMs?: number;
  /** Close `follow` log streams after this long, as API servers and proxies sometimes do. */
  readonly dropFollowAfterMs?: number;
  /**
   * Delete a preempted pod right after it stopped, as the real API server does after an eviction
   * or a scheduler preemption (the Job controller drops its finalizer, the pod is gone): the
   * runner never sees its DisruptionTarget condition.
   */
  readonly deleteLostPods?: boolean;
  /** Refuse (403) what these Role rules do not allow, as the runner's ServiceAccount would be. */
  readonly rbac?: readonly PolicyRule[];
  /** Bookmark interval of watches that ask for them. @default 50 */
  readonly bookmarkMs?: number;
  /** Events kept for watches to resume from; older resourceVersions get 410 Gone. @default 5000 */
  readonly eventLogSize?: number;
}

export interface PolicyRule {
  readonly apiGroups: readonly string[];
  readonly resources: readonly string[];
  readonly verbs: readonly string[];
}

/** How a request is named for fault injection. */
export type FaultVerb = 'GET' | 'LIST' | 'WATCH' | 'LOG' | 'PATCH' | 'POST' | 'PUT' | 'DELETE';

/**
 * An injected fault: an HTTP status (409 on apply is a conflict, 410 on a watch an ERROR event
 * "too old resource version", on a list an expired continue token), `reset` (the connection is
 * destroyed before an answer), `drop` (a watch answers 200 and is cut moments later),
 * `blackhole` (accepted, never answered).
 */
export type Fault = 500 | 502 | 503 | 504 | 429 | 409 | 410 | 'reset' | 'drop' | 'blackhole';

interface FaultRule {
  readonly verb: FaultVerb | '*';
  readonly path: string | RegExp;
  readonly queue: Fault[];
}

interface Watcher {
  readonly kind: string;
  readonly match: (obj: Json) => boolean;
  readonly send: (type: string, obj: Json) => void;
  readonly res: ServerResponse;
  readonly bookmarks: boolean;
  lastBookmark: number;
}

interface StoredEvent {
  readonly rv: number;
  readonly type: 'ADDED' | 'MODIFIED' | 'DELETED';
  readonly kind: string;
  readonly obj: Json;
}

const RESOURCES: Record<string, { group: string; kind: string; plural: string }[]> = {
  v1: [
    { group: 'v1', kind: 'ConfigMap', plural: 'configmaps' },
    { group: 'v1', kind: 'Service', plural: 'services' },
    { group: 'v1', kind: 'Pod', plural: 'pods' },
    { group: 'v1', kind: 'Secret', plural: 'secrets' },
    { group: 'v1', kind: 'PersistentVolumeClaim', plural: 'persistentvolumeclaims' },
  ],
  'batch/v1': [{ group: 'batch/v1', kind: 'Job', plural: 'jobs' }],
  'apps/v1': [{ group: 'apps/v1', kind: 'Deployment', plural: 'deployments' }],
  'coordination.k8s.io/v1': [{ group: 'coordination.k8s.io/v1', kind: 'Lease', plural: 'leases' }],
  'kueue.x-k8s.io/v1beta2': [{ group: 'kueue.x-k8s.io/v1beta2', kind: 'Workload', plural: 'workloads' }],
};

const COMPLETION_INDEX = 'batch.kubernetes.io/job-completion-index';
/** A Job the Job controller runs as a gang: one pod per completion index at once. */
const isGang = (job: Json) => job['spec'].completionMode === 'Indexed' && (job['spec'].parallelism ?? 1) > 1;

const canonical = (v: unknown): string =>
  JSON.stringify(v, (_k, x: unknown) =>
    x && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x as Json).sort(([a], [b]) => a.localeCompare(b))) : x,
  );

function matches(labels: Record<string, string> | undefined, selector: string | null): boolean {
  if (!selector) return true;
  return selector.split(',').every((term) => {
    const [k, v] = term.split('=');
    return v === undefined ? labels?.[k!] !== undefined : labels?.[k!] === v;
  });
}

function fieldsMatch(obj: Json, selector: string | null): boolean {
  if (!selector) return true;
  return selector.split(',').every((term) => {
    const [k, v] = term.split('=');
    if (k === 'metadata.name') return obj['metadata']?.name === v;
    if (k === 'metadata.namespace') return obj['metadata']?.namespace === v;
    return false;
  });
}

const withoutVersion = (obj: Json): string => JSON.stringify({ ...obj, metadata: { ...obj['metadata'], resourceVersion: undefined } });

function status(res: ServerResponse, code: number, reason: string, message: string, headers: Record<string, string> = {}): void {
  res.writeHead(code, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', reason, message, code }));
}

export class FakeKubeApi {
  readonly #server: Server;
  readonly #objects = new Map<string, Json>();
  readonly #pods = new Map<string, PodState>();
  readonly #appliedTemplates = new Map<string, string>();
  readonly #admitAt = new Map<string, number>();
  readonly #scripts = new Map<string, PodScript>();
  readonly #tickMs: number;
  readonly #linesPerTick: number;
  readonly #serveReadyMs: number;
  readonly #retryDelayMs: number;
  readonly #dropFollowAfterMs: number | undefined;
  readonly #deleteLostPods: boolean;
  readonly #nextPodAt = new Map<string, number>();
  #timer: NodeJS.Timeout | undefined;
  #seq = 0;
  #clock = Date.parse('2025-05-01T00:00:00Z');
  #released = new Set<string>();
  #downUntil = 0;
  #forbiddenUntil = 0;
  /** Completion markers on the simulated artifacts volume. */
  readonly markers = new Set<string>();
  /** Every request: method, path, content type, query. */
  readonly requests: { method: string; path: string; contentType?: string; query: string }[] = [];
  /** Objects created by apply, in order, as `Kind/name`. */
  readonly created: string[] = [];
  /** Jobs deleted, in order. */
  readonly deletedJobs: string[] = [];
  /** Every answer: method, path, status. */
  readonly responses: { method: string; path: string; status: number }[] = [];
  /** Faults served, in order. */
  readonly injected: { verb: FaultVerb; path: string; fault: Fault }[] = [];
  url = '';
  readonly #rbac: readonly PolicyRule[] | undefined;
  readonly #bookmarkMs: number;
  readonly #eventLogSize: number;
  #rv = 0;
  /** Oldest resourceVersion a watch can resume from. */
  #compactedRv = 0;
  readonly #published = new Map<string, { json: string; obj: Json; kind: string }>();
  readonly #events: StoredEvent[] = [];
  readonly #watchers = new Set<Watcher>();
  /** Open streaming answers (watches, followed logs): a restart or a black hole ends them. */
  readonly #streams = new Set<ServerResponse>();
  /** Requests swallowed by a black hole. */
  readonly #held = new Set<IncomingMessage>();
  readonly #faults: FaultRule[] = [];
  #blackholeUntil = 0;

  constructor(options: FakeKubeOptions = {}) {
    this.#tickMs = options.tickMs ?? 5;
    this.#linesPerTick = options.linesPerTick ?? 6;
    this.#serveReadyMs = options.serveReadyMs ?? 30;
    this.#retryDelayMs = options.retryDelayMs ?? 40;
    this.#dropFollowAfterMs = options.dropFollowAfterMs;
    this.#deleteLostPods = options.deleteLostPods ?? false;
    this.#rbac = options.rbac;
    this.#bookmarkMs = options.bookmarkMs ?? 50;
    this.#eventLogSize = options.eventLogSize ?? 5000;
    this.#server = createServer((req, res) => {
      this.#handle(req, res).catch((error: unknown) => status(res, 500, 'InternalError', String(error)));
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
    this.#timer = setInterval(() => this.#tick(), this.#tickMs);
    return this;
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#blackholeUntil = 0;
    for (const req of this.#held) req.socket.destroy();
    for (const res of this.#streams) res.destroy();
    for (const pod of this.#pods.values()) for (const l of pod.listeners) l(null);
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  kubeConfig(namespace = 'tunepipe'): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'double', server: this.url, skipTLSVerify: true }],
      users: [{ name: 'tester', token: 'test-token' }],
      contexts: [{ name: 'double', cluster: 'double', user: 'tester', namespace }],
      currentContext: 'double',
    });
    return kc;
  }

  /** Scripts the pods of a stage (by its `tunepipe.dev/stage` label). */
  script(stage: string, script: PodScript): void {
    this.#scripts.set(stage, script);
  }

  /**
   * Resets every connection for `ms` (an API server restart), then answers 403 for `forbiddenMs`
   * (its RBAC authorizer warming up); the simulated cluster goes on meanwhile.
   */
  interrupt(ms: number, forbiddenMs = 0): void {
    this.#downUntil = Date.now() + ms;
    this.#forbiddenUntil = this.#downUntil + forbiddenMs;
    // A restart ends every open stream (watches resume with a new request, which meets the 403s).
    if (ms > 0 || forbiddenMs > 0) this.#cutStreams();
  }

  /** Requests a black hole holds right now (accepted, not answered). */
  get heldRequests(): number {
    return this.#held.size;
  }

  /**
   * Queues faults for requests of `verb` (`*`: any) whose path and query (decoded) contain
   * `path` (or match it):
   * each matching request takes the next one, until the queue is empty.
   */
  inject(verb: FaultVerb | '*', path: string | RegExp, ...faults: Fault[]): void {
    this.#faults.push({ verb, path, queue: [...faults] });
  }

  /** Faults still queued. */
  pendingFaults(): number {
    return this.#faults.reduce((n, r) => n + r.queue.length, 0);
  }

  /**
   * For `ms` (Infinity: until `heal`), every request is accepted and never answered, and open
   * streams go silent; the simulated cluster goes on. When it ends, the silent streams are cut.
   */
  blackhole(ms: number): void {
    this.#blackholeUntil = Date.now() + ms;
  }

  heal(): void {
    this.#blackholeUntil = 0;
    this.#endBlackhole();
  }

  /** Forgets events up to now: every watch resuming from an older resourceVersion gets 410 Gone. */
  compact(): void {
    this.#compactedRv = this.#rv;
    this.#events.length = 0;
  }

  /** The current resourceVersion of the whole store. */
  get resourceVersion(): number {
    return this.#rv;
  }

  #blackholed(): boolean {
    return Date.now() < this.#blackholeUntil;
  }

  #endBlackhole(): void {
    for (const req of this.#held) req.socket.destroy();
    this.#held.clear();
    this.#cutStreams();
  }

  #cutStreams(): void {
    for (const res of this.#streams) res.destroy();
    this.#streams.clear();
    this.#watchers.clear();
  }

  /** Lets a held pod of `stage` go on. */
  release(stage: string): void {
    this.#released.add(stage);
  }

  get(kind: string, namespace: string, name: string): Json | undefined {
    return this.#objects.get(`${kind}/${namespace}/${name}`);
  }

  list(kind: string): Json[] {
    return [...this.#objects.entries()].filter(([k]) => k.startsWith(`${kind}/`)).map(([, v]) => v);
  }

  pods(): Json[] {
    return [...this.#pods.values()].filter((p) => !p.gone).map((p) => p.obj);
  }

  /** Lines a pod has printed so far. */
  podLog(name: string): string[] {
    return [...(this.#pods.get(name)?.lines ?? [])];
  }

  #now(): string {
    this.#clock += 1000;
    return new Date(this.#clock).toISOString();
  }

  // ---------------------------------------------------------------- HTTP

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://double');
    res.on('finish', () => this.responses.push({ method: req.method ?? '', path: url.pathname, status: res.statusCode }));
    if (Date.now() < this.#downUntil) {
      // An API server restarting: the connection is reset, as the real one does (test:real).
      req.socket.destroy();
      return;
    }
    if (this.#blackholed()) return this.#hold(req);
    if (Date.now() < this.#forbiddenUntil) {
      // ...and then refuses requests while its authorizer's caches fill (the real one, too).
      req.resume();
      return status(res, 403, 'Forbidden', 'jobs.batch is forbidden: User "system:serviceaccount:tunepipe:tunepipe-runner" cannot get resource "jobs"');
    }
    const contentType = req.headers['content-type'];
    this.requests.push({ method: req.method ?? '', path: url.pathname, ...(contentType ? { contentType } : {}), query: url.search });
    const body = await new Promise<string>((resolve) => {
      let text = '';
      req.on('data', (c: Buffer) => (text += c.toString()));
      req.on('end', () => resolve(text));
    });

    if (req.method === 'GET' && RESOURCES[url.pathname.replace(/^\/apis?\//, '')]) {
      const gv = url.pathname.replace(/^\/apis?\//, '');
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          kind: 'APIResourceList',
          apiVersion: 'v1',
          groupVersion: gv,
          resources: RESOURCES[gv]!.map((r) => ({
            name: r.plural,
            singularName: r.kind.toLowerCase(),
            namespaced: true,
            kind: r.kind,
            verbs: ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'],
          })),
        }),
      );
      return;
    }

    const m = /^\/(?:api\/v1|apis\/(batch|apps|coordination\.k8s\.io)\/v1|apis\/(?:kueue\.x-k8s\.io)\/v1beta2)\/namespaces\/([^/]+)\/([a-z]+)(?:\/([^/]+))?(?:\/(log))?$/.exec(url.pathname);
    if (!m) return status(res, 404, 'NotFound', `no route ${url.pathname}`);
    const [, matchedGroup, ns, plural, name, sub] = m;
    const group = matchedGroup ?? (url.pathname.startsWith('/apis/kueue.x-k8s.io/') ? 'kueue.x-k8s.io' : undefined);
    const resource = Object.values(RESOURCES)
      .flat()
      .find((r) => r.plural === plural);
    if (!resource) return status(res, 404, 'NotFound', `no resource ${plural}`);
    const kind = resource.kind;
    const key = `${kind}/${ns}/${name}`;
    const watching = req.method === 'GET' && !name && url.searchParams.get('watch') === 'true';
    const verb: FaultVerb =
      req.method === 'GET' ? (sub ? 'LOG' : name ? 'GET' : watching ? 'WATCH' : 'LIST') : ((req.method ?? 'GET') as FaultVerb);

    if (this.#rbac) {
      const rbacVerb = { GET: 'get', LOG: 'get', LIST: 'list', WATCH: 'watch', PATCH: 'patch', POST: 'create', PUT: 'update', DELETE: 'delete' }[verb];
      const needed = [rbacVerb, ...(verb === 'PATCH' && !this.#objects.has(key) && kind !== 'Pod' ? ['create'] : [])];
      const res_ = sub ? `${plural}/${sub}` : plural!;
      const denied = needed.find(
        (v) => !this.#rbac!.some((r) => r.apiGroups.includes(group ?? '') && r.resources.includes(res_) && r.verbs.includes(v)),
      );
      if (denied) {
        return status(res, 403, 'Forbidden', `${res_}${group ? `.${group}` : ''}${name ? ` "${name}"` : ''} is forbidden: User "system:serviceaccount:${ns}:tunepipe-runner" cannot ${denied} resource "${res_}" in API group "${group ?? ''}" in the namespace "${ns}"`);
      }
    }

    const fault = this.#takeFault(verb, decodeURIComponent(url.pathname + url.search));
    if (fault !== undefined) {
      this.injected.push({ verb, path: url.pathname, fault });
      if (fault === 'reset') return void req.socket.destroy();
      if (fault === 'blackhole') return this.#hold(req);
      if (fault === 'drop' || (fault === 410 && watching)) {
        res.writeHead(200, { 'content-type': 'application/json' });
        if (fault === 410) {
          res.end(`${JSON.stringify({ type: 'ERROR', object: { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: `too old resource version: ${url.searchParams.get('resourceVersion')} (${this.#rv})`, reason: 'Expired', code: 410 } })}\n`);
        } else {
          res.write('');
          setTimeout(() => res.destroy(), 5);
        }
        return;
      }
      if (fault === 409) return status(res, 409, 'Conflict', `Operation cannot be fulfilled on ${plural} "${name ?? ''}": the object has been modified; please apply your changes to the latest version and try again`);
      if (fault === 410) return status(res, 410, 'Expired', 'The provided continue parameter is too old to display a consistent list result.');
      if (fault === 429) return status(res, 429, 'TooManyRequests', 'the server has received too many requests and has asked us to try again later', { 'retry-after': '0' });
      return status(res, fault, fault === 503 ? 'ServiceUnavailable' : 'InternalError', `injected ${fault}: etcdserver: request timed out`);
    }

    if (sub === 'log') return this.#log(ns!, name!, url, res);
    if (watching) return this.#watch(kind, ns!, url, res);
    if (kind === 'Pod') {
      if (req.method !== 'GET') return status(res, 405, 'MethodNotAllowed', 'pods are read-only here');
      if (name) {
        const pod = this.#pods.get(name);
        if (!pod || pod.gone) return status(res, 404, 'NotFound', `pods "${name}" not found`);
        return this.#json(res, pod.obj);
      }
      this.#publish();
      const items = [...this.#pods.values()]
        .filter((p) => !p.gone)
        .map((p) => p.obj)
        .filter((p) => p['metadata'].namespace === ns && matches(p['metadata'].labels, url.searchParams.get('labelSelector')) && fieldsMatch(p, url.searchParams.get('fieldSelector')));
      return this.#json(res, { apiVersion: 'v1', kind: 'PodList', metadata: { resourceVersion: String(this.#rv) }, items });
    }
    if (kind === 'Lease' && (req.method === 'POST' || req.method === 'PUT')) return this.#writeLease(req.method, ns!, name, body, res);
    if (kind === 'Workload' && req.method !== 'GET') return status(res, 405, 'MethodNotAllowed', 'Kueue alone writes Workloads');

    switch (req.method) {
      case 'GET': {
        if (name) {
          const obj = this.#objects.get(key);
          return obj ? this.#json(res, obj) : status(res, 404, 'NotFound', `${plural} "${name}" not found`);
        }
        this.#publish();
        const items = this.list(kind).filter(
          (o) => o['metadata'].namespace === ns && matches(o['metadata'].labels, url.searchParams.get('labelSelector')) && fieldsMatch(o, url.searchParams.get('fieldSelector')),
        );
        return this.#json(res, { apiVersion: resource.group, kind: `${kind}List`, metadata: { resourceVersion: String(this.#rv) }, items });
      }
      case 'PATCH':
        return this.#patch(kind, ns!, name!, key, contentType, url, body, res);
      case 'DELETE': {
        const obj = this.#objects.get(key);
        if (!obj) return status(res, 404, 'NotFound', `${plural} "${name}" not found`);
        if (kind === 'Job' && url.searchParams.get('propagationPolicy') !== 'Background') {
          return status(res, 400, 'BadRequest', 'the double only implements propagationPolicy=Background for Jobs');
        }
        this.#objects.delete(key);
        this.#appliedTemplates.delete(key);
        if (kind === 'Job') {
          this.deletedJobs.push(name!);
          for (const [podName, pod] of this.#pods) {
            if (pod.job === name) {
              for (const l of pod.listeners) l(null);
              this.#pods.delete(podName);
            }
          }
        }
        return this.#json(res, { kind: 'Status', apiVersion: 'v1', status: 'Success' });
      }
      default:
        return status(res, 405, 'MethodNotAllowed', req.method ?? '');
    }
  }

  #hold(req: IncomingMessage): void {
    req.resume();
    this.#held.add(req);
    req.socket.on('close', () => this.#held.delete(req));
  }

  #takeFault(verb: FaultVerb, path: string): Fault | undefined {
    for (const rule of this.#faults) {
      if (rule.queue.length === 0) continue;
      if (rule.verb !== '*' && rule.verb !== verb) continue;
      if (typeof rule.path === 'string' ? !path.includes(rule.path) : !rule.path.test(path)) continue;
      return rule.queue.shift();
    }
    return undefined;
  }

  #writeLease(method: 'POST' | 'PUT', ns: string, name: string | undefined, body: string, res: ServerResponse): void {
    const lease = JSON.parse(body) as Json;
    const leaseName = (name ?? lease['metadata']?.name) as string;
    const key = `Lease/${ns}/${leaseName}`;
    const existing = this.#objects.get(key);
    if (method === 'POST') {
      if (existing) return status(res, 409, 'AlreadyExists', `leases.coordination.k8s.io "${leaseName}" already exists`);
      this.#objects.set(key, { ...lease, metadata: { ...lease['metadata'], name: leaseName, namespace: ns, uid: `uid-${++this.#seq}`, creationTimestamp: this.#now() } });
      this.#publish();
      return this.#json(res, this.#objects.get(key), 201);
    }
    if (!existing) return status(res, 404, 'NotFound', `leases.coordination.k8s.io "${leaseName}" not found`);
    if (lease['metadata']?.resourceVersion !== existing['metadata'].resourceVersion) {
      return status(res, 409, 'Conflict', `Operation cannot be fulfilled on leases.coordination.k8s.io "${leaseName}": the object has been modified; please apply your changes to the latest version and try again`);
    }
    this.#objects.set(key, { ...lease, metadata: { ...lease['metadata'], uid: existing['metadata'].uid, creationTimestamp: existing['metadata'].creationTimestamp, namespace: ns } });
    return this.#json(res, this.#objects.get(key));
  }

  #watch(kind: string, ns: string, url: URL, res: ServerResponse): void {
    this.#publish();
    const label = url.searchParams.get('labelSelector');
    const field = url.searchParams.get('fieldSelector');
    const match = (o: Json) => o['metadata']?.namespace === ns && matches(o['metadata']?.labels, label) && fieldsMatch(o, field);
    const send = (type: string, obj: Json) => res.write(`${JSON.stringify({ type, object: obj })}\n`);
    res.writeHead(200, { 'content-type': 'application/json' });
    const from = url.searchParams.get('resourceVersion');
    if (!from || from === '0') {
      for (const { obj, kind: k } of this.#published.values()) if (k === kind && match(obj)) send('ADDED', obj);
    } else {
      if (Number(from) < this.#compactedRv) {
        send('ERROR', { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: `too old resource version: ${from} (${this.#compactedRv})`, reason: 'Expired', code: 410 });
        res.end();
        return;
      }
      for (const e of this.#events) if (e.rv > Number(from) && e.kind === kind && match(e.obj)) send(e.type, e.obj);
    }
    const watcher: Watcher = { kind, match, send, res, bookmarks: url.searchParams.get('allowWatchBookmarks') === 'true', lastBookmark: Date.now() };
    this.#watchers.add(watcher);
    this.#streams.add(res);
    const timeout = Number(url.searchParams.get('timeoutSeconds') ?? 0);
    const timer = timeout > 0 ? setTimeout(() => res.end(), timeout * 1000) : undefined;
    res.on('close', () => {
      clearTimeout(timer);
      this.#watchers.delete(watcher);
      this.#streams.delete(res);
    });
  }

  /**
   * Gives every object that changed since the last call the next resourceVersion and tells the
   * watches; objects gone are DELETED with the state last published.
   */
  #publish(): void {
    const current = new Map<string, { obj: Json; kind: string }>();
    // Pods first: a watch of a Job's pods hears of a new pod before the Job's status changes.
    for (const pod of this.#pods.values()) if (!pod.gone) current.set(`Pod/${pod.obj['metadata'].namespace}/${pod.obj['metadata'].name}`, { obj: pod.obj, kind: 'Pod' });
    for (const [key, obj] of this.#objects) current.set(key, { obj, kind: key.split('/')[0]! });
    const events: StoredEvent[] = [];
    for (const [key, { obj, kind }] of current) {
      const json = withoutVersion(obj);
      const before = this.#published.get(key);
      if (before?.json === json) continue;
      obj['metadata'].resourceVersion = String(++this.#rv);
      const copy = structuredClone(obj);
      this.#published.set(key, { json, obj: copy, kind });
      events.push({ rv: this.#rv, type: before ? 'MODIFIED' : 'ADDED', kind, obj: copy });
    }
    for (const [key, before] of this.#published) {
      if (current.has(key)) continue;
      this.#published.delete(key);
      const last = { ...before.obj, metadata: { ...before.obj['metadata'], resourceVersion: String(++this.#rv) } };
      events.push({ rv: this.#rv, type: 'DELETED', kind: before.kind, obj: last });
    }
    if (events.length === 0) return;
    this.#events.push(...events);
    if (this.#events.length > this.#eventLogSize) {
      const dropped = this.#events.splice(0, this.#events.length - this.#eventLogSize);
      this.#compactedRv = dropped.at(-1)!.rv;
    }
    if (this.#blackholed()) return;
    for (const e of events) for (const w of this.#watchers) if (w.kind === e.kind && w.match(e.obj)) w.send(e.type, e.obj);
  }

  #bookmarks(): void {
    if (this.#blackholed()) return;
    const now = Date.now();
    for (const w of this.#watchers) {
      if (!w.bookmarks || now - w.lastBookmark < this.#bookmarkMs) continue;
      w.lastBookmark = now;
      const group = Object.values(RESOURCES).flat().find((r) => r.kind === w.kind)?.group ?? 'v1';
      w.send('BOOKMARK', { kind: w.kind, apiVersion: group, metadata: { resourceVersion: String(this.#rv) } });
    }
  }

  #json(res: ServerResponse, value: unknown, code = 200): void {
    // What a write changed gets its resourceVersion (and reaches the watches) before the answer.
    this.#publish();
    res.writeHead(code, { 'content-type': 'application/json' });
    res.end(JSON.stringify(value));
  }

  #patch(kind: string, ns: string, name: string, key: string, contentType: string | undefined, url: URL, body: string, res: ServerResponse): void {
    const existing = this.#objects.get(key);
    if (contentType === 'application/merge-patch+json') {
      if (!existing) return status(res, 404, 'NotFound', `${kind} "${name}" not found`);
      const patch = JSON.parse(body) as Json;
      if (patch['spec']?.replicas !== undefined) {
        existing['spec'].replicas = patch['spec'].replicas;
        existing['metadata'].generation += 1;
        this.#rollout(existing);
      }
      return this.#json(res, existing);
    }
    if (contentType !== 'application/apply-patch+yaml') return status(res, 415, 'UnsupportedMediaType', `unexpected patch type ${contentType}`);
    if (url.searchParams.get('fieldManager') !== 'tunepipe') return status(res, 422, 'Invalid', 'server-side apply needs fieldManager=tunepipe');
    if (url.searchParams.get('force') !== 'true') return status(res, 409, 'Conflict', 'apply conflict: force was not set');
    const applied = JSON.parse(body) as Json;
    if (applied['metadata']?.name !== name || (applied['metadata']?.namespace ?? ns) !== ns) return status(res, 400, 'BadRequest', 'name/namespace mismatch');

    if (!existing) {
      const obj: Json = {
        ...applied,
        metadata: { ...applied['metadata'], namespace: ns, uid: `uid-${++this.#seq}`, creationTimestamp: this.#now(), generation: 1, resourceVersion: String(this.#seq) },
      };
      this.#objects.set(key, obj);
      this.created.push(`${kind}/${name}`);
      if (kind === 'Job') {
        this.#appliedTemplates.set(key, canonical(applied['spec']?.template));
        obj['status'] = {};
        if (obj['metadata'].labels?.['kueue.x-k8s.io/queue-name']) {
          // Kueue's webhook suspends queued Jobs until their workload is admitted.
          obj['spec'] = { ...obj['spec'], suspend: true };
          obj['status'] = { conditions: [{ type: 'Suspended', status: 'True', reason: 'JobSuspended', message: 'Job suspended' }] };
          const script = this.#scripts.get(obj['metadata'].labels['tunepipe.dev/stage']);
          this.#admitAt.set(key, Date.now() + (script?.admitAfterMs ?? 0));
          this.#createWorkload(obj, script);
        }
      }
      if (kind === 'Deployment') this.#rollout(obj);
      return this.#json(res, obj);
    }

    if (kind === 'Job') {
      if (this.#appliedTemplates.get(key) !== canonical(applied['spec']?.template)) {
        return status(res, 422, 'Invalid', `Job.batch "${name}" is invalid: spec.template: Invalid value: field is immutable`);
      }
      existing['metadata'].labels = { ...existing['metadata'].labels, ...applied['metadata'].labels };
      return this.#json(res, existing);
    }
    const changed = canonical(existing['spec']) !== canonical(applied['spec']) || canonical(existing['data']) !== canonical(applied['data']);
    const obj: Json = { ...existing, ...applied, metadata: { ...existing['metadata'], ...applied['metadata'], namespace: ns } };
    if (kind === 'Deployment') {
      obj['status'] = existing['status'];
      if (changed) {
        obj['metadata'].generation += 1;
        this.#objects.set(key, obj);
        this.#rollout(obj);
      }
    }
    this.#objects.set(key, obj);
    return this.#json(res, obj);
  }

  #log(ns: string, name: string, url: URL, res: ServerResponse): void {
    const pod = this.#pods.get(name);
    if (!pod || pod.obj['metadata'].namespace !== ns) return status(res, 404, 'NotFound', `pods "${name}" not found`);
    const container = url.searchParams.get('container');
    if (container && container !== 'undefined' && container !== pod.container && !this.#containers(pod.obj).includes(container)) {
      return status(res, 400, 'BadRequest', `container ${container} is not valid for pod ${name}`);
    }
    if (pod.obj['status'].phase === 'Pending' && pod.lines.length === 0) {
      return status(res, 400, 'BadRequest', `container "${pod.container}" in pod "${name}" is waiting to start: ContainerCreating`);
    }
    res.writeHead(200, { 'content-type': 'text/plain' });
    const tail = Number(url.searchParams.get('tailLines') ?? 0);
    const since = url.searchParams.get('sinceTime');
    const fromIndex = since ? pod.times.findIndex((t) => t >= Date.parse(since)) : 0;
    const recent = fromIndex < 0 ? [] : pod.lines.slice(fromIndex);
    const lines = tail > 0 ? recent.slice(-tail) : recent;
    const limitBytes = Number(url.searchParams.get('limitBytes') ?? 0);
    if (limitBytes > 0) {
      res.end(lines.map((l) => `${l}\n`).join('').slice(0, limitBytes));
      return;
    }
    for (const l of lines) res.write(`${l}\n`);
    const terminal = pod.obj['status'].phase === 'Succeeded' || pod.obj['status'].phase === 'Failed';
    if (url.searchParams.get('follow') !== 'true' || terminal) {
      res.end();
      return;
    }
    const listener = (line: string | null) => {
      if (line === null) {
        pod.listeners.delete(listener);
        res.end();
      } else if (!this.#blackholed()) res.write(`${line}\n`);
    };
    pod.listeners.add(listener);
    this.#streams.add(res);
    res.on('close', () => {
      pod.listeners.delete(listener);
      this.#streams.delete(res);
    });
    if (this.#dropFollowAfterMs !== undefined) setTimeout(() => listener(null), this.#dropFollowAfterMs);
  }

  #containers(pod: Json): string[] {
    return [...(pod['spec'].initContainers ?? []), ...(pod['spec'].containers ?? [])].map((c: Json) => c['name']);
  }

  // ---------------------------------------------------------------- controller

  #tick(): void {
    if (this.#blackholeUntil !== 0 && !this.#blackholed()) {
      this.#blackholeUntil = 0;
      this.#endBlackhole();
    }
    for (const [key, job] of [...this.#objects.entries()].filter(([k]) => k.startsWith('Job/'))) this.#reconcileJob(key, job);
    for (const pod of [...this.#pods.values()]) this.#runPod(pod);
    for (const d of this.list('Deployment')) this.#reconcileDeployment(d);
    this.#publish();
    this.#bookmarks();
  }

  #jobScript(job: Json): PodScript {
    return this.#scripts.get(job['metadata'].labels?.['tunepipe.dev/stage']) ?? {};
  }

  /** Kueue's Workload for a queued Job: one pod set of the Job's parallelism, quota not reserved yet. */
  #createWorkload(job: Json, script: PodScript | undefined): void {
    const ns = job['metadata'].namespace as string;
    const name = `job-${job['metadata'].name}-${Math.random().toString(36).slice(2, 7)}`;
    this.#objects.set(`Workload/${ns}/${name}`, {
      apiVersion: 'kueue.x-k8s.io/v1beta2',
      kind: 'Workload',
      metadata: {
        name,
        namespace: ns,
        uid: `uid-${++this.#seq}`,
        creationTimestamp: this.#now(),
        labels: { 'kueue.x-k8s.io/job-uid': job['metadata'].uid },
        ownerReferences: [{ apiVersion: 'batch/v1', kind: 'Job', name: job['metadata'].name, uid: job['metadata'].uid, controller: true }],
      },
      spec: { queueName: job['metadata'].labels['kueue.x-k8s.io/queue-name'], podSets: [{ name: 'main', count: job['spec'].parallelism ?? 1 }] },
      status: {
        conditions: [
          {
            type: 'QuotaReserved',
            status: 'False',
            reason: 'Pending',
            message: script?.quotaMessage ?? 'couldn\'t assign flavors to pod set main: insufficient unused quota for nvidia.com/gpu',
            lastTransitionTime: this.#now(),
          },
        ],
      },
    });
  }

  #workloadOf(job: Json): Json | undefined {
    return this.list('Workload').find((w) => w['metadata'].labels?.['kueue.x-k8s.io/job-uid'] === job['metadata'].uid);
  }

  #setWorkloadConditions(job: Json, set: readonly Json[]): void {
    const workload = this.#workloadOf(job);
    if (!workload) return;
    const at = this.#now();
    const kept = (workload['status'].conditions as Json[]).filter((c) => !set.some((n) => n['type'] === c['type']));
    workload['status'] = { ...workload['status'], conditions: [...kept, ...set.map((c) => ({ ...c, lastTransitionTime: at }))] };
  }

  /** Kueue preempts a gang's Workload: the Job is suspended and every pod of it deleted at once. */
  #evictGang(job: Json): void {
    const key = `Job/${job['metadata'].namespace}/${job['metadata'].name}`;
    const message = 'Preempted to accommodate a workload (UID: uid-urgent) due to prioritization in the ClusterQueue';
    job['spec'].suspend = true;
    job['status'].conditions = [...(job['status'].conditions ?? []).filter((c: Json) => c['type'] !== 'Suspended'), { type: 'Suspended', status: 'True', reason: 'JobSuspended', message: 'Job suspended' }];
    this.#setWorkloadConditions(job, [
      { type: 'QuotaReserved', status: 'False', reason: 'Pending', message: 'couldn\'t assign flavors to pod set main: insufficient unused quota for nvidia.com/gpu, 8 more needed' },
      { type: 'Admitted', status: 'False', reason: 'NoReservation', message: 'The workload has no reservation' },
      { type: 'Evicted', status: 'True', reason: 'Preempted', message },
      { type: 'Preempted', status: 'True', reason: 'InClusterQueue', message },
    ]);
    for (const pod of this.#pods.values()) {
      if (pod.job !== job['metadata'].name || pod.gone) continue;
      const phase = pod.obj['status'].phase;
      if (phase !== 'Pending' && phase !== 'Running') continue;
      for (const l of pod.listeners) l(null);
      pod.gone = true;
      pod.evicted = true;
    }
    this.#admitAt.set(key, Date.now() + (this.#jobScript(job).readmitAfterMs ?? 60));
  }

  #reconcileJob(key: string, job: Json): void {
    const conditions: Json[] = job['status'].conditions ?? [];
    if (conditions.some((c) => (c['type'] === 'Complete' || c['type'] === 'Failed') && c['status'] === 'True')) return;
    if (job['spec'].suspend) {
      if (Date.now() < (this.#admitAt.get(key) ?? 0)) return;
      job['spec'].suspend = false;
      job['status'].conditions = conditions.filter((c) => c['type'] !== 'Suspended');
      job['status'].startTime ??= this.#now();
      const evicted = this.#workloadOf(job)?.['status'].conditions.find((c: Json) => c['type'] === 'Evicted' && c['status'] === 'True');
      this.#setWorkloadConditions(job, [
        { type: 'QuotaReserved', status: 'True', reason: 'QuotaReserved', message: 'Quota reserved in ClusterQueue tunepipe' },
        { type: 'Admitted', status: 'True', reason: 'Admitted', message: 'The workload is admitted' },
        ...(evicted ? [{ type: 'Evicted', status: 'False', reason: 'QuotaReserved', message: `Previously: ${evicted['message']}` }] : []),
      ]);
    }
    const name = job['metadata'].name as string;
    const pods = [...this.#pods.values()].filter((p) => p.job === name);
    if (isGang(job)) {
      if (Date.now() < (this.#nextPodAt.get(key) ?? 0)) return;
      // The Job controller keeps one pod per completion index that has not succeeded.
      for (let index = 0; index < (job['spec'].completions ?? job['spec'].parallelism); index++) {
        const mine = pods.filter((p) => p.index === index && !p.gone);
        if (mine.some((p) => ['Pending', 'Running', 'Succeeded'].includes(p.obj['status'].phase))) continue;
        this.#startJobPod(job, pods, index);
      }
      return;
    }
    if (pods.some((p) => p.obj['status'].phase === 'Pending' || p.obj['status'].phase === 'Running')) return;
    if (Date.now() < (this.#nextPodAt.get(key) ?? 0)) return;
    this.#startJobPod(job, pods);
  }

  #wrapperLog(job: Json): string[] | undefined {
    // Emulates stage.sh: a stage whose completion marker exists (and is not forced) does nothing.
    const artifact = job['metadata'].annotations?.['tunepipe.dev/artifact-path'];
    const containers: Json[] = [...(job['spec'].template.spec.initContainers ?? []), ...job['spec'].template.spec.containers];
    const forced = containers.some((c) => (c['env'] ?? []).some((e: Json) => e['name'] === 'TUNEPIPE_FORCE' && e['value'] === '1'));
    if (!artifact) return undefined;
    const marker = `${artifact}/.tunepipe-complete`;
    if (this.markers.has(marker) && !forced) return [`tunepipe: stage ${job['metadata'].labels['tunepipe.dev/stage']} already complete in ${artifact} (cached), nothing to do`];
    if (forced) this.markers.delete(marker);
    return undefined;
  }

  #startJobPod(job: Json, all: PodState[], index?: number): void {
    const name = job['metadata'].name as string;
    const script = this.#jobScript(job);
    const previous = index === undefined ? all : all.filter((p) => p.index === index);
    const attempt = previous.length + 1;
    const template = job['spec'].template;
    let lines: readonly string[];
    if (job['metadata'].labels?.['app.kubernetes.io/component'] === 'marker-check') {
      const args: string[] = template.spec.containers[0].command.slice(4);
      lines = args.filter((m) => this.markers.has(m)).map((m) => `present ${m}`);
    } else {
      lines = this.#wrapperLog(job) ?? script.log ?? [`tunepipe: stage ${job['metadata'].labels?.['tunepipe.dev/stage']} running`, 'working', 'tunepipe: stage complete'];
      if (index !== undefined && index > 0) lines = script.rankLog ?? [`rank ${index}: working`];
      const lastPreempted = previous.filter((p) => p.evicted || p.obj['status'].conditions?.some((c: Json) => c['type'] === 'DisruptionTarget')).at(-1);
      if (lastPreempted && script.log && (index ?? 0) === 0) {
        // LLaMA-Factory resumes from the last checkpoint the lost pod saved.
        const saved = lastPreempted.lines.map((l) => /Saving model checkpoint to (\S*checkpoint-\d+)/.exec(l)).filter(Boolean).at(-1);
        const from = saved ? script.log.findIndex((l) => l.includes(saved[1]!)) + 1 : 0;
        lines = [
          ...(saved ? [`[INFO|2025-04-30 23:30:00] llamafactory.hparams.parser:401 >> Resuming training from ${saved[1]}.`] : []),
          ...script.log.slice(from),
        ];
      }
    }
    const podName = `${name}-${index === undefined ? '' : `${index}-`}${Math.random().toString(36).slice(2, 7)}`;
    const initNames = (template.spec.initContainers ?? []).map((c: Json) => c['name']);
    const indexLabel = index === undefined ? {} : { [COMPLETION_INDEX]: String(index) };
    const obj: Json = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: podName,
        namespace: job['metadata'].namespace,
        labels: { ...template.metadata?.labels, 'job-name': name, 'batch.kubernetes.io/job-name': name, 'controller-uid': job['metadata'].uid, ...indexLabel },
        ...(index === undefined ? {} : { annotations: { ...indexLabel } }),
        ownerReferences: [{ apiVersion: 'batch/v1', kind: 'Job', name, uid: job['metadata'].uid, controller: true }],
        creationTimestamp: this.#now(),
      },
      spec: template.spec,
      status: { phase: 'Pending', conditions: [] },
    };
    const unschedulable = attempt === 1 ? (script.unschedulableForMs ?? 0) : 0;
    this.#pods.set(podName, {
      obj,
      job: name,
      lines: [],
      times: [],
      script: lines,
      cursor: 0,
      attempt,
      pendingUntil: Date.now() + unschedulable,
      ...(attempt === 1 && script.preemptAfterLine !== undefined ? { preemptAt: script.preemptAfterLine } : {}),
      ...(attempt === 1 && script.holdAtLine !== undefined ? { holdAt: script.holdAtLine } : {}),
      ...(index === undefined ? {} : { index }),
      ...(index === 0 && attempt === 1 && script.evictGangAfterLine !== undefined ? { evictAt: script.evictGangAfterLine } : {}),
      listeners: new Set(),
      container: initNames[0] ?? template.spec.containers[0].name,
    });
  }

  #setRunning(pod: PodState): void {
    const init: string[] = (pod.obj['spec'].initContainers ?? []).map((c: Json) => c['name']);
    const main: string[] = pod.obj['spec'].containers.map((c: Json) => c['name']);
    pod.obj['status'] = {
      phase: init.length > 0 ? 'Pending' : 'Running',
      conditions: [{ type: 'PodScheduled', status: 'True' }],
      ...(init.length > 0 ? { initContainerStatuses: [{ name: init[0], ready: false, restartCount: 0, image: 'x', imageID: '', state: { running: { startedAt: this.#now() } } }] } : {}),
      containerStatuses: main.map((n) => ({
        name: n,
        ready: init.length === 0,
        restartCount: 0,
        image: 'x',
        imageID: '',
        state: init.length > 0 ? { waiting: { reason: 'PodInitializing' } } : { running: { startedAt: this.#now() } },
      })),
    };
  }

  #terminate(pod: PodState, exitCode: number, reason: string, disruption?: string): void {
    const terminated = { terminated: { exitCode, reason, startedAt: this.#now(), finishedAt: this.#now() } };
    const st = pod.obj['status'];
    st.phase = exitCode === 0 ? 'Succeeded' : 'Failed';
    if (st.initContainerStatuses && exitCode === 0) {
      st.initContainerStatuses = st.initContainerStatuses.map((c: Json) => ({ ...c, state: { terminated: { ...terminated.terminated, exitCode: 0, reason: 'Completed' } } }));
    }
    const target = st.initContainerStatuses && exitCode !== 0 ? 'initContainerStatuses' : 'containerStatuses';
    st[target] = st[target].map((c: Json) => ({ ...c, ready: false, state: terminated }));
    if (disruption) {
      st.conditions = [...st.conditions, { type: 'DisruptionTarget', status: 'True', reason: disruption, message: 'Kueue preempted the workload' }];
    }
    for (const l of pod.listeners) l(null);
  }

  #runPod(pod: PodState): void {
    const phase = pod.obj['status'].phase;
    if (phase === 'Succeeded' || phase === 'Failed' || pod.gone) return;
    const stage = pod.obj['metadata'].labels?.['tunepipe.dev/stage'];
    if (pod.deployment) return;
    if (!pod.obj['status'].containerStatuses) {
      if (Date.now() < pod.pendingUntil) {
        pod.obj['status'].conditions = [
          {
            type: 'PodScheduled',
            status: 'False',
            reason: 'Unschedulable',
            message: '0/3 nodes are available: 3 Insufficient nvidia.com/gpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.',
          },
        ];
        return;
      }
      this.#setRunning(pod);
      return;
    }
    if (pod.holdAt !== undefined && pod.cursor >= pod.holdAt && !this.#released.has(stage)) return;
    for (let i = 0; i < this.#linesPerTick && pod.cursor < pod.script.length; i++) {
      const line = pod.script[pod.cursor++]!;
      pod.lines.push(line);
      pod.times.push(Date.now());
      for (const l of pod.listeners) l(line);
      if (pod.preemptAt !== undefined && pod.cursor >= pod.preemptAt) {
        this.#terminate(pod, 137, 'Error', 'PreemptionByKueue');
        this.#afterPodFailure(pod, true);
        // Deleted from the API's point of view; kept here so the Job's attempts still count it.
        if (this.#deleteLostPods) pod.gone = true;
        return;
      }
      if (pod.evictAt !== undefined && pod.cursor >= pod.evictAt) {
        const gangJob = this.#objects.get(`Job/${pod.obj['metadata'].namespace}/${pod.job}`);
        if (gangJob) this.#evictGang(gangJob);
        return;
      }
      if (pod.holdAt !== undefined && pod.cursor >= pod.holdAt && !this.#released.has(stage)) return;
    }
    if (pod.cursor < pod.script.length) return;
    const job = this.#objects.get(`Job/${pod.obj['metadata'].namespace}/${pod.job}`);
    if (!job) return;
    const gangPods = [...this.#pods.values()].filter((p) => p.job === pod.job && !p.gone);
    // The ranks of a torchrun job end together: the others wait for rank 0.
    if ((pod.index ?? 0) > 0 && !gangPods.some((p) => p.index === 0 && p.obj['status'].phase === 'Succeeded')) return;
    const failCode = this.#wrapperLog(job) || (pod.index ?? 0) > 0 ? undefined : this.#jobScript(job).failExitCode;
    if (failCode !== undefined && job['metadata'].labels?.['app.kubernetes.io/component'] !== 'marker-check') {
      this.#terminate(pod, failCode, 'Error');
      this.#afterPodFailure(pod, false);
      return;
    }
    this.#terminate(pod, 0, 'Completed');
    if (isGang(job)) {
      const done = new Set(gangPods.filter((p) => p.obj['status'].phase === 'Succeeded').map((p) => p.index));
      job['status'].succeeded = done.size;
      if (done.size < (job['spec'].completions ?? job['spec'].parallelism)) return;
    }
    job['status'] = {
      ...job['status'],
      succeeded: isGang(job) ? job['status'].succeeded : 1,
      completionTime: this.#now(),
      conditions: [
        { type: 'SuccessCriteriaMet', status: 'True', reason: 'CompletionsReached' },
        { type: 'Complete', status: 'True', reason: 'CompletionsReached' },
      ],
    };
    const artifact = job['metadata'].annotations?.['tunepipe.dev/artifact-path'];
    if (artifact) this.markers.add(`${artifact}/.tunepipe-complete`);
  }

  #afterPodFailure(pod: PodState, disrupted: boolean): void {
    const key = `Job/${pod.obj['metadata'].namespace}/${pod.job}`;
    const job = this.#objects.get(key);
    if (!job) return;
    this.#nextPodAt.set(key, Date.now() + this.#retryDelayMs);
    const ignore = disrupted && (job['spec'].podFailurePolicy?.rules ?? []).some(
      (r: Json) => r['action'] === 'Ignore' && (r['onPodConditions'] ?? []).some((c: Json) => c['type'] === 'DisruptionTarget'),
    );
    if (ignore) return;
    job['status'].failed = (job['status'].failed ?? 0) + 1;
    if (job['status'].failed > (job['spec'].backoffLimit ?? 6)) {
      job['status'].conditions = [
        ...(job['status'].conditions ?? []),
        { type: 'FailureTarget', status: 'True', reason: 'BackoffLimitExceeded', message: 'Job has reached the specified backoff limit' },
        { type: 'Failed', status: 'True', reason: 'BackoffLimitExceeded', message: 'Job has reached the specified backoff limit' },
      ];
    }
  }

  #rollout(d: Json): void {
    const name = d['metadata'].name as string;
    for (const [podName, pod] of this.#pods) {
      if (pod.deployment === name) {
        for (const l of pod.listeners) l(null);
        this.#pods.delete(podName);
      }
    }
    d['status'] = {
      observedGeneration: d['metadata'].generation,
      replicas: 0,
      updatedReplicas: 0,
      availableReplicas: 0,
      conditions: [{ type: 'Progressing', status: 'True', reason: 'NewReplicaSetCreated' }],
    };
    const replicas = d['spec'].replicas ?? 1;
    for (let i = 0; i < replicas; i++) {
      const podName = `${name}-${Math.random().toString(36).slice(2, 7)}`;
      const template = d['spec'].template;
      this.#pods.set(podName, {
        obj: {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { name: podName, namespace: d['metadata'].namespace, labels: { ...template.metadata.labels }, creationTimestamp: this.#now() },
          spec: template.spec,
          status: { phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'True' }] },
        },
        deployment: name,
        lines: [],
        times: [],
        script: [],
        cursor: 0,
        attempt: 1,
        pendingUntil: Date.now() + this.#serveReadyMs,
        listeners: new Set(),
        container: template.spec.containers[0].name,
      });
    }
  }

  #reconcileDeployment(d: Json): void {
    const name = d['metadata'].name as string;
    const pods = [...this.#pods.values()].filter((p) => p.deployment === name);
    const want = d['spec'].replicas ?? 1;
    let ready = 0;
    for (const pod of pods) {
      if (Date.now() >= pod.pendingUntil && pod.obj['status'].phase === 'Pending') {
        pod.obj['status'] = {
          phase: 'Running',
          conditions: [{ type: 'PodScheduled', status: 'True' }, { type: 'Ready', status: 'True' }],
          containerStatuses: [{ name: pod.container, ready: true, restartCount: 0, image: 'x', imageID: '', state: { running: { startedAt: this.#now() } } }],
        };
        const line = `INFO: Started server process; Uvicorn running on http://0.0.0.0:8000`;
        pod.lines.push(line);
        pod.times.push(Date.now());
        for (const l of pod.listeners) l(line);
      }
      if (pod.obj['status'].phase === 'Running') ready++;
    }
    const st = d['status'];
    st.replicas = pods.length;
    st.updatedReplicas = pods.length;
    st.readyReplicas = ready;
    st.availableReplicas = ready;
    st.observedGeneration = d['metadata'].generation;
    st.conditions = [
      { type: 'Progressing', status: 'True', reason: ready >= want ? 'NewReplicaSetAvailable' : 'ReplicaSetUpdated' },
      ...(ready >= want ? [{ type: 'Available', status: 'True', reason: 'MinimumReplicasAvailable' }] : []),
    ];
  }
}

export async function startFakeKube(options: FakeKubeOptions = {}): Promise<FakeKubeApi> {
  return new FakeKubeApi(options).start();
}
