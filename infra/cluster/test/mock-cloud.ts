// Test double for the Pulumi engine's view of AWS, GCP and Kubernetes: records every resource the
// program registers and answers with plausible provider outputs (ARNs, endpoints, ASG names), so
// the real program runs end to end in-process with no CLI, cloud or cluster.
import * as pulumi from '@pulumi/pulumi';
import { loadStackConfig } from '../src/stack-config.ts';
import { type ClusterOutputs, defineCluster } from '../src/cluster.ts';

export const PROJECT = 'tunepipe-cluster';
export const STACK = 'test';

/** The signature Pulumi uses to mark a secret value in serialized resource inputs. */
const SECRET_SIG_KEY = '4dabf18193072939515e22adb298388d';
const SECRET_SIG = '1b47061264138c4ac30d75fd1eb44270';

export interface Registration {
  readonly type: string;
  readonly name: string;
  // Mocks hand back deserialized inputs: arbitrary JSON, with secrets wrapped (see isSecretValue).
  readonly inputs: Record<string, any>;
  /** `urn::id` of the explicit provider, when the resource has one. */
  readonly provider: string | undefined;
  readonly custom: boolean;
}

export class MockCloudDouble implements pulumi.runtime.Mocks {
  readonly registrations: Registration[] = [];
  readonly invokes: pulumi.runtime.MockCallArgs[] = [];

  newResource(args: pulumi.runtime.MockResourceArgs): pulumi.runtime.MockResourceResult {
    this.registrations.push({ type: args.type, name: args.name, inputs: args.inputs, provider: args.provider, custom: args.custom ?? false });
    return { id: `${args.name}-id`, state: { ...args.inputs, ...fakeOutputs(args) } };
  }

  call(args: pulumi.runtime.MockCallArgs): pulumi.runtime.MockCallResult {
    this.invokes.push(args);
    switch (args.token) {
      case 'aws:eks/getAddonVersion:getAddonVersion':
        return { ...args.inputs, id: 'addon', version: 'v2.1.10-eksbuild.1' };
      case 'aws:ec2/getSubnet:getSubnet':
        return { ...args.inputs, vpcId: 'vpc-0existing' };
      default:
        throw new Error(`MockCloudDouble: no fake for invoke ${args.token}`);
    }
  }

  ofType(type: string): Registration[] {
    return this.registrations.filter((r) => r.type === type);
  }

  /** The single registration of `type` (optionally with this name); fails the test otherwise. */
  one(type: string, name?: string): Registration {
    const found = this.ofType(type).filter((r) => name === undefined || r.name === name);
    if (found.length !== 1) {
      throw new Error(`expected one ${type}${name ? ` named ${name}` : ''}, found ${found.length}: ${found.map((r) => r.name).join(', ')}`);
    }
    return found[0]!;
  }

  /** Helm releases by chart name. */
  release(chart: string): Registration {
    const found = this.ofType('kubernetes:helm.sh/v3:Release').filter((r) => r.inputs['chart'] === chart);
    if (found.length !== 1) throw new Error(`expected one Helm release of ${chart}, found ${found.length}`);
    return found[0]!;
  }
}

function fakeOutputs(args: pulumi.runtime.MockResourceArgs): Record<string, unknown> {
  const inputs = args.inputs as Record<string, any>;
  switch (args.type) {
    case 'aws:iam/role:Role':
      return { name: args.name, arn: `arn:aws:iam::123456789012:role/${args.name}` };
    case 'aws:eks/cluster:Cluster':
      return {
        arn: `arn:aws:eks:us-east-1:123456789012:cluster/${inputs['name']}`,
        endpoint: 'https://0123456789ABCDEF.gr7.us-east-1.eks.amazonaws.com',
        certificateAuthority: { data: 'LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t' },
        vpcConfig: { ...inputs['vpcConfig'], clusterSecurityGroupId: 'sg-0cluster', vpcId: 'vpc-0created' },
      };
    case 'aws:eks/nodeGroup:NodeGroup':
      return { resources: [{ autoscalingGroups: [{ name: `eks-${inputs['nodeGroupName']}-0a1b2c` }], remoteAccessSecurityGroupId: '' }] };
    case 'gcp:container/cluster:Cluster':
      return { endpoint: '203.0.113.10', masterAuth: { clusterCaCertificate: 'LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t' } };
    default:
      return {};
  }
}

export function isSecretValue(v: unknown): boolean {
  return typeof v === 'object' && v !== null && (v as Record<string, unknown>)[SECRET_SIG_KEY] === SECRET_SIG;
}

