import type { ResolvedContext } from '../context.ts';
import type { Issue } from '../issues.ts';
import { queueAdmitIssues } from '../planner/parallel.ts';
import type { StageResourcePlan } from '../planner/plan.ts';
import { stageLayout } from '../plan.ts';
import type { ResolveEnv, ResolvedStage } from './types.ts';
import { DNS_LABEL_MAX } from '../names.ts';

/**
 * A training gang the queue can never admit (the planner's rule), known only when the context
 * says what the LocalQueue's ClusterQueue admits (`queueGpus`). A GPU type the quota does not
 * list has none: Kueue would hold a gang on it forever too.
 */
export function queueAdmissionIssues(stage: ResolvedStage, resources: StageResourcePlan, ctx: ResolvedContext): Issue[] {
  const quota = ctx.queueGpus;
  const layout = stageLayout(stage, resources);
  if (!quota || !ctx.queueName || !layout || !resources.gpuType) return [];
  const admits = Object.hasOwn(quota, resources.gpuType) ? quota[resources.gpuType]! : 0;
  return queueAdmitIssues(layout, resources.gpuType, admits, stage.path);
}

/**
 * A gang's names: pod `i` is `<job>-<i>` (a JobSet's `<jobset>-node-0-<i>`), a DNS label of at
 * most 63 characters, and the headless Service named like the Job must start with a letter
 * (DNS-1035), or the API server rejects the objects after check() passed.
 */
export function gangNameIssues(stage: ResolvedStage, resources: StageResourcePlan, env: ResolveEnv): Issue[] {
  const layout = stageLayout(stage, resources);
  if (!layout || layout.nodes <= 1 || typeof env.pipeline.name !== 'string') return [];
  const job = `${env.pipeline.name}-${stage.name}-xxxxxxxx`;
  const lastPod = env.ctx.multiNode === 'jobset' ? `${job}-node-0-${layout.nodes - 1}` : `${job}-${layout.nodes - 1}`;
  const issues: Issue[] = [];
  if (lastPod.length > DNS_LABEL_MAX) {
    issues.push({ code: 'name.length', path: `${stage.path}.name`, value: lastPod.replace('xxxxxxxx', '<hash8>'), message: `the gang's pod hostnames would be up to ${lastPod.length} characters; a hostname is at most ${DNS_LABEL_MAX}`, fix: `shorten the pipeline or stage name by ${lastPod.length - DNS_LABEL_MAX} characters` });
  }
  if (!/^[a-z]/.test(job)) {
    issues.push({ code: 'name.dns', path: 'pipeline.name', value: env.pipeline.name, message: "the gang's headless Service is named after the pipeline, and a Service name must start with a letter", fix: 'start the pipeline name with a letter' });
  }
  return issues;
}
