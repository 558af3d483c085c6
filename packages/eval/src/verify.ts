import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GATE_FAILED_EXIT_CODE, checkGate, formatIssues, type Gate, type Issue, type MetricResults } from '@tunepipe/core';
import { postDeployCheck, type PostDeployResult } from './postdeploy.ts';
import { readPredictResults } from './readers.ts';
import { readTestSet, readTestSetFile, type ChatTestRow } from './testset.ts';

/** Where the post-deploy check leaves its results, and the report looks for them. */
export const POST_DEPLOY_FILE = 'post_deploy_check.json';

/** Options of `tunepipe verify` (the CLI command and the in-cluster post-deploy Job). */
export interface VerifyCommandOptions {
  /** Server root of the vLLM endpoint, e.g. `http://llama3-fintech-serve.tunepipe.svc:8000`. */
  readonly endpoint: string;
  readonly servedModelName: string;
  /** Name the identity answers must contain. */
  readonly expectName: string;
  /** @default ['你是谁？', 'Who are you?'] */
  readonly identityPrompts?: readonly string[];
  /** A test split file (.json array or .jsonl; alpaca, sharegpt or openai rows). */
  readonly testset?: string;
  /** Or: a LLaMA-Factory dataset_dir (the convert stage's output) and entry names. */
  readonly datasetDir?: string;
  readonly datasets?: readonly string[];
  /** Score only the first N rows. @default all */
  readonly limit?: number;
  /** @default 512 */
  readonly maxNewTokens?: number;
  /** @default 4 */
  readonly concurrency?: number;
  /** Sampling temperature. @default 0 (repeatable scores) */
  readonly temperature?: number;
  /** Nucleus sampling. @default the server's */
  readonly topP?: number;
  /** Environment variable holding the API key (keys never travel as flags). @default 'VLLM_API_KEY' */
  readonly apiKeyEnv?: string;
  /** Gate on the served model's scores: an object or its JSON text. */
  readonly gate?: Gate | string;
  /** A `predict_results.json` that relative gate rules compare with (e.g. the base model's). */
  readonly baselineResults?: string;
  /** Folder to write post_deploy_check.json, predict_results.json and generated_predictions.jsonl to. */
  readonly out?: string;
  /** Also report word-level BLEU-4. @default false */
  readonly wordBleu?: boolean;
}

export interface CommandIo {
  readonly stdout: (line: string) => void;
  readonly stderr: (line: string) => void;
  readonly env: Readonly<Record<string, string | undefined>>;
}

export const processIo: CommandIo = {
  stdout: (line) => process.stdout.write(`${line}\n`),
  stderr: (line) => process.stderr.write(`${line}\n`),
  env: process.env,
};

function parseGate(gate: Gate | string | undefined, issues: Issue[]): Gate | undefined {
  if (gate === undefined) return undefined;
  if (typeof gate !== 'string') return gate;
  try {
    return JSON.parse(gate) as Gate;
  } catch (error) {
    issues.push({ path: '--gate', code: 'verify.gate-json', message: `not JSON (${(error as Error).message})`, value: gate, fix: `write e.g. '{"bleu4":{"min":20}}'` });
    return undefined;
  }
}

/**
 * `tunepipe verify`: runs the post-deploy check, prints one line per check, writes the results
 * when `out` is given, and returns the exit code: 0 passed, 3 (`GATE_FAILED_EXIT_CODE`) a check
 * failed, 1 bad input (nothing was sent).
 */