/**
 * Where `needle` occurs as (part of) a plain string in `value`, outside any Pulumi secret
 * wrapper: each hit is a path such as `stringData.HF_TOKEN`.
 */
export function plaintextOccurrences(value: unknown, needle: string, path = ''): string[] {
  if (isSecretValue(value)) return [];
  if (typeof value === 'string') return value.includes(needle) ? [path || '(root)'] : [];
  if (Array.isArray(value)) return value.flatMap((v, i) => plaintextOccurrences(v, needle, `${path}[${i}]`));
  if (value && typeof value === 'object') {
    return Object.entries(value).flatMap(([k, v]) => plaintextOccurrences(v, needle, path ? `${path}.${k}` : k));
  }
  return [];
}

/** Resolves an Output's value (unknowns are not expected: mocks run as an update, not a preview). */
export function valueOf<T>(output: pulumi.Output<T>): Promise<T> {
  return new Promise((resolve) => output.apply((v) => resolve(v)));
}

/** Stack config as `pulumi config set` would store it: scalars as strings, structures as JSON. */
export function toConfigMap(config: Record<string, unknown>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(config).map(([k, v]) => [`${PROJECT}:${k}`, typeof v === 'string' ? v : JSON.stringify(v)]),
  );
}

/** Installs a fresh MockCloudDouble and the given stack config (secrets marked secret). */
export async function installMocks(config: Record<string, unknown>, secrets: Record<string, string>): Promise<MockCloudDouble> {
  const cloud = new MockCloudDouble();
  await pulumi.runtime.setMocks(cloud, PROJECT, STACK, false);
  const secretMap = toConfigMap(secrets);
  pulumi.runtime.setAllConfig({ ...toConfigMap(config), ...secretMap }, Object.keys(secretMap));
  return cloud;
}

/** Waits until every registration the program started has reached the mock. */
export async function settle(): Promise<void> {
  await pulumi.runtime.disconnect();
}

/** Runs the program (config load + defineCluster) against a fresh double and waits for it. */
export async function runStack(
  config: Record<string, unknown>,
  secrets: Record<string, string>,
): Promise<{ cloud: MockCloudDouble; outputs: ClusterOutputs; resolved: Record<string, unknown> }> {
  const cloud = await installMocks(config, secrets);
  const { config: parsed, secrets: secretOutputs } = loadStackConfig();
  const outputs = defineCluster(parsed, secretOutputs);
  const resolved: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(outputs)) {
    resolved[key] = pulumi.Output.isInstance(value) ? await valueOf(value) : value;
  }
  await settle();
  return { cloud, outputs, resolved };
}

// ---------------------------------------------------------------------------------------------
// Stack configs used across the tests (what users put in Pulumi.<stack>.yaml).

export const SECRETS = {
  vllmApiKey: 'vllm-key-5f2c9e0d1a',
  hfToken: 'hf_FAKEtokenForTests123',
  modelscopeToken: 'ms-FAKE-token-456',
} as const;

export const AWS_CONFIG = {
  provider: 'aws',
  region: 'us-east-1',
  clusterName: 'tunepipe-test',
  gpuNodeGroups: [
    { name: 'a10g', gpu: 'a10g', instanceTypes: ['g5.2xlarge', 'g5.4xlarge'], maxNodes: 3 },
    { name: 'h100', gpu: 'h100-80gb', instanceTypes: ['p5.48xlarge'], maxNodes: 1, capacityType: 'SPOT' },
  ],
  quota: { gpus: 8 },
} as const;

export const GCP_CONFIG = {
  provider: 'gcp',
  region: 'us-central1',
  clusterName: 'tunepipe-test',
  gcp: { project: 'tunepipe-dev', zones: ['us-central1-a'] },
  gpuNodeGroups: [{ name: 'l4', gpu: 'l4', machineType: 'g2-standard-8', acceleratorType: 'nvidia-l4', maxNodes: 4, zones: ['us-central1-a', 'us-central1-c'] }],
  quota: { gpus: 4 },
} as const;

export const EXISTING_CONFIG = {
  provider: 'existing',
  clusterName: 'gpu-box',
  gpuNodeGroups: [{ gpu: 'a100-80gb' }],
  quota: { gpus: 2 },
  storage: { storageClass: 'nfs-client', size: '2Ti' },
} as const;

export const KUBECONFIG = 'apiVersion: v1\nkind: Config\nusers:\n- name: admin\n  user:\n    token: kubeconfig-secret-token-789\n';
