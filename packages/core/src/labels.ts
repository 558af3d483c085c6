/** Label and annotation keys shared by the compiler, the cluster stack and the runner. */
export const LABELS = {
  name: 'app.kubernetes.io/name',
  instance: 'app.kubernetes.io/instance',
  component: 'app.kubernetes.io/component',
  partOf: 'app.kubernetes.io/part-of',
  managedBy: 'app.kubernetes.io/managed-by',
  version: 'app.kubernetes.io/version',
  pipeline: 'tunepipe.dev/pipeline',
  stage: 'tunepipe.dev/stage',
  stageKind: 'tunepipe.dev/stage-kind',
  stageHash: 'tunepipe.dev/stage-hash',
  /** Node label the cluster stack puts on GPU nodes: a GPU catalogue id such as `a100-80gb`. */
  gpuType: 'tunepipe.dev/gpu',
  /** Node label on every node of a GPU pool: `true`. */
  gpuNode: 'tunepipe.dev/gpu-node',
  kueueQueue: 'kueue.x-k8s.io/queue-name',
  /**
   * On the pods of a multi-node training gang, the gang's name: the ranks connect to each other
   * (torchrun's rendezvous on MASTER_PORT, then NCCL on ports it picks), which the namespace's
   * default-deny NetworkPolicy allows between gang pods only.
   */
  gang: 'tunepipe.dev/gang',
} as const;

export const ANNOTATIONS = {
  /** Directory under the artifacts volume the stage publishes to. */
  artifactPath: 'tunepipe.dev/artifact-path',
  /** JSON list of the stage names this stage consumes. */
  dependsOn: 'tunepipe.dev/depends-on',
  expectedSeconds: 'tunepipe.dev/expected-seconds',
  pulumiTimeout: 'pulumi.com/timeoutSeconds',
  configHash: 'tunepipe.dev/config-hash',
  /** On the workload of a training stage under torchrun: JSON `{nodes, gpusPerNode, strategy}`. */
  layout: 'tunepipe.dev/layout',
} as const;

/** The taint the cluster stack puts on GPU nodes and the compiler tolerates on GPU stages only. */
export const GPU_TAINT = { key: 'nvidia.com/gpu', value: 'present', effect: 'NoSchedule' } as const;
export const GPU_RESOURCE = 'nvidia.com/gpu';
export const MANAGED_BY = 'tunepipe';

/** Kept here too for infra/cluster, which imports `@tunepipe/core/labels` only. */
export { PLATFORM_SECRETS } from './secrets.ts';
