import { ANNOTATIONS, CheckError, LABELS, type CompiledPipeline, type CompiledStage, type Issue, type KubeObject } from '@tunepipe/core';
import { KIND_RULES, isKubeKind, keyOf, resourceKey, type KubeKind, type ResourceKey } from './objects.ts';
import { findSecretLiterals } from './secrets.ts';
import { workloadTimeoutSeconds, type TimeoutPolicy } from './timeouts.ts';

/**
 * Makes the provider replace a Job that failed in an earlier `pulumi up` instead of waiting on it
 * again: a content-addressed Job keeps its name until its inputs change, so without this a failed
 * Job would block every later update.
 */
export const REPLACE_UNREADY_ANNOTATION = 'pulumi.com/replaceUnready';

/**
 * What `pulumi up` waits for on a Job: either terminal condition, Complete or Failed.
 *
 * The Kubernetes provider's built-in Job await gives up early only when a Job failed with
 * `BackoffLimitExceeded` or `DeadlineExceeded`. A Job ended by a podFailurePolicy `FailJob` rule
 * (reason `PodFailurePolicy`: a failed evaluation gate exits 3) was waited on until the stage's
 * timeout — up to hours — and then reported as a bare timeout (found by the real-tools tier,
 * test/real/pulumi). With this annotation the wait ends on either outcome, and PipelineDeployment
 * fails the update with the Job's own reason before anything downstream starts.
 */
export const WAIT_FOR_ANNOTATION = 'pulumi.com/waitFor';
export const JOB_FINISHED = "jsonpath={.status.conditions[?(@.type=='Complete'||@.type=='Failed')].status}=True";

/** How one compiled pipeline is deployed. */
export interface DeploymentOptions extends TimeoutPolicy {
  /** Kueue LocalQueue GPU Jobs are submitted to; `undefined` when the cluster runs no Kueue. @default undefined */
  readonly queueName?: string | undefined;
}

/** One compiled object as Pulumi registers it. */
export interface PlannedResource {
  readonly key: ResourceKey;
  readonly kind: KubeKind;
  /** `metadata.name`, also the Pulumi resource name: content-hash names make unchanged stages no-ops. */
  readonly name: string;
  readonly namespace: string | undefined;
  /** The stage the object belongs to; `undefined` for objects the pipeline shares. */
  readonly stage: string | undefined;
  /** Whether this is its stage's workload (the Job, or the serve Deployment). */
  readonly workload: boolean;
  /** The compiled object plus what only Pulumi needs: queue label, timeout, replace-unready and wait-for annotations. */
  readonly object: KubeObject;
  /** Resources this one waits for. */
  readonly dependsOn: readonly ResourceKey[];
  /** How long `pulumi up` waits for a workload to finish (Job) or become available (Deployment). */
  readonly timeoutSeconds: number | undefined;
  /** Fields other controllers own, which Pulumi must not fight over. */
  readonly ignoreChanges: readonly string[];
}

/** `from` is created only after `to` is ready. */
export interface DependencyEdge {
  readonly from: ResourceKey;
  readonly to: ResourceKey;
}

export interface DeploymentPlan {
  readonly pipeline: string;
  readonly namespace: string;
  /** Every compiled object, in the compiled apply order. */
  readonly resources: readonly PlannedResource[];
  readonly edges: readonly DependencyEdge[];
}

/**
 * The dependency edges `pulumi up` must follow so Jobs run in the pipeline's graph order:
 * - a stage's workload waits for the workloads of the stages it reads from (`stage.dependsOn`);
 * - a stage's workload waits for the stage's objects listed before it (its ConfigMaps), and the
 *   ones listed after it (the serve Service) wait for the workload, so nothing sits in Pulumi's
 *   readiness wait while upstream stages still run;
 * - a workload waits for shared objects listed before it in `compiled.objects`.
 * Pure; assumes `compiled` passed `checkCompiled`.
 */
export function dependencyEdges(compiled: CompiledPipeline): DependencyEdge[] {
  const edges: DependencyEdge[] = [];
  const byName = new Map(compiled.stages.map((s) => [s.name, s]));
  const owner = stageOwners(compiled);
  const position = new Map<ResourceKey, number>();
  compiled.objects.forEach((o, i) => {
    const key = keyOf(o);
    if (key) position.set(key, i);
  });

  for (const stage of compiled.stages) {
    const workload = workloadKey(stage);
    for (const upstream of stage.dependsOn) edges.push({ from: workload, to: workloadKey(byName.get(upstream)!) });
    const own = stage.objects.map(keyOf).filter((k): k is ResourceKey => k !== undefined);
    const at = own.indexOf(workload);
    own.forEach((key, i) => {
      if (i < at) edges.push({ from: workload, to: key });
      else if (i > at) edges.push({ from: key, to: workload });
    });
    const workloadPosition = position.get(workload) ?? -1;
    for (const [key, i] of position) {
      if (!owner.has(key) && i < workloadPosition) edges.push({ from: workload, to: key });
    }
  }
  return edges;
}

