// The in-cluster platform's Kubernetes objects as plain data, with no Pulumi in sight: the
// components of platform.ts register exactly these, and the real-tools tier (test/real) applies
// the same objects to a local API server. One definition, two consumers.
//
// Builders are generic in the namespace (and secret value) type, so Pulumi passes its Outputs and
// the tests pass strings.
import { GPU_RESOURCE, GPU_TAINT, LABELS, MANAGED_BY, PLATFORM_SECRETS } from '@tunepipe/core/labels';
import type { NetworkPolicySpec } from 'kubernetes-types/networking/v1.js';
import type { LabelSelector } from 'kubernetes-types/meta/v1.js';
import { KUEUE_API } from './versions.ts';

/** The ReadWriteMany claim every stage mounts at `/artifacts`. */
export const ARTIFACTS_PVC = 'tunepipe-artifacts';
/** The Kueue LocalQueue GPU Jobs name in their `kueue.x-k8s.io/queue-name` label. */
export const LOCAL_QUEUE = 'tunepipe';
export const RUNNER_SERVICE_ACCOUNT = 'tunepipe-runner';
export const SECRET_NAMES = {
  /** Keys `HF_TOKEN` and `MODELSCOPE_API_TOKEN` (whichever are configured). */
  hubTokens: PLATFORM_SECRETS.hubTokens.secretName,
  /** Key `VLLM_API_KEY`, which `vllm serve` reads as its `--api-key`. */
  vllmApiKey: PLATFORM_SECRETS.vllmApiKey.secretName,
} as const;
/** Namespace of the NVIDIA daemons; privileged, unlike the workload namespace. */
export const GPU_SYSTEM_NAMESPACE = 'tunepipe-gpu-system';
export const KUEUE_NAMESPACE = 'kueue-system';
export const CPU_FLAVOR = 'tunepipe-cpu';
export const gpuFlavorName = (gpuId: string): string => `tunepipe-gpu-${gpuId}`.slice(0, 253);

/** Labels on every node of a GPU group (the compiler's node selectors and the DaemonSets' affinity use them). */
export function gpuNodeLabels(gpuId: string): Record<string, string> {
  return { [LABELS.gpuType]: gpuId, [LABELS.gpuNode]: 'true' };
}

export const partOf = { [LABELS.partOf]: 'tunepipe', [LABELS.managedBy]: MANAGED_BY };

export interface PolicyRule {
  readonly apiGroups: readonly string[];
  readonly resources: readonly string[];
  readonly verbs: readonly string[];
}

/**
 * What the runner does in its namespace, and nothing more (packages/runner/test/rbac.test.ts derives
 * these verbs from the runner's own calls and fails on any it never makes): create and watch stage
 * Jobs, watch pods and read their logs, server-side apply the stages' ConfigMaps, Services and
 * Deployments (an apply that creates is authorized as create too), and hold the pipeline's run lock
 * (a Lease, so two runs never steer the same Jobs). No Secrets (pods get them by reference), no
 * cluster-scoped rights, no wildcards.
 */
export const RUNNER_RULES: readonly PolicyRule[] = [
  { apiGroups: ['batch'], resources: ['jobs'], verbs: ['create', 'get', 'list', 'watch', 'patch', 'delete'] },
  { apiGroups: [''], resources: ['pods'], verbs: ['list', 'watch'] },
  { apiGroups: [''], resources: ['pods/log'], verbs: ['get'] },
  { apiGroups: [''], resources: ['configmaps', 'services'], verbs: ['create', 'patch'] },
  { apiGroups: ['apps'], resources: ['deployments'], verbs: ['create', 'get', 'patch', 'list', 'watch'] },
  { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] },
  // Kueue's Workload of a queued Job says why it waits (quota) and when Kueue evicted it (a
  // preempted training gang): read only, Kueue alone writes them.
  { apiGroups: ['kueue.x-k8s.io'], resources: ['workloads'], verbs: ['list', 'watch'] },
];

export type PodSecurityLevel = 'restricted' | 'baseline';

