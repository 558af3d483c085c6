import { formatIssue } from '../issues.ts';
import { gpuById, PRICES_NOTE } from './gpus.ts';
import type { PipelineResourcePlan, StageResourcePlan } from './plan.ts';
import type { MemoryBreakdown } from './types.ts';
import type { TrainingStrategy } from './layout.ts';
import { formatDuration, formatGiB, formatUsd, GiB } from './units.ts';
import { COMMUNICATION_OVERLAP, NCCL_BUS_EFFICIENCY } from './assumptions.ts';

/** The width `tunepipe plan` fits its output to, unless asked for everything (`--wide`). */
export const PLAN_WIDTH = 100;

/** One column of a plan table. */
export interface TableColumn {
  readonly header: string;
  /** Numbers are right-aligned. @default 'left' */
  readonly align?: 'left' | 'right';
  /** A column that wraps its words when the table is wider than its width. */
  readonly flex?: boolean;
}

export interface TableOptions {
  /** Flexible columns wrap so the table fits this many characters; unset: no wrapping. */
  readonly width?: number;
}

const GAP = '  ';
/**
 * A space a flexible cell never wraps at (`8×·h100-80gb`, `7m·44s–22m·47s`): printed as a space.
 */
const GLUE = '\u00a0';
/** Indent of a wrapped cell's continued lines. */
const CONTINUATION = '  ';
const textWidth = (s: string) => [...s].length;
const padEnd = (s: string, w: number) => s + ' '.repeat(Math.max(0, w - textWidth(s)));
const padStart = (s: string, w: number) => ' '.repeat(Math.max(0, w - textWidth(s))) + s;

/**
 * Breaks text into lines of at most `width` characters at spaces; a word longer than the width
 * is cut. Continuation lines start with `indent`.
 */
export function wrapText(text: string, width: number, indent = ''): string[] {
  if (width <= 0 || textWidth(text) <= width) return [text];
  // Leading spaces are the line's own indentation: kept on the first line, not wrapped away.
  const leading = /^ */.exec(text)![0];
  const lines: string[] = [];
  let line = leading;
  const room = () => Math.max(1, width - (lines.length === 0 ? 0 : textWidth(indent)));
  const empty = () => line === (lines.length === 0 ? leading : '');
  for (const word of text.slice(leading.length).split(' ')) {
    let rest = word;
    for (;;) {
      const candidate = empty() ? `${line}${rest}` : `${line} ${rest}`;
      if (textWidth(candidate) <= room()) {
        line = candidate;
        break;
      }
      if (!empty()) {
        lines.push(line);
        line = '';
        continue;
      }
      const cut = room() - textWidth(line);
      const chars = [...rest];
      lines.push(`${line}${chars.slice(0, cut).join('')}`);
      line = '';
      rest = chars.slice(cut).join('');
      if (rest === '') break;
    }
  }
  if (!empty() || lines.length === 0) lines.push(line);
  return lines.map((l, i) => (i === 0 ? l : `${indent}${l}`));
}

/**
 * Wraps every line of a block of text to `width`, continuing a line under the text after its
 * marker (`! `, `⚠ `) or label (`fix:   `), so wrapped warnings and issues stay readable.
 */
export function wrapBlock(text: string, width: number): string {
  return text
    .split('\n')
    .flatMap((line) => {
      const lead = /^(\s*(?:[!⚠✗•]\s+|[a-z]+:\s+)?)/.exec(line)?.[1] ?? '';
      return wrapText(line, width, ' '.repeat(textWidth(lead) === 0 ? 2 : textWidth(lead)));
    })
    .join('\n');
}

/**
 * The one table style of the plan: a header, a rule under each column, cells separated by two
 * spaces, numbers right-aligned, and cells of several lines (wrapped or holding `\n`).
 */
