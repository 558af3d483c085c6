import * as pulumi from '@pulumi/pulumi';
import * as k8s from '@pulumi/kubernetes';
import { CheckError, formatIssues, type CompiledPipeline } from '@tunepipe/core';
import { readClusterStack, type ClusterPlacement, type ClusterStack } from './cluster.ts';
import { PipelineDeployment, type DeployedStage } from './deployment.ts';
import { keyOf } from './objects.ts';
import { checkCompiled, type DeploymentOptions } from './plan.ts';
import { findMissingSecretRefs } from './secrets.ts';
import { parseSettings, type Settings } from './settings.ts';

/**
 * Compiles one pipeline exactly as `tunepipe synth` does (the workspace's pipeline and context
 * loaders), with the cluster's placement laid over the context. Throws a CheckError for problems
 * in the pipeline.
 */
export type CompilePipeline = (pipeline: string, placement: ClusterPlacement) => CompiledPipeline | Promise<CompiledPipeline>;

export interface PipelinesStackOutputs {
  readonly namespace: string;
  readonly queueName: string | null;
  readonly pipelines: Readonly<Record<string, { readonly stages: Readonly<Record<string, DeployedStage>> }>>;
}

/**
 * The pipelines stack: reads `tunepipe:*` config and the cluster stack, compiles the selected
 * pipelines and deploys each as a PipelineDeployment. Every problem in config, cluster outputs or
 * pipelines stops the program with one message listing all of them, before any Kubernetes object
 * is registered.
 */
export async function pipelinesProgram(compilePipeline: CompilePipeline): Promise<PipelinesStackOutputs> {
  const { settings, issues: configIssues } = parseSettings(pulumi.runtime.allConfig());
  if (!settings) throw stop([new CheckError('tunepipe pipelines stack config', configIssues)]);

  const { placement, kubeconfig, secretKeys } = await clusterOf(settings);
  const options: DeploymentOptions = {
    queueName: placement.queueName,
    factor: settings.timeoutFactor,
    startupAllowanceSeconds: settings.startupAllowanceSeconds,
  };

  const problems: CheckError[] = [];
  const compiled: CompiledPipeline[] = [];
  for (const name of settings.pipelines) {
    try {
      const pipeline = await compilePipeline(name, placement);
      const issues = checkCompiled(pipeline, options);
      if (secretKeys) issues.push(...findMissingSecretRefs(pipeline.objects, secretKeys));
      if (pipeline.pipeline !== name) {
        issues.push({ code: 'pulumi.pipeline-name', path: `pipelines/${name}`, value: pipeline.pipeline, message: `the pipeline in folder ${name} is named ${pipeline.pipeline}`, fix: 'name the folder after the pipeline' });
      }
      if (placement.namespace !== undefined && pipeline.namespace !== placement.namespace) {
        issues.push({ code: 'pulumi.pipeline-namespace', path: `pipelines/${name}`, value: pipeline.namespace, message: `compiled for namespace ${pipeline.namespace}, but the cluster's is ${placement.namespace}` });
      }
      if (issues.length > 0) problems.push(new CheckError(`pipeline ${name}`, issues));
      else compiled.push(pipeline);
    } catch (error) {
      if (!(error instanceof CheckError)) throw error;
      problems.push(error);
    }
  }
  problems.push(...clashesBetween(compiled));
  if (problems.length > 0) throw stop(problems);

  const provider = kubeconfig ? new k8s.Provider('tunepipe-cluster', { kubeconfig }) : undefined;
  const pipelines: Record<string, { stages: Readonly<Record<string, DeployedStage>> }> = {};
  const deployments: PipelineDeployment[] = [];
  for (const pipeline of compiled) {
    const deployment = new PipelineDeployment(pipeline.pipeline, { compiled: pipeline, ...options }, provider ? { providers: [provider] } : {});
    pipelines[pipeline.pipeline] = { stages: deployment.stages };
    deployments.push(deployment);
  }
  // The program ends only when every Job has finished, and fails with the first failed stage's own
  // error. Left to surface as an uncaught error only, a failure reached the engine after the
  // Automation API's inline runner had already told it the program was complete — and the engine
  // then deleted everything the failure kept from being registered (the serving endpoint among
  // them) as if it had been removed from the pipeline (found by test/real/pulumi). In a preview
  // the outcomes are unknown and this returns at once.
  await Promise.all(deployments.map((d) => settled(d.jobsSucceeded)));
  return {
    namespace: compiled[0]?.namespace ?? placement.namespace ?? 'tunepipe',
    queueName: placement.queueName ?? null,
    pipelines,
  };
}

/** Explicit config wins over the cluster stack's outputs; what neither sets is left to the compiler's defaults. */
async function clusterOf(settings: Settings): Promise<{
  placement: ClusterPlacement;
  kubeconfig: pulumi.Output<string> | undefined;
  secretKeys: ClusterStack['secretKeys'];
}> {
  const explicit: ClusterPlacement = {
    ...(settings.namespace !== undefined ? { namespace: settings.namespace } : {}),
    ...(settings.artifactsClaim !== undefined ? { artifactsClaim: settings.artifactsClaim } : {}),
    ...(settings.queueName !== undefined ? { queueName: settings.queueName } : {}),
  };
  if (settings.clusterStack === undefined) return { placement: explicit, kubeconfig: undefined, secretKeys: undefined };

  const reference = new pulumi.StackReference('tunepipe-cluster', { name: settings.clusterStack });
  const required = (['namespace', 'artifactsClaim'] as const).filter((key) => explicit[key] === undefined);
  const { cluster, issues } = await readClusterStack(reference, settings.clusterStack, required);
  if (issues.length > 0) throw stop([new CheckError(`cluster stack ${settings.clusterStack}`, issues)]);
  const placement = { ...cluster.placement, ...explicit };
  return { placement, kubeconfig: cluster.kubeconfig, secretKeys: cluster.secretKeys };
}

/** Pulumi URNs are type + name, so two pipelines must not emit the same object name (e.g. `a` + `b-serve` and `a-b` + `serve`). */
function clashesBetween(compiled: readonly CompiledPipeline[]): CheckError[] {
  const owner = new Map<string, string>();
  const issues = compiled.flatMap((pipeline) =>
    pipeline.objects.flatMap((object) => {
      const key = keyOf(object);
      if (!key) return [];
      const other = owner.get(key);
      owner.set(key, pipeline.pipeline);
      return other !== undefined && other !== pipeline.pipeline
        ? [{ code: 'pulumi.pipeline-clash', path: `pipelines/${pipeline.pipeline}`, value: key, message: `${key} is also an object of pipeline ${other}`, fix: 'rename one of the pipelines or stages' }]
        : [];
    }),
  );
  return issues.length > 0 ? [new CheckError('pipelines of this stack', issues)] : [];
}

/** The value of an Output as a promise that also rejects (the SDK's `promise()`, left out of its typings). */
function settled<T>(output: pulumi.Output<T>): Promise<T> {
  return (output as unknown as { promise(): Promise<T> }).promise();
}

/** RunError: Pulumi prints its message without a stack trace. */
function stop(problems: readonly CheckError[]): pulumi.RunError {
  const count = problems.reduce((n, p) => n + p.issues.length, 0);
  const sections = problems.map((p) => `${p.message.split('\n')[0]}\n${formatIssues(p.issues)}`);
  return new pulumi.RunError(`tunepipe: ${count} problem${count === 1 ? '' : 's'}; nothing was deployed\n\n${sections.join('\n\n')}`);
}
