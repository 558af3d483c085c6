import { evaluateGate, type Gate, type GateReport, type GateRule, type MetricResults } from '@tunepipe/core';
import { z } from 'zod';
import { computeSimilarity, type SampleScores, type SimilarityScores } from './metrics/similarity.ts';
import { pyRound } from './metrics/python.ts';
import { clipRedacted, redactText } from './redact.ts';
import type { ChatMessage, ChatTestRow } from './testset.ts';

/** Checks a freshly rolled-out vLLM endpoint the way a user would use it. */
export interface PostDeployOptions {
  /** Server root, e.g. `http://llama3-fintech-serve.tunepipe.svc:8000` (a trailing `/v1` is accepted). */
  readonly baseUrl: string;
  /** Bearer key for `/v1/*` (vLLM `--api-key`); sent as a header, never printed. */
  readonly apiKey?: string;
  /** The name `/v1/models` must list and requests use as `model`. */
  readonly servedModelName: string;
  /** Prompts whose answers must contain `expectName`. @default ['你是谁？', 'Who are you?'] */
  readonly identityPrompts?: readonly string[];
  /** The identity the model was fine-tuned on, e.g. `小聚`. */
  readonly expectName: string;
  /** Test split to score the served model on; no scoring when absent or empty. */
  readonly testSet?: readonly ChatTestRow[];
  /** `max_tokens` per completion. @default 512 */
  readonly maxNewTokens?: number;
  /** Sampling temperature; 0 makes scores repeatable. @default 0 */
  readonly temperature?: number;
  /** Nucleus sampling, e.g. the evaluate stage's `top_p` for comparable scores. @default the server's */
  readonly topP?: number;
  /** Requests in flight while scoring. @default 4 */
  readonly concurrency?: number;
  /** Per-request timeout. @default 120000 */
  readonly timeoutMs?: number;
  /** Also report word-level BLEU-4. @default false */
  readonly wordBleu?: boolean;
  /** Scores the served model must reach, and the results they are relative to. */
  readonly gate?: Gate | readonly GateRule[];
  readonly baseline?: MetricResults;
}

export type CheckName = 'health' | 'models' | 'identity' | 'scores' | 'gate';

export interface CheckOutcome {
  readonly name: CheckName;
  readonly passed: boolean;
  /** `false` when an earlier failure made the check pointless. */
  readonly ran: boolean;
  readonly detail: string;
}

export interface ServedPrediction {
  readonly source: string;
  readonly prompt: string;
  readonly predict: string;
  readonly label: string;
  readonly scores?: SampleScores;
  /** Why no answer came back. */
  readonly error?: string;
}

/** Served-model scores under `predict_results.json` keys, with runtime like the HF Trainer's. */
export type ServedScores = SimilarityScores & {
  readonly predict_runtime: number;
  readonly predict_samples_per_second: number;
};

export interface PostDeployResult {
  readonly passed: boolean;
  readonly endpoint: string;
  readonly servedModelName: string;
  readonly checks: readonly CheckOutcome[];
  readonly identity: readonly { readonly prompt: string; readonly reply?: string; readonly passed: boolean }[];
  readonly scores?: ServedScores;
  readonly predictions: readonly ServedPrediction[];
  readonly gate?: GateReport;
  /** Human-readable outcome, one line per check, then a verdict line. */
  readonly lines: readonly string[];
}

const ModelsSchema = z.object({ data: z.array(z.looseObject({ id: z.string() })) });
const ChatSchema = z.object({
  choices: z.array(z.looseObject({ message: z.looseObject({ content: z.string().nullable() }) })).min(1),
});

function rootOf(baseUrl: string): string {
  return baseUrl.replace(/\/+$/, '').replace(/\/v1$/, '');
}

/** A password written into the endpoint URL (`http://user:pass@host`), which lines must not show. */
function passwordOf(url: string): string | undefined {
  try {
    return new URL(url).password || undefined;
  } catch {
    return undefined;
  }
}

/**
 * Runs the post-deploy check: `/health`, `/v1/models` lists the served name, each identity prompt's
 * reply contains `expectName`, and (with a test set) the served model's BLEU/ROUGE through
 * `/v1/chat/completions`, computed like LLaMA-Factory's, optionally judged by a gate.
 * Never throws for an unreachable or misbehaving endpoint: that is a failed check.
 */
