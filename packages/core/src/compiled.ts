import type { EnvVar } from 'kubernetes-types/core/v1.js';
import type { KubeObject } from './kube.ts';
import type { StageResourcePlan } from './planner/plan.ts';
import type { PublishMode, WrapperStep } from './artifacts/protocol.ts';
import type { StageKind } from './kinds/types.ts';
import type { ParallelLayout } from './planner/layout.ts';
import type { MultiNodeEngine } from './context.ts';

export type { StageKind };

/** One process of a stage, as its pod runs it (pod paths, pod environment). */
export interface StageStep {
  /** The container that runs it. */
  readonly container: string;
  /** The tool's command line: what the stage wrapper runs after its `--`. */
  readonly argv: readonly string[];
  /** The container's environment: plain values and Secret references (never a secret's value). */
  readonly env: readonly EnvVar[];
  /** Which part of the stage wrapper runs around it; none for a helper such as the input download. */
  readonly wrapper?: WrapperStep;
}

/** A file the stage's pod sees, at its pod path: configs, the wrapper, ConfigMap-delivered data. */
export interface StageFile {
  readonly path: string;
  readonly text?: string;
  /** Binary content, base64 (gzipped dataset files). */
  readonly base64?: string;
}

/**
 * How a stage runs, so a runner that is not Kubernetes (the local one) runs exactly what the pod
 * would without reading the pod spec back.
 */
export interface StageRun {
  /** Batch stages: how the wrapper publishes the artifact folder. */
  readonly mode?: PublishMode;
  /** In order: input download, the tool, the gate (a gated evaluation). */
  readonly steps: readonly StageStep[];
  readonly files: readonly StageFile[];
  /** Pod paths of scratch space (emptyDir): pointless outside the pod. */
  readonly scratch: readonly string[];
  /** serve: the port the server listens on. */
  readonly port?: number;
}

/** What `compile()` produces for one stage: the unit the runner, Pulumi and GitOps all work on. */
export interface CompiledStage {
  readonly name: string;
  readonly kind: StageKind;
  /** sha256 (hex) of kind, resolved config, image and input identities. */
  readonly hash: string;
  /** `<pipeline>-<stage>-<hash8>`: the Job name (and its ConfigMap's) for batch stages. */
  readonly resourceName: string;
  /** Stages whose artifacts this stage reads, by name (graph edges). */
  readonly dependsOn: readonly string[];
  readonly image: string;
  readonly gpus: number;
  /** GPU catalogue id the stage is placed on, when it needs GPUs. */
  readonly gpuType?: string;
  /** Folder on the artifacts volume the stage publishes to; `undefined` for serve. */
  readonly artifactPath?: string;
  /** The completion marker a finished batch stage leaves in `artifactPath`. */
  readonly completionMarker?: string;
  /** Expected run time, used for Job deadlines and Pulumi / Flux timeouts. */
  readonly expectedSeconds: number;
  /** What the stage is expected to write, for `tunepipe plan` (e.g. "5 shards (model-0000x-of-00005.safetensors)"). */
  readonly expectedOutputs: readonly string[];
  /**
   * The resolved configuration the hash covers, as written into the stage's ConfigMap
   * (LLaMA-Factory YAML keys, converter config, vLLM flags). Diffing two of these says why a stage re-runs.
   */
  readonly config: Readonly<Record<string, unknown>>;
  /** Input identities the hash covers besides config (model id@revision, dataset digests, upstream hashes). */
  readonly inputs: Readonly<Record<string, string>>;
  /** Kubernetes objects of this stage, in apply order (ConfigMaps before the Job). */
  readonly objects: readonly KubeObject[];
  /** The resource planner's estimate: memory terms, GPU-hours, cost, warnings. */
  readonly estimate: StageResourcePlan;
  /**
   * The main workload object: the Job for batch stages (an Indexed Job for a training gang, or a
   * JobSet when the context asks for one), the Deployment for serve.
   */
  readonly workload: { readonly kind: 'Job' | 'JobSet' | 'Deployment'; readonly name: string };
  /** Training stages: nodes × GPUs per node and the strategy. */
  readonly layout?: ParallelLayout;
  /** A training stage on several nodes: how its pods find each other. */
  readonly gang?: StageGang;
  /** What the stage runs, for runners that do not read pod specs. */
  readonly run: StageRun;
}

/** The pods of a multi-node training stage: one per node, ranked by their completion index. */
export interface StageGang {
  readonly engine: MultiNodeEngine;
  /** Pods of the gang (`nodes`); each runs torchrun with the layout's GPUs per node. */
  readonly pods: number;
  /** The headless Service whose name is the pods' DNS subdomain (the JobSet controller makes its own). */
  readonly service: string;
  /** Hostname of pod `i` (its NODE_RANK), without the subdomain. */
  readonly hostnames: readonly string[];
  /** The rank-0 pod's stable DNS name: every pod's MASTER_ADDR. */
  readonly masterAddr: string;
  readonly masterPort: number;
  /** Label on every pod of the gang, valued with the gang's name (`resourceName`). */
  readonly podLabel: string;
}

export interface CompiledPipeline {
  readonly pipeline: string;
  readonly namespace: string;
  /** ReadWriteMany claim every stage mounts at `/artifacts`. */
  readonly artifactsClaim: string;
  /** The image of tunepipe's own CLI (waits, checks, gates). */
  readonly runtimeImage: string;
  /** Stages in topological order; the graph is valid (check() passed). */
  readonly stages: readonly CompiledStage[];
  /** Every object of every stage (plus shared ones), in apply order. */
  readonly objects: readonly KubeObject[];
}

/** Identity of an object within a pipeline: API group/version, kind, namespace and name. */
export function objectKey(object: KubeObject): string {
  return `${object.apiVersion}/${object.kind}/${object.metadata?.namespace ?? ''}/${object.metadata?.name ?? ''}`;
}

/** Objects of `compiled.objects` that belong to no stage (shared objects such as a claim). */
export function sharedObjects(compiled: CompiledPipeline): KubeObject[] {
  const owned = new Set(compiled.stages.flatMap((s) => s.objects.map(objectKey)));
  return compiled.objects.filter((o) => !owned.has(objectKey(o)));
}