export function formatTable(columns: readonly TableColumn[], rows: readonly (readonly string[])[], options: TableOptions = {}): string {
  const cellLines = (cell: string) => cell.split('\n');
  const natural = columns.map((c, i) => Math.max(textWidth(c.header), ...rows.map((r) => Math.max(0, ...cellLines(r[i] ?? '').map(textWidth)))));
  const widths = [...natural];
  if (options.width !== undefined) {
    let excess = widths.reduce((a, b) => a + b, 0) + GAP.length * (columns.length - 1) - options.width;
    // Flexible columns give up room one character at a time, the widest first, down to their
    // longest word (plus the indent of a continued line).
    const least = columns.map((c, i) => (c.flex ? Math.max(textWidth(c.header), ...rows.flatMap((r) => (r[i] ?? '').split(/[ \n]+/).map((w) => textWidth(w) + CONTINUATION.length))) : natural[i]!));
    while (excess > 0) {
      const i = widths.reduce((best, w, j) => (columns[j]!.flex && w > least[j]! && (best < 0 || w > widths[best]!) ? j : best), -1);
      if (i < 0) break;
      widths[i]!--;
      excess--;
    }
  }
  const render = (cells: readonly string[]) => {
    const wrapped = cells.map((cell, i) => cellLines(cell).flatMap((l) => (columns[i]!.flex ? wrapText(l, widths[i]!, CONTINUATION) : [l])));
    const height = Math.max(1, ...wrapped.map((w) => w.length));
    const out: string[] = [];
    for (let line = 0; line < height; line++) {
      out.push(
        wrapped
          .map((w, i) => (columns[i]!.align === 'right' ? padStart(w[line] ?? '', widths[i]!) : padEnd(w[line] ?? '', widths[i]!)))
          .join(GAP)
          .trimEnd()
          .replace(/\u00a0/g, ' '),
      );
    }
    return out;
  };
  return [
    ...render(columns.map((c) => c.header)),
    widths.map((w) => '─'.repeat(w)).join(GAP),
    ...rows.flatMap(render),
  ].join('\n');
}

/** How `formatPipelinePlan` and `formatStageExplain` lay out their text. */
export interface PlanFormatOptions {
  /** Every column and no wrapping (`tunepipe plan --wide`). @default false */
  readonly wide?: boolean;
  /** @default PLAN_WIDTH */
  readonly width?: number;
}

const gpuCell = (p: StageResourcePlan) =>
  p.gpuType
    // "(set)" is the GPU type the pipeline named; the strategy after it is whoever chose it.
    ? `${p.layout && p.layout.nodes > 1 ? `${p.layout.nodes}×` : ''}${p.gpus}×${GLUE}${p.gpuType}${p.placement === 'explicit' ? ' (set)' : ''}${p.layout && p.layout.strategy !== 'ddp' ? `, ${p.layout.strategy}` : ''}`
    : 'CPU';

/** What each strategy does with the model states, for `--explain`. */
const STRATEGY_NOTE: Readonly<Record<TrainingStrategy, string>> = {
  ddp: 'every rank holds the whole model, gradients all-reduced once per optimizer step',
  zero2: 'DeepSpeed ZeRO-2: gradients and optimizer states split over the ranks, 16-bit weights replicated',
  zero3: 'DeepSpeed ZeRO-3: weights, gradients and optimizer states split over the ranks, each layer gathered when it runs',
  'zero3-offload': 'DeepSpeed ZeRO-3 with optimizer states and weights in host memory; the GPU keeps the gathered working set',
  fsdp: 'PyTorch FSDP full shard: like ZeRO-3, units (decoder layers) gathered in bf16 when they run',
};

/** The layout lines of an sft stage: ranks, strategy, model states per GPU. */
function layoutLines(p: StageResourcePlan): string[] {
  if (p.details.kind !== 'sft' || !p.layout) return [];
  const l = p.layout;
  const d = p.details;
  const world = l.nodes * l.gpusPerNode;
  const names = { nodes: 'nodes', gpusPerNode: 'GPUs per node', strategy: 'strategy' } as const;
  const why =
    d.layoutSource === 'explicit'
      ? 'set in the pipeline'
      : `${d.layoutSource === 'partial' ? `${d.layoutSet.map((k) => names[k]).join(' and ')} set in the pipeline, the rest ` : ''}chosen by the planner: the fewest GPUs that fit, then the first of ddp, zero2, zero3, fsdp, zero3-offload, then the smallest GPU`;
  return [
    `layout: ${l.nodes} node${l.nodes > 1 ? 's' : ''} × ${l.gpusPerNode} GPU${l.gpusPerNode > 1 ? 's' : ''} = ${world} rank${world > 1 ? 's' : ''}, strategy ${l.strategy} (${why})`,
    `  ${world === 1 && l.strategy === 'ddp' ? 'one process holds the whole model, no gradient exchange' : STRATEGY_NOTE[l.strategy]}; ${d.finetuningType === 'full' ? 'full fine-tuning' : 'LoRA'}: weights + gradients + optimizer states ${formatGiB(d.modelStateBytes)} per GPU`,
  ];
}
const gib = (bytes: number) => (bytes / GiB).toFixed(2);
const gibBand = (bytes: number) => (bytes / GiB).toFixed(2);

