/**
 * How dataset files get from the repository to the convert Job: the same way for `pulumi up`, the
 * runner and GitOps, because all three apply the same compiled objects and a GitOps controller has
 * nothing but the repository.
 *
 * 1. **ConfigMap route** (local files, the default). A source's files travel gzipped as
 *    `binaryData` of one immutable ConfigMap named after the source digest, so unchanged data is an
 *    unchanged object and edited data is a new one (never a change under a running Job). The Job
 *    mounts it at `/inputs/<source>`, one item `<file>.gz` per file (key `f<i>.gz`). Budget: 900 KiB
 *    of base64 per source, under the 1 MiB ConfigMap limit with room for metadata.
 *    Client-side `kubectl apply` copies the whole object into the `last-applied-configuration`
 *    annotation, which is capped at 256 KiB, so these ConfigMaps must be applied server-side:
 *    Pulumi's Kubernetes provider and Flux do this by default; Argo CD needs
 *    `argocd.argoproj.io/sync-options: ServerSideApply=true` (CONFIGMAP_ANNOTATIONS).
 * 2. **Remote route** (larger files). The descriptor names where the file lives (`https://`,
 *    `s3://`, `hf://datasets/…`, `ms://datasets/…`) and pins its sha256. An init container in the
 *    fetch image (`tunepipe-fetch-file`) downloads each file into an emptyDir mounted at
 *    `/inputs/.remote`, as `<source>/<file>`, and verifies the digest; the converter verifies it
 *    again. Nothing large passes through etcd, Git history or Pulumi state, and the stage hash still
 *    covers content (the pinned digest).
 *
 * Uploading big files to the artifacts volume from the CLI was rejected: a GitOps controller cannot
 * do it, so the three paths would diverge. A source that fits neither route is a check() issue
 * with the command to fix it; it is never truncated.
 */
import type { ConfigMap, Container, Volume, VolumeMount } from 'kubernetes-types/core/v1.js';
import type { StageFile } from './compiled.ts';
import type { DatasetFileInput, DatasetSourceInput } from './context.ts';
import type { SecretRef } from './dsl.ts';
import type { Issue } from './issues.ts';
import { LABELS } from './labels.ts';
import { containerSecurity, metadata, scratchEnv, secretEnv } from './pods.ts';
import { PLATFORM_SECRETS } from './secrets.ts';
import { shellQuote } from './shell.ts';

/** Base64 bytes of one source's ConfigMap binaryData (Kubernetes caps a ConfigMap at 1 MiB). */
export const CONFIGMAP_BUDGET_BYTES = 900 * 1024;
/** Files above this raw size are not even tried for the ConfigMap route. */
export const CONFIGMAP_MAX_RAW_BYTES = 64 * 1024 * 1024;

const INPUTS_ROOT = '/inputs';
/** Source names never start with a dot, so this folder cannot clash with a source's mount. */
const REMOTE_DIR = '.remote';

/** Where the convert Job sees its inputs (the converter's `layout: 'cluster'`, `--inputs /inputs`). */
export const CLUSTER_INPUTS = {
  root: INPUTS_ROOT,
  /** Each source's ConfigMap is mounted at `/inputs/<source>`, files as `<file>.gz`. */
  local: (source: string): string => `${INPUTS_ROOT}/${source}`,
  /** emptyDir filled by the fetch init container: `<source>/<file>`. */
  remote: `${INPUTS_ROOT}/${REMOTE_DIR}`,
} as const;

/** Path of a ConfigMap-delivered file relative to the inputs root: `<source>/<file>.gz`. */
export function deliveredPath(source: string, file: string): string {
  return `${source}/${file}.gz`;
}

/** Path of a fetched remote file relative to the inputs root: `.remote/<source>/<file>`. */
export function fetchedPath(source: string, file: string): string {
  return `${REMOTE_DIR}/${source}/${file}`;
}

/** Annotations of dataset ConfigMaps: client-side apply would copy the data into the 256 KiB last-applied annotation and fail. */
export const CONFIGMAP_ANNOTATIONS = { 'argocd.argoproj.io/sync-options': 'ServerSideApply=true' } as const;

/** Secret with AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or other cloud credentials) for remote datasets. */
export const DATASET_CREDENTIALS_SECRET = PLATFORM_SECRETS.datasetCredentials.secretName;

/** Characters of the source digest in its ConfigMap's name. */
const DIGEST_IN_NAME = 8;

/** How a file reaches the Job; `none` is a check() issue (datasetDeliveryIssues). */
export type DeliveryRoute = 'configmap' | 'remote' | 'none';

export function deliveryRoute(file: DatasetFileInput): DeliveryRoute {
  if (file.url !== undefined) return 'remote';
  return file.gzipBase64 !== undefined ? 'configmap' : 'none';
}

