import { PRICES_NOTE } from './gpus.ts';
import type { PipelineResourcePlan, StageResourcePlan } from './plan.ts';
import type { MemoryBreakdown } from './types.ts';
import { formatDuration, formatGiB, formatUsd } from './units.ts';

function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ').trimEnd()).join('\n');
}

const gpuCell = (p: StageResourcePlan) => (p.gpuType ? `${p.gpus}× ${p.gpuType}${p.placement === 'explicit' ? ' (set)' : ''}` : 'CPU');

function memoryCell(p: StageResourcePlan): string {
  if (p.requiredGpuBytes !== undefined && p.usableGpuBytes !== undefined) return `${formatGiB(p.requiredGpuBytes)} / ${formatGiB(p.usableGpuBytes)}`;
  if (p.gpuMemory) return formatGiB(p.gpuMemory.totalBytes);
  if (p.hostMemory) return `RAM ${formatGiB(p.hostMemory.totalBytes)}`;
  return '—';
}

/** One line per stage: GPU, memory needed / usable per GPU, expected time, GPU-hours and cost, then totals. */
export function formatPipelinePlan(plan: PipelineResourcePlan): string {
  const rows: string[][] = [['stage', 'GPU', 'memory/GPU (need / usable)', 'time', 'GPU-h', 'cost']];
  for (const p of plan.stages) {
    const serve = p.kind === 'serve';
    rows.push([
      `${p.name} (${p.kind})`,
      gpuCell(p),
      memoryCell(p),
      serve ? `ready in ${formatDuration(p.expectedSeconds)}` : formatDuration(p.expectedSeconds),
      serve || p.gpus === 0 ? '—' : p.gpuHours.toFixed(2),
      serve ? (p.usdPerHour === null ? '—' : `${formatUsd(p.usdPerHour)}/h`) : p.gpus === 0 ? '—' : formatUsd(p.costUsd),
    ]);
  }
  const t = plan.totals;
  rows.push(['total (batch stages)', '', '', formatDuration(t.expectedSeconds), t.gpuHours.toFixed(2), `${formatUsd(t.costUsd)}${t.costComplete ? '' : ' + unpriced'}`]);
  const lines = [table(rows)];
  if (t.servingUsdPerHour > 0) lines.push(`serving: ${formatUsd(t.servingUsdPerHour)}/h while up (${formatUsd(t.servingUsdPerHour * 24 * 30)} per 30 days)`);
  lines.push(`${plan.cloud} prices, ${Math.round(plan.headroom * 100)}% memory headroom. ${PRICES_NOTE}`);
  for (const p of plan.stages) for (const w of p.warnings) lines.push(`! ${p.name}: ${w}`);
  return lines.join('\n');
}

/** A memory breakdown as an indented list of terms, for `tunepipe plan --verbose`. */
export function formatMemoryBreakdown(m: MemoryBreakdown): string {
  const width = Math.max(...m.terms.map((t) => t.name.length));
  return [
    ...m.terms.map((t) => `  ${t.name.padEnd(width)}  ${formatGiB(t.bytes).padStart(10)}  ${t.detail}`),
    `  ${'total'.padEnd(width)}  ${formatGiB(m.totalBytes).padStart(10)}`,
  ].join('\n');
}