/** The namespace stage Jobs and vLLM run in, with Pod Security admission labels. */
export function workloadNamespaceObject(name: string, podSecurity: PodSecurityLevel) {
  return {
    apiVersion: 'v1' as const,
    kind: 'Namespace' as const,
    metadata: {
      name,
      labels: {
        ...partOf,
        'pod-security.kubernetes.io/enforce': podSecurity,
        'pod-security.kubernetes.io/enforce-version': 'latest',
        // warn/audit at restricted even when enforcing baseline, so drift towards root shows up.
        'pod-security.kubernetes.io/warn': 'restricted',
        'pod-security.kubernetes.io/audit': 'restricted',
      },
    },
  };
}

/** The shared ReadWriteMany claim all stages publish their artifacts to. */
export function artifactsClaimObject<N, S>(args: { readonly namespace: N; readonly storageClass: S; readonly size: string }) {
  return {
    apiVersion: 'v1' as const,
    kind: 'PersistentVolumeClaim' as const,
    metadata: { name: ARTIFACTS_PVC, namespace: args.namespace, labels: { ...partOf, [LABELS.component]: 'artifacts' } },
    spec: {
      accessModes: ['ReadWriteMany'],
      storageClassName: args.storageClass,
      resources: { requests: { storage: args.size } },
    },
  };
}

export interface QueueGpuType {
  readonly id: string;
  /** `nvidia.com/gpu` the ClusterQueue admits at once for this type. */
  readonly quotaGpus: number;
}

/** The CPU flavor: CPU-only workloads land on it (it has 0 GPUs of quota). */
export function cpuFlavorObject() {
  return { apiVersion: KUEUE_API, kind: 'ResourceFlavor' as const, metadata: { name: CPU_FLAVOR, labels: partOf }, spec: {} };
}

/** A GPU type's flavor: selects nodes by `tunepipe.dev/gpu` and requires the GPU taint to be tolerated. */
export function gpuFlavorObject(gpuId: string) {
  return {
    apiVersion: KUEUE_API,
    kind: 'ResourceFlavor' as const,
    metadata: { name: gpuFlavorName(gpuId), labels: partOf },
    spec: {
      nodeLabels: { [LABELS.gpuType]: gpuId },
      nodeTaints: [{ ...GPU_TAINT }],
    },
  };
}

/** A ClusterQueue capping `nvidia.com/gpu` per type, for the workload namespace only. */
export function clusterQueueObject<N>(args: {
  readonly name: string;
  readonly namespace: N;
  readonly gpuTypes: readonly QueueGpuType[];
  readonly cpu: string;
  readonly memory: string;
}) {
  const quotas = (gpus: number) => [
    { name: 'cpu', nominalQuota: args.cpu },
    { name: 'memory', nominalQuota: args.memory },
    { name: GPU_RESOURCE, nominalQuota: String(gpus) },
  ];
  return {
    apiVersion: KUEUE_API,
    kind: 'ClusterQueue' as const,
    metadata: { name: args.name, labels: partOf },
    spec: {
      namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': args.namespace } },
      queueingStrategy: 'BestEffortFIFO',
      // A workload of a higher WorkloadPriorityClass (URGENT_PRIORITY_CLASS) may evict lower ones
      // of this queue. Kueue evicts a workload whole: a training gang stops and is re-queued with
      // every rank, never left half-running.
      preemption: { withinClusterQueue: 'LowerPriority' as const, reclaimWithinCohort: 'Never' as const },
      resourceGroups: [
        {
          coveredResources: ['cpu', 'memory', GPU_RESOURCE],
          // CPU-only workloads land on the first flavor; GPU ones skip it (0 GPUs) for a GPU type.
          flavors: [
            { name: CPU_FLAVOR, resources: quotas(0) },
            ...args.gpuTypes.map((gpu) => ({ name: gpuFlavorName(gpu.id), resources: quotas(gpu.quotaGpus) })),
          ],
        },
      ],
    },
  };
}

/**
 * The WorkloadPriorityClass a Job names in its `kueue.x-k8s.io/priority-class` label to go ahead
 * of (and, under the ClusterQueue's `withinClusterQueue: LowerPriority`, preempt) the stage Jobs,
 * which carry no class (priority 0).
 */
export const URGENT_PRIORITY_CLASS = 'tunepipe-urgent';

