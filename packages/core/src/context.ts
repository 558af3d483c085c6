import type { SecretRef } from './dsl.ts';
import type { SecretKeys } from './secrets.ts';
import type { LocalModelInput } from './model/source.ts';
import { PINS } from './reference/pins.gen.ts';

/** One file of a local dataset source, as loaded by the CLI (the compiler reads no files). */
export interface DatasetFileInput {
  /** Path relative to the source's folder. */
  readonly path: string;
  readonly sha256: string;
  readonly size: number;
  /** gzip of the file, base64: how small files travel into the cluster inside a ConfigMap. */
  readonly gzipBase64?: string;
  /** Where the convert Job downloads a file too large for a ConfigMap (https://, s3://, hf://, ms://). */
  readonly url?: string;
}

/** A dataset source as the compiler sees it: descriptor plus content digests. */
export interface DatasetSourceInput {
  readonly name: string;
  /** sha256 over the descriptor and every file digest: the source's identity. */
  readonly digest: string;
  /** The validated descriptor, passed through to the converter. */
  readonly descriptor: Readonly<Record<string, unknown>>;
  readonly files: readonly DatasetFileInput[];
  /** Row count and token estimates of the source, for the planner; without them it plans from upper bounds. */
  readonly stats?: DatasetStats;
}

export interface DatasetStats {
  readonly rows: number;
  /** Mean estimated tokens per row (prompt + response, with the chat template's overhead). */
  readonly meanTokens: number;
  readonly maxTokens: number;
}

export interface ImageSet {
  readonly fetch: string;
  readonly runtime: string;
  readonly llamafactory: string;
  readonly gptq: string;
  /** LLaMA-Factory with bitsandbytes: sft stages that quantize their base model (quantization_bit). */
  readonly qlora: string;
  readonly vllm: string;
}

/** Everything outside the pipeline definition that compile needs; the CLI builds it. */
export interface CompileContext {
  /** @default 'tunepipe' */
  readonly namespace?: string;
  /** ReadWriteMany claim every stage mounts at `/artifacts`. @default 'tunepipe-artifacts' */
  readonly artifactsClaim?: string;
  /** Kueue LocalQueue for GPU Jobs, when the cluster runs Kueue. */
  readonly queueName?: string;
  /**
   * GPUs by GPU catalogue id that the LocalQueue's ClusterQueue admits at most (its nominal quota
   * plus what it may borrow; infra/cluster's quota is the source, tunepipe.json `queue.gpus` the
   * copy the workspace passes). A training gang needing more is a check() error: Kueue would
   * hold it forever. @default unknown: gangs are not checked against a quota
   */
  readonly queueGpus?: Readonly<Record<string, number>>;
  /**
   * What a training stage on several nodes compiles to: an Indexed Job with a headless Service,
   * or a JobSet (needs the JobSet controller). @default 'indexed-job'
   */
  readonly multiNode?: MultiNodeEngine;
  /** Image overrides. @default DEFAULT_IMAGES */
  readonly images?: Partial<ImageSet>;
  /** Local dataset sources by name. */
  readonly datasets?: Readonly<Record<string, DatasetSourceInput>>;
  /** Local model folders (`baseModel({ path })`), by the path as the pipeline declares it. */
  readonly models?: Readonly<Record<string, LocalModelInput>>;
  /** Secret holding hub tokens when a base model does not name one. */
  readonly defaultHubToken?: SecretRef;
  /** Cloud whose prices the planner uses. @default 'aws' */
  readonly cloud?: 'aws' | 'gcp';
  /**
   * The Secrets (and their keys) the target cluster has: check() warns (`secret.unknown`) about a
   * SecretRef to anything else. The workspace passes what infra/cluster creates (CLUSTER_SECRET_KEYS).
   * @default unknown: SecretRefs are not checked against a cluster
   */
  readonly knownSecrets?: SecretKeys;
}

export const MULTI_NODE_ENGINES = ['indexed-job', 'jobset'] as const;
export type MultiNodeEngine = (typeof MULTI_NODE_ENGINES)[number];

export const TUNEPIPE_IMAGE_VERSION = '0.1.0';

/** A pinned image by its digest when pins.json records one (`<tag>@sha256:…`, the tag kept for humans). */
export function pinnedImage(image: string): string {
  const digests: Readonly<Record<string, string>> = PINS.imageDigests;
  const digest = Object.hasOwn(digests, image) ? digests[image] : undefined;
  return digest ? `${image}@${digest}` : image;
}

/**
 * Pinned images; the versions come from pins.json (through reference/pins.gen.ts). LLaMA-Factory's
 * stock image has no GPTQ stack (optimum + gptqmodel) and no bitsandbytes, so quantize and QLoRA
 * training run in images of ours built on it (images/gptq, images/qlora).
 */
export const DEFAULT_IMAGES: ImageSet = {
  fetch: `ghcr.io/tunepipe/fetch:${TUNEPIPE_IMAGE_VERSION}`,
  runtime: `ghcr.io/tunepipe/runtime:${TUNEPIPE_IMAGE_VERSION}`,
  llamafactory: pinnedImage(PINS.images.llamafactory),
  // Our image on top of the stock one; its tag names the LLaMA-Factory version it extends.
  gptq: `ghcr.io/tunepipe/llamafactory-gptq:${PINS.python.llamafactory}-${TUNEPIPE_IMAGE_VERSION}`,
  qlora: `ghcr.io/tunepipe/llamafactory-qlora:${PINS.python.llamafactory}-${TUNEPIPE_IMAGE_VERSION}`,
  vllm: pinnedImage(PINS.images.vllm),
};

export interface ResolvedContext {
  readonly namespace: string;
  readonly artifactsClaim: string;
  readonly queueName: string | undefined;
  readonly queueGpus: Readonly<Record<string, number>> | undefined;
  readonly multiNode: MultiNodeEngine;
  readonly images: ImageSet;
  readonly datasets: Readonly<Record<string, DatasetSourceInput>>;
  readonly models: Readonly<Record<string, LocalModelInput>>;
  readonly defaultHubToken: SecretRef | undefined;
  readonly cloud: 'aws' | 'gcp';
  readonly knownSecrets: SecretKeys | undefined;
}

export function resolveContext(context: CompileContext = {}): ResolvedContext {
  return {
    namespace: context.namespace ?? 'tunepipe',
    artifactsClaim: context.artifactsClaim ?? 'tunepipe-artifacts',
    queueName: context.queueName,
    queueGpus: context.queueGpus,
    multiNode: context.multiNode ?? 'indexed-job',
    images: { ...DEFAULT_IMAGES, ...context.images },
    datasets: context.datasets ?? {},
    models: context.models ?? {},
    defaultHubToken: context.defaultHubToken,
    cloud: context.cloud ?? 'aws',
    knownSecrets: context.knownSecrets,
  };
}

export const ARTIFACTS_MOUNT = '/artifacts';
export { COMPLETION_MARKER } from './artifacts/protocol.ts';