/** `7m 10s–9m 40s`: a time's band, fast to slow (one value when they round alike). */
export function formatDurationRange(range: readonly [number, number]): string {
  const [fast, slow] = range.map(formatDuration);
  return fast === slow ? fast! : `${fast}–${slow}`;
}

/** `$0.11–0.15` (`—` when unknown). */
export function formatUsdRange(range: readonly [number, number] | null): string {
  if (range === null) return '—';
  const [low, high] = range.map(formatUsd);
  return low === high ? low! : `${low}–${high!.replace(/^\$/, '')}`;
}

/** GPU memory needed ± its band / usable; a CPU stage shows its RAM here unless a RAM column does (`wide`). */
function memoryCell(p: StageResourcePlan, wide: boolean): string {
  if (p.requiredGpuBytes !== undefined && p.usableGpuBytes !== undefined) return `${gib(p.requiredGpuBytes)} ±${gibBand(p.requiredGpuBandBytes ?? 0)} / ${gib(p.usableGpuBytes)}`;
  if (p.gpuMemory) return gib(p.gpuMemory.totalBytes);
  if (p.hostMemory && !wide) return `RAM ${gib(p.hostMemory.totalBytes)}`;
  return '—';
}

const glued = (text: string) => text.replace(/ /g, GLUE);
const timeCell = (p: StageResourcePlan) => (p.kind === 'serve' ? `ready ${glued(formatDurationRange(p.secondsRange))}` : glued(formatDurationRange(p.secondsRange)));
const gpuHoursCell = (p: StageResourcePlan) => (p.kind === 'serve' || p.gpus === 0 ? '—' : p.gpuHours.toFixed(2));
const costCell = (p: StageResourcePlan) => (p.kind === 'serve' ? (p.usdPerHour === null ? '—' : `${formatUsd(p.usdPerHour)}/h`) : p.gpus === 0 ? '—' : p.costUsdRange ? formatUsdRange(p.costUsdRange) : formatUsd(p.costUsd));

/**
 * One line per stage: GPU, memory needed ± its error band / usable per GPU, the time's band (fast
 * to slow), GPU-hours at the expected time and the cost's band, then totals, the notes and the
 * planner's warnings. `wide` adds host memory and disk.
 */
export function formatPipelinePlan(plan: PipelineResourcePlan, options: PlanFormatOptions = {}): string {
  const wide = options.wide === true;
  const width = wide ? undefined : (options.width ?? PLAN_WIDTH);
  const columns: TableColumn[] = [
    // Stage, GPU and time cells wrap at their spaces only when the table is wider than the plan
    // (a gang's `2×8× h100-80gb zero3`, a serve stage's `ready …`); tables that fit are unchanged.
    { header: 'stage', flex: true },
    { header: 'GPU', flex: true },
    { header: 'GiB/GPU need ±band / usable', align: 'right' },
    ...(wide ? [{ header: 'RAM GiB', align: 'right' as const }, { header: 'disk GiB', align: 'right' as const }] : []),
    { header: 'time', align: 'right', flex: true },
    { header: 'GPU-h', align: 'right' },
    { header: 'cost', align: 'right' },
  ];
  const rows = plan.stages.map((p) => [
    p.name,
    gpuCell(p),
    memoryCell(p, wide),
    ...(wide ? [p.hostMemory ? gib(p.hostMemory.totalBytes) : '—', p.disk ? gib(p.disk.totalBytes) : '—'] : []),
    timeCell(p),
    gpuHoursCell(p),
    costCell(p),
  ]);
  const t = plan.totals;
  const batch = plan.stages.filter((p) => p.kind !== 'serve');
  const totalRange: [number, number] = [batch.reduce((s, p) => s + p.secondsRange[0], 0), batch.reduce((s, p) => s + p.secondsRange[1], 0)];
  const costRange: [number, number] = [batch.reduce((s, p) => s + (p.costUsdRange?.[0] ?? 0), 0), batch.reduce((s, p) => s + (p.costUsdRange?.[1] ?? 0), 0)];
  rows.push(['total (batch stages)', '', '', ...(wide ? ['', ''] : []), formatDurationRange(totalRange), t.gpuHours.toFixed(2), `${formatUsdRange(costRange)}${t.costComplete ? '' : ' + unpriced'}`]);
  const notes: string[] = [];
  if (t.servingUsdPerHour > 0) notes.push(`serving: ${formatUsd(t.servingUsdPerHour)}/h while up (${formatUsd(t.servingUsdPerHour * 24 * 30)} per 30 days)`);
  notes.push(
    `Every figure carries its error band: a GPU is chosen when the need plus its band fits${plan.headroom > 0 ? ` (with ${Math.round(plan.headroom * 100)}% more kept free)` : ''}; times run fast–slow; GPU-h at the expected time.`,
  );
  notes.push(`${plan.cloud} prices. ${PRICES_NOTE}`);
  for (const p of plan.stages) for (const w of p.warnings) notes.push(`! ${p.name}: ${w}`);
  const block = notes.join('\n');
  return [formatTable(columns, rows, width === undefined ? {} : { width }), width === undefined ? block : wrapBlock(block, width)].join('\n');
}