export async function verifyCommand(options: VerifyCommandOptions, io: CommandIo = processIo): Promise<number> {
  const issues: Issue[] = [];
  const gate = parseGate(options.gate, issues);
  if (gate) issues.push(...checkGate(gate, { path: '--gate', hasBaseline: options.baselineResults !== undefined }));
  if (!/^https?:\/\//.test(options.endpoint)) {
    issues.push({ path: '--endpoint', code: 'verify.endpoint', message: 'not an http(s) URL', value: options.endpoint, fix: 'e.g. http://<pipeline>-serve.<namespace>.svc:8000' });
  }
  if (options.limit !== undefined && !(Number.isInteger(options.limit) && options.limit > 0)) {
    issues.push({ path: '--limit', code: 'verify.limit', message: 'must be a positive integer', value: options.limit });
  }
  if (gate && !options.testset && !options.datasetDir) {
    issues.push({ path: '--gate', code: 'verify.gate-without-testset', message: 'a gate judges scores, and without a test split there are none', fix: 'add --testset <file> or --dataset-dir <dir> --dataset <entries>' });
  }
  if (options.testset && options.datasetDir) {
    issues.push({ path: '--testset', code: 'verify.testset-twice', message: 'give either --testset or --dataset-dir with --dataset, not both' });
  }
  if (options.datasetDir && !(options.datasets && options.datasets.length > 0)) {
    issues.push({ path: '--dataset', code: 'verify.no-dataset', message: '--dataset-dir needs --dataset <entry,...>', fix: 'e.g. --dataset identity.test,fintech.test' });
  }

  let testSet: ChatTestRow[] = [];
  if (options.testset || (options.datasetDir && options.datasets?.length)) {
    const read = options.testset ? await readTestSetFile(options.testset) : await readTestSet(options.datasetDir!, options.datasets!);
    issues.push(...read.issues);
    testSet = read.value ?? [];
    if (read.value && read.value.length === 0 && read.issues.length === 0) {
      issues.push({ path: options.testset ?? options.datasetDir!, code: 'verify.empty-testset', message: 'the test split has no rows', fix: 'check the convert stage split sizes' });
    }
  }
  let baseline: MetricResults | undefined;
  if (options.baselineResults) {
    const read = await readPredictResults(options.baselineResults);
    issues.push(...read.issues);
    baseline = read.value;
  }
  const apiKeyEnv = options.apiKeyEnv ?? 'VLLM_API_KEY';
  const apiKey = io.env[apiKeyEnv];
  if (issues.length > 0) {
    io.stderr(`tunepipe verify: ${issues.length} problem${issues.length === 1 ? '' : 's'}`);
    io.stderr(formatIssues(issues));
    return 1;
  }

  const result = await postDeployCheck({
    baseUrl: options.endpoint,
    ...(apiKey ? { apiKey } : {}),
    servedModelName: options.servedModelName,
    expectName: options.expectName,
    ...(options.identityPrompts ? { identityPrompts: options.identityPrompts } : {}),
    testSet: options.limit ? testSet.slice(0, options.limit) : testSet,
    ...(options.maxNewTokens !== undefined ? { maxNewTokens: options.maxNewTokens } : {}),
    ...(options.concurrency !== undefined ? { concurrency: options.concurrency } : {}),
    ...(options.temperature !== undefined ? { temperature: options.temperature } : {}),
    ...(options.topP !== undefined ? { topP: options.topP } : {}),
    ...(gate ? { gate } : {}),
    ...(baseline ? { baseline } : {}),
    wordBleu: options.wordBleu ?? false,
  });
  for (const line of result.lines) io.stdout(line);
  if (options.out) await writeVerifyResults(options.out, result);
  return result.passed ? 0 : GATE_FAILED_EXIT_CODE;
}

/** Writes the check's results in LLaMA-Factory's file shapes, so the report reads served and offline runs alike. */
export async function writeVerifyResults(dir: string, result: PostDeployResult): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, POST_DEPLOY_FILE), `${JSON.stringify(result, null, 2)}\n`);
  if (result.scores) await writeFile(join(dir, 'predict_results.json'), `${JSON.stringify(result.scores, null, 2)}\n`);
  // Unanswered rows stay in post_deploy_check.json with their error; an empty `predict` here would read as a real answer.
  const answered = result.predictions.filter((p) => p.error === undefined);
  if (answered.length > 0) {
    const rows = answered.map((p) => JSON.stringify({ prompt: p.prompt, predict: p.predict, label: p.label }));
    await writeFile(join(dir, 'generated_predictions.jsonl'), `${rows.join('\n')}\n`);
  }
}
