/**
 * TEST DOUBLE of the Kubernetes API server (plus the bits of the Job controller, Kueue, the
 * scheduler and the kubelet the runner observes). An in-process node:http server answering the
 * calls @kubernetes/client-node makes for the runner: discovery, server-side apply
 * (`application/apply-patch+yaml`) and merge patch, get/list with label selectors, DELETE of
 * Jobs, and pod logs with `follow`. A controller ticking every few milliseconds moves Jobs
 * through their conditions: Kueue-style suspension and admission, unschedulable pods (no GPU
 * node yet), preemption (DisruptionTarget, honoured by the Job's podFailurePolicy), failures
 * with backoffLimit, and completion. Pod logs are scripted per stage (e.g. the seed's
 * training log), and a stage retried after preemption resumes after its last checkpoint.
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
};

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

function status(res: ServerResponse, code: number, reason: string, message: string): void {
  res.writeHead(code, { 'content-type': 'application/json' });
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
  url = '';

  constructor(options: FakeKubeOptions = {}) {
    this.#tickMs = options.tickMs ?? 5;
    this.#linesPerTick = options.linesPerTick ?? 6;
    this.#serveReadyMs = options.serveReadyMs ?? 30;
    this.#retryDelayMs = options.retryDelayMs ?? 40;
    this.#dropFollowAfterMs = options.dropFollowAfterMs;
    this.#deleteLostPods = options.deleteLostPods ?? false;
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
    if (Date.now() < this.#downUntil) {
      // An API server restarting: the connection is reset, as the real one does (test:real).
      req.socket.destroy();
      return;
    }
    if (Date.now() < this.#forbiddenUntil) {
      // ...and then refuses requests while its authorizer's caches fill (the real one, too).
      req.resume();
      return status(res, 403, 'Forbidden', 'jobs.batch is forbidden: User "system:serviceaccount:tunepipe:tunepipe-runner" cannot get resource "jobs"');
    }
    const url = new URL(req.url ?? '/', 'http://double');
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

    const m = /^\/(?:api\/v1|apis\/(batch|apps)\/v1)\/namespaces\/([^/]+)\/([a-z]+)(?:\/([^/]+))?(?:\/(log))?$/.exec(url.pathname);
    if (!m) return status(res, 404, 'NotFound', `no route ${url.pathname}`);
    const [, , ns, plural, name, sub] = m;
    const resource = Object.values(RESOURCES)
      .flat()
      .find((r) => r.plural === plural);
    if (!resource) return status(res, 404, 'NotFound', `no resource ${plural}`);
    const kind = resource.kind;

    if (sub === 'log') return this.#log(ns!, name!, url, res);
    if (kind === 'Pod') {
      if (req.method !== 'GET') return status(res, 405, 'MethodNotAllowed', 'pods are read-only here');
      if (name) {
        const pod = this.#pods.get(name);
        if (!pod || pod.gone) return status(res, 404, 'NotFound', `pods "${name}" not found`);
        return this.#json(res, pod.obj);
      }
      const items = [...this.#pods.values()].filter((p) => !p.gone).map((p) => p.obj).filter((p) => p['metadata'].namespace === ns && matches(p['metadata'].labels, url.searchParams.get('labelSelector')));
      return this.#json(res, { apiVersion: 'v1', kind: 'PodList', metadata: {}, items });
    }

    const key = `${kind}/${ns}/${name}`;
    switch (req.method) {
      case 'GET': {
        if (name) {
          const obj = this.#objects.get(key);
          return obj ? this.#json(res, obj) : status(res, 404, 'NotFound', `${plural} "${name}" not found`);
        }
        const items = this.list(kind).filter((o) => o['metadata'].namespace === ns && matches(o['metadata'].labels, url.searchParams.get('labelSelector')));
        return this.#json(res, { apiVersion: resource.group, kind: `${kind}List`, metadata: {}, items });
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

  #json(res: ServerResponse, value: unknown): void {
    res.writeHead(200, { 'content-type': 'application/json' });
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
          this.#admitAt.set(key, Date.now() + (this.#scripts.get(obj['metadata'].labels['tunepipe.dev/stage'])?.admitAfterMs ?? 0));
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
      } else res.write(`${line}\n`);
    };
    pod.listeners.add(listener);
    res.on('close', () => pod.listeners.delete(listener));
    if (this.#dropFollowAfterMs !== undefined) setTimeout(() => listener(null), this.#dropFollowAfterMs);
  }

  #containers(pod: Json): string[] {
    return [...(pod['spec'].initContainers ?? []), ...(pod['spec'].containers ?? [])].map((c: Json) => c['name']);
  }

  // ---------------------------------------------------------------- controller

  #tick(): void {
    for (const [key, job] of [...this.#objects.entries()].filter(([k]) => k.startsWith('Job/'))) this.#reconcileJob(key, job);
    for (const pod of [...this.#pods.values()]) this.#runPod(pod);
    for (const d of this.list('Deployment')) this.#reconcileDeployment(d);
  }

  #jobScript(job: Json): PodScript {
    return this.#scripts.get(job['metadata'].labels?.['tunepipe.dev/stage']) ?? {};
  }

  #reconcileJob(key: string, job: Json): void {
    const conditions: Json[] = job['status'].conditions ?? [];
    if (conditions.some((c) => (c['type'] === 'Complete' || c['type'] === 'Failed') && c['status'] === 'True')) return;
    if (job['spec'].suspend) {
      if (Date.now() < (this.#admitAt.get(key) ?? 0)) return;
      job['spec'].suspend = false;
      job['status'].conditions = conditions.filter((c) => c['type'] !== 'Suspended');
    }
    const name = job['metadata'].name as string;
    const pods = [...this.#pods.values()].filter((p) => p.job === name);
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

  #startJobPod(job: Json, previous: PodState[]): void {
    const name = job['metadata'].name as string;
    const script = this.#jobScript(job);
    const attempt = previous.length + 1;
    const template = job['spec'].template;
    let lines: readonly string[];
    if (job['metadata'].labels?.['app.kubernetes.io/component'] === 'marker-check') {
      const args: string[] = template.spec.containers[0].command.slice(4);
      lines = args.filter((m) => this.markers.has(m)).map((m) => `present ${m}`);
    } else {
      lines = this.#wrapperLog(job) ?? script.log ?? [`tunepipe: stage ${job['metadata'].labels?.['tunepipe.dev/stage']} running`, 'working', 'tunepipe: stage complete'];
      const lastPreempted = previous.filter((p) => p.obj['status'].conditions?.some((c: Json) => c['type'] === 'DisruptionTarget')).at(-1);
      if (lastPreempted && script.log) {
        // LLaMA-Factory resumes from the last checkpoint the lost pod saved.
        const saved = lastPreempted.lines.map((l) => /Saving model checkpoint to (\S*checkpoint-\d+)/.exec(l)).filter(Boolean).at(-1);
        const from = saved ? script.log.findIndex((l) => l.includes(saved[1]!)) + 1 : 0;
        lines = [
          ...(saved ? [`[INFO|2025-04-30 23:30:00] llamafactory.hparams.parser:401 >> Resuming training from ${saved[1]}.`] : []),
          ...script.log.slice(from),
        ];
      }
    }
    const podName = `${name}-${Math.random().toString(36).slice(2, 7)}`;
    const initNames = (template.spec.initContainers ?? []).map((c: Json) => c['name']);
    const obj: Json = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: podName,
        namespace: job['metadata'].namespace,
        labels: { ...template.metadata?.labels, 'job-name': name, 'batch.kubernetes.io/job-name': name },
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
    if (phase === 'Succeeded' || phase === 'Failed') return;
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
      if (pod.holdAt !== undefined && pod.cursor >= pod.holdAt && !this.#released.has(stage)) return;
    }
    if (pod.cursor < pod.script.length) return;
    const job = this.#objects.get(`Job/${pod.obj['metadata'].namespace}/${pod.job}`);
    if (!job) return;
    const failCode = this.#wrapperLog(job) ? undefined : this.#jobScript(job).failExitCode;
    if (failCode !== undefined && job['metadata'].labels?.['app.kubernetes.io/component'] !== 'marker-check') {
      this.#terminate(pod, failCode, 'Error');
      this.#afterPodFailure(pod, false);
      return;
    }
    this.#terminate(pod, 0, 'Completed');
    job['status'] = {
      ...job['status'],
      succeeded: 1,
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
