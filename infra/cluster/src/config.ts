// Stack configuration: read once, validated completely, before any resource is registered.
// Every field is parsed on its own so one bad value never hides another: the user gets the whole
// list in one `pulumi up`, not one problem per attempt.
import { z } from 'zod';
import { type Issue, didYouMean, issuePath, zodParse } from '@tunepipe/core';
import {
  AWS_GPU_INSTANCES,
  GCP_ACCELERATORS,
  catalogueIdMatches,
  gcpBuiltInGpuCount,
  machineFamily,
  suggestedCatalogueId,
} from './hardware.ts';
import { CHARTS, CLUSTER_AUTOSCALER_IMAGES, DEFAULT_EKS_VERSION } from './versions.ts';

export const PROVIDERS = ['aws', 'gcp', 'existing'] as const;
export type ProviderName = (typeof PROVIDERS)[number];

/** Config keys that hold credentials: read only with `getSecret`, never echoed in errors. */
export const SECRET_KEYS = ['kubeconfig', 'hfToken', 'modelscopeToken', 'vllmApiKey'] as const;
export type SecretKey = (typeof SECRET_KEYS)[number];

// ---------------------------------------------------------------------------------------------
// Field schemas. Pulumi stores `config set --path` scalars as strings or JSON numbers depending on
// the CLI version, so integers and booleans accept both spellings.

const intFrom = (v: unknown): unknown => (typeof v === 'string' && /^-?\d+$/.test(v.trim()) ? Number(v) : v);
const boolFrom = (v: unknown): unknown => (v === 'true' ? true : v === 'false' ? false : v);
const Int = (min: number) => z.preprocess(intFrom, z.number().int().min(min));
const Bool = z.preprocess(boolFrom, z.boolean());
const DNS_LABEL_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DnsLabel = z
  .string()
  .max(63, 'must be at most 63 characters')
  .regex(DNS_LABEL_RE, 'must be a DNS label: lower-case letters, digits and "-", starting and ending alphanumeric');
const GpuId = z
  .string()
  .max(63, 'must be at most 63 characters')
  .regex(/^[a-z0-9]+(-[a-z0-9]+)*$/, 'must be a GPU catalogue id such as "a10g" (lower-case, "-" separated)');
