import Table from 'cli-table3';
import type { DiffCounts, PipelineDiff, PlanDiff, StageDiff } from './diff.ts';

/** Marks tunepipe's pull-request comment so CI updates it instead of adding another. */
export const PLAN_COMMENT_MARKER = '<!-- tunepipe-plan -->';

const plural = (n: number, one: string, many: string): string => `${n} ${n === 1 ? one : many}`;

export function formatGpuHours(hours: number): string {
  return `${hours.toFixed(2)} GPU-hours`;
}

/** "2 stages will run, 5 cached, 1.84 GPU-hours" (removed stages are named when there are any). */
export function summaryLine(counts: DiffCounts, gpuHours: number): string {
  const parts = [`${plural(counts.run, 'stage', 'stages')} will run`, `${counts.cached} cached`];
  if (counts.removed > 0) parts.push(`${counts.removed} removed`);
  parts.push(formatGpuHours(gpuHours));
  return parts.join(', ');
}

function actionLabel(stage: StageDiff): string {
  switch (stage.action) {
    case 'run':
      return stage.workload === 'Deployment' ? 'roll out' : 'run';
    case 'added':
      return stage.workload === 'Deployment' ? 'roll out (new)' : 'run (new)';
    case 'cached':
      return 'cached';
    case 'removed':
      return 'removed';
  }
}

const short = (hash: string | undefined): string => (hash ? hash.slice(0, 8) : '');

function hashCell(stage: StageDiff, code: (s: string) => string): string {
  if (stage.action === 'run') return `${code(short(stage.beforeHash))} → ${code(short(stage.afterHash))}`;
  return code(short(stage.afterHash ?? stage.beforeHash));
}

function gpuCell(stage: StageDiff): string {
  if (stage.gpus === 0) return '-';
  return `${stage.gpus}${stage.gpuType ? ` × ${stage.gpuType}` : ''}`;
}

function gpuHoursCell(stage: StageDiff): string {
  if (stage.gpus === 0 || stage.action === 'cached' || stage.action === 'removed') return '-';
  return stage.workload === 'Deployment' ? 'serving' : stage.gpuHours.toFixed(2);
}

function pipelineHeading(p: PipelineDiff): string {
  switch (p.status) {
    case 'added':
      return `${p.pipeline} (new pipeline): ${summaryLine(p.counts, p.gpuHours)}`;
    case 'removed':
      return `${p.pipeline} (removed pipeline): ${plural(p.counts.removed, 'stage', 'stages')} removed`;
    case 'unchanged':
      return `${p.pipeline}: no changes, ${p.counts.cached} cached`;
    case 'changed':
      return `${p.pipeline}: ${summaryLine(p.counts, p.gpuHours)}`;
  }
}

/** The plan as terminal tables, one per pipeline, and the total line last. */
export function renderPlanTable(plan: PlanDiff): string {
  const blocks: string[] = [];
  for (const p of plan.pipelines) {
    const table = new Table({
      head: ['stage', 'action', 'hash', 'GPUs', 'GPU-h', 'why'],
      style: { head: [], border: [] },
    });
    for (const s of p.stages) {
      table.push([s.stage, actionLabel(s), hashCell(s, (h) => h), gpuCell(s), gpuHoursCell(s), s.reasons.map((r) => r.text).join('\n')]);
    }
    blocks.push(`${pipelineHeading(p)}\n${table.toString()}`);
  }
  blocks.push(`total: ${summaryLine(plan.counts, plan.gpuHours)}`);
  return `${blocks.join('\n\n')}\n`;
}

function escapeCell(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/\r?\n/g, '<br>');
}

function codeSpan(text: string): string {
  return text.includes('`') ? `\`\` ${text} \`\`` : `\`${text}\``;
}

/** The plan as Markdown for a pull-request comment; starts with PLAN_COMMENT_MARKER. */
export function renderPlanMarkdown(plan: PlanDiff): string {
  const lines: string[] = [PLAN_COMMENT_MARKER, '## tunepipe plan', '', `**${summaryLine(plan.counts, plan.gpuHours)}**`, ''];
  for (const p of plan.pipelines) {
    lines.push(`### ${escapeCell(pipelineHeading(p))}`, '');
    if (p.status === 'unchanged') continue;
    lines.push('| stage | action | hash | GPUs | GPU-hours | why |', '| --- | --- | --- | --- | ---: | --- |');
    for (const s of p.stages) {
      const why = s.reasons.map((r) => escapeCell(r.text)).join('<br>');
      const action = s.action === 'cached' ? actionLabel(s) : `**${actionLabel(s)}**`;
      lines.push(`| ${codeSpan(s.stage)} | ${action} | ${hashCell(s, codeSpan)} | ${escapeCell(gpuCell(s))} | ${gpuHoursCell(s)} | ${why} |`);
    }
    lines.push('');
  }
  lines.push('GPU-hours count batch stages that run (GPUs × expected run time); serving GPUs are not included.', '');
  return lines.join('\n');
}
