import { redactSecrets } from '@tunepipe/core';
import { parsePythonDict, type PyValue } from './python-literal.ts';

/** One tqdm bar reading, e.g. ` 5%|███ | 15/300 [01:14<23:44,  5.00s/it]`. */
export interface BarReading {
  /** Text before the percentage (`Loading checkpoint shards`); absent for the training loop's bar. */
  readonly label?: string;
  readonly current: number;
  readonly total: number;
  readonly elapsedSeconds: number;
  /** `undefined` while tqdm prints `?`. */
  readonly etaSeconds?: number;
  /** tqdm's rate, normalised: seconds per item and items per second. */
  readonly secondsPerItem?: number;
  readonly unit?: string;
}

/** The numbers LLaMA-Factory and transformers log while training, latest value of each. */
export interface TrainingNumbers {
  readonly loss?: number;
  readonly learningRate?: number;
  readonly epoch?: number;
  /** LLaMA-Factory's `throughput`: input tokens per second. */
  readonly tokensPerSecond?: number;
  readonly gradNorm?: number;
  readonly tokensSeen?: number;
  readonly evalLoss?: number;
}

/** Everything the runner reads out of a stage's log. */
export interface LogProgress {
  /** The training loop's bar (its total equals `Total optimization steps` when that was logged). */
  readonly training?: BarReading;
  /** The latest other bar: loading shards, tokenizing, evaluating, vLLM loading weights. */
  readonly phase?: BarReading;
  readonly numbers: TrainingNumbers;
  readonly totalSteps?: number;
  readonly numExamples?: number;
  readonly numEpochs?: number;
  /** `checkpoint-N` path LLaMA-Factory said it resumes from. */
  readonly resumedFrom?: string;
  /**
   * What the stage wrapper's checkpoint check did at the pod's start when it did not trust the
   * newest checkpoint (core resume.ts checkpointRepairScript): what it moved aside and why, and
   * where training resumed. Absent when nothing was moved.
   */
  readonly checkpointResume?: CheckpointResume;
  /** The last `checkpoint-N` the trainer started saving. */
  readonly lastCheckpoint?: string;
  /** `***** <name> metrics *****` blocks (train, eval, predict), by block name. */
  readonly metrics: Readonly<Record<string, Readonly<Record<string, string | number>>>>;
  /** The final `{'train_runtime': …}` dict. */
  readonly trainSummary?: { readonly runtimeSeconds: number; readonly loss?: number };
  /** The last line that looks like an error (`ValueError: …`), for failure reports. */
  readonly lastError?: string;
  /** The last non-empty output line, for a one-line "what is it doing" detail. */
  readonly lastLine?: string;
}

export interface CheckpointResume {
  /** The checkpoint training resumed from; absent when it started from step 0. */
  readonly resumeFrom?: string;
  readonly movedAside: readonly { readonly name: string; readonly reason: string }[];
  /** The folder they were moved to (`<output_dir>.broken`). */
  readonly aside: string;
}

/** `mm:ss` or `h:mm:ss` (tqdm) to seconds. */
export function parseClock(text: string): number | undefined {
  if (!/^\d+(?::\d+){1,2}(?:\.\d+)?$/.test(text)) return undefined;
  return text.split(':').reduce((acc, part) => acc * 60 + Number(part), 0);
}