/**
 * Every reason the compiled pipeline cannot be deployed as is; empty when it can. The stage graph
 * (valid, topological) and unique object names are compile()'s guarantees, not checked again.
 */
export function checkCompiled(compiled: CompiledPipeline, options: DeploymentOptions = {}): Issue[] {
  const issues: Issue[] = [];
  const seen = new Set<ResourceKey>();

  compiled.objects.forEach((object, i) => {
    const at = `objects[${i}]`;
    const name = object.metadata?.name;
    if (!isKubeKind(object.kind)) {
      issues.push({
        code: 'pulumi.object-kind',
        path: `${at}.kind`,
        value: object.kind,
        message: 'this kind has no typed resource in the pipelines stack',
        fix: `compile only ${Object.keys(KIND_RULES).join(', ')} objects, or add the kind to infra/pipelines/src/objects.ts`,
      });
      return;
    }
    const rule = KIND_RULES[object.kind];
    if (object.apiVersion !== rule.apiVersion) {
      issues.push({
        code: 'pulumi.object-api-version',
        path: `${at}.apiVersion`,
        value: object.apiVersion,
        message: `${object.kind} is registered as ${rule.apiVersion}`,
        fix: `emit apiVersion ${rule.apiVersion}`,
      });
    }
    if (!name) {
      issues.push({ code: 'pulumi.object-name', path: `${at}.metadata.name`, message: 'every object needs a name (Pulumi must not auto-name it)' });
      return;
    }
    const key = resourceKey(object.kind, name);
    seen.add(key);
    const namespace = object.metadata?.namespace;
    if (namespace !== compiled.namespace) {
      issues.push({
        code: 'pulumi.object-namespace',
        path: `objects.${key}.metadata.namespace`,
        value: namespace,
        message: `every object of pipeline ${compiled.pipeline} belongs in namespace ${compiled.namespace}`,
        fix: `set metadata.namespace to ${JSON.stringify(compiled.namespace)}`,
      });
    }
    const extra = Object.keys(object).filter((f) => f !== 'apiVersion' && f !== 'kind' && !rule.fields.includes(f));
    if (extra.length > 0) {
      issues.push({
        code: 'pulumi.object-field',
        path: `objects.${key}`,
        value: extra,
        message: `the typed ${object.kind} resource has no field ${extra.join(', ')}; Pulumi would drop it`,
        fix: `emit only ${rule.fields.join(', ')}`,
      });
    }
  });

  for (const stage of compiled.stages) {
    const at = `stages.${stage.name}`;
    if (!Number.isFinite(stage.expectedSeconds) || stage.expectedSeconds <= 0) {
      issues.push({
        code: 'pulumi.expected-seconds',
        path: `${at}.expectedSeconds`,
        value: stage.expectedSeconds,
        message: 'the expected run time sets how long pulumi up waits; it must be a positive number of seconds',
      });
    }
    const workload = workloadKey(stage);
    const own = stage.objects.map(keyOf);
    if (!own.includes(workload)) {
      issues.push({
        code: 'pulumi.stage-workload',
        path: `${at}.workload`,
        value: workload,
        message: `the workload ${workload} is not among the stage's objects`,
      });
    }
    stage.objects.forEach((object, i) => {
      const key = keyOf(object);
      if (!key) return;
      if (!seen.has(key)) {
        issues.push({
          code: 'pulumi.stage-object-missing',
          path: `${at}.objects[${i}]`,
          value: key,
          message: `${key} belongs to stage ${stage.name} but is not in compiled.objects, which is what gets deployed`,
        });
      }
    });
  }

  issues.push(...queueIssues(compiled, options.queueName));
  issues.push(...findSecretLiterals(compiled.objects));
  return issues;
}

/**
 * Kueue admits only Jobs that carry its queue label, and only GPU stages need admission:
 * a CPU stage queued behind GPU quota would wait for nothing.
 */
