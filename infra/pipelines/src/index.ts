export { PipelineDeployment, PIPELINE_DEPLOYMENT_TYPE, jobSucceeded, checkJobStatus, jobFailureMessage, type PipelineDeploymentArgs, type DeployedStage } from './deployment.ts';
export {
  planDeployment,
  checkCompiled,
  dependencyEdges,
  REPLACE_UNREADY_ANNOTATION,
  WAIT_FOR_ANNOTATION,
  JOB_FINISHED,
  type DeploymentOptions,
  type DeploymentPlan,
  type PlannedResource,
  type DependencyEdge,
} from './plan.ts';
export { workloadTimeoutSeconds, DEFAULT_TIMEOUT_FACTOR, DEFAULT_STARTUP_ALLOWANCE_SECONDS, type TimeoutPolicy } from './timeouts.ts';
export { findSecretLiterals, findMissingSecretRefs } from './secrets.ts';
export { parseSettings, CONFIG_NAMESPACE, type Settings } from './settings.ts';
export { readClusterStack, CLUSTER_OUTPUTS, type ClusterPlacement, type ClusterStack } from './cluster.ts';
export { pipelinesProgram, type CompilePipeline, type PipelinesStackOutputs } from './program.ts';
export { KIND_RULES, PULUMI_TYPES, resourceKey, keyOf, type KubeKind, type ResourceKey } from './objects.ts';
