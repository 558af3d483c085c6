import { z } from 'zod';
import { didYouMean, isDnsLabel, isLabelValue, zodParse, type Issue } from '@tunepipe/core';
import { DEFAULT_STARTUP_ALLOWANCE_SECONDS, DEFAULT_TIMEOUT_FACTOR } from './timeouts.ts';

/** Pulumi config namespace of the pipelines stack (`tunepipe:<key>`). */
export const CONFIG_NAMESPACE = 'tunepipe';

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

const dnsLabel = z.string().refine(isDnsLabel, { message: 'must be a DNS label: lower-case letters, digits and -, at most 63 characters' });

/** Pulumi config hands scalars over as strings; numbers are parsed, never guessed. */
const numeric = (schema: z.ZodNumber) =>
  z.preprocess((v) => (typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v)) ? Number(v) : v), schema);

const SettingsSchema = z.strictObject({
  pipelines: z.array(dnsLabel).min(1, 'name at least one pipeline'),
  clusterStack: z
    .string()
    .regex(/^[A-Za-z0-9_.-]+(\/[A-Za-z0-9_.-]+){0,2}$/, 'must be a stack name: <stack>, <project>/<stack> or <org>/<project>/<stack>')
    .optional(),
  namespace: dnsLabel.optional(),
  artifactsClaim: z
    .string()
    .max(253)
    .regex(DNS_SUBDOMAIN, 'must be a PersistentVolumeClaim name (a DNS subdomain)')
    .optional(),
  queueName: z
    .string()
    .min(1)
    .refine(isLabelValue, { message: 'must be usable as a label value: at most 63 characters of [A-Za-z0-9_.-]' })
    .optional(),
  timeoutFactor: numeric(z.number({ error: 'must be a number, e.g. 2' }).min(1, 'a factor below 1 gives up before the stage is expected to finish').max(50)).optional(),
  startupAllowanceSeconds: numeric(
    z.number({ error: 'must be a whole number of seconds, e.g. 900' }).int('must be a whole number of seconds').min(0).max(86_400),
  ).optional(),
});

/** The pipelines stack's configuration, validated. */
export interface Settings {
  /** Pipelines to deploy, by folder name under `pipelines/`. */
  readonly pipelines: readonly string[];
  /** Stack of `infra/cluster` to read namespace, artifacts claim, queue and kubeconfig from. @default undefined */
  readonly clusterStack?: string;
  /** Overrides the cluster stack's namespace. @default the cluster stack's, else 'tunepipe' */
  readonly namespace?: string;
  /** Overrides the cluster stack's artifacts claim. @default the cluster stack's, else 'tunepipe-artifacts' */
  readonly artifactsClaim?: string;
  /** Overrides the cluster stack's Kueue LocalQueue. @default the cluster stack's, else no queue */
  readonly queueName?: string;
  /** @default 2 */
  readonly timeoutFactor: number;
  /** @default 900 */
  readonly startupAllowanceSeconds: number;
}

const KEYS = Object.keys(SettingsSchema.shape);

const FIX: Readonly<Record<string, string>> = {
  pipelines: `pulumi config set --path '${CONFIG_NAMESPACE}:pipelines[0]' llama3-fintech`,
  clusterStack: `pulumi config set ${CONFIG_NAMESPACE}:clusterStack <org>/tunepipe-cluster/<stack>`,
  timeoutFactor: `pulumi config set ${CONFIG_NAMESPACE}:timeoutFactor 2`,
  startupAllowanceSeconds: `pulumi config set ${CONFIG_NAMESPACE}:startupAllowanceSeconds 900`,
};

/**
 * Reads the stack's `tunepipe:*` config (as `pulumi.runtime.allConfig()` returns it: full keys,
 * string values, lists as JSON) and returns the settings or every problem found.
 */
export function parseSettings(
  config: Readonly<Record<string, string>>,
): { settings: Settings; issues: [] } | { settings: undefined; issues: Issue[] } {
  const issues: Issue[] = [];
  const raw: Record<string, unknown> = {};
  const prefix = `${CONFIG_NAMESPACE}:`;
  for (const [fullKey, value] of Object.entries(config)) {
    if (!fullKey.startsWith(prefix)) continue;
    const key = fullKey.slice(prefix.length);
    if (!KEYS.includes(key)) {
      const hint = didYouMean(key, KEYS);
      issues.push({
        code: 'pulumi.config-unknown',
        path: fullKey,
        value,
        message: 'unknown config key',
        fix: hint ? `${hint.replace(/'([^']+)'/g, `'${prefix}$1'`)}` : `known keys: ${KEYS.map((k) => prefix + k).join(', ')}`,
      });
      continue;
    }
    raw[key] = key === 'pipelines' ? parseList(value) : value;
  }

  const parsed = zodParse(SettingsSchema, raw, {
    area: 'pulumi.config',
    root: raw,
    schema: SettingsSchema,
    formatPath: (path) => `${prefix}${String(path[0] ?? '')}${path.slice(1).map((p) => `[${String(p)}]`).join('')}`,
    fix: (context) => FIX[String(context.path[0] ?? '')] ?? context.suggestion,
  });
  if (!parsed.ok) issues.push(...parsed.issues);
  if (issues.length > 0 || !parsed.ok) return { settings: undefined, issues };

  const data = parsed.value;
  return {
    settings: {
      pipelines: [...new Set(data.pipelines)],
      ...(data.clusterStack !== undefined ? { clusterStack: data.clusterStack } : {}),
      ...(data.namespace !== undefined ? { namespace: data.namespace } : {}),
      ...(data.artifactsClaim !== undefined ? { artifactsClaim: data.artifactsClaim } : {}),
      ...(data.queueName !== undefined ? { queueName: data.queueName } : {}),
      timeoutFactor: data.timeoutFactor ?? DEFAULT_TIMEOUT_FACTOR,
      startupAllowanceSeconds: data.startupAllowanceSeconds ?? DEFAULT_STARTUP_ALLOWANCE_SECONDS,
    },
    issues: [],
  };
}

/** Lists arrive as JSON text; a bare name is kept as a string so the schema reports it. */
function parseList(value: string): unknown {
  try {
    return JSON.parse(value) as unknown;
  } catch {
    return value;
  }
}

