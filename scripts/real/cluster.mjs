// A local Kubernetes control plane for the real-tools tier and for trying `tunepipe run` by hand:
// etcd, kube-apiserver, kube-controller-manager (Job controller, garbage collector, PV binder),
// kube-scheduler, kwok (fake nodes and pod lifecycles) and Kueue, all as local processes bound to
// 127.0.0.1 only, on ports picked at start, with certificates generated for this one cluster.
//
// Nothing here runs a container: pods are kwok's fakes. What they "do" (run, succeed, fail, hang)
// is set by kwok Stage objects that `setPodOutcomes()` rewrites, so a test decides per stage.
//
// Teardown is layered: `stop()` ends every process group and removes the temp folder; an exit or
// signal handler does the same for a test process that dies; and a detached reaper shell does it
// when even that handler cannot run (the test runner was SIGKILLed).
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { cacheRoot } from './lib.mjs';

export const FIELD_MANAGER = 'tunepipe-test-cluster';
/** Annotation kwok manages nodes by (its `--manage-nodes-with-annotation-selector`). */
export const KWOK_NODE_ANNOTATION = { key: 'kwok.x-k8s.io/node', value: 'fake' };
export const KUEUE_NAMESPACE = 'kueue-system';

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The control plane's binaries from `<cache>/tools.json` (written by scripts/real/install.mjs). */
export function controlPlaneTools() {
  const file = process.env.TUNEPIPE_TOOLS ?? join(cacheRoot(), 'tools.json');
  const tools = existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')).controlplane : undefined;
  if (!tools) {
    throw new Error(`the local control plane is not installed (${file} has no "controlplane" entry): run \`node scripts/real/install.mjs controlplane\` (or \`npm run test:real\`) first`);
  }
  for (const key of ['etcd', 'kubeApiserver', 'kubeControllerManager', 'kubeScheduler', 'kwok', 'kueue']) {
    if (!tools[key] || !existsSync(tools[key])) throw new Error(`controlplane tool ${key} missing at ${tools[key]}: run \`node scripts/real/install.mjs controlplane\``);
  }
  return tools;
}

/** A free TCP port on 127.0.0.1 (closed again at once; the child binds it moments later). */
export async function freePort() {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  server.close();
  await once(server, 'close');
  return port;
}

// ---------------------------------------------------------------------------------------------
// Certificates: one CA per cluster signs the serving certificate (apiserver, Kueue's webhooks)
// and the admin client certificate. EC keys keep generation in milliseconds.

