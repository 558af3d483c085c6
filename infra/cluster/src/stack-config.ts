// The Pulumi edge of the config: reads this project's keys from the stack, hands them to the pure
// validator, and turns secret keys into Pulumi secrets without ever reading them as plain values.
import * as pulumi from '@pulumi/pulumi';
import { type Issue, formatIssues } from '@tunepipe/core';
import { type ClusterConfig, SECRET_KEYS, type SecretKey, parseClusterConfig } from './config.ts';

/** Hub tokens, the vLLM API key and (provider `existing`) the kubeconfig, as Pulumi secrets. */
export interface ClusterSecrets {
  readonly vllmApiKey: pulumi.Output<string>;
  readonly hfToken?: pulumi.Output<string>;
  readonly modelscopeToken?: pulumi.Output<string>;
  readonly kubeconfig?: pulumi.Output<string>;
}

/**
 * Thrown before any resource is registered; lists every problem in the stack config at once.
 * A RunError, so the Pulumi language host prints the message without a stack trace.
 */
export class ClusterConfigError extends pulumi.RunError {
  readonly issues: readonly Issue[];
  constructor(project: string, stack: string, issues: readonly Issue[]) {
    const n = issues.length;
    super(
      `${project} (stack ${stack}): the stack config has ${n} problem${n === 1 ? '' : 's'}; nothing was created.\n` +
        `${formatIssues(issues)}\n` +
        `Paths are config keys of Pulumi.${stack}.yaml; set nested values with \`pulumi config set --path '<path>' <value>\` (see infra/README.md).`,
    );
    this.name = 'ClusterConfigError';
    this.issues = issues;
  }
}

/** Reads and validates the stack config; throws ClusterConfigError listing every problem. */
export function loadStackConfig(): { config: ClusterConfig; secrets: ClusterSecrets } {
  const project = pulumi.getProject();
  const stack = pulumi.getStack();
  const prefix = `${project}:`;
  const raw: Record<string, unknown> = {};
  const present = Object.fromEntries(SECRET_KEYS.map((k) => [k, false])) as Record<SecretKey, boolean>;
  const issues: Issue[] = [];

  for (const [fullKey, value] of Object.entries(pulumi.runtime.allConfig())) {
    if (!fullKey.startsWith(prefix)) continue;
    const key = fullKey.slice(prefix.length);
    if ((SECRET_KEYS as readonly string[]).includes(key)) {
      present[key as SecretKey] = true;
      continue;
    }
    raw[key] = decode(key, value, issues);
  }

  const parsed = parseClusterConfig(raw, present);
  const all = parsed.ok ? issues : [...issues, ...parsed.issues];
  if (!parsed.ok || all.length > 0) throw new ClusterConfigError(project, stack, all);

  const cfg = new pulumi.Config();
  const optional = (key: SecretKey) => (present[key] ? { [key]: cfg.requireSecret(key) } : {});
  return {
    config: parsed.config,
    secrets: {
      vllmApiKey: cfg.requireSecret('vllmApiKey'),
      ...optional('hfToken'),
      ...optional('modelscopeToken'),
      ...optional('kubeconfig'),
    },
  };
}

/** Structured values (`config set --path`, YAML maps and lists) arrive as JSON text. */
function decode(key: string, value: string, issues: Issue[]): unknown {
  const trimmed = value.trim();
  if (!trimmed.startsWith('{') && !trimmed.startsWith('[')) return value;
  try {
    return JSON.parse(trimmed) as unknown;
  } catch {
    issues.push({ code: 'config.invalid-json', path: key, message: 'looks structured but is not valid JSON', value });
    return undefined;
  }
}