export function urgentPriorityClassObject() {
  return {
    apiVersion: KUEUE_API,
    kind: 'WorkloadPriorityClass' as const,
    metadata: { name: URGENT_PRIORITY_CLASS, labels: partOf },
    value: 1000,
    description: 'Goes ahead of tunepipe stage Jobs in the queue and may preempt them (a preempted gang is re-queued whole).',
  };
}

/**
 * Kueue's `waitForPodsReady`: how long an admitted workload may hold its quota before every pod
 * is Ready, and how it is re-queued when it does not make it. Quota admission is all-or-nothing,
 * scheduling is not: a gang admitted on quota can still find one rank unschedulable (GPUs
 * fragmented across nodes, a node group at its maximum), or lose a rank whose replacement never
 * lands, while the other ranks hold their GPUs and wait for it forever.
 */
export interface KueuePodsReadySettings {
  /** From admission to every pod Ready (a Go duration: `15m`, `8s`). */
  readonly timeout: string;
  /** From a pod of a running workload no longer Ready (a rank lost) to its replacement Ready. */
  readonly recoveryTimeout: string;
  /** First re-queue delay after such an eviction; doubled per eviction of the same workload. */
  readonly backoffBaseSeconds: number;
  /** The longest re-queue delay. */
  readonly backoffMaxSeconds: number;
}

/**
 * A pod counts as Ready once its main container runs (stage pods have no readiness probe), so
 * the timeout covers what comes before: a GPU node scaled up from zero by the cluster autoscaler
 * (instance boot, node join, the device plugin advertising the GPUs: 2-5 min, up to about 8 for
 * 8-GPU instances), the first pull of the multi-GB LLaMA-Factory CUDA image on that node (about
 * 3-5 min), and the `wait-for-inputs` init container, which is seconds under `tunepipe run` and
 * `pulumi up` (they create a stage once its inputs exist). 15 min covers that cold path with
 * room: a shorter timeout would evict a gang that is merely starting on fresh nodes and start it
 * over. A gang that cannot start frees its GPUs within a quarter hour instead of never. The
 * checkpoint check and the rendezvous run in the main container, after Ready: not counted.
 *
 * A lost rank's replacement may need a new node too (its node was reclaimed): the same cold
 * path, so recovery gets the same bound.
 *
 * Re-queueing waits 60 s, doubling per eviction up to 30 min: the autoscaler and other workloads
 * get a turn, and a gang that keeps failing to start holds idle GPUs, once its delay is at the
 * cap, 15 of every 45 min. With GitOps (every stage applied at once) a downstream GPU stage
 * admitted before its inputs exist sits in `wait-for-inputs`: it is evicted and re-queued like
 * this too, which hands its GPUs back to the upstream stages, and starts up to about 30 min
 * after its inputs appear.
 */
export const KUEUE_PODS_READY: KueuePodsReadySettings = {
  timeout: '15m',
  recoveryTimeout: '15m',
  backoffBaseSeconds: 60,
  backoffMaxSeconds: 1800,
};

/** Frameworks Kueue manages: the compiler's stage Jobs (Indexed Jobs for gangs) and JobSet gangs (`multiNode: "jobset"`). */
export const KUEUE_FRAMEWORKS = ['batch/job', 'jobset.x-k8s.io/jobset'] as const;

/**
 * The Kueue manager Configuration (config.kueue.x-k8s.io/v1beta2) we run: the Helm release
 * passes it as the chart's `managerConfig.controllerManagerConfigYaml`, and the local control
 * plane of the real-tools tier (scripts/real/cluster.mjs) starts Kueue with it, its ports and
 * certificates put on top. Kueue decodes it strictly: an unknown field stops the manager.
 */
