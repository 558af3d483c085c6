// The Kubernetes Secrets tunepipe's objects reference, named once: the compiler's defaults, the
// example pipelines, the cluster stack (infra/cluster) that creates them and check() all read these.
// Names and keys only; a value never passes through the compiler.
import { didYouMean, type Issue } from './issues.ts';

export const PLATFORM_SECRETS = {
  /** Created by infra/cluster, with whichever hub tokens its config holds. */
  hubTokens: { secretName: 'tunepipe-hub-tokens', huggingface: 'HF_TOKEN', modelscope: 'MODELSCOPE_API_TOKEN' },
  /** Created by infra/cluster; a SecretRef as it stands: `serve({ apiKey: PLATFORM_SECRETS.vllmApiKey })`. */
  vllmApiKey: { secretName: 'tunepipe-vllm-api-key', key: 'VLLM_API_KEY' },
  /**
   * Cloud credentials the convert Job's download step reads when the Secret exists (`envFrom`,
   * optional). The cluster owner creates it; infra/cluster does not, since most clusters reach their
   * buckets through workload identity.
   */
  datasetCredentials: { secretName: 'tunepipe-dataset-credentials', keys: ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN'] },
} as const;

/** `{ <Secret name>: [<key>, …] }` */
export type SecretKeys = Readonly<Record<string, readonly string[]>>;

/** Every Secret infra/cluster can create, with every key it may hold: what `knownSecrets` is filled from. */
export const CLUSTER_SECRET_KEYS: SecretKeys = {
  [PLATFORM_SECRETS.hubTokens.secretName]: [PLATFORM_SECRETS.hubTokens.huggingface, PLATFORM_SECRETS.hubTokens.modelscope],
  [PLATFORM_SECRETS.vllmApiKey.secretName]: [PLATFORM_SECRETS.vllmApiKey.key],
};

interface FoundRef {
  readonly path: string;
  readonly secretName: string;
  readonly key: string | undefined;
}

/**
 * Every SecretRef in a stage's options, by shape (`{ secretName, key }`, or `{ secretName }` for a
 * Secret read whole), so a new kind's references are covered without naming them here.
 */
function secretRefs(value: unknown, path: string, out: FoundRef[], seen: Set<object>): void {
  if (!value || typeof value !== 'object' || seen.has(value)) return;
  seen.add(value);
  const o = value as Record<string, unknown>;
  // A handle of another stage carries that stage's options; its own stage reports them.
  if (typeof o['stage'] === 'string' && typeof o['kind'] === 'string') return;
  if (typeof o['secretName'] === 'string') {
    out.push({ path, secretName: o['secretName'], key: typeof o['key'] === 'string' ? o['key'] : undefined });
    return;
  }
  for (const [k, v] of Object.entries(o)) secretRefs(v, Array.isArray(value) ? `${path}[${k}]` : `${path}.${k}`, out, seen);
}

/**
 * `secret.unknown` (warning) for each Secret name or key that the cluster stack does not create: the
 * pod would wait in CreateContainerConfigError (or, for an optional token, run without it) until
 * its deadline. A warning, as a cluster owner may create other Secrets by hand.
 */
export function unknownSecretIssues(options: unknown, path: string, known: SecretKeys): Issue[] {
  const found: FoundRef[] = [];
  secretRefs(options, path, found, new Set());
  const issues: Issue[] = [];
  const names = Object.keys(known);
  for (const ref of found) {
    const keys = Object.hasOwn(known, ref.secretName) ? known[ref.secretName] : undefined;
    if (keys === undefined) {
      // A prefix or an extension of a real name is the likelier slip than a close spelling.
      const close = names.filter((n) => n.startsWith(ref.secretName) || ref.secretName.startsWith(n));
      const guess = close.length > 0 ? `did you mean ${close.map((n) => `'${n}'`).join(' or ')}? Otherwise` : didYouMean(ref.secretName, names)?.concat(' Otherwise');
      issues.push({
        code: 'secret.unknown',
        path: `${ref.path}.secretName`,
        value: ref.secretName,
        message: `the cluster stack (infra/cluster) creates no Secret '${ref.secretName}': a pod that reads it waits in CreateContainerConfigError until someone creates it`,
        fix: [guess, `use one of PLATFORM_SECRETS (${names.join(', ')}), or create '${ref.secretName}' in the namespace yourself`].filter(Boolean).join(' '),
        severity: 'warning',
      });
      continue;
    }
    if (ref.key !== undefined && !keys.includes(ref.key)) {
      issues.push({
        code: 'secret.unknown',
        path: `${ref.path}.key`,
        value: ref.key,
        message: `Secret '${ref.secretName}' as the cluster stack creates it has no key '${ref.key}' (it has ${keys.join(', ')})`,
        fix: didYouMean(ref.key, keys) ?? `use one of: ${keys.join(', ')}`,
        severity: 'warning',
      });
    }
  }
  return issues;
}