export async function postDeployCheck(options: PostDeployOptions): Promise<PostDeployResult> {
  const root = rootOf(options.baseUrl);
  const timeoutMs = options.timeoutMs ?? 120_000;
  // Everything shown is redacted whole before it is cut (clip): the key, any piece of it the
  // server echoes, and secret-shaped values.
  const secrets = [options.apiKey, passwordOf(root)];
  const redact = (text: string) => redactText(text, secrets);
  const clip = (text: string) => clipRedacted(text, secrets);

  async function call(path: string, body?: unknown): Promise<{ status: number; json: unknown; text: string }> {
    const headers: Record<string, string> = { accept: 'application/json' };
    // vLLM's --api-key guards /v1/* only; /health stays open for probes.
    if (options.apiKey && path.startsWith('/v1/')) headers['authorization'] = `Bearer ${options.apiKey}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    try {
      response = await fetch(root + path, {
        method: body === undefined ? 'GET' : 'POST',
        headers,
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (error) {
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      const reason = (error as Error).name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : (cause?.code ?? cause?.message ?? (error as Error).message);
      throw new Error(`cannot reach ${root}${path}: ${reason}`);
    }
    const text = await response.text();
    let json: unknown;
    try {
      json = text === '' ? undefined : JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: response.status, json, text };
  }

  async function chat(messages: readonly ChatMessage[]): Promise<string> {
    const { status, json, text } = await call('/v1/chat/completions', {
      model: options.servedModelName,
      messages,
      max_tokens: options.maxNewTokens ?? 512,
      temperature: options.temperature ?? 0,
      ...(options.topP !== undefined ? { top_p: options.topP } : {}),
    });
    if (status !== 200) throw new Error(`POST /v1/chat/completions → ${status}: ${clip(text)}`);
    const parsed = ChatSchema.safeParse(json);
    if (!parsed.success) throw new Error(`POST /v1/chat/completions: unexpected answer ${clip(text)}`);
    return parsed.data.choices[0]!.message.content ?? '';
  }

  const checks: CheckOutcome[] = [];
  const add = (name: CheckName, passed: boolean, detail: string, ran = true) => checks.push({ name, passed, ran, detail: redact(detail) });

  // health
  let healthy = false;
  try {
    const started = performance.now();
    const { status, text } = await call('/health');
    healthy = status === 200;
    const ms = Math.round(performance.now() - started);
    add('health', healthy, healthy ? `GET /health → 200 (${ms} ms)` : `GET /health → ${status}: ${clip(text) || '(empty body)'}`);
  } catch (error) {
    add('health', false, (error as Error).message);
  }

  const identity: { prompt: string; reply?: string; passed: boolean }[] = [];
  const predictions: ServedPrediction[] = [];
  let scores: ServedScores | undefined;
  let gate: GateReport | undefined;

  if (!healthy) {
    for (const name of ['models', 'identity', 'scores'] as const) add(name, false, 'skipped: the endpoint is not healthy', false);
  } else {
    // models
    try {
      const { status, json, text } = await call('/v1/models');
      const parsed = ModelsSchema.safeParse(json);
      if (status !== 200) add('models', false, `GET /v1/models → ${status}: ${clip(text)}${status === 401 ? ' (check the API key)' : ''}`);
      else if (!parsed.success) add('models', false, `GET /v1/models: unexpected answer ${clip(text)}`);
      else {
        const ids = parsed.data.data.map((m) => m.id);
        const listed = ids.includes(options.servedModelName);
        add(
          'models',
          listed,
          listed
            ? `/v1/models lists "${options.servedModelName}"`
            : `/v1/models does not list "${options.servedModelName}" (it lists ${ids.map((id) => `"${id}"`).join(', ') || 'nothing'})`,
        );
      }
    } catch (error) {
      add('models', false, (error as Error).message);
    }

    // identity
    for (const prompt of options.identityPrompts ?? ['你是谁？', 'Who are you?']) {
      try {
        const reply = await chat([{ role: 'user', content: prompt }]);
        const passed = reply.includes(options.expectName);
        identity.push({ prompt, reply: redact(reply), passed });
        add(
          'identity',
          passed,
          `"${prompt}" → "${clip(reply)}" ${passed ? 'contains' : 'does not contain'} "${options.expectName}"`,
        );
      } catch (error) {
        identity.push({ prompt, passed: false });
        add('identity', false, `"${prompt}": ${(error as Error).message}`);
      }
    }

    // scores
    const rows = options.testSet ?? [];
    if (rows.length > 0) {
      const answers: ({ predict: string } | { error: string })[] = new Array(rows.length);
      const started = performance.now();
      let next = 0;
      const worker = async () => {
        while (next < rows.length) {
          const index = next++;
          try {
            answers[index] = { predict: await chat(rows[index]!.messages) };
          } catch (error) {
            answers[index] = { error: redact((error as Error).message) };
          }
        }
      };
      await Promise.all(Array.from({ length: Math.max(1, Math.min(options.concurrency ?? 4, rows.length)) }, worker));
      const seconds = (performance.now() - started) / 1000;
      const answered = rows.flatMap((row, i) => {
        const a = answers[i]!;
        return 'predict' in a ? [{ row, predict: a.predict }] : [];
      });
      const similarity = computeSimilarity(
        answered.map(({ row, predict }) => ({ predict, label: row.label })),
        { wordBleu: options.wordBleu ?? false },
      );
      let k = 0;
      rows.forEach((row, i) => {
        const a = answers[i]!;
        const prompt = row.messages.at(-1)?.content ?? '';
        if ('predict' in a) predictions.push({ source: row.source, prompt, predict: redact(a.predict), label: row.label, scores: similarity.samples[k++]! });
        else predictions.push({ source: row.source, prompt, predict: '', label: row.label, error: a.error });
      });
      const failed = rows.length - answered.length;
      if (answered.length > 0) {
        scores = {
          ...similarity.scores,
          predict_runtime: pyRound(seconds, 4),
          predict_samples_per_second: pyRound(answered.length / seconds, 3),
        };
      }
      const summary = scores
        ? `BLEU-4 ${scores['predict_bleu-4'].toFixed(2)}, ROUGE-1 ${scores['predict_rouge-1'].toFixed(2)}, ROUGE-2 ${scores['predict_rouge-2'].toFixed(2)}, ROUGE-L ${scores['predict_rouge-l'].toFixed(2)}`
        : 'no scores';
      const firstError = predictions.find((p) => p.error)?.error;
      const empty = answered.filter(({ predict }) => predict.trim() === '').length;
      // Approximate scores say so (a pair too long for an exact ROUGE-L).
      const notes = similarity.notes.length > 0 ? `; ${similarity.notes.length} approximate, first: ${similarity.notes[0]}` : '';
      add(
        'scores',
        failed === 0,
        `${answered.length}/${rows.length} answered in ${seconds.toFixed(1)} s — ${summary}${empty > 0 ? `; ${empty} empty` : ''}${failed > 0 ? `; ${failed} failed, first: ${firstError}` : ''}${notes}`,
      );
      if (options.gate && scores) {
        gate = evaluateGate(options.gate, scores, options.baseline, { predictions: answered.length, emptyPredictions: empty });
        add('gate', gate.passed, gate.summary);
      } else if (options.gate) {
        // An unjudged gate must not read as a pass.
        add('gate', false, 'no scores to judge: every request of the test split failed');
      }
    }
  }

  const passed = checks.every((c) => c.passed);
  const failedCount = checks.filter((c) => !c.passed).length;
  const lines = [
    ...checks.map((c) => `${c.passed ? '✓' : c.ran ? '✗' : '–'} ${c.name}: ${c.detail}`),
    passed
      ? `post-deploy check passed: ${options.servedModelName} at ${root}`
      : `post-deploy check FAILED: ${failedCount} of ${checks.length} checks failed for ${options.servedModelName} at ${root}`,
  ];
  return {
    passed,
    endpoint: root,
    servedModelName: options.servedModelName,
    checks,
    identity,
    ...(scores ? { scores } : {}),
    predictions,
    ...(gate ? { gate } : {}),
    lines: lines.map(redact),
  };
}
