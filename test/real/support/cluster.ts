// The typed surface of the local control plane (scripts/real/cluster.mjs) for test/real: start one
// per test FILE, give each test its own namespace made the way infra/cluster makes it, and run the
// CLI with that namespace's runner ServiceAccount token.
//
//   const cluster = await startCluster({ gpuNodes: 1, cpuNodes: 1 });
//   after(() => cluster.stop());
//   const ns = await cluster.createTunepipeNamespace('t-queue', { gpuQuota: 1 });
//   spawnSync('node', [cli, 'run', …], { env: { ...process.env, KUBECONFIG: ns.kubeconfig } });
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  LOCAL_QUEUE,
  RUNNER_SERVICE_ACCOUNT,
  URGENT_PRIORITY_CLASS,
  artifactsClaimObject,
  clusterQueueObject,
  cpuFlavorObject,
  gpuFlavorObject,
  kueueManagerConfiguration,
  localQueueObject,
  runnerAccessObjects,
  urgentPriorityClassObject,
  workloadNamespaceObject,
  workloadSecretObjects,
  type KueuePodsReadySettings,
  type PodSecurityLevel,
  type QueueGpuType,
} from '../../../infra/cluster/src/platform-objects.ts';

/** A Kubernetes object as this helper passes it around. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string>; [k: string]: unknown };
  [k: string]: unknown;
}

export interface ApplyOptions {
  readonly fieldManager?: string;
  readonly force?: boolean;
  /** `?dryRun=All`: admission and validation run, nothing is stored. */
  readonly dryRun?: boolean;
  readonly subresource?: string;
  /** Collects the server's `Warning` headers (e.g. Pod Security warnings on a Job's pod template). */
  readonly warnings?: string[];
}

/** The admin client of scripts/real/cluster.mjs (client certificate in group system:masters). */
export interface KubeApi {
  request<T = any>(method: string, path: string, options?: { body?: unknown; contentType?: string; timeoutMs?: number; warnings?: string[] }): Promise<T>;
  apply<T = any>(object: object, options?: ApplyOptions): Promise<T>;
  get<T = any>(apiVersion: string, kind: string, name: string, namespace?: string): Promise<T | undefined>;
  list<T = any>(apiVersion: string, kind: string, namespace?: string, labelSelector?: string): Promise<T[]>;
  delete(apiVersion: string, kind: string, name: string, namespace?: string, options?: { propagationPolicy?: string; gracePeriodSeconds?: number }): Promise<unknown>;
  resetDiscovery(): void;
}

export interface GpuNodeSpec {
  /** GPU catalogue id, the `tunepipe.dev/gpu` label value (`l4`, `t4`, `a100-80gb`, …). */
  readonly type: string;
  /** @default 1 */
  readonly count?: number;
  /** `nvidia.com/gpu` capacity of each node. @default 1 */
  readonly gpus?: number;
  readonly cpu?: string;
  readonly memory?: string;
}

export interface StartClusterOptions {
  /** A number gives that many 1-GPU nodes of each GPU type the example pipelines use. @default 1 */
  readonly gpuNodes?: number | readonly GpuNodeSpec[];
  /** @default 1 */
  readonly cpuNodes?: number;
  /** How long a fake pod runs before it succeeds. @default 1500 */
  readonly podRunMs?: number;
  /** Keep the temp folder (logs, etcd) after stop(), for a post-mortem. @default false */
  readonly keepDir?: boolean;
  /**
   * Kueue's waitForPodsReady for this cluster, over infra/cluster's (15 min: no test waits that
   * long, so by default it never fires). A test of the timeout shortens it to seconds.
   */
  readonly podsReady?: Partial<KueuePodsReadySettings>;
}

/**
 * What kwok makes the pods of one stage do, keyed by `<namespace>/<stage>` (the
 * `tunepipe.dev/stage` label). Pods without an entry succeed after `podRunMs`.
 */
export type PodOutcome =
  | { readonly outcome: 'succeed' }
  /** Runs until the outcome changes or the pod is deleted. */
  | { readonly outcome: 'hold' }
  | { readonly outcome: 'fail'; readonly exitCode?: number; readonly reason?: string; readonly message?: string; readonly afterMs?: number };