function openssl(args, cwd) {
  const r = spawnSync('openssl', args, { cwd, encoding: 'utf8' });
  if (r.error?.code === 'ENOENT') throw new Error('openssl is not installed (apt-get install openssl): the local cluster generates its certificates with it');
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${r.stderr}`);
}

function makeCertificates(dir) {
  mkdirSync(dir, { recursive: true });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '7', '-subj', '/CN=tunepipe-local-ca', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  const leaf = (name, subject, ext) => {
    openssl(['req', '-new', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject], dir);
    writeFileSync(join(dir, `${name}.ext`), ext);
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '7', '-extfile', `${name}.ext`], dir);
  };
  // Everything serves on 127.0.0.1; the kubernetes.default names are what in-cluster clients expect.
  leaf('serving', '/CN=127.0.0.1', 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n');
  leaf('admin', '/O=system:masters/CN=tunepipe-local-admin', 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n');
  // ServiceAccount tokens: RSA, the one key type every token consumer accepts.
  openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', 'sa.key'], dir);
  openssl(['pkey', '-in', 'sa.key', '-pubout', '-out', 'sa.pub'], dir);
  // Kueue's metrics server wants a certificate folder of its own (tls.crt/tls.key).
  mkdirSync(join(dir, 'kueue-metrics'), { recursive: true });
  writeFileSync(join(dir, 'kueue-metrics', 'tls.crt'), readFileSync(join(dir, 'serving.crt')));
  writeFileSync(join(dir, 'kueue-metrics', 'tls.key'), readFileSync(join(dir, 'serving.key')));
  mkdirSync(join(dir, 'kueue-webhook'), { recursive: true });
  writeFileSync(join(dir, 'kueue-webhook', 'tls.crt'), readFileSync(join(dir, 'serving.crt')));
  writeFileSync(join(dir, 'kueue-webhook', 'tls.key'), readFileSync(join(dir, 'serving.key')));
  return {
    caFile: join(dir, 'ca.crt'),
    caKey: join(dir, 'ca.key'),
    servingCert: join(dir, 'serving.crt'),
    servingKey: join(dir, 'serving.key'),
    adminCert: join(dir, 'admin.crt'),
    adminKey: join(dir, 'admin.key'),
    saKey: join(dir, 'sa.key'),
    saPub: join(dir, 'sa.pub'),
    kueueMetricsDir: join(dir, 'kueue-metrics'),
    kueueWebhookDir: join(dir, 'kueue-webhook'),
  };
}

/** A kubeconfig YAML for `server` with either the admin client certificate or a bearer token. */
export function kubeconfigYaml({ server, caFile, user, name = 'tunepipe-local' }) {
  const userEntry = user.token
    ? `    token: ${user.token}\n`
    : `    client-certificate: ${user.certFile}\n    client-key: ${user.keyFile}\n`;
  return [
    'apiVersion: v1',
    'kind: Config',
    'clusters:',
    `- name: ${name}`,
    '  cluster:',
    `    server: ${server}`,
    `    certificate-authority: ${caFile}`,
    'users:',
    `- name: ${user.name}`,
    '  user:',
    userEntry.trimEnd(),
    'contexts:',
    `- name: ${name}`,
    '  context:',
    `    cluster: ${name}`,
    `    user: ${user.name}`,
    ...(user.namespace ? [`    namespace: ${user.namespace}`] : []),
    `current-context: ${name}`,
    '',
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------
// A small API client (node:https, admin certificate): enough for setup, the test helpers and
// server-side apply of arbitrary objects through discovery.

export class KubeApiError extends Error {
  constructor(method, path, status, body) {
    const message = body && typeof body === 'object' && body.message ? body.message : String(body).slice(0, 500);
    super(`${method} ${path}: ${status} ${message}`);
    this.status = status;
    this.body = body;
  }
}

export class KubeApi {
  /** @param {{server: string, ca: Buffer, cert?: Buffer, key?: Buffer, token?: string}} auth */
  constructor(auth) {
    this.auth = auth;
    this.resources = new Map();
  }

  /** One HTTP call; JSON in and out. Rejects with KubeApiError on a non-2xx answer. */
  /** `warnings`, when given, collects the server's `Warning` headers (Pod Security, deprecations). */
  request(method, path, { body, contentType = 'application/json', timeoutMs = 30_000, warnings } = {}) {
    const url = new URL(path, this.auth.server);
    const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = httpsRequest(
        url,
        {
          method,
          ca: this.auth.ca,
          ...(this.auth.cert ? { cert: this.auth.cert, key: this.auth.key } : {}),
          headers: {
            accept: 'application/json',
            ...(payload !== undefined ? { 'content-type': contentType, 'content-length': Buffer.byteLength(payload) } : {}),
            ...(this.auth.token ? { authorization: `Bearer ${this.auth.token}` } : {}),
          },
          timeout: timeoutMs,
        },
        (res) => {
          if (warnings && res.headers.warning) {
            const values = Array.isArray(res.headers.warning) ? res.headers.warning : [res.headers.warning];
            warnings.push(...values);
          }
          const chunks = [];
          res.on('data', (c) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed = text;
            try {
              parsed = text ? JSON.parse(text) : undefined;
            } catch {
              /* plain text (readyz, logs) */
            }
            if (res.statusCode >= 200 && res.statusCode < 300) resolve(parsed);
            else reject(new KubeApiError(method, path, res.statusCode, parsed));
          });
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timed out after ${timeoutMs} ms`)));
      req.on('error', reject);
      if (payload !== undefined) req.write(payload);
      req.end();
    });
  }

  /** `{ path, namespaced }` of the resource serving `kind` in `apiVersion`, from discovery. */
  async resourceFor(apiVersion, kind) {
    const key = `${apiVersion}/${kind}`;
    if (!this.resources.has(key)) {
      const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
      const list = await this.request('GET', base);
      const found = list.resources.find((r) => r.kind === kind && !r.name.includes('/'));
      if (!found) throw new Error(`the API server serves no ${kind} in ${apiVersion}`);
      this.resources.set(key, { base, name: found.name, namespaced: found.namespaced });
    }
    return this.resources.get(key);
  }

  /** Forgets discovery (after CRDs were installed). */
  resetDiscovery() {
    this.resources.clear();
  }

  async pathOf(object, { withName = true } = {}) {
    const r = await this.resourceFor(object.apiVersion, object.kind);
    // A list without a namespace spans all of them; a named object without one is in `default`.
    const namespace = object.metadata?.namespace ?? (withName ? 'default' : undefined);
    const ns = r.namespaced && namespace ? `/namespaces/${namespace}` : '';
    return `${r.base}${ns}/${r.name}${withName ? `/${object.metadata.name}` : ''}`;
  }

  /** Server-side apply (`force` takes conflicting fields); `dryRun` asks for `?dryRun=All`. */
  async apply(object, { fieldManager = FIELD_MANAGER, force = true, dryRun = false, subresource, warnings } = {}) {
    const path = `${await this.pathOf(object)}${subresource ? `/${subresource}` : ''}`;
    const query = new URLSearchParams({ fieldManager, ...(force ? { force: 'true' } : {}), ...(dryRun ? { dryRun: 'All' } : {}) });
    return this.request('PATCH', `${path}?${query}`, { body: object, contentType: 'application/apply-patch+yaml', warnings });
  }

  async get(apiVersion, kind, name, namespace) {
    try {
      return await this.request('GET', await this.pathOf({ apiVersion, kind, metadata: { name, namespace } }));
    } catch (error) {
      if (error instanceof KubeApiError && error.status === 404) return undefined;
      throw error;
    }
  }

  async list(apiVersion, kind, namespace, labelSelector) {
    const path = await this.pathOf({ apiVersion, kind, metadata: { namespace } }, { withName: false });
    const query = labelSelector ? `?labelSelector=${encodeURIComponent(labelSelector)}` : '';
    return (await this.request('GET', `${path}${query}`)).items;
  }

  async delete(apiVersion, kind, name, namespace, { propagationPolicy = 'Background', gracePeriodSeconds } = {}) {
    try {
      return await this.request('DELETE', await this.pathOf({ apiVersion, kind, metadata: { name, namespace } }), {
        body: { kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy, ...(gracePeriodSeconds !== undefined ? { gracePeriodSeconds } : {}) },
      });
    } catch (error) {
      if (error instanceof KubeApiError && error.status === 404) return undefined;
      throw error;
    }
  }
}