function queueIssues(compiled: CompiledPipeline, queueName: string | undefined): Issue[] {
  const issues: Issue[] = [];
  const gpuJobs = new Set(
    compiled.stages.filter((s) => s.gpus > 0 && s.workload.kind === 'Job').map((s) => resourceKey('Job', s.workload.name)),
  );
  for (const object of compiled.objects) {
    const key = keyOf(object);
    const label = object.metadata?.labels?.[LABELS.kueueQueue];
    if (!key || label === undefined) continue;
    const path = `objects.${key}.metadata.labels["${LABELS.kueueQueue}"]`;
    if (!gpuJobs.has(key)) {
      issues.push({
        code: 'pulumi.queue-label',
        path,
        value: label,
        message: 'only the Jobs of GPU stages are submitted to the Kueue queue',
        fix: 'remove the label from this object',
      });
    } else if (queueName === undefined) {
      issues.push({
        code: 'pulumi.queue-label',
        path,
        value: label,
        message: 'the Job names a Kueue queue but no queue is configured for this deployment, so it could wait forever',
        fix: 'set tunepipe:queueName (or deploy with a cluster stack that exports localQueue), or compile without queueName',
      });
    } else if (label !== queueName) {
      issues.push({
        code: 'pulumi.queue-label',
        path,
        value: label,
        message: `the Job names queue ${JSON.stringify(label)} but the cluster's queue is ${JSON.stringify(queueName)}`,
        fix: 'compile with the same queueName the deployment uses',
      });
    }
  }
  return issues;
}

/**
 * Maps a compiled pipeline to the resources Pulumi registers: exactly the objects of
 * `compiled.objects`, none added or left out, each carrying only the Pulumi-specific metadata
 * (queue label, timeout and replace-unready annotations) on top. Throws a CheckError listing every
 * problem when the pipeline cannot be deployed.
 */
export function planDeployment(compiled: CompiledPipeline, options: DeploymentOptions = {}): DeploymentPlan {
  const issues = checkCompiled(compiled, options);
  if (issues.length > 0) throw new CheckError(`cannot deploy pipeline ${compiled.pipeline}`, issues);

  const edges = dependencyEdges(compiled);
  const owners = stageOwners(compiled);
  const stagesByWorkload = new Map(compiled.stages.map((s) => [workloadKey(s), s]));

  const resources = compiled.objects.map((source): PlannedResource => {
    const key = keyOf(source)!;
    const kind = source.kind as KubeKind;
    const stage = stagesByWorkload.get(key);
    const queued = stage !== undefined && kind === 'Job' && stage.gpus > 0 && options.queueName !== undefined;
    const timeoutSeconds = stage ? Math.max(workloadTimeoutSeconds(stage, source, options), compiledTimeoutSeconds(source)) : undefined;
    return {
      key,
      kind,
      name: source.metadata!.name!,
      namespace: source.metadata?.namespace,
      stage: owners.get(key),
      workload: stage !== undefined,
      object: withDeploymentMetadata(source, { timeoutSeconds, replaceUnready: kind === 'Job', queueName: queued ? options.queueName : undefined }),
      dependsOn: edges.filter((e) => e.from === key).map((e) => e.to),
      timeoutSeconds,
      // Kueue suspends a queued Job on creation and resumes it on admission.
      ignoreChanges: queued ? ['spec.suspend'] : [],
    };
  });
  return { pipeline: compiled.pipeline, namespace: compiled.namespace, resources, edges };
}

function withDeploymentMetadata(
  source: KubeObject,
  add: { timeoutSeconds: number | undefined; replaceUnready: boolean; queueName: string | undefined },
): KubeObject {
  if (add.timeoutSeconds === undefined && !add.replaceUnready && add.queueName === undefined) return source;
  const object = structuredClone(source);
  const metadata = (object.metadata ??= {});
  // The annotation and customTimeouts say the same; the provider reads the annotation first.
  if (add.timeoutSeconds !== undefined) metadata.annotations = { ...metadata.annotations, [ANNOTATIONS.pulumiTimeout]: String(add.timeoutSeconds) };
  if (add.replaceUnready) metadata.annotations = { ...metadata.annotations, [REPLACE_UNREADY_ANNOTATION]: 'true', [WAIT_FOR_ANNOTATION]: JOB_FINISHED };
  if (add.queueName !== undefined) metadata.labels = { ...metadata.labels, [LABELS.kueueQueue]: add.queueName };
  return object;
}

/** A timeout the compiler already put on the object is a floor, never shortened. */
function compiledTimeoutSeconds(object: KubeObject): number {
  const value = Number(object.metadata?.annotations?.[ANNOTATIONS.pulumiTimeout]);
  return Number.isFinite(value) ? value : 0;
}

function workloadKey(stage: CompiledStage): ResourceKey {
  // A JobSet workload never gets here: checkCompiled rejects its object (pulumi.object-kind).
  return resourceKey(stage.workload.kind as KubeKind, stage.workload.name);
}

function stageOwners(compiled: CompiledPipeline): Map<ResourceKey, string> {
  const owners = new Map<ResourceKey, string>();
  for (const stage of compiled.stages) {
    for (const object of stage.objects) {
      const key = keyOf(object);
      if (key && !owners.has(key)) owners.set(key, stage.name);
    }
  }
  return owners;
}
