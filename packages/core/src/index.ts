export * from './handles.ts';
export * from './dsl.ts';
export * from './compiled.ts';
export * from './context.ts';
export * from './issues.ts';
export { zodIssues, zodParse, type ZodIssueContext, type ZodIssueOptions, type ZodIssueParams } from './zod.ts';
export * from './labels.ts';
export { CLUSTER_SECRET_KEYS, unknownSecretIssues, type SecretKeys } from './secrets.ts';
export { redactSecrets } from './rules/secrets.ts';
export * from './names.ts';
export * from './hash.ts';
export { CALIBRATION_DEFAULTS, EXPORT_DEFAULTS, GENERATION_DEFAULTS, VLLM_DEFAULT_PORT, llamaFactoryDefault } from './defaults.ts';
export { check } from './check.ts';
export { compile, artifactPath } from './compile.ts';
export { stageLayout, type StagePlan } from './plan.ts';
export { analysePipeline, planStages, type PipelineAnalysis } from './analyse.ts';
export { STAGE_KINDS, stageKind, isStageKind, servedFlags, servedPort, type ResolvedStage, type StageKindModule, type StagePaths, type ResolveEnv, type RenderEnv, type ToolCommand } from './kinds/index.ts';
export { markerCheckJob, markerCheckJobName, type MarkerCheckSettings } from './pods.ts';
export * from './planner/index.ts';
export type { JobSet, KubeObject } from './kube.ts';
export { LLAMA3_8B, QWEN2_5_7B, type ModelArchitecture } from './model/architecture.ts';
export { MODEL_CATALOGUE, catalogueModel, catalogueIds, type CatalogueModel, type ModelLicense } from './model/catalogue.ts';
export { parameterCountOf, COUNTABLE_MODEL_TYPES } from './model/parameters.ts';
export * from './model/source.ts';
export { LLAMAFACTORY_ARGS, LLAMAFACTORY_DATASET_INFO, LLAMAFACTORY_PARSERS, LLAMAFACTORY_TEMPLATES, LLAMAFACTORY_SOURCE } from './reference/llamafactory-args.gen.ts';
export { VLLM_SERVE_FLAGS, VLLM_SOURCE } from './reference/vllm-serve-flags.gen.ts';
export type { LlamaFactoryArg, LlamaFactoryDatasetInfoSchema, VllmFlag } from './reference/types.ts';
export { PINS } from './reference/pins.gen.ts';
export * from './gate.ts';
export * from './render.ts';
export { stageScript, type StageScriptOptions } from './stage-script.ts';
export {
  COMPLETION_INDEX_ANNOTATION,
  DEEPSPEED_CONFIG_FILE,
  DISTRIBUTED_DDP_TIMEOUT_SECONDS,
  MASTER_PORT,
  RENDEZVOUS_TIMEOUT_SECONDS,
  TORCHRUN_ENV,
  deepSpeedConfig,
  isGang,
  strategyArgs,
  torchrunEnv,
  usesDeepSpeed,
  usesTorchrun,
} from './kinds/distributed.ts';
export * from './artifacts/protocol.ts';
export * from './artifacts/folder.ts';
export * from './delivery.ts';
export * from './resume.ts';
