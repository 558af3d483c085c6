/**
 * How dataset files get from the repository to the convert Job — the same way for `pulumi up`, the
 * runner and GitOps, because all three apply the same compiled objects and a GitOps controller has
 * nothing but the repository:
 *
 * 1. **ConfigMap route** (local files, the default). A source's files travel gzipped as
 *    `binaryData` of one immutable ConfigMap named after the source digest, so unchanged data is an
 *    unchanged object and edited data is a new one (never a change under a running Job). The Job
 *    mounts it at `/inputs/<source>`, one item `<file>.gz` per file (key `f<i>.gz`). Budget: 900 KiB
 *    of base64 per source, comfortably under the 1 MiB ConfigMap limit with room for metadata.
 *    Client-side `kubectl apply` copies the whole object into the `last-applied-configuration`
 *    annotation, which is capped at 256 KiB, so these ConfigMaps must be applied server-side:
 *    Pulumi's Kubernetes provider and Flux do this by default; Argo CD needs
 *    `argocd.argoproj.io/sync-options: ServerSideApply=true` (CONFIGMAP_ANNOTATIONS); the runner
 *    should use server-side apply.
 * 2. **Remote route** (larger files). The descriptor names where the file lives (`https://`,
 *    `s3://`, `hf://datasets/…`, `ms://datasets/…`) and pins its sha256. An init container in the
 *    fetch image (`tunepipe-fetch-file`) downloads each file into an emptyDir mounted at
 *    `/inputs/.remote`, as `<source>/<file>`, and verifies the digest; the converter verifies it
 *    again. Nothing large passes through etcd, Git history or Pulumi state, and the stage hash still
 *    covers content (the pinned digest).
 *
 * Uploading big files to the artifacts volume from the CLI was rejected: a GitOps controller cannot
 * do it, so the three paths would diverge. A source that fits neither route is a check() error
 * with the command to fix it; it is never truncated.
 */

import type { Issue } from './issues.ts';

/** Base64 bytes of one source's ConfigMap binaryData (Kubernetes caps a ConfigMap at 1 MiB). */
export const CONFIGMAP_BUDGET_BYTES = 900 * 1024;
/** Files above this raw size are not even tried for the ConfigMap route. */
export const CONFIGMAP_MAX_RAW_BYTES = 64 * 1024 * 1024;

/** Where the Job sees its inputs (the converter's `layout: 'cluster'`, `--inputs /inputs`). */
export const CLUSTER_INPUTS = {
  root: '/inputs',
  /** Each source's ConfigMap is mounted at `/inputs/<source>`, files as `<file>.gz`. */
  local: (source: string): string => `/inputs/${source}`,
  /** emptyDir filled by the fetch init container: `<source>/<file>`. Source names never start with a dot. */
  remote: '/inputs/.remote',
} as const;

/** Annotations the compiler should put on dataset ConfigMaps (see the module comment). */
export const CONFIGMAP_ANNOTATIONS = { 'argocd.argoproj.io/sync-options': 'ServerSideApply=true' } as const;

/** The file facts delivery needs (what `loadDatasetSources` returns, and core's DatasetFileInput). */
export interface DeliveryFile {
  readonly path: string;
  readonly sha256: string;
  readonly size: number;
  /** gzip of the file, base64; absent when over budget or remote. */
  readonly gzipBase64?: string;
}

export interface DeliverySource {
  readonly name: string;
  readonly descriptor: { readonly files: readonly (string | { readonly path: string; readonly url?: string | undefined })[] };
  readonly files: readonly DeliveryFile[];
}

/** Remote URL of a file, if its descriptor declares one. */
export function remoteUrl(source: DeliverySource, path: string): string | undefined {
  for (const f of source.descriptor.files) if (typeof f !== 'string' && f.path === path) return f.url;
  return undefined;
}

/** Path of a ConfigMap-delivered file relative to the inputs root: `<source>/<file>.gz`. */
export function deliveredPath(sourceName: string, filePath: string): string {
  return `${sourceName}/${filePath}.gz`;
}

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
  /** argv for the fetch image's `tunepipe-fetch-file` (images/fetch), run as an init container. */
  readonly fetchArgs: readonly string[];
}

export interface DeliveryPlan {
  /** Items of the source's one ConfigMap, mounted at CLUSTER_INPUTS.local(source). */
  readonly configMap: { readonly mountPath: string; readonly items: readonly ConfigMapItem[]; readonly base64Bytes: number };
  readonly remote: readonly RemoteDelivery[];
}

/** Which route each file takes. Pure; files that fit no route are reported by datasetDeliveryIssues. */
export function deliveryPlan(source: DeliverySource): DeliveryPlan {
  const items: ConfigMapItem[] = [];
  const remote: RemoteDelivery[] = [];
  for (const file of source.files) {
    const url = remoteUrl(source, file.path);
    if (url !== undefined) {
      remote.push({
        file: file.path,
        url,
        sha256: file.sha256,
        fetchArgs: ['tunepipe-fetch-file', '--url', url, '--sha256', file.sha256, '--dest', `${CLUSTER_INPUTS.remote}/${source.name}/${file.path}`],
      });
    } else if (file.gzipBase64 !== undefined) {
      items.push({ file: file.path, sha256: file.sha256, key: `f${items.length}.gz`, path: `${file.path}.gz`, gzipBase64: file.gzipBase64 });
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
 * Files of a source that cannot travel by their route: local files whose gzip was not computed
 * (over the budget on their own), or a source whose local files together exceed the one-ConfigMap
 * budget. Each issue says how to move files to the remote route. The compiler's check() reports
 * these; nothing is ever truncated.
 */
export function datasetDeliveryIssues(source: DeliverySource): Issue[] {
  const issues: Issue[] = [];
  const local = source.files.filter((f) => remoteUrl(source, f.path) === undefined);
  const remoteFix = (file: DeliveryFile): string => {
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
      path: `datasets/${source.name}/${file.path}`,
      message:
        file.gzipBase64 === undefined
          ? `${mib(file.size)} is too large to ship inside the manifests (a source's ConfigMap carries at most ${kib(CONFIGMAP_BUDGET_BYTES)} of gzip+base64)`
          : `${mib(file.size)} compresses to ${kib(file.gzipBase64.length)} of base64, over the ${kib(CONFIGMAP_BUDGET_BYTES)} a ConfigMap may carry`,
      value: { size: file.size, sha256: file.sha256, ...(file.gzipBase64 === undefined ? {} : { gzipBase64Bytes: file.gzipBase64.length }) },
      fix: remoteFix(file),
      code: 'dataset.delivery-too-large',
    });
  }
  if (issues.length === 0) {
    const total = local.reduce((n, f) => n + (f.gzipBase64?.length ?? 0), 0);
    if (total > CONFIGMAP_BUDGET_BYTES) {
      const biggest = [...local].sort((a, b) => (b.gzipBase64?.length ?? 0) - (a.gzipBase64?.length ?? 0))[0]!;
      issues.push({
        path: `datasets/${source.name}`,
        message: `its ${local.length} local files compress to ${kib(total)} of base64 together, over the ${kib(CONFIGMAP_BUDGET_BYTES)} one ConfigMap may carry`,
        value: Object.fromEntries(local.map((f) => [f.path, f.gzipBase64?.length ?? 0])),
        fix: `move the largest file (${biggest.path}) to the remote route: ${remoteFix(biggest)}; or split the files into two dataset sources`,
        code: 'dataset.delivery-too-large',
      });
    }
  }
  return issues;
}
