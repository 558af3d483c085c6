import Table from 'cli-table3';
import type { CompiledPipeline, Issue } from '@tunepipe/core';
import { formatIssues } from '@tunepipe/core';

function gpuCell(gpus: number, gpuType: string | undefined): string {
  if (gpus === 0) return '-';
  return `${gpus}${gpuType ? ` × ${gpuType}` : ''}`;
}

function duration(seconds: number): string {
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

/** The stage graph of a compiled pipeline as a table a person reads before spending GPU hours. */
export function renderPlan(compiled: CompiledPipeline, warnings: readonly Issue[] = []): string {
  const table = new Table({
    head: ['stage', 'kind', 'after', 'image', 'GPUs', 'hash', 'artifact', 'expected', 'outputs'],
    style: { head: [], border: [] },
    wordWrap: true,
    colWidths: [null, null, 16, 28, null, 10, 30, null, 46] as unknown as number[],
  });
  for (const stage of compiled.stages) {
    table.push([
      stage.name,
      stage.kind,
      stage.dependsOn.join(', ') || '-',
      stage.image,
      gpuCell(stage.gpus, stage.gpuType),
      stage.hash.slice(0, 8),
      stage.artifactPath ? stage.artifactPath.replace(/\/([0-9a-f]{8})[0-9a-f]{56}$/, '/$1…') : `svc/${stage.resourceName}`,
      duration(stage.expectedSeconds),
      stage.expectedOutputs.join('\n'),
    ]);
  }
  const lines = [`pipeline ${compiled.pipeline} (namespace ${compiled.namespace}): ${compiled.stages.length} stages, ${compiled.objects.length} objects`, table.toString()];
  if (warnings.length > 0) lines.push('warnings:', formatIssues(warnings));
  return lines.join('\n');
}