/** The source facts delivery reads (a loaded source, or core's DatasetSourceInput). */
export type DeliverySource = Pick<DatasetSourceInput, 'name' | 'files'>;

export interface ConfigMapItem {
  readonly file: string;
  readonly sha256: string;
  /** binaryData key (`f<i>.gz`: ConfigMap keys allow only `[-._a-zA-Z0-9]`). */
  readonly key: string;
  /** Item path under the source's mount (`<file>.gz`). */
  readonly path: string;
  readonly gzipBase64: string;
}

export interface RemoteDelivery {
  readonly file: string;
  readonly url: string;
  readonly sha256: string;
  /** argv of the fetch image's `tunepipe-fetch-file` (images/fetch), run in the fetch init container. */
  readonly fetchArgs: readonly string[];
}

export interface DeliveryPlan {
  /** Items of the source's one ConfigMap, mounted at CLUSTER_INPUTS.local(source). */
  readonly configMap: { readonly mountPath: string; readonly items: readonly ConfigMapItem[]; readonly base64Bytes: number };
  readonly remote: readonly RemoteDelivery[];
}

/** Which route each file of a source takes. Files that fit no route are left out (see datasetDeliveryIssues). */
export function deliveryPlan(source: DeliverySource): DeliveryPlan {
  const items: ConfigMapItem[] = [];
  const remote: RemoteDelivery[] = [];
  for (const file of source.files) {
    const route = deliveryRoute(file);
    if (route === 'remote') {
      remote.push({
        file: file.path,
        url: file.url!,
        sha256: file.sha256,
        fetchArgs: ['tunepipe-fetch-file', '--url', file.url!, '--sha256', file.sha256, '--dest', `${CLUSTER_INPUTS.root}/${fetchedPath(source.name, file.path)}`],
      });
    } else if (route === 'configmap') {
      items.push({ file: file.path, sha256: file.sha256, key: `f${items.length}.gz`, path: `${file.path}.gz`, gzipBase64: file.gzipBase64! });
    }
  }
  return {
    configMap: { mountPath: CLUSTER_INPUTS.local(source.name), items, base64Bytes: items.reduce((n, i) => n + i.gzipBase64.length, 0) },
    remote,
  };
}

const mib = (n: number): string => `${(n / 1024 / 1024).toFixed(1)} MiB`;
const kib = (n: number): string => `${Math.ceil(n / 1024)} KiB`;

/**
 * Files of a source that cannot reach the Job: a local file without ConfigMap content (too large
 * to gzip within the budget on its own), or a source whose local files together exceed the
 * one-ConfigMap budget. Each issue names the file and says how to move it to the remote route.
 */
export function datasetDeliveryIssues(source: DeliverySource): Issue[] {
  const issues: Issue[] = [];
  const local = source.files.filter((f) => deliveryRoute(f) !== 'remote');
  const remoteFix = (file: DatasetFileInput): string => {
    const where = `datasets/${source.name}/${file.path}`;
    return (
      `upload it once under its digest, e.g. \`aws s3 cp ${where} s3://<bucket>/tunepipe/datasets/sha256/${file.sha256}\` ` +
      `(or push it to a Hugging Face dataset repo), then declare it in datasets/${source.name}/dataset.yaml as ` +
      `\`- { path: ${file.path}, url: s3://<bucket>/tunepipe/datasets/sha256/${file.sha256}, sha256: ${file.sha256}, size: ${file.size} }\` ` +
      'and keep the local copy out of Git; or split it into files that compress under the budget'
    );
  };
  for (const file of local) {
    if (file.gzipBase64 !== undefined && file.gzipBase64.length <= CONFIGMAP_BUDGET_BYTES) continue;
    issues.push({
      code: 'dataset.too-large',
      path: `datasets/${source.name}/${file.path}`,
      message:
        file.gzipBase64 === undefined
          ? `${mib(file.size)} is too large to ship inside the manifests (a source's ConfigMap carries at most ${kib(CONFIGMAP_BUDGET_BYTES)} of gzip+base64) and no download URL is declared`
          : `${mib(file.size)} compresses to ${kib(file.gzipBase64.length)} of base64, over the ${kib(CONFIGMAP_BUDGET_BYTES)} a ConfigMap may carry`,
      value: { size: file.size, sha256: file.sha256, ...(file.gzipBase64 === undefined ? {} : { gzipBase64Bytes: file.gzipBase64.length }) },
      fix: remoteFix(file),
    });
  }
  if (issues.length === 0) {
    const total = local.reduce((n, f) => n + (f.gzipBase64?.length ?? 0), 0);
    if (total > CONFIGMAP_BUDGET_BYTES) {
      const biggest = [...local].sort((a, b) => (b.gzipBase64?.length ?? 0) - (a.gzipBase64?.length ?? 0))[0]!;
      issues.push({
        code: 'dataset.too-large',
        path: `datasets/${source.name}`,
        message: `its ${local.length} local files compress to ${kib(total)} of base64 together, over the ${kib(CONFIGMAP_BUDGET_BYTES)} one ConfigMap may carry`,
        value: Object.fromEntries(local.map((f) => [f.path, f.gzipBase64?.length ?? 0])),
        fix: `move the largest file (${biggest.path}) to the remote route: ${remoteFix(biggest)}; or split the files into two dataset sources`,
      });
    }
  }
  return issues;
}

