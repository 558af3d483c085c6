export type {
  RunOutcome,
  RunReporter,
  RunResult,
  RunTarget,
  StageFailure,
  StageState,
  StageStatus,
} from './types.ts';
export { RunnerError, silentReporter } from './types.ts';
export { selectStages, descendantsOf, type RunSelection, type SelectionOptions } from './graph.ts';
export {
  LogProgressParser,
  parseLog,
  parseClock,
  type BarReading,
  type LogProgress,
  type TrainingNumbers,
} from './progress/parse.ts';
export { parsePythonDict } from './progress/python-literal.ts';
export { formatStageLine, formatSummary, formatFailure, formatDuration, gateHeadline, gateHeadlineInLog, wantsColour } from './progress/format.ts';
export {
  localStatus,
  readRunRecord,
  recordingReporter,
  stageRunDir,
  RUNS_DIR,
  RUN_RECORD_FILE,
  STAGE_LOG_FILE,
  type LocalRunRecord,
} from './progress/record.ts';
export { createConsoleReporter, type ConsoleReporterOptions } from './progress/reporter.ts';
export {
  pickResumeCheckpoint,
  checkpointRepairScript,
  brokenCheckpointsDir,
  WEIGHT_FILES,
  type OutputDirEntry,
  type ResumeDecision,
  type SealCheck,
} from '@tunepipe/core';
export { repairOutputDir, readOutputDir, sealCheckpoints, checkSeal } from './checkpoint.ts';
export { loadKubeConfig, KubeClient, FIELD_MANAGER, type KubeConfigOptions } from './cluster/kube.ts';
export { classifyJob, classifyDeployment, type WorkloadSnapshot } from './cluster/classify.ts';
export {
  runOnCluster,
  objectsToApply,
  type ClusterRunOptions,
  type MarkerCheckOptions,
} from './cluster/run.ts';
export {
  clusterStatus,
  formatStatus,
  streamStageLogs,
  cancelRun,
  formatCancel,
  type InspectOptions,
  type LogsOptions,
  type CancelOptions,
  type CancelResult,
} from './cluster/inspect.ts';
export {
  runLocally,
  waitForServers,
  type LocalRunOptions,
  type LocalRunResult,
  type LocalServer,
  type LocalStagePaths,
  type RunConvertStage,
} from './local/run.ts';
export { planLocalStage, type LocalStagePlan } from './local/plan.ts';
export { localCheckpointNotes } from './local/resume-note.ts';
export { acquireRunLock, lockPath, type LockHolder, type RunLock } from './local/lock.ts';
export { installHint, versionFromImage } from './local/preflight.ts';
export { detachOnInterrupt } from './interrupt.ts';