const QUANTITY_RE = /^\d+(\.\d+)?(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$/;
const Quantity = z.preprocess(
  (v) => (typeof v === 'number' ? String(v) : v),
  z.string().regex(QUANTITY_RE, 'must be a Kubernetes quantity such as "500Gi" or "64"'),
);
const K8sMinor = z.string().regex(/^1\.\d+$/, 'must be a Kubernetes minor version such as "1.34"');
const NonEmpty = z.string().min(1, 'must not be empty');
const Cidr = z.string().regex(/^(\d{1,3}\.){3}\d{1,3}\/\d{1,2}$/, 'must be an IPv4 CIDR such as "10.0.0.0/16"');

const GpuGroupSchema = z.strictObject({
  name: DnsLabel.optional(),
  gpu: GpuId,
  instanceTypes: z.array(NonEmpty).optional(),
  gpusPerNode: Int(1).optional(),
  capacityType: z.enum(['ON_DEMAND', 'SPOT']).optional(),
  machineType: NonEmpty.optional(),
  acceleratorType: NonEmpty.optional(),
  acceleratorCount: Int(1).optional(),
  spot: Bool.optional(),
  zones: z.array(NonEmpty).min(1).optional(),
  minNodes: Int(0).optional(),
  maxNodes: Int(1).optional(),
  diskSizeGb: Int(20).optional(),
  quotaGpus: Int(1).optional(),
});
type GpuGroupRaw = z.infer<typeof GpuGroupSchema>;

const FIELDS = {
  provider: z.enum(PROVIDERS),
  region: NonEmpty.optional(),
  clusterName: DnsLabel.default('tunepipe'),
  kubernetesVersion: K8sMinor.optional(),
  namespace: DnsLabel.default('tunepipe'),
  podSecurity: z.enum(['restricted', 'baseline']).default('restricted'),
  cpuNodes: z
    .strictObject({
      instanceTypes: z.array(NonEmpty).min(1).optional(),
      machineType: NonEmpty.optional(),
      minNodes: Int(1).default(1),
      maxNodes: Int(1).default(3),
      diskSizeGb: Int(20).default(100),
    })
    .optional(),
  gpuNodeGroups: z.array(z.unknown()).min(1, 'needs at least one GPU node group'),
  quota: z.strictObject({
    gpus: Int(1),
    cpu: Quantity.default('256'),
    memory: Quantity.default('2Ti'),
  }),
  storage: z
    .strictObject({
      storageClass: NonEmpty.optional(),
      size: Quantity.optional(),
      nfs: z.strictObject({ server: NonEmpty, share: NonEmpty }).optional(),
    })
    .default({}),
  versions: z
    .strictObject({
      nvidiaDevicePlugin: NonEmpty.optional(),
      dcgmExporter: NonEmpty.optional(),
      kueue: NonEmpty.optional(),
      clusterAutoscaler: NonEmpty.optional(),
      clusterAutoscalerImage: NonEmpty.optional(),
      csiDriverNfs: NonEmpty.optional(),
    })
    .default({}),
  dcgmExporter: z
    .strictObject({ enabled: Bool.default(true), serviceMonitor: Bool.default(false) })
    .default({ enabled: true, serviceMonitor: false }),
  aws: z
    .strictObject({
      vpcCidr: Cidr.optional(),
      availabilityZones: z.array(NonEmpty).min(2, 'EKS needs subnets in at least two availability zones').optional(),
      subnetIds: z.array(NonEmpty).min(2, 'EKS needs subnets in at least two availability zones').optional(),
    })
    .optional(),
  gcp: z
    .strictObject({
      project: NonEmpty,
      location: NonEmpty.optional(),
      zones: z.array(NonEmpty).min(1).optional(),
      network: NonEmpty.default('default'),
      subnetwork: NonEmpty.optional(),
      releaseChannel: z.enum(['RAPID', 'REGULAR', 'STABLE']).default('REGULAR'),
      gpuDriverVersion: z.enum(['DEFAULT', 'LATEST']).default('LATEST'),
      deletionProtection: Bool.default(false),
    })
    .optional(),
  existing: z.strictObject({ devicePlugin: Bool.default(true), kueue: Bool.default(true) }).optional(),
} as const;

type FieldName = keyof typeof FIELDS;
type Fields = { [K in FieldName]: z.infer<(typeof FIELDS)[K]> };

// ---------------------------------------------------------------------------------------------
// The validated, provider-specific configuration defineCluster() consumes.

export interface ChartVersions {
  readonly nvidiaDevicePlugin: string;
  readonly dcgmExporter: string;
  readonly kueue: string;
  readonly clusterAutoscaler: string;
  readonly csiDriverNfs: string;
}

/** One kind of GPU the cluster offers: a Kueue ResourceFlavor and the node label value. */
export interface GpuType {
  /** GPU catalogue id, the value of the `tunepipe.dev/gpu` node label. */
  readonly id: string;
  /** `nvidia.com/gpu` the ClusterQueue admits at once on this GPU type. */
  readonly quotaGpus: number;
}

interface CommonConfig {
  readonly clusterName: string;
  readonly namespace: string;
  readonly podSecurity: 'restricted' | 'baseline';
  readonly quota: { readonly gpus: number; readonly cpu: string; readonly memory: string };
  readonly gpuTypes: readonly GpuType[];
  readonly artifactsSize: string;
  readonly versions: ChartVersions;
  readonly dcgmExporter: { readonly enabled: boolean; readonly serviceMonitor: boolean };
}

export interface AwsGpuGroup {
  readonly name: string;
  readonly gpu: string;
  readonly instanceTypes: readonly string[];
  readonly gpusPerNode: number;
  readonly capacityType: 'ON_DEMAND' | 'SPOT';
  readonly minNodes: number;
  readonly maxNodes: number;
  readonly diskSizeGb: number;
}

export interface AwsConfig extends CommonConfig {
  readonly provider: 'aws';
  readonly region: string;
  readonly kubernetesVersion: string;
  readonly cpuNodes: { readonly instanceTypes: readonly string[]; readonly minNodes: number; readonly maxNodes: number; readonly diskSizeGb: number };
  readonly gpuNodeGroups: readonly AwsGpuGroup[];
  /** Either a VPC this stack creates, or subnets of an existing one (in distinct zones). */
  readonly network:
    | { readonly kind: 'create'; readonly vpcCidr: string; readonly availabilityZones: readonly string[] }
    | { readonly kind: 'subnets'; readonly subnetIds: readonly string[] };
  readonly clusterAutoscalerImage: string;
}

export interface GcpGpuPool {
  readonly name: string;
  readonly gpu: string;
  readonly machineType: string;
  readonly acceleratorType: string;
  readonly acceleratorCount: number;
  readonly spot: boolean;
  readonly zones?: readonly string[];
  readonly minNodes: number;
  readonly maxNodes: number;
  readonly diskSizeGb: number;
}

export interface GcpConfig extends CommonConfig {
  readonly provider: 'gcp';
  readonly project: string;
  readonly region: string;
  /** Region (regional cluster) or zone (zonal cluster). */
  readonly location: string;
  readonly kubernetesVersion?: string;
  readonly releaseChannel: 'RAPID' | 'REGULAR' | 'STABLE';
  readonly network: string;
  readonly subnetwork?: string;
  readonly gpuDriverVersion: 'DEFAULT' | 'LATEST';
  readonly deletionProtection: boolean;
  readonly cpuNodes: { readonly machineType: string; readonly minNodes: number; readonly maxNodes: number; readonly diskSizeGb: number };
  readonly gpuNodeGroups: readonly GcpGpuPool[];
  /** StorageClass of GKE's Filestore CSI driver. */
  readonly storageClass: string;
}

export interface ExistingConfig extends CommonConfig {
  readonly provider: 'existing';
  readonly devicePlugin: boolean;
  /** Install Kueue (pinned chart); `false` when the cluster already runs Kueue serving kueue.x-k8s.io/v1beta2. */
  readonly kueue: boolean;
  readonly storage: { readonly kind: 'class'; readonly storageClass: string } | { readonly kind: 'nfs'; readonly server: string; readonly share: string };
}

export type ClusterConfig = AwsConfig | GcpConfig | ExistingConfig;

/** Which secret config keys are set (their values stay inside Pulumi secrets). */
export type SecretPresence = Readonly<Record<SecretKey, boolean>>;

// ---------------------------------------------------------------------------------------------

const DEFAULT_ARTIFACTS_SIZE = { aws: '500Gi', gcp: '1Ti', existing: '500Gi' } as const;
const FILESTORE_CLASSES = ['standard-rwx', 'premium-rwx', 'enterprise-rwx', 'zonal-rwx'];

/**
 * Validates raw stack config (`key -> value`, structured values already JSON-parsed) and returns
 * the typed config, or every problem found.
 */
export function parseClusterConfig(
  raw: Readonly<Record<string, unknown>>,
  secrets: SecretPresence,
): { ok: true; config: ClusterConfig } | { ok: false; issues: Issue[] } {
  const issues: Issue[] = [];
  const known = new Set<string>([...Object.keys(FIELDS), ...SECRET_KEYS]);
  for (const key of Object.keys(raw).sort()) {
    if (known.has(key)) continue;
    issues.push({
      code: 'config.unknown-key',
      path: key,
      message: 'is not a setting of this stack',
      value: raw[key],
      fix: didYouMean(key, known) ?? `remove it: pulumi config rm ${key}`,
    });
  }

  const f: Partial<Fields> = {};
  for (const key of Object.keys(FIELDS) as FieldName[]) {
    const parsed = parseField(issues, [key], FIELDS[key], raw[key]);
    if (parsed.ok) (f as Record<string, unknown>)[key] = parsed.value;
  }
  const provider = f.provider;

  const groups = parseGpuGroups(issues, raw['gpuNodeGroups']);

  if (provider) {
    checkSections(issues, provider, raw, secrets);
  }
  if (provider === 'gcp' && raw['gcp'] === undefined) {
    issues.push({ code: 'config.missing', path: 'gcp.project', message: 'is required with provider gcp', fix: `pulumi config set --path 'gcp.project' <project-id>` });
  }
  if (f.cpuNodes && f.cpuNodes.minNodes > f.cpuNodes.maxNodes) {
    issues.push({ code: 'config.min-above-max', path: 'cpuNodes.minNodes', message: `is above cpuNodes.maxNodes (${f.cpuNodes.maxNodes})`, value: f.cpuNodes.minNodes });
  }
  if (!secrets.vllmApiKey) {
    issues.push({
      code: 'config.missing-secret',
      path: 'vllmApiKey',
      message: 'is required: the API key vLLM endpoints demand (stored in the Secret the serve stage mounts)',
      fix: 'pulumi config set --secret vllmApiKey <key>   (e.g. generated with `openssl rand -hex 24`)',
    });
  }

  const versions: ChartVersions = {
    nvidiaDevicePlugin: f.versions?.nvidiaDevicePlugin ?? CHARTS.nvidiaDevicePlugin.version,
    dcgmExporter: f.versions?.dcgmExporter ?? CHARTS.dcgmExporter.version,
    kueue: f.versions?.kueue ?? CHARTS.kueue.version,
    clusterAutoscaler: f.versions?.clusterAutoscaler ?? CHARTS.clusterAutoscaler.version,
    csiDriverNfs: f.versions?.csiDriverNfs ?? CHARTS.csiDriverNfs.version,
  };

  let config: ClusterConfig | undefined;
  if (provider === 'aws') config = buildAws(issues, f, groups, versions);
  else if (provider === 'gcp') config = buildGcp(issues, f, groups, versions);
  else if (provider === 'existing') config = buildExisting(issues, f, groups, versions);

  if (f.quota && groups.every((g) => g !== undefined) && groups.length > 0) {
    checkQuota(issues, f.quota.gpus, groups as GpuGroupRaw[]);
  }

  if (issues.length > 0 || !config) {
    return { ok: false, issues };
  }
  return { ok: true, config };
}

function parseField<S extends z.ZodType>(
  issues: Issue[],
  path: readonly (string | number)[],
  schema: S,
  value: unknown,
): { ok: true; value: z.infer<S> } | { ok: false } {
  const parsed = zodParse(schema, value, {
    area: 'config',
    formatPath: (at) => issuePath([...path, ...at]),
    fix: ({ path: at, rule, zod, suggestion }) => {
      const full = issuePath([...path, ...at]);
      if (rule === 'choice' && zod.code === 'invalid_value') return suggestion ?? `pulumi config set --path '${full}' ${String(zod.values[0])}`;
      if (rule === 'missing' || rule === 'range') return requiredFix(full) ?? suggestion;
      return suggestion;
    },
  });
  if (parsed.ok) return { ok: true, value: parsed.value };
  issues.push(...parsed.issues);
  return { ok: false };
}

function optionalFix(fix: string | undefined): { fix?: string } {
  return fix ? { fix } : {};
}

function requiredFix(path: string): string | undefined {
  const examples: Record<string, string> = {
    provider: 'pulumi config set provider aws   (aws | gcp | existing)',
    gpuNodeGroups: `pulumi config set --path 'gpuNodeGroups[0].gpu' a10g  (and instanceTypes / machineType, see infra/README.md)`,
    quota: `pulumi config set --path 'quota.gpus' 4`,
    'quota.gpus': `pulumi config set --path 'quota.gpus' 4   (the most GPUs Kueue admits at once per GPU type)`,
    'gcp.project': `pulumi config set --path 'gcp.project' <project-id>`,
  };
  return examples[path] ?? (/\.gpu$/.test(path) ? `pulumi config set --path '${path}' a10g` : undefined);
}

function parseGpuGroups(issues: Issue[], raw: unknown): (GpuGroupRaw | undefined)[] {
  if (!Array.isArray(raw)) return [];
  const groups = raw.map((g, i) => {
    const parsed = parseField(issues, ['gpuNodeGroups', i], GpuGroupSchema, g);
    return parsed.ok ? parsed.value : undefined;
  });
  const names = new Map<string, number>();
  groups.forEach((g, i) => {
    if (!g) return;
    const name = groupName(g);
    const first = names.get(name);
    if (first !== undefined) {
      issues.push({
        code: 'config.duplicate-group',
        path: `gpuNodeGroups[${i}].name`,
        message: `names the same node group as gpuNodeGroups[${first}]`,
        value: name,
        fix: `give each group its own name: pulumi config set --path 'gpuNodeGroups[${i}].name' ${name}-2`,
      });
    } else names.set(name, i);
    if (g.minNodes !== undefined && g.maxNodes !== undefined && g.minNodes > g.maxNodes) {
      issues.push({
        code: 'config.min-above-max',
        path: `gpuNodeGroups[${i}].minNodes`,
        message: `is above maxNodes (${g.maxNodes})`,
        value: g.minNodes,
        fix: 'keep minNodes at 0 so idle GPU nodes cost nothing; raise maxNodes for more capacity',
      });
    }
  });
  return groups;
}

const groupName = (g: GpuGroupRaw): string => g.name ?? `gpu-${g.gpu}`.slice(0, 63).replace(/-+$/, '');

/** Fields that only mean something for one provider; setting them elsewhere would be silently ignored. */
const GROUP_FIELDS_BY_PROVIDER: Record<ProviderName, readonly (keyof GpuGroupRaw)[]> = {
  aws: ['name', 'gpu', 'instanceTypes', 'gpusPerNode', 'capacityType', 'minNodes', 'maxNodes', 'diskSizeGb', 'quotaGpus'],
  gcp: ['name', 'gpu', 'machineType', 'acceleratorType', 'acceleratorCount', 'spot', 'zones', 'minNodes', 'maxNodes', 'diskSizeGb', 'quotaGpus'],
  existing: ['name', 'gpu', 'quotaGpus'],
};

function checkSections(issues: Issue[], provider: ProviderName, raw: Readonly<Record<string, unknown>>, secrets: SecretPresence): void {
  for (const section of ['aws', 'gcp', 'existing'] as const) {
    if (section !== provider && raw[section] !== undefined) {
      issues.push({
        code: 'config.wrong-provider-section',
        path: section,
        message: `only applies to provider ${section}, but provider is ${provider}`,
        value: raw[section],
        fix: `pulumi config rm ${section}   (or set provider ${section})`,
      });
    }
  }
  if (provider === 'existing') {
    for (const key of ['region', 'cpuNodes', 'kubernetesVersion'] as const) {
      if (raw[key] !== undefined) {
        issues.push({
          code: 'config.not-for-existing',
          path: key,
          message: 'is not used with provider existing (the cluster is already there)',
          value: raw[key],
          fix: `pulumi config rm ${key}`,
        });
      }
    }
    if (!secrets.kubeconfig) {
      issues.push({
        code: 'config.missing-secret',
        path: 'kubeconfig',
        message: 'is required with provider existing: the kubeconfig of the cluster to install the platform into',
        fix: 'pulumi config set --secret kubeconfig -- "$(cat ~/.kube/config)"',
      });
    }
  } else if (secrets.kubeconfig) {
    issues.push({
      code: 'config.kubeconfig-not-used',
      path: 'kubeconfig',
      message: `is only read with provider existing; provider ${provider} builds the kubeconfig of the cluster it creates`,
      fix: 'pulumi config rm kubeconfig',
    });
  }
  const groups = raw['gpuNodeGroups'];
  if (Array.isArray(groups)) {
    const allowed = GROUP_FIELDS_BY_PROVIDER[provider];
    groups.forEach((g, i) => {
      if (!g || typeof g !== 'object') return;
      for (const key of Object.keys(g)) {
        if (key in GpuGroupSchema.shape && !allowed.includes(key as keyof GpuGroupRaw)) {
          issues.push({
            code: 'config.group-field-not-for-provider',
            path: `gpuNodeGroups[${i}].${key}`,
            message: `is not used with provider ${provider}`,
            value: (g as Record<string, unknown>)[key],
            fix: `${provider} GPU groups take: ${allowed.join(', ')}`,
          });
        }
      }
    });
  }
}

function checkQuota(issues: Issue[], total: number, groups: readonly GpuGroupRaw[]): void {
  groups.forEach((g, i) => {
    if (g.quotaGpus !== undefined && g.quotaGpus > total) {
      issues.push({
        code: 'config.group-quota-above-total',
        path: `gpuNodeGroups[${i}].quotaGpus`,
        message: `is above quota.gpus (${total})`,
        value: g.quotaGpus,
        fix: `lower it to at most ${total}, or raise quota.gpus`,
      });
    }
  });
}

function gpuTypesOf(groups: readonly GpuGroupRaw[], totalQuota: number): GpuType[] {
  const byId = new Map<string, number>();
  for (const g of groups) {
    byId.set(g.gpu, Math.max(byId.get(g.gpu) ?? 0, g.quotaGpus ?? totalQuota));
  }
  return [...byId].map(([id, quotaGpus]) => ({ id, quotaGpus }));
}

function common(f: Partial<Fields>, groups: readonly GpuGroupRaw[], versions: ChartVersions, provider: ProviderName): CommonConfig | undefined {
  if (!f.clusterName || !f.namespace || !f.podSecurity || !f.quota || !f.storage || !f.dcgmExporter) return undefined;
  return {
    clusterName: f.clusterName,
    namespace: f.namespace,
    podSecurity: f.podSecurity,
    quota: f.quota,
    gpuTypes: gpuTypesOf(groups, f.quota.gpus),
    artifactsSize: f.storage.size ?? DEFAULT_ARTIFACTS_SIZE[provider],
    versions,
    dcgmExporter: f.dcgmExporter,
  };
}

function requireRegion(issues: Issue[], f: Partial<Fields>, raw: string): string | undefined {
  if (f.region) return f.region;
  issues.push({ code: 'config.missing', path: 'region', message: `is required with provider ${raw}`, fix: `pulumi config set region ${raw === 'aws' ? 'us-east-1' : 'us-central1'}` });
  return undefined;
}

function buildAws(issues: Issue[], f: Partial<Fields>, groups: (GpuGroupRaw | undefined)[], versions: ChartVersions): AwsConfig | undefined {
  const region = requireRegion(issues, f, 'aws');
  if (f.storage?.nfs) {
    issues.push({ code: 'config.not-for-provider', path: 'storage.nfs', message: 'only applies to provider existing; aws creates an EFS file system', value: f.storage.nfs, fix: 'pulumi config rm --path storage.nfs' });
  }
  if (f.storage?.storageClass) {
    issues.push({ code: 'config.not-for-provider', path: 'storage.storageClass', message: 'is chosen by the stack on aws (an EFS StorageClass it creates)', value: f.storage.storageClass, fix: 'pulumi config rm --path storage.storageClass' });
  }
  const cpu = f.cpuNodes;
  if (cpu?.machineType !== undefined) {
    issues.push({ code: 'config.not-for-provider', path: 'cpuNodes.machineType', message: 'is the gcp spelling; aws CPU nodes take instanceTypes', value: cpu.machineType, fix: `pulumi config set --path 'cpuNodes.instanceTypes[0]' m6i.xlarge` });
  }
  const kubernetesVersion = f.kubernetesVersion ?? DEFAULT_EKS_VERSION;
  const autoscalerImage = f.versions?.clusterAutoscalerImage ?? CLUSTER_AUTOSCALER_IMAGES[kubernetesVersion];
  if (!autoscalerImage) {
    issues.push({
      code: 'config.no-autoscaler-image',
      path: 'kubernetesVersion',
      message: `has no known cluster-autoscaler release here (known: ${Object.keys(CLUSTER_AUTOSCALER_IMAGES).join(', ')})`,
      value: kubernetesVersion,
      fix: `pulumi config set --path versions.clusterAutoscalerImage v${kubernetesVersion}.0  (the autoscaler's minor must match the cluster's)`,
    });
  }
  const aws = f.aws ?? {};
  let network: AwsConfig['network'] | undefined;
  if (aws.subnetIds && (aws.vpcCidr || aws.availabilityZones)) {
    issues.push({ code: 'config.conflict', path: 'aws.subnetIds', message: 'cannot be combined with aws.vpcCidr / aws.availabilityZones (those describe a VPC this stack would create)', value: aws.subnetIds });
  } else if (aws.subnetIds) {
    network = { kind: 'subnets', subnetIds: aws.subnetIds };
  } else {
    const vpcCidr = aws.vpcCidr ?? '10.0.0.0/16';
    const prefix = Number(vpcCidr.split('/')[1]);
    if (prefix > 20) {
      issues.push({ code: 'config.vpc-too-small', path: 'aws.vpcCidr', message: 'must be /20 or larger: each zone gets one eighth of it for nodes and pods (the VPC CNI gives every pod a VPC address)', value: vpcCidr, fix: `pulumi config set --path aws.vpcCidr 10.0.0.0/16` });
    }
    const zones = aws.availabilityZones ?? (region ? [`${region}a`, `${region}b`] : []);
    if (zones.length > 8) {
      issues.push({ code: 'config.too-many-zones', path: 'aws.availabilityZones', message: 'at most 8 zones (the VPC is split in eighths)', value: zones });
    }
    network = { kind: 'create', vpcCidr, availabilityZones: zones };
  }

  const out: AwsGpuGroup[] = [];
  groups.forEach((g, i) => {
    if (!g) return;
    const at = `gpuNodeGroups[${i}]`;
    if (!g.instanceTypes || g.instanceTypes.length === 0) {
      issues.push({
        code: 'config.missing-instance-types',
        path: `${at}.instanceTypes`,
        message: 'is required with provider aws: the EC2 GPU instance types of this node group',
        fix: `pulumi config set --path '${at}.instanceTypes[0]' ${exampleInstanceFor(g.gpu)}`,
      });
      return;
    }
    let gpusPerNode = g.gpusPerNode;
    g.instanceTypes.forEach((type, j) => {
      const known = AWS_GPU_INSTANCES[type];
      if (!known) {
        if (g.gpusPerNode === undefined) {
          issues.push({
            code: 'config.unknown-instance-type',
            path: `${at}.instanceTypes[${j}]`,
            message: 'is not an NVIDIA GPU instance type this stack knows (g4dn, g5, g6, g6e, p4d, p4de, p5, p5e, p5en)',
            value: type,
            fix: didYouMean(type, Object.keys(AWS_GPU_INSTANCES)) ?? `if it is a GPU type, also set ${at}.gpusPerNode`,
          });
        }
        return;
      }
      if (!catalogueIdMatches(g.gpu, known.gpu)) {
        issues.push({
          code: 'config.gpu-mismatch',
          path: `${at}.gpu`,
          message: `does not match ${type}, which carries ${known.count}× ${known.gpu.model.toUpperCase()} ${known.gpu.memoryGb} GB; Jobs asking for "${g.gpu}" would never fit on these nodes`,
          value: g.gpu,
          fix: `pulumi config set --path '${at}.gpu' ${suggestedCatalogueId(known.gpu)}`,
        });
      }
      if (gpusPerNode === undefined) gpusPerNode = known.count;
      else if (known.count !== gpusPerNode) {
        issues.push({
          code: 'config.mixed-gpu-count',
          path: `${at}.instanceTypes[${j}]`,
          message: `has ${known.count} GPUs per node but the group's other types have ${gpusPerNode}; the autoscaler sizes an empty group from one node template, so all types must match`,
          value: type,
          fix: 'put instance types with different GPU counts in separate groups',
        });
      }
    });
    if (gpusPerNode === undefined) return;
    out.push({
      name: groupName(g),
      gpu: g.gpu,
      instanceTypes: g.instanceTypes,
      gpusPerNode,
      capacityType: g.capacityType ?? 'ON_DEMAND',
      minNodes: g.minNodes ?? 0,
      maxNodes: g.maxNodes ?? 2,
      diskSizeGb: g.diskSizeGb ?? 200,
    });
  });

  const base = common(f, groups.filter(isDefined), versions, 'aws');
  if (!region || !network || !base || !autoscalerImage || out.length !== groups.length) return undefined;
  return {
    ...base,
    provider: 'aws',
    region,
    kubernetesVersion,
    cpuNodes: {
      instanceTypes: cpu?.instanceTypes ?? ['m6i.xlarge'],
      minNodes: cpu?.minNodes ?? 1,
      maxNodes: cpu?.maxNodes ?? 3,
      diskSizeGb: cpu?.diskSizeGb ?? 100,
    },
    gpuNodeGroups: out,
    network,
    clusterAutoscalerImage: autoscalerImage,
  };
}

function exampleInstanceFor(gpu: string): string {
  const match = Object.entries(AWS_GPU_INSTANCES).find(([, m]) => catalogueIdMatches(gpu, m.gpu));
  return match?.[0] ?? 'g5.2xlarge';
}

function buildGcp(issues: Issue[], f: Partial<Fields>, groups: (GpuGroupRaw | undefined)[], versions: ChartVersions): GcpConfig | undefined {
  const region = requireRegion(issues, f, 'gcp');
  const gcp = f.gcp;
  if (f.storage?.nfs) {
    issues.push({ code: 'config.not-for-provider', path: 'storage.nfs', message: 'only applies to provider existing; gcp uses Filestore', value: f.storage.nfs, fix: 'pulumi config rm --path storage.nfs' });
  }
  const storageClass = f.storage?.storageClass ?? 'standard-rwx';
  if (!FILESTORE_CLASSES.includes(storageClass)) {
    issues.push({ code: 'config.not-filestore', path: 'storage.storageClass', message: `must be one of GKE's ReadWriteMany Filestore classes: ${FILESTORE_CLASSES.join(', ')}`, value: storageClass, fix: didYouMean(storageClass, FILESTORE_CLASSES) ?? 'pulumi config set --path storage.storageClass standard-rwx' });
  }
  if (f.storage?.size && bytes(f.storage.size) < bytes('1Ti')) {
    issues.push({ code: 'config.filestore-too-small', path: 'storage.size', message: 'Filestore instances start at 1 TiB (2.5 TiB for premium-rwx); a smaller claim is rounded up and billed as 1 TiB', value: f.storage.size, fix: `pulumi config set --path storage.size 1Ti` });
  }
  if (f.dcgmExporter?.serviceMonitor) {
    issues.push({ code: 'config.not-for-provider', path: 'dcgmExporter.serviceMonitor', message: 'has no effect on gcp: GKE exports DCGM metrics to Managed Service for Prometheus itself', value: true, fix: 'pulumi config rm --path dcgmExporter.serviceMonitor' });
  }
  const cpu = f.cpuNodes;
  if (cpu?.instanceTypes !== undefined) {
    issues.push({ code: 'config.not-for-provider', path: 'cpuNodes.instanceTypes', message: 'is the aws spelling; gcp CPU nodes take machineType', value: cpu.instanceTypes, fix: `pulumi config set --path cpuNodes.machineType e2-standard-4` });
  }
  const out: GcpGpuPool[] = [];
  groups.forEach((g, i) => {
    if (!g) return;
    const at = `gpuNodeGroups[${i}]`;
    let ok = true;
    if (!g.machineType) {
      ok = false;
      issues.push({ code: 'config.missing-machine-type', path: `${at}.machineType`, message: 'is required with provider gcp: the GCE machine type of this GPU pool', fix: `pulumi config set --path '${at}.machineType' g2-standard-8` });
    }
    if (!g.acceleratorType) {
      ok = false;
      issues.push({ code: 'config.missing-accelerator', path: `${at}.acceleratorType`, message: 'is required with provider gcp', fix: `pulumi config set --path '${at}.acceleratorType' nvidia-l4   (one of ${Object.keys(GCP_ACCELERATORS).join(', ')})` });
    }
    if (!g.machineType || !g.acceleratorType) return;
    const acc = GCP_ACCELERATORS[g.acceleratorType];
    if (!acc) {
      issues.push({ code: 'config.unknown-accelerator', path: `${at}.acceleratorType`, message: `is not a GKE NVIDIA accelerator type this stack knows (${Object.keys(GCP_ACCELERATORS).join(', ')})`, value: g.acceleratorType, ...optionalFix(didYouMean(g.acceleratorType, Object.keys(GCP_ACCELERATORS))) });
      return;
    }
    const fam = machineFamily(g.machineType);
    if (!acc.machineFamilies.includes(fam)) {
      ok = false;
      issues.push({ code: 'config.accelerator-machine-mismatch', path: `${at}.machineType`, message: `${g.acceleratorType} attaches only to ${acc.machineFamilies.join('/')} machine types`, value: g.machineType });
    }
    if (!catalogueIdMatches(g.gpu, acc.gpu)) {
      ok = false;
      issues.push({ code: 'config.gpu-mismatch', path: `${at}.gpu`, message: `does not match ${g.acceleratorType} (${acc.gpu.model.toUpperCase()} ${acc.gpu.memoryGb} GB); Jobs asking for "${g.gpu}" would never fit on these nodes`, value: g.gpu, fix: `pulumi config set --path '${at}.gpu' ${suggestedCatalogueId(acc.gpu)}` });
    }
    const builtIn = gcpBuiltInGpuCount(g.machineType);
    let count = g.acceleratorCount ?? builtIn;
    if (builtIn !== undefined && g.acceleratorCount !== undefined && g.acceleratorCount !== builtIn) {
      ok = false;
      issues.push({ code: 'config.accelerator-count', path: `${at}.acceleratorCount`, message: `${g.machineType} comes with exactly ${builtIn} GPU${builtIn === 1 ? '' : 's'}`, value: g.acceleratorCount, fix: `pulumi config rm --path '${at}.acceleratorCount'` });
    }
    if (count === undefined) {
      if (fam === 'n1') count = 1;
      else {
        ok = false;
        issues.push({ code: 'config.accelerator-count', path: `${at}.machineType`, message: 'is not an accelerator-optimized machine type whose GPU count this stack knows', value: g.machineType, fix: `set ${at}.acceleratorCount` });
      }
    }
    if (!ok || count === undefined) return;
    out.push({
      name: groupName(g),
      gpu: g.gpu,
      machineType: g.machineType,
      acceleratorType: g.acceleratorType,
      acceleratorCount: count,
      spot: g.spot ?? false,
      // GPUs exist in a few zones per region only: the group's zones, else the stack-wide gcp.zones.
      ...zonesOf(g.zones ?? gcp?.zones),
      minNodes: g.minNodes ?? 0,
      maxNodes: g.maxNodes ?? 2,
      diskSizeGb: g.diskSizeGb ?? 200,
    });
  });
  const base = common(f, groups.filter(isDefined), versions, 'gcp');
  if (!region || !gcp || !base || out.length !== groups.length || !FILESTORE_CLASSES.includes(storageClass)) return undefined;
  return {
    ...base,
    provider: 'gcp',
    project: gcp.project,
    region,
    location: gcp.location ?? region,
    ...(f.kubernetesVersion ? { kubernetesVersion: f.kubernetesVersion } : {}),
    releaseChannel: gcp.releaseChannel,
    network: gcp.network,
    ...(gcp.subnetwork ? { subnetwork: gcp.subnetwork } : {}),
    gpuDriverVersion: gcp.gpuDriverVersion,
    deletionProtection: gcp.deletionProtection,
    cpuNodes: {
      machineType: cpu?.machineType ?? 'e2-standard-4',
      minNodes: cpu?.minNodes ?? 1,
      maxNodes: cpu?.maxNodes ?? 3,
      diskSizeGb: cpu?.diskSizeGb ?? 100,
    },
    gpuNodeGroups: out,
    storageClass,
  };
}

function buildExisting(issues: Issue[], f: Partial<Fields>, groups: (GpuGroupRaw | undefined)[], versions: ChartVersions): ExistingConfig | undefined {
  const storage = f.storage;
  let resolved: ExistingConfig['storage'] | undefined;
  if (storage?.nfs && storage.storageClass) {
    issues.push({ code: 'config.conflict', path: 'storage', message: 'set either storage.storageClass (an existing ReadWriteMany class) or storage.nfs (an NFS export the stack provisions from), not both', value: storage });
  } else if (storage?.nfs) {
    resolved = { kind: 'nfs', ...storage.nfs };
  } else if (storage?.storageClass) {
    resolved = { kind: 'class', storageClass: storage.storageClass };
  } else if (storage) {
    issues.push({
      code: 'config.missing-storage',
      path: 'storage',
      message: 'needs a ReadWriteMany volume source with provider existing: every stage reads and writes one shared artifacts volume',
      fix: `pulumi config set --path storage.storageClass <rwx-class>   or   pulumi config set --path storage.nfs.server <host> && pulumi config set --path storage.nfs.share /export`,
    });
  }
  const base = common(f, groups.filter(isDefined), versions, 'existing');
  if (!base || !resolved || groups.some((g) => !g)) return undefined;
  return { ...base, provider: 'existing', devicePlugin: f.existing?.devicePlugin ?? true, kueue: f.existing?.kueue ?? true, storage: resolved };
}

function zonesOf(zones: readonly string[] | undefined): { zones?: readonly string[] } {
  return zones ? { zones } : {};
}

function isDefined<T>(v: T | undefined): v is T {
  return v !== undefined;
}

function bytes(quantity: string): number {
  const m = /^(\d+(?:\.\d+)?)([A-Za-z]*)$/.exec(quantity);
  if (!m) return Number.NaN;
  const unit: Record<string, number> = { '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60, m: 1e-3 };
  return Number(m[1]) * (unit[m[2] ?? ''] ?? Number.NaN);
}