export interface TunepipeNamespaceOptions {
  /** @default 'restricted' (as infra/cluster enforces it) */
  readonly podSecurity?: PodSecurityLevel;
  /** GPUs of each type the ClusterQueue admits at once (a number: the same for every type). @default 4 */
  readonly gpuQuota?: number | Readonly<Record<string, number>>;
  /** GPU types with a Kueue flavor. @default every GPU type of the cluster's nodes */
  readonly gpuTypes?: readonly string[];
  /** @default '1000' */
  readonly cpuQuota?: string;
  /** @default '4Ti' */
  readonly memoryQuota?: string;
}

export interface TunepipeNamespace {
  readonly namespace: string;
  /** The LocalQueue GPU Jobs name (`--queue`). */
  readonly queue: string;
  readonly clusterQueue: string;
  /** A kubeconfig holding a token of the runner's ServiceAccount (TokenRequest API): RBAC as infra/cluster grants it. */
  readonly kubeconfig: string;
  /** Every object applied for the namespace, in order. */
  readonly objects: readonly KubeObject[];
}

/** One line of the API server's audit log (writes to Jobs and pods only; see cluster.mjs). */
export interface AuditEvent {
  readonly verb: string;
  readonly stage: string;
  readonly user: { readonly username: string; readonly groups?: readonly string[] };
  /** The client's User-Agent: `…/job-controller` for the pods a Job controller creates. */
  readonly userAgent?: string;
  readonly objectRef?: { readonly resource?: string; readonly subresource?: string; readonly namespace?: string; readonly name?: string };
  readonly responseStatus?: { readonly code?: number; readonly message?: string; readonly reason?: string };
  readonly annotations?: Readonly<Record<string, string>>;
  readonly requestReceivedTimestamp: string;
  readonly stageTimestamp: string;
}

export interface KubectlResult {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface LocalCluster {
  readonly server: string;
  readonly caFile: string;
  /** Admin kubeconfig (client certificate, group system:masters). */
  readonly kubeconfig: string;
  /** Temp folder: pki/, logs/<component>.log, etcd data. Gone after stop() unless keepDir. */
  readonly dir: string;
  readonly logDir: string;
  readonly nodes: readonly string[];
  /** Seconds from start to ready. */
  readonly startSeconds: number;
  readonly api: KubeApi;
  /** The audit log so far: every write to a Job or pod, in order, with admission's verdict. */
  auditEvents(): AuditEvent[];
  /** The kubectl built with the control plane, with the admin kubeconfig (or `kubeconfig`). */
  kubectl(args: readonly string[], options?: { kubeconfig?: string; input?: string }): KubectlResult;
  /** Stops kube-apiserver and starts it again on the same port; resolves when it is ready. */
  restartApiServer(options?: { downMs?: number }): Promise<void>;
  /** Replaces the kwok pod Stages: which stages' pods fail or hang. */
  setPodOutcomes(outcomes: Readonly<Record<string, PodOutcome>>, options?: { runMs?: number }): Promise<void>;
  /** Evicts a pod through the Eviction API (the pod gets DisruptionTarget=True, as on preemption or a drain). */
  evict(namespace: string, pod: string): Promise<void>;
  /** The namespace, RBAC, Kueue objects, artifacts claim and Secrets of infra/cluster, plus a runner-token kubeconfig. */
  createTunepipeNamespace(name: string, options?: TunepipeNamespaceOptions): Promise<TunepipeNamespace>;
  /** A kubeconfig for a ServiceAccount's token (TokenRequest API), written into the cluster's folder. */
  serviceAccountKubeconfig(namespace: string, serviceAccount: string, expirationSeconds?: number): Promise<string>;
  waitFor<T>(what: string, check: () => Promise<T | undefined | false | null> | T | undefined | false | null, options?: { timeoutMs?: number; intervalMs?: number }): Promise<T>;
  /** Ends every process and removes the folder; safe to call twice. */
  stop(): Promise<void>;
}

/**
 * A Job that outranks the stage Jobs in their ClusterQueue (WorkloadPriorityClass
 * URGENT_PRIORITY_CLASS): submitted where a gang holds the quota it needs, Kueue preempts the
 * gang. Its pods run as a restricted namespace allows; kwok lets them succeed after `podRunMs`.
 */
export function urgentJob(namespace: string, name: string, options: { readonly gpuType: string; readonly gpus: number; readonly queue?: string }): KubeObject {
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: { name, namespace, labels: { 'kueue.x-k8s.io/queue-name': options.queue ?? LOCAL_QUEUE, 'kueue.x-k8s.io/priority-class': URGENT_PRIORITY_CLASS } },
    spec: {
      backoffLimit: 0,
      template: {
        metadata: { labels: { 'app.kubernetes.io/name': name } },
        spec: {
          restartPolicy: 'Never',
          automountServiceAccountToken: false,
          nodeSelector: { 'tunepipe.dev/gpu': options.gpuType },
          tolerations: [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }],
          securityContext: { runAsNonRoot: true, runAsUser: 1000, seccompProfile: { type: 'RuntimeDefault' } },
          containers: [
            {
              name: 'urgent',
              image: 'busybox:1.37',
              command: ['true'],
              securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } },
              resources: { requests: { cpu: '1', memory: '1Gi', 'nvidia.com/gpu': String(options.gpus) }, limits: { 'nvidia.com/gpu': String(options.gpus) } },
            },
          ],
        },
      },
    },
  };
}

