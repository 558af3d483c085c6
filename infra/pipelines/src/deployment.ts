import * as pulumi from '@pulumi/pulumi';
import * as k8s from '@pulumi/kubernetes';
import { GATE_FAILED_EXIT_CODE, type CompiledPipeline } from '@tunepipe/core';
import type { KubeKind, ResourceKey } from './objects.ts';
import { planDeployment, type DependencyEdge, type DeploymentOptions, type DeploymentPlan, type PlannedResource } from './plan.ts';
import { pulumiDuration } from './timeouts.ts';

export const PIPELINE_DEPLOYMENT_TYPE = 'tunepipe:pipelines:PipelineDeployment';

export interface PipelineDeploymentArgs extends DeploymentOptions {
  /** What `compile()` returned for the pipeline; deployed as is, object for object. */
  readonly compiled: CompiledPipeline;
}

/** What a deployed stage looks like from outside, for stack outputs. */
export interface DeployedStage {
  readonly kind: string;
  readonly hash: string;
  /** `Job/<name>` or `Deployment/<name>`. */
  readonly workload: ResourceKey;
  readonly dependsOn: readonly string[];
  readonly timeoutSeconds: number;
  readonly artifactPath?: string;
}

/**
 * One pipeline deployed with `pulumi up`: every compiled object as its typed Kubernetes resource,
 * named by `metadata.name`, with `dependsOn` following the pipeline graph so Jobs run in order and
 * `pulumi up` waits for each. Unchanged stages keep their content-hash names and are no-ops.
 */
export class PipelineDeployment extends pulumi.ComponentResource {
  readonly plan: DeploymentPlan;
  /** The registered resources by `Kind/name`. */
  readonly resources: ReadonlyMap<ResourceKey, pulumi.CustomResource>;
  /** The resource options each resource was registered with, by `Kind/name`. */
  readonly resourceOptions: ReadonlyMap<ResourceKey, pulumi.CustomResourceOptions>;
  /** The resources each resource was registered to depend on, by `Kind/name`. */
  readonly dependencies: ReadonlyMap<ResourceKey, readonly pulumi.CustomResource[]>;
  /** The `dependsOn` edges exactly as handed to Pulumi, read back from `dependencies`. */
  readonly registeredEdges: readonly DependencyEdge[];
  readonly stages: Readonly<Record<string, DeployedStage>>;
  /**
   * Resolves once every Job of this update has finished successfully; rejects with a RunError
   * naming the stage and Kubernetes' reason when one failed (see JOB_FINISHED in plan.ts).
   */
  readonly jobsSucceeded: pulumi.Output<readonly string[]>;

  constructor(name: string, args: PipelineDeploymentArgs, opts: pulumi.ComponentResourceOptions = {}) {
    // Planning throws before the component registers, so a pipeline that cannot be deployed registers nothing.
    const plan = planDeployment(args.compiled, args);
    super(PIPELINE_DEPLOYMENT_TYPE, name, {}, opts);
    this.plan = plan;

    const resources = new Map<ResourceKey, pulumi.CustomResource>();
    const keys = new Map<pulumi.Resource, ResourceKey>();
    const resourceOptions = new Map<ResourceKey, pulumi.CustomResourceOptions>();
    const dependencies = new Map<ResourceKey, pulumi.CustomResource[]>();
    const succeeded = new Map<ResourceKey, pulumi.Output<string>>();
    /** Every Job a resource depends on, directly or through other resources. */
    const upstreamJobs = new Map<ResourceKey, Set<ResourceKey>>();
    const stageOfObject = new Map(args.compiled.stages.flatMap((s) => s.objects.map((o) => [`${o.kind}/${o.metadata?.name}`, s.name] as const)));
    for (const planned of plan.resources) {
      const dependsOn = planned.dependsOn.map((key) => {
        const dependency = resources.get(key);
        // Edges always point to objects earlier in apply order; anything else is a bug in the plan.
        if (!dependency) throw new Error(`internal: ${planned.key} depends on ${key}, which is not registered before it`);
        return dependency;
      });
      // A Job's wait ends when it finished either way: what depends on it waits for its success too,
      // so nothing downstream starts after a failed stage (the update fails with the Job's reason).
      // Every Job upstream counts, not only direct ones: a resource whose dependency was never
      // registered (because a Job before it failed) would otherwise wait for it forever, and so
      // would the program (the SDK settles a resource's outputs only once it is registered).
      const jobs = new Set<ResourceKey>();
      for (const key of planned.dependsOn) {
        if (succeeded.has(key)) jobs.add(key);
        for (const job of upstreamJobs.get(key) ?? []) jobs.add(job);
      }
      upstreamJobs.set(planned.key, jobs);
      const gates = [...jobs].map((key) => succeeded.get(key)!);
      const options: pulumi.CustomResourceOptions = {
        parent: this,
        dependsOn: gates.length === 0 ? dependsOn : pulumi.all(gates).apply(() => dependsOn),
        // Every name is fixed (never auto-named): a replacement must delete the old object first
        // or the create fails with "already exists".
        deleteBeforeReplace: true,
        ...(planned.timeoutSeconds !== undefined
          ? { customTimeouts: { create: pulumiDuration(planned.timeoutSeconds), update: pulumiDuration(planned.timeoutSeconds) } }
          : {}),
        ...(planned.ignoreChanges.length > 0 ? { ignoreChanges: [...planned.ignoreChanges] } : {}),
      };
      const resource = register(planned, options);
      resources.set(planned.key, resource);
      keys.set(resource, planned.key);
      resourceOptions.set(planned.key, options);
      dependencies.set(planned.key, dependsOn);
      if (planned.kind === 'Job') {
        const stage = stageOfObject.get(planned.key) ?? planned.name;
        succeeded.set(planned.key, jobSucceeded(resource as k8s.batch.v1.Job, { pipeline: args.compiled.pipeline, stage, job: planned.name, namespace: plan.namespace }));
      }
    }
    this.resources = resources;
    this.resourceOptions = resourceOptions;
    this.dependencies = dependencies;
    this.registeredEdges = [...dependencies].flatMap(([from, list]) => list.map((d) => ({ from, to: keys.get(d)! })));
    // A failed leaf Job (nothing depends on it) fails the update too: an exception in an apply that
    // nothing consumes is reported by the language runtime like any uncaught error, as a RunError
    // without a stack. (Not in registerOutputs: serializing would prefix the message.)
    this.jobsSucceeded = pulumi.all([...succeeded.values()]);

    const timeouts = new Map(plan.resources.map((r) => [r.key, r.timeoutSeconds]));
    this.stages = Object.fromEntries(
      args.compiled.stages.map((s) => {
        // A JobSet workload never gets here: checkCompiled rejects its object (pulumi.object-kind).
        const workload = `${s.workload.kind}/${s.workload.name}` as ResourceKey;
        const stage: DeployedStage = {
          kind: s.kind,
          hash: s.hash,
          workload,
          dependsOn: s.dependsOn,
          timeoutSeconds: timeouts.get(workload) ?? 0,
          ...(s.artifactPath !== undefined ? { artifactPath: s.artifactPath } : {}),
        };
        return [s.name, stage];
      }),
    );
    this.registerOutputs({ namespace: plan.namespace, stages: this.stages });
  }
}

