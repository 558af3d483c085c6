import { UserError } from '../errors.ts';

export interface WaitServedOptions {
  /** Server root, e.g. `http://llama3-fintech-serve.tunepipe.svc:8000`. */
  readonly endpoint: string;
  /** The model path vLLM reports as `root` in `/v1/models` once the new pods serve. */
  readonly modelRoot: string;
  /** Answers in a row that must come from the new model (a rollout mixes old and new pods). @default 5 */
  readonly consecutive?: number;
  /** @default 10 s */
  readonly intervalMs?: number;
  /** @default 2 h */
  readonly timeoutMs?: number;
  readonly apiKey?: string;
}

interface ModelList {
  data?: Array<{ id?: string; root?: string }>;
}

/**
 * Waits until every answer of the Service's `/v1/models` comes from the new model: `/health`
 * alone would be answered by the old pods during a rolling update.
 */
export async function waitServed(options: WaitServedOptions, log: (line: string) => void): Promise<number> {
  let url: URL;
  try {
    url = new URL('/v1/models', options.endpoint);
  } catch {
    throw new UserError(`--endpoint ${options.endpoint} is not a URL`);
  }
  const needed = options.consecutive ?? 5;
  const interval = options.intervalMs ?? 10_000;
  const deadline = Date.now() + (options.timeoutMs ?? 2 * 3600_000);
  const headers: Record<string, string> = options.apiKey ? { authorization: `Bearer ${options.apiKey}` } : {};
  let streak = 0;
  let last = '';
  while (Date.now() < deadline) {
    let seen = 'no answer';
    try {
      const response = await fetch(url, { headers, signal: AbortSignal.timeout(10_000) });
      if (response.ok) {
        const body = (await response.json()) as ModelList;
        const roots = (body.data ?? []).map((m) => m.root ?? m.id ?? '');
        seen = roots.join(', ') || 'no models';
        streak = roots.includes(options.modelRoot) ? streak + 1 : 0;
      } else {
        seen = `HTTP ${response.status}`;
        streak = 0;
      }
    } catch (error) {
      seen = (error as Error).message;
      streak = 0;
    }
    if (seen !== last) log(`wait-served: ${url.origin} serves ${seen}`);
    last = seen;
    if (streak >= needed) {
      log(`wait-served: ${options.modelRoot} answered ${needed} times in a row`);
      return 0;
    }
    await new Promise((resolve) => setTimeout(resolve, streak > 0 ? Math.min(interval, 1000) : interval));
  }
  log(`wait-served: gave up: ${options.modelRoot} is not served by ${options.endpoint}`);
  return 1;
}