interface ClusterModule {
  startCluster(options: Record<string, unknown>): Promise<Record<string, any>>;
  kubeconfigYaml(args: { server: string; caFile: string; user: { name: string; token?: string; namespace?: string } }): string;
  waitFor<T>(what: string, check: () => unknown, options?: { timeoutMs?: number; intervalMs?: number }): Promise<T>;
}

const moduleUrl = pathToFileURL(join(import.meta.dirname, '..', '..', '..', 'scripts', 'real', 'cluster.mjs')).href;

/**
 * Starts the local control plane (built by `node scripts/real/install.mjs controlplane`). Throws
 * with the install command when it is not built, and with the failing component's log otherwise.
 */
export async function startCluster(options: StartClusterOptions = {}): Promise<LocalCluster> {
  const mod = (await import(moduleUrl)) as ClusterModule;
  const { podsReady, ...rest } = options;
  // Kueue runs the manager configuration infra/cluster installs; cluster.mjs adds its local ports.
  const raw = await mod.startCluster({ ...rest, kueueConfiguration: kueueManagerConfiguration(podsReady ? { podsReady } : {}) });
  const api = raw['api'] as KubeApi;
  const server = raw['server'] as string;
  const caFile = raw['caFile'] as string;
  const dir = raw['dir'] as string;
  const tools = raw['tools'] as { kubectl: string };
  const gpuTypesOnNodes = [
    ...new Set(
      (options.gpuNodes === undefined || typeof options.gpuNodes === 'number' ? ['l4', 't4', 'a100-80gb'] : options.gpuNodes.map((g) => g.type)),
    ),
  ];
  let tokenFiles = 0;

  const cluster: LocalCluster = {
    server,
    caFile,
    kubeconfig: raw['kubeconfig'] as string,
    dir,
    logDir: raw['logDir'] as string,
    nodes: raw['nodes'] as string[],
    startSeconds: raw['startSeconds'] as number,
    api,
    auditEvents: () => raw['auditEvents']() as AuditEvent[],
    kubectl(args, opts = {}) {
      const r: SpawnSyncReturns<string> = spawnSync(tools.kubectl, [...args], {
        encoding: 'utf8',
        env: { ...process.env, KUBECONFIG: opts.kubeconfig ?? (raw['kubeconfig'] as string) },
        ...(opts.input !== undefined ? { input: opts.input } : {}),
      });
      return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
    },
    restartApiServer: (o) => raw['restartApiServer'](o),
    setPodOutcomes: (outcomes, o) => raw['setPodOutcomes'](outcomes, o),
    async evict(namespace, pod) {
      await api.request('POST', `/api/v1/namespaces/${namespace}/pods/${pod}/eviction`, {
        body: { apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name: pod, namespace } },
      });
    },
    async serviceAccountKubeconfig(namespace, serviceAccount, expirationSeconds = 3600) {
      const review = await api.request<{ status: { token: string } }>('POST', `/api/v1/namespaces/${namespace}/serviceaccounts/${serviceAccount}/token`, {
        body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds } },
      });
      const file = join(dir, `${namespace}-${serviceAccount}-${++tokenFiles}.kubeconfig`);
      writeFileSync(file, mod.kubeconfigYaml({ server, caFile, user: { name: `${namespace}-${serviceAccount}`, token: review.status.token, namespace } }), { mode: 0o600 });
      return file;
    },
    async createTunepipeNamespace(name, opts = {}) {
      const quota = (id: string) => (typeof opts.gpuQuota === 'object' ? (opts.gpuQuota[id] ?? 0) : (opts.gpuQuota ?? 4));
      const gpuTypes: QueueGpuType[] = (opts.gpuTypes ?? gpuTypesOnNodes).map((id) => ({ id, quotaGpus: quota(id) }));
      // The artifacts claim needs a volume to bind to, or every stage pod stays unschedulable. Here
      // that is a pre-bound PersistentVolume of a class without a provisioner: kwok's pods never
      // mount it (no file is ever written), it only has to be Bound as on a real cluster.
      const storageClass = 'tunepipe-local';
      const objects: KubeObject[] = [
        workloadNamespaceObject(name, opts.podSecurity ?? 'restricted'),
        { apiVersion: 'storage.k8s.io/v1', kind: 'StorageClass', metadata: { name: storageClass }, provisioner: 'kubernetes.io/no-provisioner', volumeBindingMode: 'Immediate', reclaimPolicy: 'Retain' },
        {
          apiVersion: 'v1',
          kind: 'PersistentVolume',
          metadata: { name: `artifacts-${name}` },
          spec: {
            capacity: { storage: '100Gi' },
            accessModes: ['ReadWriteMany'],
            persistentVolumeReclaimPolicy: 'Retain',
            storageClassName: storageClass,
            nfs: { server: '127.0.0.1', path: `/exports/${name}` },
            claimRef: { namespace: name, name: 'tunepipe-artifacts' },
          },
        },
        artifactsClaimObject({ namespace: name, storageClass, size: '100Gi' }),
        cpuFlavorObject(),
        ...gpuTypes.map((g) => gpuFlavorObject(g.id)),
        urgentPriorityClassObject(),
        clusterQueueObject({ name: `tunepipe-${name}`, namespace: name, gpuTypes, cpu: opts.cpuQuota ?? '1000', memory: opts.memoryQuota ?? '4Ti' }),
        localQueueObject({ namespace: name, clusterQueue: `tunepipe-${name}` }),
        ...Object.values(runnerAccessObjects(name)),
        // Values made here, never literals: the objects are the platform's, the secrets are per test.
        ...Object.values(workloadSecretObjects(name, { hfToken: randomBytes(12).toString('hex'), modelscopeToken: randomBytes(12).toString('hex'), vllmApiKey: randomBytes(12).toString('hex') })),
      ] as unknown as KubeObject[];
      for (const object of objects) await api.apply(object);
      await cluster.waitFor(`claim tunepipe-artifacts in ${name} bound`, async () => (await api.get('v1', 'PersistentVolumeClaim', 'tunepipe-artifacts', name))?.status?.phase === 'Bound', { timeoutMs: 30_000 });
      await cluster.waitFor(`ServiceAccount default in ${name}`, () => api.get('v1', 'ServiceAccount', 'default', name), { timeoutMs: 30_000 });
      await cluster.waitFor(`LocalQueue ${LOCAL_QUEUE} in ${name} active`, async () => {
        const lq = await api.get('kueue.x-k8s.io/v1beta2', 'LocalQueue', LOCAL_QUEUE, name);
        return lq?.status?.conditions?.some((c: { type: string; status: string }) => c.type === 'Active' && c.status === 'True');
      }, { timeoutMs: 30_000 });
      const kubeconfig = await cluster.serviceAccountKubeconfig(name, RUNNER_SERVICE_ACCOUNT);
      return { namespace: name, queue: LOCAL_QUEUE, clusterQueue: `tunepipe-${name}`, kubeconfig, objects };
    },
    waitFor: (what, check, o) => mod.waitFor(what, check, o),
    stop: () => raw['stop'](),
  };
  return cluster;
}