// label: NN%|bar| cur/total [elapsed<eta, rate unit]; the closing bracket is often cut off in logs.
const BAR = /(?:([^\r\n|%]*?):\s*)?(\d{1,3})%\|[^|\r\n]*\|\s*(\d+)\/(\d+)\s*\[([\d:.]+)<([\d:.?]+)(?:,\s*([\d.]+|\?)\s*([A-Za-z]+\/[A-Za-z]+))?/g;
const TOTAL_STEPS = /Total optimization steps = ([\d,]+)/;
const NUM_EXAMPLES = /Num examples = ([\d,]+)/;
const NUM_EPOCHS = /Num Epochs = ([\d,.]+)/;
const RESUMING = /Resuming training from (\S+?)\.?\s*$/;
const SAVING = /Saving model checkpoint to (\S*checkpoint-\d+)/;
// The wrapper's lines (core resume.ts checkpointRepairScript): one per entry moved aside, then its decision.
const MOVED_ASIDE = /^tunepipe: (\S+) (.+); moved to (.+)\/([^/]+)\.(\d+)$/;
const WRAPPER_RESUMES = /^tunepipe: training resumes from (checkpoint-\d+)$/;
const WRAPPER_STARTS_OVER = /^tunepipe: no checkpoint to resume from; training starts from step 0$/;
const METRICS_HEADER = /^\*{5} (\w+) metrics \*{5}\s*$/;
const METRICS_ROW = /^\s+([\w./-]+)\s+=\s+(\S+)\s*$/;
const ERROR_LINE = /^(?:\w+\.)*\w*(?:Error|Exception)(?::|$)|^Traceback \(most recent call last\)|CUDA out of memory/;

const num = (text: string): number => Number(text.replace(/,/g, ''));

/** Secrets are matched over this much text past the cut, so one that starts before the cut is whole. */
const REDACT_WINDOW = 8192;

/**
 * The first `max` characters of `text` after secret-shaped values are redacted: cutting first
 * could leave the start of a token that no rule recognises, and it would be shown.
 */
function redactedStart(text: string, max: number): string {
  const window = text.length > max + REDACT_WINDOW ? text.slice(0, max + REDACT_WINDOW) : text;
  return redactSecrets(window).slice(0, max);
}
const asNumber = (v: PyValue | undefined): number | undefined => (typeof v === 'number' ? v : undefined);

function readBar(m: RegExpExecArray): BarReading {
  const [, label, , current, total, elapsed, eta, rate, unit] = m;
  const rateValue = rate && rate !== '?' ? Number(rate) : undefined;
  let secondsPerItem: number | undefined;
  if (rateValue !== undefined && unit) {
    secondsPerItem = unit.startsWith('s/') ? rateValue : rateValue > 0 ? 1 / rateValue : undefined;
  }
  const etaSeconds = eta ? parseClock(eta) : undefined;
  const trimmed = label?.trim();
  return {
    ...(trimmed ? { label: trimmed } : {}),
    current: Number(current),
    total: Number(total),
    elapsedSeconds: parseClock(elapsed ?? '') ?? 0,
    ...(etaSeconds !== undefined ? { etaSeconds } : {}),
    ...(secondsPerItem !== undefined ? { secondsPerItem } : {}),
    ...(unit ? { unit } : {}),
  };
}

function metricValue(text: string): string | number {
  return /^-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?$/.test(text) ? Number(text) : text;
}

/**
 * Reads a stage's log incrementally. Chunks may split lines anywhere; tqdm redraws with `\r`
 * and LLaMA-Factory's logger often continues on the same physical line after a bar, so every
 * segment is scanned for bars and for `{'…': …}` dicts wherever they occur.
 */
export class LogProgressParser {
  #pending = '';
  #training: BarReading | undefined;
  #phase: BarReading | undefined;
  #numbers: { -readonly [K in keyof TrainingNumbers]: TrainingNumbers[K] } = {};
  #totalSteps: number | undefined;
  #numExamples: number | undefined;
  #numEpochs: number | undefined;
  #resumedFrom: string | undefined;
  #lastCheckpoint: string | undefined;
  #moved: { name: string; reason: string }[] = [];
  #aside: string | undefined;
  #wrapperResumeFrom: string | undefined;
  /** The wrapper's decision line was seen: a later move belongs to another start of the pod. */
  #decided = false;
  #metrics: Record<string, Record<string, string | number>> = {};
  #metricsBlock: string | undefined;
  #trainSummary: LogProgress['trainSummary'];
  #lastError: string | undefined;
  #lastLine: string | undefined;
  #version = 0;

  /** Bumped on every change, so callers can tell whether a push changed anything. */
  get version(): number {
    return this.#version;
  }

  /** Feeds raw log text; returns true when the progress changed. */
  push(chunk: string): boolean {
    const before = this.#version;
    const text = this.#pending + chunk;
    const segments = text.split(/\r\n|\r|\n/);
    this.#pending = segments.pop() ?? '';
    for (const segment of segments) this.#segment(segment);
    // A partial line can still carry a complete bar (tqdm redraws without a newline).
    if (this.#pending) this.#scanBars(this.#pending);
    return this.#version !== before;
  }

  /** Flushes a final line that had no newline. */
  end(): boolean {
    const before = this.#version;
    if (this.#pending) this.#segment(this.#pending);
    this.#pending = '';
    return this.#version !== before;
  }

  get progress(): LogProgress {
    return {
      ...(this.#training ? { training: this.#training } : {}),
      ...(this.#phase ? { phase: this.#phase } : {}),
      numbers: { ...this.#numbers },
      ...(this.#totalSteps !== undefined ? { totalSteps: this.#totalSteps } : {}),
      ...(this.#numExamples !== undefined ? { numExamples: this.#numExamples } : {}),
      ...(this.#numEpochs !== undefined ? { numEpochs: this.#numEpochs } : {}),
      ...(this.#resumedFrom ? { resumedFrom: this.#resumedFrom } : {}),
      ...(this.#moved.length > 0 && this.#aside !== undefined
        ? { checkpointResume: { ...(this.#wrapperResumeFrom ? { resumeFrom: this.#wrapperResumeFrom } : {}), movedAside: this.#moved.map((m) => ({ ...m })), aside: this.#aside } }
        : {}),
      ...(this.#lastCheckpoint ? { lastCheckpoint: this.#lastCheckpoint } : {}),
      metrics: structuredClone(this.#metrics),
      ...(this.#trainSummary ? { trainSummary: this.#trainSummary } : {}),
      ...(this.#lastError ? { lastError: this.#lastError } : {}),
      ...(this.#lastLine ? { lastLine: this.#lastLine } : {}),
    };
  }

  #changed(): void {
    this.#version++;
  }

  #segment(segment: string): void {
    const line = segment.replace(/\s+$/, '');
    if (line.trim()) {
      this.#lastLine = redactedStart(line.trim(), 200);
    }

    // Metrics blocks: a header, then `  key = value` rows until the first other line.
    const header = METRICS_HEADER.exec(line);
    if (header) {
      this.#metricsBlock = header[1]!;
      this.#metrics[this.#metricsBlock] = {};
      this.#changed();
      return;
    }
    if (this.#metricsBlock) {
      const row = METRICS_ROW.exec(line);
      if (row) {
        this.#metrics[this.#metricsBlock]![row[1]!] = metricValue(row[2]!);
        this.#changed();
        return;
      }
      this.#metricsBlock = undefined;
    }

    this.#scanBars(line);
    this.#scanDicts(line);

    let m: RegExpExecArray | null;
    if ((m = TOTAL_STEPS.exec(line))) this.#set(() => (this.#totalSteps = num(m![1]!)));
    if ((m = NUM_EXAMPLES.exec(line)) && this.#numExamples === undefined) this.#set(() => (this.#numExamples = num(m![1]!)));
    if ((m = NUM_EPOCHS.exec(line))) this.#set(() => (this.#numEpochs = num(m![1]!)));
    if ((m = RESUMING.exec(line))) this.#set(() => (this.#resumedFrom = m![1]!));
    if ((m = SAVING.exec(line))) this.#set(() => (this.#lastCheckpoint = m![1]!));
    const trimmed = line.trim();
    this.#scanWrapperResume(trimmed);
    if (ERROR_LINE.test(trimmed)) this.#set(() => (this.#lastError = redactedStart(trimmed, 300)));
  }

  #scanWrapperResume(line: string): void {
    let m: RegExpExecArray | null;
    if ((m = MOVED_ASIDE.exec(line)) && m[1] === m[4]) {
      if (this.#decided) {
        this.#moved = [];
        this.#wrapperResumeFrom = undefined;
        this.#decided = false;
      }
      const [, name, reason, aside] = m;
      this.#set(() => {
        this.#moved.push({ name: name!, reason: redactedStart(reason!, 300) });
        this.#aside = aside!;
      });
    } else if ((m = WRAPPER_RESUMES.exec(line))) {
      this.#set(() => {
        if (this.#decided) this.#moved = [];
        this.#wrapperResumeFrom = m![1]!;
        this.#decided = true;
      });
    } else if (WRAPPER_STARTS_OVER.test(line)) {
      this.#set(() => {
        if (this.#decided) this.#moved = [];
        this.#wrapperResumeFrom = undefined;
        this.#decided = true;
      });
    }
  }

  #set(apply: () => unknown): void {
    apply();
    this.#changed();
  }

  #scanBars(text: string): void {
    BAR.lastIndex = 0;
    let m: RegExpExecArray | null;
    let lastTraining: BarReading | undefined;
    let lastPhase: BarReading | undefined;
    while ((m = BAR.exec(text))) {
      const bar = readBar(m);
      if (this.#isTrainingBar(bar)) lastTraining = bar;
      else lastPhase = bar;
    }
    if (lastTraining && !sameBar(lastTraining, this.#training)) {
      this.#training = lastTraining;
      this.#changed();
    }
    if (lastPhase && !sameBar(lastPhase, this.#phase)) {
      this.#phase = lastPhase;
      this.#changed();
    }
  }

  /**
   * The training loop's bar has no label; once `Total optimization steps` is known it must also
   * match that total, which tells it apart from the unlabelled evaluation bars inside training.
   */
  #isTrainingBar(bar: BarReading): boolean {
    if (bar.label !== undefined) return false;
    if (this.#totalSteps !== undefined) return bar.total === this.#totalSteps;
    return this.#training === undefined || this.#training.total === bar.total;
  }

  #scanDicts(line: string): void {
    let from = 0;
    for (;;) {
      const start = line.indexOf("{'", from);
      if (start < 0) return;
      const parsed = parsePythonDict(line, start);
      if (!parsed) {
        from = start + 2;
        continue;
      }
      from = parsed.end;
      this.#applyDict(parsed.value);
    }
  }

  #applyDict(d: { [key: string]: PyValue }): void {
    const n = this.#numbers;
    const before = JSON.stringify(n);
    const loss = asNumber(d['loss']);
    if (loss !== undefined) n.loss = loss;
    const lr = asNumber(d['learning_rate']);
    if (lr !== undefined) n.learningRate = lr;
    const epoch = asNumber(d['epoch']);
    if (epoch !== undefined) n.epoch = epoch;
    const throughput = asNumber(d['throughput']);
    if (throughput !== undefined) n.tokensPerSecond = throughput;
    const grad = asNumber(d['grad_norm']);
    if (grad !== undefined) n.gradNorm = grad;
    const seen = asNumber(d['num_input_tokens_seen']);
    if (seen !== undefined) n.tokensSeen = seen;
    const evalLoss = asNumber(d['eval_loss']);
    if (evalLoss !== undefined) n.evalLoss = evalLoss;
    const runtime = asNumber(d['train_runtime']);
    if (runtime !== undefined) {
      const trainLoss = asNumber(d['train_loss']);
      this.#trainSummary = { runtimeSeconds: runtime, ...(trainLoss !== undefined ? { loss: trainLoss } : {}) };
      this.#changed();
    }
    if (JSON.stringify(n) !== before) this.#changed();
  }
}

function sameBar(a: BarReading, b: BarReading | undefined): boolean {
  return (
    b !== undefined &&
    a.current === b.current &&
    a.total === b.total &&
    a.label === b.label &&
    a.elapsedSeconds === b.elapsedSeconds &&
    a.etaSeconds === b.etaSeconds &&
    a.secondsPerItem === b.secondsPerItem &&
    a.unit === b.unit
  );
}

/** Parses a whole log at once (status snapshots, tests). */
export function parseLog(text: string): LogProgress {
  const parser = new LogProgressParser();
  parser.push(text);
  parser.end();
  return parser.progress;
}