export function kueueManagerConfiguration(options: { readonly podsReady?: Partial<KueuePodsReadySettings> } = {}) {
  const podsReady = { ...KUEUE_PODS_READY, ...options.podsReady };
  return {
    apiVersion: 'config.kueue.x-k8s.io/v1beta2' as const,
    kind: 'Configuration' as const,
    // What the chart's default configuration carries, kept as it is: the ports its Deployment's
    // probes, metrics and webhook Services point at, leader election under the chart's lease
    // name, and its controller concurrency and API client rates.
    health: { healthProbeBindAddress: ':8081' },
    metrics: { bindAddress: ':8443' },
    webhook: { port: 9443 },
    leaderElection: { leaderElect: true, resourceName: 'c1f6bfd2.kueue.x-k8s.io' },
    controller: {
      groupKindConcurrency: {
        'Job.batch': 5,
        'Pod': 5,
        'Workload.kueue.x-k8s.io': 5,
        'LocalQueue.kueue.x-k8s.io': 1,
        'ClusterQueue.kueue.x-k8s.io': 1,
        'ResourceFlavor.kueue.x-k8s.io': 1,
      },
    },
    clientConnection: { qps: 50, burst: 100 },
    // Only Jobs that name a LocalQueue (GPU stages) wait for quota; CPU stages start at once.
    manageJobsWithoutQueueName: false,
    waitForPodsReady: {
      timeout: podsReady.timeout,
      recoveryTimeout: podsReady.recoveryTimeout,
      // true would hold back every other workload of the queue, even a 1-GPU stage that fits,
      // until the slow gang is Ready: one cold start at a time for the whole cluster.
      blockAdmission: false,
      requeuingStrategy: {
        // Re-queued by eviction time: a gang that timed out goes behind what queued meanwhile
        // rather than back to the head, where it would take the same stuck GPUs again.
        timestamp: 'Eviction' as const,
        // No backoffLimitCount: re-queued for as long as it takes. A limit would deactivate the
        // Workload and leave its Job suspended for good, a GitOps stage waiting on hours of
        // upstream training included.
        backoffBaseSeconds: podsReady.backoffBaseSeconds,
        backoffMaxSeconds: podsReady.backoffMaxSeconds,
      },
    },
    integrations: { frameworks: [...KUEUE_FRAMEWORKS] },
  };
}

/**
 * The Configuration as the chart's `controllerManagerConfigYaml` text. JSON is YAML: the chart
 * reads it with `fromYaml` and writes it back as YAML into Kueue's ConfigMap.
 */
export function kueueManagerConfigYaml(options: Parameters<typeof kueueManagerConfiguration>[0] = {}): string {
  return `${JSON.stringify(kueueManagerConfiguration(options), null, 2)}\n`;
}

/** The LocalQueue stage Jobs are submitted to. */
export function localQueueObject<N, Q>(args: { readonly namespace: N; readonly clusterQueue: Q }) {
  return {
    apiVersion: KUEUE_API,
    kind: 'LocalQueue' as const,
    metadata: { name: LOCAL_QUEUE, namespace: args.namespace, labels: partOf },
    spec: { clusterQueue: args.clusterQueue },
  };
}

/** The runner's ServiceAccount, a namespaced Role holding RUNNER_RULES, and their binding. */
export function runnerAccessObjects<N>(namespace: N) {
  const metadata = { name: RUNNER_SERVICE_ACCOUNT, namespace, labels: { ...partOf, [LABELS.component]: 'runner' } };
  return {
    serviceAccount: { apiVersion: 'v1' as const, kind: 'ServiceAccount' as const, metadata },
    role: { apiVersion: 'rbac.authorization.k8s.io/v1' as const, kind: 'Role' as const, metadata, rules: RUNNER_RULES.map((r) => ({ ...r, apiGroups: [...r.apiGroups], resources: [...r.resources], verbs: [...r.verbs] })) },
    roleBinding: {
      apiVersion: 'rbac.authorization.k8s.io/v1' as const,
      kind: 'RoleBinding' as const,
      metadata,
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role' as const, name: RUNNER_SERVICE_ACCOUNT },
      subjects: [{ kind: 'ServiceAccount' as const, name: RUNNER_SERVICE_ACCOUNT, namespace }],
    },
  };
}

/** Labels of the platform's Secrets. */
export const credentialsLabels = { ...partOf, [LABELS.component]: 'credentials' };

/**
 * The hub-token and vLLM API-key Secrets. `V` is the value type: Pulumi passes secret Outputs
 * (encrypted in state), tests pass strings they generated. Values are never literals in code.
 */