export interface DatasetDeliveryInput {
  /** Pipeline name: prefixes the dataset ConfigMaps' names. */
  readonly pipeline: string;
  /** The dataset sources the convert stage reads (convertInputSources), in order; empty for other kinds. */
  readonly sources: readonly string[];
  readonly datasets: Readonly<Record<string, DatasetSourceInput>>;
  readonly namespace: string;
  /** Labels of the stage; the ConfigMaps get them with component `dataset`. */
  readonly labels: Readonly<Record<string, string>>;
  readonly fetchImage: string;
  /** Hub token Secret for `hf://` downloads. */
  readonly hubToken: SecretRef | undefined;
}

export interface DatasetDelivery {
  /** One ConfigMap per source with local files. */
  readonly maps: ConfigMap[];
  readonly volumes: Volume[];
  /** Mounts of the convert container. */
  readonly mounts: VolumeMount[];
  /** Downloads declared remote files into an emptyDir before the converter starts. */
  readonly fetch?: Container;
  /** The ConfigMap-delivered files at their pod paths, for a runner without Kubernetes. */
  readonly files: StageFile[];
  /** Pod paths of the emptyDirs added (the download folder). */
  readonly scratch: string[];
}

/**
 * The objects that deliver a convert stage's dataset sources to its Job: per source one ConfigMap
 * and its mount, and one fetch init container for every remote file. Sources missing from the
 * context are left out (check() reports them).
 */
export function datasetDelivery(input: DatasetDeliveryInput): DatasetDelivery {
  const maps: ConfigMap[] = [];
  const volumes: Volume[] = [];
  const mounts: VolumeMount[] = [];
  const files: StageFile[] = [];
  const downloads: (readonly string[])[] = [];
  for (const sourceName of input.sources) {
    const source = input.datasets[sourceName];
    if (!source) continue;
    const plan = deliveryPlan(source);
    downloads.push(...plan.remote.map((r) => r.fetchArgs));
    const items = plan.configMap.items;
    if (items.length === 0) continue;
    // Named by content: an edited dataset is a new object, never an in-place change under a running Job.
    const name = `${input.pipeline}-data-${sourceName}-${source.digest.slice(0, DIGEST_IN_NAME)}`;
    maps.push({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: metadata(name, input.namespace, { ...input.labels, [LABELS.component]: 'dataset' }, { ...CONFIGMAP_ANNOTATIONS }),
      immutable: true,
      binaryData: Object.fromEntries(items.map((i) => [i.key, i.gzipBase64])),
    });
    const volume = `data-${sourceName}`.slice(0, 63);
    volumes.push({ name: volume, configMap: { name, items: items.map((i) => ({ key: i.key, path: i.path })) } });
    mounts.push({ name: volume, mountPath: plan.configMap.mountPath, readOnly: true });
    files.push(...items.map((i) => ({ path: `${plan.configMap.mountPath}/${i.path}`, base64: i.gzipBase64 })));
  }
  if (downloads.length === 0) return { maps, volumes, mounts, files, scratch: [] };
  volumes.push({ name: 'remote-inputs', emptyDir: {} });
  mounts.push({ name: 'remote-inputs', mountPath: CLUSTER_INPUTS.remote });
  const fetch: Container = {
    name: 'fetch-inputs',
    image: input.fetchImage,
    command: ['/bin/sh', '-c'],
    args: [`set -e\n${downloads.map((argv) => argv.map(shellQuote).join(' ')).join('\n')}`],
    env: [...secretEnv('HF_TOKEN', input.hubToken), ...scratchEnv()],
    // Cloud credentials for s3:// sources come from an optional Secret the cluster owner creates.
    envFrom: [{ secretRef: { name: DATASET_CREDENTIALS_SECRET, optional: true } }],
    securityContext: containerSecurity(),
    resources: { requests: { cpu: '250m', memory: '256Mi' }, limits: { memory: '1Gi' } },
    volumeMounts: [
      { name: 'remote-inputs', mountPath: CLUSTER_INPUTS.remote },
      { name: 'tmp', mountPath: '/tmp' },
    ],
  };
  return { maps, volumes, mounts, fetch, files, scratch: [CLUSTER_INPUTS.remote] };
}
