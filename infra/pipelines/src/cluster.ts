import * as pulumi from '@pulumi/pulumi';
import { z } from 'zod';
import type { Issue } from '@tunepipe/core';

/** Output names of the `infra/cluster` stack (its index.ts exports), by the compile context field each feeds. */
export const CLUSTER_OUTPUTS = {
  namespace: 'namespace',
  artifactsClaim: 'artifactsPvc',
  /** The Kueue LocalQueue; absent when the cluster runs no Kueue. */
  queueName: 'localQueue',
  /** A secret output; absent for clusters reached through the ambient kubeconfig. */
  kubeconfig: 'kubeconfig',
  /** Optional: `{ <Secret name>: [<key>, …] }` of the Secrets it created (names only, never values). */
  secretKeys: 'secretKeys',
} as const;

/** What the pipelines need from the cluster: the compile context fields that place objects. */
export interface ClusterPlacement {
  readonly namespace?: string;
  readonly artifactsClaim?: string;
  readonly queueName?: string;
}

export interface ClusterStack {
  readonly placement: ClusterPlacement;
  /** Kept as a secret Output end to end: it never becomes a plain value in this program or its state. */
  readonly kubeconfig: pulumi.Output<string> | undefined;
  /** Secrets (and their keys) pods may reference; `undefined` when the cluster stack does not say. */
  readonly secretKeys: Readonly<Record<string, readonly string[]>> | undefined;
}

const SecretKeysSchema = z.record(z.string().min(1), z.array(z.string().min(1)));

/** Reads the cluster stack's outputs; every missing or malformed one is an issue. */
export async function readClusterStack(
  reference: pulumi.StackReference,
  stackName: string,
  /** Outputs this stack cannot do without (those not set in its own config). */
  required: readonly ('namespace' | 'artifactsClaim')[] = ['namespace', 'artifactsClaim'],
): Promise<{ cluster: ClusterStack; issues: Issue[] }> {
  const issues: Issue[] = [];
  const text = async (field: keyof ClusterPlacement, required: boolean): Promise<string | undefined> => {
    const output = CLUSTER_OUTPUTS[field];
    const details = await reference.getOutputDetails(output);
    const value = details.value ?? details.secretValue;
    if (value === undefined) {
      if (required) {
        issues.push({
          code: 'pulumi.cluster-output',
          path: `tunepipe:clusterStack`,
          value: stackName,
          message: `the cluster stack exports no '${output}'`,
          fix: `run pulumi up in infra/cluster for ${stackName}, or set tunepipe:${field} in this stack`,
        });
      }
      return undefined;
    }
    if (typeof value !== 'string' || value === '') {
      issues.push({
        code: 'pulumi.cluster-output',
        path: `${stackName}#${output}`,
        value,
        message: `the cluster stack output '${output}' must be a non-empty string`,
      });
      return undefined;
    }
    return value;
  };

  const [namespace, artifactsClaim, queueName] = await Promise.all([
    text('namespace', required.includes('namespace')),
    text('artifactsClaim', required.includes('artifactsClaim')),
    text('queueName', false),
  ]);
  const hasKubeconfig = (await reference.getOutputDetails(CLUSTER_OUTPUTS.kubeconfig)) as { value?: unknown; secretValue?: unknown };
  const kubeconfig =
    hasKubeconfig.value !== undefined || hasKubeconfig.secretValue !== undefined
      ? pulumi.secret(reference.requireOutput(CLUSTER_OUTPUTS.kubeconfig).apply((k) => (typeof k === 'string' ? k : JSON.stringify(k))))
      : undefined;
  const secretKeysDetails = await reference.getOutputDetails(CLUSTER_OUTPUTS.secretKeys);
  let secretKeys: Record<string, string[]> | undefined;
  if (secretKeysDetails.value !== undefined) {
    const parsed = SecretKeysSchema.safeParse(secretKeysDetails.value);
    if (parsed.success) secretKeys = parsed.data;
    else {
      issues.push({
        code: 'pulumi.cluster-output',
        path: `${stackName}#${CLUSTER_OUTPUTS.secretKeys}`,
        value: secretKeysDetails.value,
        message: `the cluster stack output '${CLUSTER_OUTPUTS.secretKeys}' must map Secret names to lists of keys`,
      });
    }
  }
  return {
    cluster: {
      placement: {
        ...(namespace !== undefined ? { namespace } : {}),
        ...(artifactsClaim !== undefined ? { artifactsClaim } : {}),
        ...(queueName !== undefined ? { queueName } : {}),
      },
      kubeconfig,
      secretKeys,
    },
    issues,
  };
}