export function workloadSecretObjects<N, V>(namespace: N, values: { readonly hfToken?: V; readonly modelscopeToken?: V; readonly vllmApiKey: V }) {
  const hubData: Record<string, V> = {};
  if (values.hfToken !== undefined) hubData[PLATFORM_SECRETS.hubTokens.huggingface] = values.hfToken;
  if (values.modelscopeToken !== undefined) hubData[PLATFORM_SECRETS.hubTokens.modelscope] = values.modelscopeToken;
  return {
    hubTokens: {
      apiVersion: 'v1' as const,
      kind: 'Secret' as const,
      metadata: { name: SECRET_NAMES.hubTokens, namespace, labels: credentialsLabels },
      type: 'Opaque' as const,
      stringData: hubData,
    },
    vllmApiKey: {
      apiVersion: 'v1' as const,
      kind: 'Secret' as const,
      metadata: { name: SECRET_NAMES.vllmApiKey, namespace, labels: credentialsLabels },
      type: 'Opaque' as const,
      stringData: { [PLATFORM_SECRETS.vllmApiKey.key]: values.vllmApiKey } as Record<string, V>,
    },
  };
}

/** The cloud metadata endpoint: a pod that reaches it can take the node's cloud identity. */
const METADATA_ENDPOINT = '169.254.169.254/32';

/**
 * The workload namespace's NetworkPolicies: nothing in or out by default, then what each stage
 * really needs. DNS for everyone; HTTPS out (never to the cloud metadata endpoint) for the stages
 * that download (fetch-model from a hub or object store, convert's remote dataset files); the
 * served model reachable from the cluster on its HTTP port; the post-deploy check may call it.
 * Training, merge, quantize and evaluation read only the artifacts volume, so they get no network.
 */
export function workloadNetworkPolicies<N>(namespace: N) {
  const labels = { ...partOf, [LABELS.component]: 'network-policy' };
  const policy = (name: string, spec: NetworkPolicySpec) => ({
    apiVersion: 'networking.k8s.io/v1' as const,
    kind: 'NetworkPolicy' as const,
    metadata: { name, namespace, labels },
    spec,
  });
  const kinds = (...values: string[]): LabelSelector => ({ matchExpressions: [{ key: LABELS.stageKind, operator: 'In', values }] });
  const gangPods = (): LabelSelector => ({ matchExpressions: [{ key: LABELS.gang, operator: 'Exists' }] });
  return [
    policy('tunepipe-default-deny', { podSelector: {}, policyTypes: ['Ingress', 'Egress'] }),
    policy('tunepipe-dns', {
      podSelector: {},
      policyTypes: ['Egress'],
      egress: [
        {
          to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } }, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }],
          ports: [{ protocol: 'UDP', port: 53 }, { protocol: 'TCP', port: 53 }],
        },
      ],
    }),
    policy('tunepipe-downloads', {
      podSelector: kinds('fetch-model', 'convert'),
      policyTypes: ['Egress'],
      egress: [{ to: [{ ipBlock: { cidr: '0.0.0.0/0', except: [METADATA_ENDPOINT] } }], ports: [{ protocol: 'TCP', port: 443 }] }],
    }),
    policy('tunepipe-serve', {
      podSelector: { matchLabels: { [LABELS.component]: 'serve' } },
      policyTypes: ['Ingress'],
      ingress: [{ from: [{ namespaceSelector: {} }], ports: [{ protocol: 'TCP', port: 'http' }] }],
    }),
    // NCCL opens connections on ports it picks at start-up, so the ranks of a gang reach each
    // other on any TCP port; nothing outside the namespace's gangs can.
    policy('tunepipe-training-gang', {
      podSelector: gangPods(),
      policyTypes: ['Ingress', 'Egress'],
      ingress: [{ from: [{ podSelector: gangPods() }], ports: [{ protocol: 'TCP' }] }],
      egress: [{ to: [{ podSelector: gangPods() }], ports: [{ protocol: 'TCP' }] }],
    }),
    policy('tunepipe-verify', {
      podSelector: { matchLabels: { [LABELS.component]: 'verify' } },
      policyTypes: ['Egress'],
      egress: [{ to: [{ podSelector: { matchLabels: { [LABELS.component]: 'serve' } } }], ports: [{ protocol: 'TCP', port: 'http' }] }],
    }),
  ];
}