/** A memory breakdown as a table of its named terms, each with its band, and their sum. */
export function formatMemoryBreakdown(m: MemoryBreakdown, options: PlanFormatOptions = {}): string {
  const width = options.wide ? undefined : (options.width ?? PLAN_WIDTH);
  const table = width === undefined ? {} : { width };
  // Host and disk estimates state no bands: their terms are assumptions or sizes, not models.
  if (!m.terms.some((t) => t.band)) {
    const rows = [...m.terms.map((t) => [t.name, formatGiB(t.bytes), t.detail]), ['total', formatGiB(m.totalBytes), '']];
    return formatTable([{ header: 'term' }, { header: 'size', align: 'right' }, { header: 'how', flex: true }], rows, table);
  }
  const band = (t: { band?: number }) => (t.band ? `±${Math.round(t.band * 100)}%` : 'exact');
  const rows = [...m.terms.map((t) => [t.name, formatGiB(t.bytes), band(t), t.detail]), ['total', formatGiB(m.totalBytes), `±${formatGiB(m.bandBytes)}`, '']];
  return formatTable([{ header: 'term', flex: true }, { header: 'size', align: 'right' }, { header: 'band', align: 'right' }, { header: 'how', flex: true }], rows, table);
}

const seconds = (s: number) => (s > 0 && s < 1 ? '<1s' : formatDuration(s));

/**
 * Everything the planner knows about one stage (`tunepipe plan --explain <stage>`): placement, the
 * named terms of GPU memory, host memory and disk, the time per step, cost, and for SFT the
 * trainable-parameter line exactly as LLaMA-Factory prints it.
 */
