import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { createConsoleReporter } from '../src/progress/reporter.ts';
import type { RunReporter, RunResult, StageState, StageStatus } from '../src/types.ts';

/** The seed's training log excerpt (a copy kept in this package; tests never read ../shared). */
export const SEED_TRAIN_LOG = readFileSync(new URL('./fixtures/seed-train.log', import.meta.url), 'utf8').split('\n').filter((l, i, all) => i < all.length - 1 || l !== '');

export interface Recorder extends RunReporter {
  /** What the plain (non-TTY) console reporter printed. */
  readonly output: () => string;
  /** Every status a stage went through, in order, without repeats. */
  readonly statuses: (stage: string) => StageStatus[];
  readonly notes: string[];
  readonly last: (stage: string) => StageState | undefined;
  result?: RunResult;
}

/** A reporter for tests: prints like CI would (plain lines) and remembers what it saw. */
export function recorder(options: { throttleMs?: number } = {}): Recorder {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      text += chunk.toString();
      cb();
    },
  });
  const plain = createConsoleReporter({ stream, tty: false, throttleMs: options.throttleMs ?? 60_000 });
  const history = new Map<string, StageStatus[]>();
  const lastState = new Map<string, StageState>();
  const notes: string[] = [];
  const rec: Recorder = {
    start(info) {
      for (const s of info.stages) {
        history.set(s.stage, [s.status]);
        lastState.set(s.stage, s);
      }
      plain.start(info);
    },
    update(state) {
      const h = history.get(state.stage) ?? [];
      if (h.at(-1) !== state.status) h.push(state.status);
      history.set(state.stage, h);
      lastState.set(state.stage, state);
      plain.update(state);
    },
    note(stage, message) {
      notes.push(`${stage ?? '-'}: ${message}`);
      plain.note(stage, message);
    },
    finish(result) {
      rec.result = result;
      plain.finish(result);
    },
    output: () => text,
    statuses: (stage) => history.get(stage) ?? [],
    notes,
    last: (stage) => lastState.get(stage),
  };
  return rec;
}

export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
