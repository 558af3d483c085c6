import cliProgress from 'cli-progress';
import type { RunReporter, RunResult, StageState } from '../types.ts';
import { ansiStatus, formatDuration, formatStageLine, formatSummary, mainBar, wantsColour } from './format.ts';

export interface ConsoleReporterOptions {
  /** @default process.stderr */
  readonly stream?: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  /** Redraw in place. @default stream.isTTY && !process.env.CI */
  readonly tty?: boolean;
  /** Plain mode: print a progress line at most this often per stage (besides every 10%). @default 30000 */
  readonly throttleMs?: number;
  /** Plain mode: also print when progress crosses a multiple of this many percent. @default 10 */
  readonly percentStep?: number;
  /** How to invoke the CLI in hints (`tunepipe`, not a whole command line). @default 'tunepipe' */
  readonly command?: string;
  /** Colour the statuses on a terminal. @default wantsColour(stream): a TTY without NO_COLOR */
  readonly colour?: boolean;
  readonly now?: () => number;
}

/**
 * Draws a run: on a terminal, one line per stage redrawn in place (cli-progress); elsewhere
 * (CI, files) plain lines, one per state change plus throttled progress lines.
 */
export function createConsoleReporter(options: ConsoleReporterOptions = {}): RunReporter {
  const stream = options.stream ?? process.stderr;
  const tty = options.tty ?? (Boolean(stream.isTTY) && !process.env['CI']);
  return tty ? new TtyReporter(stream, options) : new PlainReporter(stream, options);
}

function header(info: { pipeline: string; target: string; where: string }): string {
  return `${info.pipeline} → ${info.target === 'cluster' ? `cluster, namespace ${info.where}` : `local, artifacts in ${info.where}`}`;
}

class PlainReporter implements RunReporter {
  readonly #stream: NodeJS.WritableStream;
  readonly #throttleMs: number;
  readonly #step: number;
  readonly #now: () => number;
  readonly #command: string;
  #startedAt: number | undefined;
  #nameWidth = 8;
  readonly #last = new Map<string, { key: string; bucket: number; at: number; progressKey: string }>();

  constructor(stream: NodeJS.WritableStream, options: ConsoleReporterOptions) {
    this.#stream = stream;
    this.#throttleMs = options.throttleMs ?? 30_000;
    this.#step = options.percentStep ?? 10;
    this.#now = options.now ?? Date.now;
    this.#command = options.command ?? 'tunepipe';
  }

  #write(text: string): void {
    if (this.#startedAt === undefined) {
      this.#stream.write(`${text}\n`);
      return;
    }
    const t = formatDuration((this.#now() - this.#startedAt) / 1000).padStart(6);
    this.#stream.write(`[${t}] ${text}\n`);
  }

  start(info: { pipeline: string; target: string; where: string; stages: readonly StageState[] }): void {
    this.#startedAt = this.#now();
    this.#nameWidth = Math.max(8, ...info.stages.map((s) => s.stage.length));
    this.#stream.write(`${header(info)}\n`);
  }

  update(state: StageState): void {
    const now = this.#now();
    const line = formatStageLine(state, { nameWidth: this.#nameWidth, bar: false, now });
    const key = `${state.status}|${state.status === 'running' ? '' : (state.detail ?? '')}|${state.preemptions}`;
    const bar = mainBar(state.progress);
    const bucket = bar && bar.total > 0 ? Math.floor((100 * bar.current) / bar.total / this.#step) : -1;
    const progressKey = bar ? `${bar.label ?? ''}${bar.current}/${bar.total}` : '';
    const last = this.#last.get(state.stage);
    let print = false;
    if (!last || last.key !== key) print = true;
    else if (progressKey !== last.progressKey && (bucket !== last.bucket || now - last.at >= this.#throttleMs)) print = true;
    if (!print) return;
    this.#last.set(state.stage, { key, bucket, at: now, progressKey });
    this.#write(line);
  }

  note(stage: string | undefined, message: string): void {
    this.#write(`${stage ? `${stage.padEnd(this.#nameWidth)}  ` : ''}${message}`);
  }

  finish(result: RunResult): void {
    this.#stream.write(`${formatSummary(result, { command: this.#command })}\n`);
  }
}

class TtyReporter implements RunReporter {
  readonly #stream: NodeJS.WritableStream & { columns?: number };
  readonly #now: () => number;
  readonly #command: string;
  readonly #colour: boolean;
  #multibar: cliProgress.MultiBar | undefined;
  readonly #bars = new Map<string, cliProgress.SingleBar>();
  #nameWidth = 8;

  constructor(stream: NodeJS.WritableStream, options: ConsoleReporterOptions) {
    this.#stream = stream;
    this.#now = options.now ?? Date.now;
    this.#command = options.command ?? 'tunepipe';
    this.#colour = options.colour ?? wantsColour(stream as { isTTY?: boolean });
  }

  start(info: { pipeline: string; target: string; where: string; stages: readonly StageState[] }): void {
    this.#nameWidth = Math.max(8, ...info.stages.map((s) => s.stage.length));
    this.#stream.write(`${header(info)}\n`);
    const nameWidth = this.#nameWidth;
    const now = this.#now;
    const paint = this.#colour ? { paint: ansiStatus } : {};
    this.#multibar = new cliProgress.MultiBar({
      stream: this.#stream,
      hideCursor: true,
      clearOnComplete: false,
      stopOnComplete: false,
      linewrap: false,
      fps: 8,
      format: (_options, _params, payload: { state: StageState }) =>
        formatStageLine(payload.state, { nameWidth, bar: true, now: now(), ...paint }),
    });
    for (const state of info.stages) this.#bars.set(state.stage, this.#multibar.create(100, 0, { state }));
  }

  update(state: StageState): void {
    const bar = mainBar(state.progress);
    const value = bar && bar.total > 0 ? Math.round((100 * bar.current) / bar.total) : 0;
    this.#bars.get(state.stage)?.update(value, { state });
  }

  note(stage: string | undefined, message: string): void {
    const text = `${stage ? `${stage}: ` : ''}${message}\n`;
    if (this.#multibar) this.#multibar.log(text);
    else this.#stream.write(text);
  }

  finish(result: RunResult): void {
    this.#multibar?.update();
    this.#multibar?.stop();
    this.#stream.write(`${formatSummary(result, { command: this.#command })}\n`);
  }
}
