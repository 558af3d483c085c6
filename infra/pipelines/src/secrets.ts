import { didYouMean, type Issue, type KubeObject } from '@tunepipe/core';

/** Env var names that carry credentials: they must come from `valueFrom.secretKeyRef`. */
const SECRET_ENV_NAME = /(TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIALS?)$/i;
/** Command-line flags whose value is a credential (vLLM `--api-key`, hub tokens). */
const SECRET_FLAGS = ['--api-key', '--hf-token', '--token'] as const;
/** LLaMA-Factory keys that hold hub tokens; a literal in a stage's ConfigMap would be readable by anyone with `get configmaps`. */
const CONFIG_TOKEN_LINE = /^\s*(hf_hub_token|ms_hub_token|om_hub_token)\s*:\s*(\S+)/m;
/** Hugging Face user access tokens. */
const HF_TOKEN = /\bhf_[A-Za-z0-9]{30,}\b/;

interface ContainerLike {
  readonly name?: string;
  readonly env?: readonly { readonly name: string; readonly value?: string; readonly valueFrom?: unknown }[];
  readonly args?: readonly string[];
  readonly command?: readonly string[];
}

/**
 * Credentials written into objects as literals. They would end up in Pulumi state, in committed
 * GitOps manifests and in `kubectl get -o yaml`; the cluster stack creates Secrets from Pulumi
 * config secrets and compiled objects may only reference them.
 */
export function findSecretLiterals(objects: readonly KubeObject[]): Issue[] {
  const issues: Issue[] = [];
  for (const object of objects) {
    const where = `objects.${object.kind ?? '?'}/${object.metadata?.name ?? '?'}`;
    if (object.kind === 'Secret') {
      const secret = object as { data?: Record<string, string>; stringData?: Record<string, string> };
      for (const field of ['data', 'stringData'] as const) {
        const keys = Object.keys(secret[field] ?? {});
        if (keys.length > 0) {
          issues.push({
            code: 'pulumi.secret-literal',
            path: `${where}.${field}`,
            message: `a Secret with literal ${field} (keys ${keys.join(', ')}) would store the credential in Pulumi state`,
            fix: 'create the Secret in the cluster stack from a Pulumi config secret (pulumi config set --secret) and reference it by name',
          });
        }
      }
    }
    if (object.kind === 'ConfigMap') {
      const data = (object as { data?: Record<string, string> }).data ?? {};
      for (const [key, text] of Object.entries(data)) {
        const line = CONFIG_TOKEN_LINE.exec(text);
        if (line) {
          issues.push({
            code: 'pulumi.secret-literal',
            path: `${where}.data.${key}`,
            message: `${line[1]} is written into a ConfigMap as a literal`,
            fix: 'pass hub tokens as env vars from a secretKeyRef (HF_TOKEN / MODELSCOPE_API_TOKEN), never as a config key',
          });
        }
      }
    }
    for (const [containerPath, container] of containersOf(object)) {
      for (const env of container.env ?? []) {
        if (env.value !== undefined && (SECRET_ENV_NAME.test(env.name) || HF_TOKEN.test(env.value))) {
          issues.push({
            code: 'pulumi.secret-literal',
            path: `${where}.${containerPath}.env[${env.name}]`,
            message: `env var ${env.name} has a literal value; it would be stored in Pulumi state`,
            fix: `use valueFrom.secretKeyRef for ${env.name}`,
          });
        }
      }
      for (const field of ['command', 'args'] as const) {
        (container[field] ?? []).forEach((arg, i) => {
          const flag = SECRET_FLAGS.find((f) => arg === f || arg.startsWith(`${f}=`));
          if (flag || HF_TOKEN.test(arg)) {
            issues.push({
              code: 'pulumi.secret-literal',
              path: `${where}.${containerPath}.${field}[${i}]`,
              message: flag ? `${flag} passes a credential on the command line` : 'a Hugging Face token is written into the command line',
              fix: 'read the credential from an env var set by valueFrom.secretKeyRef (vLLM reads VLLM_API_KEY)',
            });
          }
        });
      }
    }
  }
  return issues;
}

function containersOf(object: KubeObject): [string, ContainerLike][] {
  const spec = (object as { spec?: { template?: { spec?: { containers?: ContainerLike[]; initContainers?: ContainerLike[] } } } }).spec;
  const pod = spec?.template?.spec;
  if (!pod) return [];
  const out: [string, ContainerLike][] = [];
  for (const field of ['initContainers', 'containers'] as const) {
    (pod[field] ?? []).forEach((c, i) => out.push([`spec.template.spec.${field}[${c.name ?? i}]`, c]));
  }
  return out;
}

/**
 * Every `secretKeyRef` must name a Secret and key the cluster stack created: a wrong one leaves the
 * pod in CreateContainerConfigError, which `pulumi up` would sit out until the Job's timeout.
 */
export function findMissingSecretRefs(objects: readonly KubeObject[], available: Readonly<Record<string, readonly string[]>>): Issue[] {
  const issues: Issue[] = [];
  for (const object of objects) {
    const where = `objects.${object.kind ?? '?'}/${object.metadata?.name ?? '?'}`;
    for (const [containerPath, container] of containersOf(object)) {
      for (const env of container.env ?? []) {
        const ref = (env.valueFrom as { secretKeyRef?: { name?: string; key?: string; optional?: boolean } } | undefined)?.secretKeyRef;
        if (!ref?.name || ref.optional) continue;
        const keys = available[ref.name];
        const path = `${where}.${containerPath}.env[${env.name}].valueFrom.secretKeyRef`;
        if (keys === undefined) {
          issues.push({
            code: 'pulumi.secret-ref',
            path,
            value: ref.name,
            message: `the cluster has no Secret ${ref.name}`,
            fix: didYouMeanOr(ref.name, Object.keys(available), 'create it in the cluster stack'),
          });
        } else if (ref.key === undefined || !keys.includes(ref.key)) {
          issues.push({
            code: 'pulumi.secret-ref',
            path,
            value: ref.key,
            message: `Secret ${ref.name} has no key ${JSON.stringify(ref.key)} (it has ${keys.join(', ') || 'none'})`,
            fix: didYouMeanOr(ref.key ?? '', keys, `use one of: ${keys.join(', ')}`),
          });
        }
      }
    }
  }
  return issues;
}

/** A name the input is a prefix or extension of is a better guess than a close spelling. */
function didYouMeanOr(input: string, candidates: readonly string[], otherwise: string): string {
  const extended = candidates.filter((c) => input !== '' && (c.startsWith(input) || input.startsWith(c)));
  if (extended.length > 0) return `did you mean ${extended.map((c) => `'${c}'`).join(' or ')}?`;
  return didYouMean(input, candidates) ?? otherwise;
}