/** Polls `check` until it returns a truthy value; fails after `timeoutMs` with the last error, at once on an error marked `fatal`. */
export async function waitFor(what, check, { timeoutMs = 60_000, intervalMs = 200 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (error) {
      // A component that died will not come back: say so now rather than at the deadline.
      if (error?.fatal) throw error;
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await sleep(intervalMs);
  }
}

// ---------------------------------------------------------------------------------------------
// Processes

const live = new Set();
let exitHooksInstalled = false;

/** Kills every process group and removes every folder of clusters this process still runs. */
function killAllNow() {
  for (const cluster of live) cluster.killNow();
}

function installExitHooks() {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  process.on('exit', killAllNow);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(signal, () => {
      // Only when nobody else handles the signal: cluster-up and the test runner install their own.
      if (process.listenerCount(signal) > 1) return;
      killAllNow();
      process.exit(signal === 'SIGINT' ? 130 : 143);
    });
  }
}

class Proc {
  constructor(name, command, args, { env, logDir }) {
    this.name = name;
    this.command = command;
    this.args = args;
    this.env = env;
    this.logFile = join(logDir, `${name}.log`);
    this.child = undefined;
    this.exited = undefined;
  }

  start() {
    const fd = openSync(this.logFile, 'a');
    // detached: a process group of its own, so Ctrl-C in a terminal reaches only cluster-up, which
    // then stops the processes in order; and so a group kill takes any helper children too.
    const child = spawn(this.command, this.args, { env: { ...process.env, ...this.env }, stdio: ['ignore', fd, fd], detached: true });
    closeSync(fd);
    child.unref();
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    child.once('error', () => undefined);
    return this;
  }

  get pid() {
    return this.child?.pid;
  }