export function formatStageExplain(
  p: StageResourcePlan,
  options: PlanFormatOptions & {
    readonly headroom?: number;
    /** The Job's deadline when it also covers waiting for upstream stages (compile() adds their paths). */
    readonly jobDeadlineSeconds?: number;
  } = {},
): string {
  const width = options.wide ? undefined : (options.width ?? PLAN_WIDTH);
  const wrap = (text: string) => (width === undefined ? text : wrapBlock(text, width));
  const gpu = p.gpuType ? gpuById(p.gpuType) : undefined;
  const nodes = p.layout && p.layout.nodes > 1 ? `${p.layout.nodes} nodes × ` : '';
  const where = p.gpuType ? `${nodes}${p.gpus}× ${p.gpuType} (${p.placement === 'explicit' ? 'set in the pipeline' : 'chosen by the planner'})` : 'CPU';
  const out: string[] = [wrap(`${p.name} (${p.kind}) on ${where}`)];
  if (p.details.kind === 'sft') out.push(p.details.paramsLogLine, ...layoutLines(p).map(wrap));

  if (p.gpuMemory) {
    out.push('');
    if (p.requiredGpuBytes !== undefined && p.usableGpuBytes !== undefined) {
      const usable = p.kind === 'serve'
        ? `of vLLM's ${formatGiB(p.usableGpuBytes)} budget; the KV cache takes the rest of it`
        : `of ${formatGiB(p.usableGpuBytes)}${gpu && options.headroom ? ` (${formatGiB(gpu.memoryBytes)} less ${Math.round(options.headroom * 100)}% headroom)` : ''}`;
      out.push(wrap(`GPU memory per GPU: ${formatGiB(p.requiredGpuBytes)} ± ${formatGiB(p.requiredGpuBandBytes ?? 0)} needed ${usable}; the band is kept free`));
    } else out.push('GPU memory per GPU');
    if (p.details.kind === 'sft') {
      const d = p.details;
      out.push(wrap(`PyTorch: ${formatGiB(d.allocatedBytes)} allocated (torch.cuda.max_memory_allocated), ${formatGiB(d.reservedBytes)} reserved (max_memory_reserved); peak at ${d.peakPhase === 'loss' ? "the loss's backward" : "the last layer's backward"}`));
    }
    out.push(formatMemoryBreakdown(p.gpuMemory, options));
  }
  if (p.hostMemory) out.push('', 'host memory (per pod)', formatMemoryBreakdown(p.hostMemory, options));
  if (p.disk) out.push('', 'disk (artifact folder)', formatMemoryBreakdown(p.disk, options));

  const steps = Object.entries(p.secondsBreakdown);
  const deadline = options.jobDeadlineSeconds ?? p.deadlineSeconds;
  const waits = options.jobDeadlineSeconds !== undefined && options.jobDeadlineSeconds !== p.deadlineSeconds ? ` (its own ${formatDuration(p.deadlineSeconds)} plus the longest wait for its inputs)` : '';
  const band = `(${formatDurationRange(p.secondsRange)})`;
  out.push('', wrap(p.kind === 'serve' ? `time: ${formatDuration(p.expectedSeconds)} expected until ready ${band}` : `time: ${formatDuration(p.expectedSeconds)} expected ${band}; Job deadline ${formatDuration(deadline)}${waits}`));
  if (steps.length > 0) out.push(formatTable([{ header: 'step' }, { header: 'time', align: 'right' }], [...steps.map(([name, s]) => [name, seconds(s)]), ['total', formatDuration(p.expectedSeconds)]]));
  if (p.details.kind === 'sft') {
    const d = p.details;
    const count = (x: number) => Math.round(x).toLocaleString('en-US');
    const t = d.throughput;
    const speed = t ? ` at ${count(t.tokensPerSecond)} tokens/s (${count(t.low)}–${count(t.high)}, ±${Math.round(t.band * 100)}%)` : '';
    out.push(wrap(`training: ${d.schedule.optimizerSteps} optimizer steps, ${count(d.tokens)} tokens${d.tokensAreUpperBound ? ' (upper bound)' : ''}${speed}`));
    if (t) {
      out.push(wrap(`  ${(t.flopsPerToken / 1e9).toFixed(2)} GFLOP per token; ${Math.round(t.efficiency * 100)}% of the GPU's peak at this batch (micro-batch: ${t.computeSeconds.toFixed(3)} s compute + ${t.overheadSeconds.toFixed(3)} s kernel launches); physical limit ${count(t.limitTokensPerSecond)} tokens/s per GPU`));
    }
    const c = d.communication;
    if (c) {
      out.push(
        '',
        wrap(`communication per optimizer step, over ${c.link} (× ${Math.round(NCCL_BUS_EFFICIENCY * 100)}% NCCL efficiency = ${(c.bytesPerSecond / 1e9).toFixed(1)} GB/s per GPU):`),
        formatTable(
          [{ header: 'term' }, { header: 'GiB/GPU', align: 'right' }, { header: 'time', align: 'right' }, { header: 'how', flex: true }],
          c.terms.map((x) => [x.name, x.bytes > 0 ? (x.bytes / GiB).toFixed(2) : '—', `${x.seconds.toFixed(2)} s`, `${x.detail}${x.overlaps ? '' : '; blocks the step'}`]),
          width === undefined ? {} : { width },
        ),
        wrap(`  exposed = max(0, overlapping terms − ${Math.round(COMMUNICATION_OVERLAP * 100)}% × ${c.computeSecondsPerStep.toFixed(2)} s compute) + blocking terms = ${c.exposedSecondsPerStep.toFixed(2)} s per step × ${d.schedule.optimizerSteps} steps; training time = compute + exposed communication`),
      );
    }
  }

  if (p.gpus > 0) {
    out.push('');
    if (p.kind === 'serve') out.push(`cost: ${p.usdPerHour === null ? 'no list price' : `${formatUsd(p.usdPerHour)}/h while up`}`);
    else out.push(`cost: ${(p.layout?.nodes ?? 1) * p.gpus} GPU × ${formatDuration(p.expectedSeconds)} = ${p.gpuHours.toFixed(2)} GPU-h = ${formatUsd(p.costUsd)}${p.costUsdRange ? ` (${formatUsdRange(p.costUsdRange)})` : ''}`);
  }
  if (p.warnings.length > 0) out.push('', ...p.warnings.map((w) => wrap(`! ${w}`)));
  if (p.issues.length > 0) out.push('', wrap(p.issues.map(formatIssue).join('\n')));
  return out.join('\n');
}
