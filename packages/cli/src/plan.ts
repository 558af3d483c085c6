import Table from 'cli-table3';
import { formatIssues, formatPipelinePlan, summarizePlans, type CompiledPipeline, type Issue, type PlanOptions } from '@tunepipe/core';

function gpuCell(gpus: number, gpuType: string | undefined): string {
  if (gpus === 0) return 'CPU';
  return `${gpus}${gpuType ? ` × ${gpuType}` : ''}`;
}

/** The stage graph of a compiled pipeline, then the planner's memory, time and cost per stage. */
export function renderPlan(compiled: CompiledPipeline, warnings: readonly Issue[] = [], options: PlanOptions = {}): string {
  const table = new Table({
    head: ['stage', 'kind', 'after', 'image', 'GPUs', 'hash', 'artifact', 'outputs'],
    style: { head: [], border: [] },
    wordWrap: true,
    colWidths: [null, null, 18, 30, null, 10, 30, 48] as unknown as number[],
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
      stage.expectedOutputs.join('\n'),
    ]);
  }
  const lines = [
    `pipeline ${compiled.pipeline} (namespace ${compiled.namespace}): ${compiled.stages.length} stages, ${compiled.objects.length} objects`,
    table.toString(),
    '',
    formatPipelinePlan(summarizePlans(compiled.stages.map((s) => s.estimate), options)),
  ];
  if (warnings.length > 0) lines.push('', 'warnings:', formatIssues(warnings));
  return lines.join('\n');
}