  get running() {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
  async stop(graceMs = 5000) {
    if (!this.running) return;
    // The child is unref'd so a forgotten cluster never keeps a process alive; while we wait for
    // it to exit, it must hold the event loop, or an otherwise idle test process ends mid-wait.
    this.child.ref();
    try {
      process.kill(-this.pid, 'SIGTERM');
    } catch {
      /* already gone */
    }
    const timer = setTimeout(() => this.killNow(), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  killNow() {
    if (!this.pid) return;
    try {
      process.kill(-this.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }

  logTail(lines = 30) {
    try {
      return readFileSync(this.logFile, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }
}

// ---------------------------------------------------------------------------------------------
// kwok stages for pods. Nodes use kwok's own node stages (copied from its module at install).
// A pod's "key" is `<namespace>/<tunepipe.dev/stage label>`: outcomes are set per test namespace
// and stage, e.g. `{ 'ns-a/sft': { outcome: 'fail', exitCode: 1 } }`.

const POD_KEY = '(.metadata.namespace + "/" + (.metadata.labels["tunepipe.dev/stage"] // "-"))';
// kwok treats an empty In/NotIn list as an error; this key never matches a real pod.
const NO_POD = '-/-';

function podStage(name, { selector, delayMs = 0, next }) {
  return {
    apiVersion: 'kwok.x-k8s.io/v1alpha1',
    kind: 'Stage',
    metadata: { name, labels: { 'app.kubernetes.io/managed-by': 'tunepipe-test-cluster' } },
    spec: {
      resourceRef: { apiGroup: 'v1', kind: 'Pod' },
      selector: { matchExpressions: selector },
      weight: 1,
      delay: { durationMilliseconds: delayMs },
      next,
    },
  };
}

const notDeleted = { key: '.metadata.deletionTimestamp', operator: 'DoesNotExist' };
const runningPhase = { key: '.status.phase', operator: 'In', values: ['Running'] };
const ownedByJob = { key: '.metadata.ownerReferences.[].kind', operator: 'In', values: ['Job'] };

/** A terminated-container status for every container, as the kubelet reports a finished pod. */
function terminatedTemplate(phase, exitCode, reason, message) {
  return [
    '{{ $now := Now }}',
    'containerStatuses:',
    '{{ range .spec.containers }}',
    '- image: {{ .image | Quote }}',
    '  name: {{ .name | Quote }}',
    '  ready: false',
    '  restartCount: 0',
    '  started: false',
    '  state:',
    '    terminated:',
    `      exitCode: ${exitCode}`,
    `      reason: ${JSON.stringify(reason)}`,
    ...(message ? [`      message: ${JSON.stringify(message)}`] : []),
    '      startedAt: {{ $now | Quote }}',
    '      finishedAt: {{ $now | Quote }}',
    '{{ end }}',
    'conditions:',
    '- type: Ready',
    '  status: "False"',
    '  reason: PodCompleted',
    '  lastTransitionTime: {{ $now | Quote }}',
    '- type: ContainersReady',
    '  status: "False"',
    '  reason: PodCompleted',
    '  lastTransitionTime: {{ $now | Quote }}',
    `phase: ${phase}`,
    '',
  ].join('\n');
}

/**
 * The pod Stages for a set of outcomes. `runMs` is how long a pod runs before it succeeds (or
 * fails); held pods run until the test changes their outcome or deletes them.
 */
export function podStages(outcomes = {}, { runMs = 1500 } = {}) {
  const entries = Object.entries(outcomes);
  const special = entries.filter(([, o]) => o.outcome !== 'succeed').map(([k]) => k);
  const start = podStage('tunepipe-pod-start', {
    selector: [notDeleted, { key: '.spec.nodeName', operator: 'Exists' }, { key: '.status.podIP', operator: 'DoesNotExist' }],
    delayMs: 100,
    next: {
      event: { type: 'Normal', reason: 'Started', message: 'Started containers (kwok)' },
      statusTemplate: [
        '{{ $now := Now }}',
        'conditions:',
        '- {type: PodReadyToStartContainers, status: "True", lastTransitionTime: {{ $now | Quote }}}',
        '- {type: Initialized, status: "True", lastTransitionTime: {{ $now | Quote }}}',
        '- {type: Ready, status: "True", lastTransitionTime: {{ $now | Quote }}}',
        '- {type: ContainersReady, status: "True", lastTransitionTime: {{ $now | Quote }}}',
        '{{ if .spec.initContainers }}',
        'initContainerStatuses:',
        '{{ range .spec.initContainers }}',
        '- image: {{ .image | Quote }}',
        '  name: {{ .name | Quote }}',
        '  ready: true',
        '  restartCount: 0',
        '  started: false',
        '  state:',
        '    terminated: {exitCode: 0, reason: Completed, startedAt: {{ $now | Quote }}, finishedAt: {{ $now | Quote }}}',
        '{{ end }}',
        '{{ end }}',
        'containerStatuses:',
        '{{ range .spec.containers }}',
        '- image: {{ .image | Quote }}',
        '  name: {{ .name | Quote }}',
        '  ready: true',
        '  restartCount: 0',
        '  started: true',
        '  state:',
        '    running: {startedAt: {{ $now | Quote }}}',
        '{{ end }}',
        'hostIP: {{ NodeIPWith .spec.nodeName | Quote }}',
        'podIP: {{ PodIPWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) ( or .metadata.name "" ) ( or .metadata.namespace "" ) | Quote }}',
        'phase: Running',
        'startTime: {{ $now | Quote }}',
        '',
      ].join('\n'),
    },
  });
  const succeed = podStage('tunepipe-pod-succeed', {
    selector: [notDeleted, runningPhase, ownedByJob, { key: POD_KEY, operator: 'NotIn', values: [NO_POD, ...special] }],
    delayMs: runMs,
    next: { statusTemplate: terminatedTemplate('Succeeded', 0, 'Completed') },
  });
  const fails = entries
    .filter(([, o]) => o.outcome === 'fail')
    .map(([key, o], i) =>
      podStage(`tunepipe-pod-fail-${i}`, {
        selector: [notDeleted, runningPhase, ownedByJob, { key: POD_KEY, operator: 'In', values: [key] }],
        delayMs: o.afterMs ?? runMs,
        next: { statusTemplate: terminatedTemplate('Failed', o.exitCode ?? 1, o.reason ?? 'Error', o.message) },
      }),
    );
  // The kubelet ends a deleted pod's containers and reports a terminal phase before the pod goes
  // (the Job controller waits for that phase when a podFailurePolicy is set).
  const stopOnDelete = podStage('tunepipe-pod-stop-on-delete', {
    selector: [{ key: '.metadata.deletionTimestamp', operator: 'Exists' }, { key: '.status.phase', operator: 'NotIn', values: ['Succeeded', 'Failed'] }],
    delayMs: 100,
    next: { statusTemplate: terminatedTemplate('Failed', 137, 'Error', 'killed: the pod was deleted') },
  });
  const remove = podStage('tunepipe-pod-remove', {
    selector: [
      { key: '.metadata.deletionTimestamp', operator: 'Exists' },
      { key: '.status.phase', operator: 'In', values: ['Succeeded', 'Failed'] },
      { key: '.metadata.finalizers', operator: 'DoesNotExist' },
    ],
    delayMs: 100,
    next: { delete: true },
  });
  return [start, succeed, ...fails, stopOnDelete, remove];
}

// ---------------------------------------------------------------------------------------------
// Nodes

/** GPU types the example pipelines select (`tunepipe.dev/gpu`), one node each by default. */
export const DEFAULT_GPU_TYPES = ['l4', 't4', 'a100-80gb'];

function nodeObject(name, { labels = {}, taints = [], capacity }) {
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name,
      annotations: { [KWOK_NODE_ANNOTATION.key]: KWOK_NODE_ANNOTATION.value, 'node.alpha.kubernetes.io/ttl': '0' },
      labels: { 'kubernetes.io/hostname': name, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': 'amd64', 'type': 'kwok', ...labels },
    },
    spec: { taints },
    status: { capacity, allocatable: capacity },
  };
}

/**
 * GPU nodes carry the labels and taint the cluster stack gives GPU node groups (the compiler's
 * node selectors and tolerations, and the Kueue flavors, read the same keys from core).
 */
export function gpuNodeObject(name, { type, gpus = 1, cpu = '16', memory = '128Gi', labels, taint }) {
  return nodeObject(name, {
    labels,
    taints: [taint],
    capacity: { cpu, memory, pods: '110', 'nvidia.com/gpu': String(gpus), 'ephemeral-storage': '500Gi' },
  });
}

export function cpuNodeObject(name, { cpu = '32', memory = '128Gi' } = {}) {
  return nodeObject(name, { capacity: { cpu, memory, pods: '110', 'ephemeral-storage': '500Gi' } });
}

// ---------------------------------------------------------------------------------------------

function readYamlDocs(file) {
  return parseAllDocuments(readFileSync(file, 'utf8'))
    .map((d) => d.toJS())
    .filter((d) => d && typeof d === 'object');
}

/**
 * Kueue's webhook configurations rewritten for a local process: `url:` to 127.0.0.1 with this
 * cluster's CA instead of a Service, and only the webhooks of what this Kueue manages
 * (batch/v1 Jobs, JobSets and Kueue's own objects: the frameworks of kueueManagerConfiguration):
 * the others would send e.g. every Deployment to a handler that is not registered, and fail it.
 */
export function localKueueWebhooks(file, { port, caBundle }) {
  const managed = /^\/(mutate|validate)-(batch-v1-job|jobset-x-k8s-io-v1alpha2-jobset)$/;
  const keep = (path) => managed.test(path) || /^\/(mutate|validate)-kueue-x-k8s-io-/.test(path);
  return readYamlDocs(file).map((doc) => {
    const webhooks = (doc.webhooks ?? [])
      .filter((w) => keep(w.clientConfig?.service?.path ?? ''))
      .map((w) => {
        const path = w.clientConfig.service.path;
        return { ...w, clientConfig: { url: `https://127.0.0.1:${port}${path}`, caBundle } };
      });
    return { ...doc, metadata: { ...doc.metadata, name: `kueue-${doc.metadata.name}` }, webhooks };
  });
}

/** Kueue's CRDs, with the conversion webhook (v1beta1 ⇄ v1beta2) pointed at the local process. */
export function localKueueCrds(files, { port, caBundle }) {
  // The CRDs Kueue's own kustomization switches to webhook conversion.
  const converted = new Set(['localqueues', 'clusterqueues', 'cohorts', 'workloads', 'multikueueclusters']);
  return files.flatMap(readYamlDocs).map((crd) => {
    if (!converted.has(crd.spec?.names?.plural)) return crd;
    return {
      ...crd,
      spec: {
        ...crd.spec,
        conversion: {
          strategy: 'Webhook',
          webhook: { clientConfig: { url: `https://127.0.0.1:${port}/convert`, caBundle }, conversionReviewVersions: ['v1'] },
        },
      },
    };
  });
}

/**
 * The Kueue Configuration this cluster runs: `base` is infra/cluster's kueueManagerConfiguration()
 * (what the Helm release installs, waitForPodsReady included; test/real/support/cluster.ts passes
 * it in), with what a local process needs on top: ports picked at start on 127.0.0.1, this
 * cluster's webhook certificate instead of Kueue's own certificate management, no leader
 * election, no metrics server. JSON text: Kueue reads YAML, and JSON is YAML.
 */
function kueueConfiguration(base, { webhookPort, healthPort, certDir }) {
  return `${JSON.stringify({
    ...base,
    namespace: KUEUE_NAMESPACE,
    health: { healthProbeBindAddress: `127.0.0.1:${healthPort}` },
    metrics: { bindAddress: '0' },
    webhook: { host: '127.0.0.1', port: webhookPort, certDir },
    leaderElection: { leaderElect: false },
    internalCertManagement: { enable: false },
  }, null, 2)}\n`;
}

/**
 * Starts a control plane and resolves once it is ready: API server ready, Kueue's webhooks
 * answering, every node Ready. See test/real/support/cluster.ts for the typed surface.
 */
export async function startCluster(options = {}) {
  if (options.kueueConfiguration?.kind !== 'Configuration') {
    throw new Error("startCluster needs options.kueueConfiguration, infra/cluster's kueueManagerConfiguration() (test/real/support/cluster.ts passes it)");
  }
  const tools = options.tools ?? controlPlaneTools();
  const started = Date.now();
  const dir = mkdtempSync(join(options.tmpRoot ?? tmpdir(), 'tunepipe-cluster-'));
  const logDir = join(dir, 'logs');
  mkdirSync(logDir, { recursive: true });
  const certs = makeCertificates(join(dir, 'pki'));
  const ports = {
    etcd: await freePort(),
    etcdPeer: await freePort(),
    apiserver: await freePort(),
    kueueWebhook: await freePort(),
    kueueHealth: await freePort(),
    kwok: await freePort(),
  };
  const server = `https://127.0.0.1:${ports.apiserver}`;
  const kubeconfig = join(dir, 'admin.kubeconfig');
  writeFileSync(kubeconfig, kubeconfigYaml({ server, caFile: certs.caFile, user: { name: 'admin', certFile: certs.adminCert, keyFile: certs.adminKey } }));
  const api = new KubeApi({ server, ca: readFileSync(certs.caFile), cert: readFileSync(certs.adminCert), key: readFileSync(certs.adminKey) });
  const caBundle = readFileSync(certs.caFile).toString('base64');

  const procs = {};
  const pidFile = join(dir, 'pids');
  const cluster = {
    dir,
    server,
    caFile: certs.caFile,
    kubeconfig,
    ports,
    certs,
    api,
    tools,
    procs,
    logDir,
    stopped: false,
    killNow() {
      for (const p of Object.values(procs)) p.killNow();
      rmSync(dir, { recursive: true, force: true });
      live.delete(cluster);
    },
  };
  live.add(cluster);
  installExitHooks();
  const recordPids = () => writeFileSync(pidFile, Object.values(procs).map((p) => p.pid).filter(Boolean).join('\n') + '\n');
  // The reaper: a detached shell that outlives a SIGKILLed parent and cleans up after it.
  const reaper = spawn(
    'sh',
    [
      '-c',
      'while kill -0 "$1" 2>/dev/null && [ -d "$2" ] && [ ! -f "$2/stopped" ]; do sleep 1; done; [ -f "$2/pids" ] && for p in $(cat "$2/pids"); do kill -9 -"$p" 2>/dev/null; done; [ "$3" = keep ] || rm -rf "$2"',
      'tunepipe-cluster-reaper',
      String(process.pid),
      dir,
      options.keepDir ? 'keep' : 'remove',
    ],
    { detached: true, stdio: 'ignore' },
  );
  reaper.unref();

  const launch = (name, command, args, env = {}) => {
    procs[name] = new Proc(name, command, args, { env, logDir }).start();
    recordPids();
    return procs[name];
  };
  const failWithLogs = (error) => {
    const tails = Object.values(procs)
      .filter((p) => !p.running)
      .map((p) => `--- ${p.name} (exited) ---\n${p.logTail(25)}`)
      .join('\n');
    return new Error(`${error.message}${tails ? `\n${tails}` : ''}\n(logs in ${logDir})`);
  };

  try {
    launch('etcd', tools.etcd, [
      '--name=tunepipe',
      `--data-dir=${join(dir, 'etcd')}`,
      `--listen-client-urls=http://127.0.0.1:${ports.etcd}`,
      `--advertise-client-urls=http://127.0.0.1:${ports.etcd}`,
      `--listen-peer-urls=http://127.0.0.1:${ports.etcdPeer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${ports.etcdPeer}`,
      `--initial-cluster=tunepipe=http://127.0.0.1:${ports.etcdPeer}`,
      // A throw-away cluster: durability costs seconds per test and buys nothing.
      '--unsafe-no-fsync',
      '--log-level=warn',
    ]);

    // The audit log is the tests' record of what reached the API server, in order, with
    // microsecond timestamps and admission's verdict: who created which Job and pod, and whether
    // Pod Security let it through. Only writes to Jobs and pods (no status updates) are logged.
    const auditPolicy = join(dir, 'audit-policy.yaml');
    const auditLog = join(dir, 'audit.log');
    writeFileSync(auditPolicy, [
      'apiVersion: audit.k8s.io/v1',
      'kind: Policy',
      'omitStages: [RequestReceived]',
      'rules:',
      '- level: Metadata',
      '  verbs: [create, patch, update, delete, deletecollection]',
      '  resources:',
      '  - {group: "", resources: [pods, pods/eviction]}',
      '  - {group: batch, resources: [jobs]}',
      '- level: None',
      '',
    ].join('\n'));
    cluster.auditLog = auditLog;
    cluster.auditEvents = () => {
      if (!existsSync(auditLog)) return [];
      return readFileSync(auditLog, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
    };
    const apiserverArgs = [
      `--audit-policy-file=${auditPolicy}`,
      `--audit-log-path=${auditLog}`,
      '--audit-log-format=json',
      `--etcd-servers=http://127.0.0.1:${ports.etcd}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${ports.apiserver}`,
      `--cert-dir=${join(dir, 'apiserver')}`,
      `--tls-cert-file=${certs.servingCert}`,
      `--tls-private-key-file=${certs.servingKey}`,
      `--client-ca-file=${certs.caFile}`,
      `--service-account-key-file=${certs.saPub}`,
      `--service-account-signing-key-file=${certs.saKey}`,
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      '--service-cluster-ip-range=10.96.0.0/16',
      // RBAC only: the runner's ServiceAccount gets exactly what its Role grants.
      '--authorization-mode=RBAC',
      // The `kubernetes` Service would point at 127.0.0.1, which Endpoints may not hold.
      '--endpoint-reconciler-type=none',
      '--allow-privileged=false',
      '--profiling=false',
      '--event-ttl=1h',
      '--v=0',
    ];
    const startApiserver = () => launch('kube-apiserver', tools.kubeApiserver, apiserverArgs);
    startApiserver();
    await waitForApiserver(api, procs['kube-apiserver'], 90_000).catch((e) => {
      throw failWithLogs(e);
    });

    // CRDs first (Kueue's, kwok's Stage), then the namespace Kueue lives in.
    const crds = [...localKueueCrds(tools.kueueCrds, { port: ports.kueueWebhook, caBundle }), ...readYamlDocs(tools.kwokStageCrd)];
    for (const crd of crds) await api.apply(crd);
    await api.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: KUEUE_NAMESPACE } });
    for (const crd of crds) {
      await waitFor(`CRD ${crd.metadata.name} established`, async () => {
        const c = await api.get('apiextensions.k8s.io/v1', 'CustomResourceDefinition', crd.metadata.name);
        return c?.status?.conditions?.some((x) => x.type === 'Established' && x.status === 'True');
      });
    }
    api.resetDiscovery();

    const adminEnv = { KUBECONFIG: kubeconfig };
    launch('kube-controller-manager', tools.kubeControllerManager, [
      `--kubeconfig=${kubeconfig}`,
      `--authentication-kubeconfig=${kubeconfig}`,
      `--authorization-kubeconfig=${kubeconfig}`,
      '--secure-port=0',
      '--leader-elect=false',
      '--use-service-account-credentials=false',
      `--service-account-private-key-file=${certs.saKey}`,
      `--root-ca-file=${certs.caFile}`,
      `--cluster-signing-cert-file=${certs.caFile}`,
      `--cluster-signing-key-file=${certs.caKey}`,
      // The default controllers (Job, garbage collector, PV binder, namespace, ServiceAccount…)
      // without those that need a cloud or a kubelet's CSR flow.
      '--controllers=*,-cloud-node-lifecycle,-service-lb-controller,-node-route-controller',
      '--v=0',
    ], adminEnv);
    launch('kube-scheduler', tools.kubeScheduler, [
      `--kubeconfig=${kubeconfig}`,
      `--authentication-kubeconfig=${kubeconfig}`,
      `--authorization-kubeconfig=${kubeconfig}`,
      '--secure-port=0',
      '--leader-elect=false',
      '--v=0',
    ], adminEnv);
    const startKwok = () => launch('kwok', tools.kwok, [
      `--kubeconfig=${kubeconfig}`,
      '--manage-all-nodes=false',
      `--manage-nodes-with-annotation-selector=${KWOK_NODE_ANNOTATION.key}=${KWOK_NODE_ANNOTATION.value}`,
      '--enable-crds=Stage',
      `--server-address=127.0.0.1:${ports.kwok}`,
      '--node-ip=127.0.0.1',
      '--node-lease-duration-seconds=40',
      '--cidr=10.244.0.0/16',
      ...(process.env.TUNEPIPE_KWOK_DEBUG ? ['--v=DEBUG'] : []),
    ], adminEnv);
    startKwok();

    const kueueConfig = join(dir, 'kueue-config.yaml');
    writeFileSync(kueueConfig, kueueConfiguration(options.kueueConfiguration, { webhookPort: ports.kueueWebhook, healthPort: ports.kueueHealth, certDir: certs.kueueWebhookDir }));
    launch('kueue', tools.kueue, [
      `--config=${kueueConfig}`,
      // Its on-demand visibility API server would listen on every interface; tests do not use it.
      '--feature-gates=VisibilityOnDemand=false',
      '--zap-log-level=2',
    ], { ...adminEnv, KUEUE_METRICS_CERT_DIR: certs.kueueMetricsDir });

    for (const doc of localKueueWebhooks(tools.kueueWebhooks, { port: ports.kueueWebhook, caBundle })) await api.apply(doc);

    // Stages before nodes, so no node is ever handled by a stage set without node stages.
    for (const file of tools.kwokNodeStages) for (const stage of readYamlDocs(file)) await api.apply(stage);
    const runMs = options.podRunMs ?? 1500;
    for (const stage of podStages({}, { runMs })) await api.apply(stage);

    const nodes = [];
    const gpuLabel = options.gpuNodeLabels ?? ((type) => ({ 'tunepipe.dev/gpu': type, 'tunepipe.dev/gpu-node': 'true' }));
    const gpuTaint = options.gpuTaint ?? { key: 'nvidia.com/gpu', value: 'present', effect: 'NoSchedule' };
    const gpuSpecs = typeof options.gpuNodes === 'number' || options.gpuNodes === undefined
      ? DEFAULT_GPU_TYPES.map((type) => ({ type, count: options.gpuNodes ?? 1, gpus: 1 }))
      : options.gpuNodes;
    for (const spec of gpuSpecs) {
      for (let i = 0; i < (spec.count ?? 1); i++) {
        nodes.push(gpuNodeObject(`gpu-${spec.type}-${i}`, { ...spec, labels: gpuLabel(spec.type), taint: gpuTaint }));
      }
    }
    for (let i = 0; i < (options.cpuNodes ?? 1); i++) nodes.push(cpuNodeObject(`cpu-${i}`));
    for (const node of nodes) await api.request('POST', '/api/v1/nodes', { body: node });
    cluster.nodes = nodes.map((n) => n.metadata.name);

    await waitFor('every node Ready (kwok)', async () => {
      const list = await api.list('v1', 'Node');
      return list.length === nodes.length && list.every((n) => n.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
    }, { timeoutMs: 60_000 }).catch((e) => {
      throw failWithLogs(e);
    });
    // Kueue is ready when its webhooks answer: a server-side dry-run of a ResourceFlavor goes
    // through both of its ResourceFlavor webhooks.
    await waitFor('Kueue webhooks answering', async () => {
      if (!procs.kueue.running) throw Object.assign(failWithLogs(new Error('kueue exited')), { fatal: true });
      await api.apply({ apiVersion: 'kueue.x-k8s.io/v1beta2', kind: 'ResourceFlavor', metadata: { name: 'readiness-probe' }, spec: {} }, { dryRun: true });
      return true;
    }, { timeoutMs: 90_000, intervalMs: 300 });
    await waitFor('the default ServiceAccount', () => api.get('v1', 'ServiceAccount', 'default', 'default'), { timeoutMs: 30_000 });

    cluster.startSeconds = (Date.now() - started) / 1000;

    cluster.restartApiServer = async ({ downMs = 0 } = {}) => {
      await procs['kube-apiserver'].stop();
      if (downMs > 0) await sleep(downMs);
      startApiserver();
      await waitForApiserver(api, procs['kube-apiserver'], 90_000).catch((e) => {
        throw failWithLogs(e);
      });
      // kwok's watches do not recover from an API server restart (its fake kubelets stop: no
      // heartbeats, no pod progress), so it is restarted too. It stands in for the nodes, not for
      // anything under test: the controller-manager, scheduler and Kueue ride the restart out.
      // Node Leases name their holder: the new kwok would wait for the old one's to expire (40 s)
      // before it takes the nodes over, so they are handed over by deleting them.
      await procs.kwok.stop();
      for (const node of cluster.nodes) await api.delete('coordination.k8s.io/v1', 'Lease', node, 'kube-node-lease');
      startKwok();
    };
    let outcomeGeneration = 0;
    cluster.setPodOutcomes = async (outcomes = {}, { runMs: ms = runMs } = {}) => {
      const wanted = podStages(outcomes, { runMs: ms });
      const names = new Set(wanted.map((s) => s.metadata.name));
      for (const stage of wanted) await api.apply(stage);
      for (const existing of await api.list('kwok.x-k8s.io/v1alpha1', 'Stage', undefined, 'app.kubernetes.io/managed-by=tunepipe-test-cluster')) {
        if (!names.has(existing.metadata.name)) await api.delete('kwok.x-k8s.io/v1alpha1', 'Stage', existing.metadata.name);
      }
      // kwok matches Stages against a pod only when the pod changes, so a pod held by the old
      // Stages would stay held forever: touch every running pod so kwok looks at it again. Its
      // Stage and pod watches are separate streams, so the touch waits a moment for the Stage
      // change to arrive first, and is repeated once in case it did not.
      for (const waitMs of [300, 1500]) {
        await sleep(waitMs);
        outcomeGeneration += 1;
        for (const pod of await api.list('v1', 'Pod')) {
          if (pod.status?.phase !== 'Running' || pod.metadata.deletionTimestamp) continue;
          await api
            .request('PATCH', `/api/v1/namespaces/${pod.metadata.namespace}/pods/${pod.metadata.name}`, {
              body: { metadata: { annotations: { 'tunepipe.dev/kwok-outcomes': String(outcomeGeneration) } } },
              contentType: 'application/merge-patch+json',
            })
            .catch((error) => {
              if (!(error instanceof KubeApiError && error.status === 404)) throw error;
            });
        }
      }
    };
    cluster.stop = async () => {
      if (cluster.stopped) return;
      cluster.stopped = true;
      // Controllers first, so nothing recreates what goes down; the API server and etcd last.
      const order = ['kueue', 'kwok', 'kube-scheduler', 'kube-controller-manager', 'kube-apiserver', 'etcd'];
      for (const name of order) await procs[name]?.stop(3000);
      for (const p of Object.values(procs)) p.killNow();
      // Tells the reaper its work is done (it would otherwise wait for this process to exit).
      writeFileSync(join(dir, 'stopped'), '');
      if (options.keepDir) live.delete(cluster);
      else cluster.killNow();
    };
    return cluster;
  } catch (error) {
    for (const p of Object.values(procs)) p.killNow();
    if (!options.keepDir) rmSync(dir, { recursive: true, force: true });
    live.delete(cluster);
    throw error;
  }
}

async function waitForApiserver(api, proc, timeoutMs) {
  await waitFor('kube-apiserver /readyz', async () => {
    if (!proc.running) throw Object.assign(new Error(`kube-apiserver exited:\n${proc.logTail(30)}`), { fatal: true });
    const text = await api.request('GET', '/readyz', { timeoutMs: 5000 });
    return text === 'ok' || String(text).trim() === 'ok';
  }, { timeoutMs, intervalMs: 250 });
}