export interface JobWhere {
  readonly pipeline: string;
  readonly stage: string;
  readonly job: string;
  readonly namespace: string;
}

export interface JobCondition {
  readonly type?: string;
  readonly status?: string;
  readonly reason?: string;
  readonly message?: string;
}

/**
 * The Job's name once its live status says it succeeded; a RunError (printed without a stack trace)
 * with the stage and Kubernetes' reason once it says it failed. In a preview the status is unknown
 * and so is this, which keeps dependents waiting on the Job exactly as `dependsOn` alone would.
 */
export function jobSucceeded(job: k8s.batch.v1.Job, where: JobWhere): pulumi.Output<string> {
  return job.status.apply((status) => checkJobStatus(status as { conditions?: JobCondition[] } | undefined, where));
}

/** The Job's name when its status has no Failed condition; throws the RunError of jobFailureMessage otherwise. */
export function checkJobStatus(status: { conditions?: readonly JobCondition[] } | undefined, where: JobWhere): string {
  const failed = status?.conditions?.find((c) => c.type === 'Failed' && c.status === 'True');
  if (failed) throw new pulumi.RunError(jobFailureMessage(where, failed));
  return where.job;
}

export function jobFailureMessage(where: JobWhere, failed: JobCondition): string {
  // The FailJob rule on the gate's exit code is the compiler's: say what it means.
  const gate = failed.reason === 'PodFailurePolicy' && new RegExp(`exit code ${GATE_FAILED_EXIT_CODE}\\b`).test(failed.message ?? '');
  return [
    `pipeline ${where.pipeline}: stage ${where.stage} failed — Job ${where.job}: ${failed.reason ?? 'Failed'}${failed.message ? `: ${failed.message}` : ''}`,
    ...(gate ? [`  Exit code ${GATE_FAILED_EXIT_CODE} is a failed evaluation gate: the model did not meet its thresholds (the verdicts are in the pod's log).`] : []),
    `  The stages after it were not started. See \`kubectl -n ${where.namespace} logs job/${where.job} --all-containers\`; fix the cause and run \`pulumi up\` again:`,
    `  the failed Job is replaced and runs again (pulumi.com/replaceUnready).`,
  ].join('\n');
}

function register(planned: PlannedResource, opts: pulumi.CustomResourceOptions): pulumi.CustomResource {
  // The typed classes set apiVersion and kind themselves; checkCompiled made sure they agree.
  const { apiVersion: _apiVersion, kind: _kind, ...args } = planned.object;
  const kind: KubeKind = planned.kind;
  switch (kind) {
    case 'ConfigMap':
      return new k8s.core.v1.ConfigMap(planned.name, args as k8s.core.v1.ConfigMapArgs, opts);
    case 'Secret':
      return new k8s.core.v1.Secret(planned.name, args as k8s.core.v1.SecretArgs, opts);
    case 'PersistentVolumeClaim':
      return new k8s.core.v1.PersistentVolumeClaim(planned.name, args as k8s.core.v1.PersistentVolumeClaimArgs, opts);
    case 'Service':
      return new k8s.core.v1.Service(planned.name, args as k8s.core.v1.ServiceArgs, opts);
    case 'Job':
      return new k8s.batch.v1.Job(planned.name, args as k8s.batch.v1.JobArgs, opts);
    case 'Deployment':
      return new k8s.apps.v1.Deployment(planned.name, args as k8s.apps.v1.DeploymentArgs, opts);
  }
}
