import type { GateReport, Issue, StageKind } from '@tunepipe/core';
import type { CurvePoint } from '../readers.ts';

export type StageStatus = 'done' | 'cached' | 'failed' | 'running' | 'queued' | 'pending';

export interface ReportStage {
  readonly name: string;
  readonly kind: StageKind;
  readonly hash: string;
  readonly status: StageStatus;
  /** Why a failed stage failed (a failed gate's verdict). */
  readonly reason?: string;
  /** Skipped because its completion marker already existed. */
  readonly cacheHit: boolean;
  readonly startedAt?: string;
  readonly durationSeconds?: number;
  /** Where the duration comes from, e.g. `runner` or `train_results.json`. */
  readonly durationSource?: string;
  readonly expectedSeconds?: number;
  readonly gpus: number;
  readonly gpuType?: string;
}

export interface ReportTraining {
  readonly stage: string;
  readonly train: readonly CurvePoint[];
  readonly eval: readonly CurvePoint[];
  readonly totalSteps?: number;
  /** `train_results.json` / `all_results.json` numbers (train_loss, train_runtime, epoch, …). */
  readonly summary: Readonly<Record<string, number>>;
}

/** Which model a row of the evaluation table scored. */
export type EvalModelKind = 'base' | 'adapter' | 'merged' | 'gptq' | 'served';

export interface ReportEvaluation {
  readonly model: EvalModelKind;
  /** Stage that produced the scores (an evaluate stage, or the serve stage for the post-deploy check). */
  readonly stage: string;
  /** How the scores were made, e.g. `LLaMA-Factory predict` or `vLLM /v1/chat/completions`. */
  readonly method: string;
  readonly samples?: number;
  /** `predict_results.json` numbers. */
  readonly metrics: Readonly<Record<string, number>>;
  readonly gate?: GateReport;
}

export interface ReportShard {
  readonly name: string;
  readonly bytes: number;
}

export interface ReportArtifact {
  readonly stage: string;
  readonly kind: StageKind;
  /** Path as pods see it (`/artifacts/<pipeline>/<stage>/<hash>`). */
  readonly path: string;
  readonly complete: boolean;
  readonly bytes: number;
  readonly files: number;
  /** Model weight files (`*.safetensors` / `*.bin`), for merge and quantize stages. */
  readonly shards?: readonly ReportShard[];
}

export interface ReportEndpoint {
  readonly serviceName: string;
  readonly namespace: string;
  readonly port: number;
  /** In-cluster OpenAI-compatible base URL. */
  readonly url: string;
  readonly servedModelName: string;
  readonly modelPath?: string;
  readonly postDeploy?: { readonly passed: boolean; readonly lines: readonly string[] };
}

/** Everything `renderReport` shows; gathered from artifacts by `gatherRunReport`. */
export interface RunReportData {
  readonly pipeline: string;
  readonly namespace: string;
  /** ISO timestamp printed in the header. */
  readonly generatedAt: string;
  readonly stages: readonly ReportStage[];
  readonly training?: ReportTraining;
  readonly evaluations: readonly ReportEvaluation[];
  readonly artifacts: readonly ReportArtifact[];
  readonly endpoint?: ReportEndpoint;
  /** Files that were missing or unreadable while gathering; shown, never hidden. */
  readonly problems: readonly Issue[];
}
