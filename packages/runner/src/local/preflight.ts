import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { delimiter, isAbsolute, join } from 'node:path';
import type { LocalStagePlan } from './plan.ts';

/** The version in an image tag: `hiyouga/llamafactory:0.9.4` → `0.9.4`, `vllm/vllm-openai:v0.11.0` → `0.11.0`. */
export function versionFromImage(image: string): string | undefined {
  const tag = /:([^:/@]+)(?:@.*)?$/.exec(image)?.[1];
  const m = tag ? /^v?(\d+(?:\.\d+)+)/.exec(tag) : null;
  return m?.[1];
}

/** How to get a tool the stages call, given the image the cluster would use. */
export function installHint(tool: string, plans: readonly LocalStagePlan[]): string {
  const version = plans.map((p) => versionFromImage(p.stage.image)).find(Boolean);
  const pin = (pkg: string) => (version ? `"${pkg}==${version}"` : `"${pkg}"`);
  switch (tool) {
    case 'llamafactory-cli': {
      const quantize = plans.some((p) => p.stage.kind === 'quantize');
      return `pip install ${pin('llamafactory[metrics]')}${quantize ? ' optimum gptqmodel   (quantize needs the GPTQ stack too)' : ''}`;
    }
    case 'vllm':
      return `pip install ${pin('vllm')}`;
    case 'modelscope':
      return 'pip install modelscope';
    case 'hf':
    case 'huggingface-cli':
      return 'pip install -U "huggingface_hub[cli]"';
    case 'tunepipe':
      return 'run through the tunepipe CLI (it passes itself for its own steps) or put tunepipe on PATH';
    default:
      return `install ${tool} and put it on PATH`;
  }
}

/** Whether `command` resolves to an executable, the way a shell's PATH lookup would. */
export async function onPath(command: string, pathVar: string | undefined): Promise<boolean> {
  const candidates = command.includes('/') || isAbsolute(command) ? [command] : (pathVar ?? '').split(delimiter).filter(Boolean).map((d) => join(d, command));
  for (const candidate of candidates) {
    try {
      await access(candidate, constants.X_OK);
      return true;
    } catch {
      // keep looking
    }
  }
  return false;
}

const SHELLS = new Set(['sh', 'bash', '/bin/sh', '/bin/bash']);

/**
 * Everything that would stop a local run part-way, found before anything runs: tools missing on
 * PATH (grouped, each with its install command) and Secret-backed env vars that are not set.
 * A convert stage needs no tool when the in-process converter is given.
 */
export async function localPreflight(
  plans: readonly LocalStagePlan[],
  options: { readonly pathVar: string | undefined; readonly hasConverter: boolean },
): Promise<string[]> {
  const problems: string[] = [];
  const byTool = new Map<string, LocalStagePlan[]>();
  for (const plan of plans) {
    const gang = plan.stage.gang;
    if (gang && gang.pods > 1) {
      // Ranks 1… would wait for a rank-0 address that only exists in the cluster (the gang's pod DNS).
      problems.push(`stage ${plan.stage.name} runs as a gang of ${gang.pods} nodes × ${plan.stage.layout?.gpusPerNode ?? plan.stage.gpus} GPUs; the local target is one machine: run it on a cluster (--target cluster), or set resources.nodes to 1 for a local run`);
      continue;
    }
    if (plan.stage.kind === 'convert' && options.hasConverter) continue;
    if (plan.steps.length === 0 || plan.steps.some((s) => s.command.length === 0)) {
      problems.push(`stage ${plan.stage.name}: its ${plan.stage.workload.kind} has no container command to run locally`);
      continue;
    }
    for (const step of plan.steps) {
      const tool = step.command[0]!;
      if (SHELLS.has(tool)) continue;
      const users = byTool.get(tool) ?? [];
      if (!users.includes(plan)) byTool.set(tool, [...users, plan]);
    }
  }
  for (const [tool, users] of byTool) {
    if (!(await onPath(tool, options.pathVar))) {
      problems.push(`${tool} is not on PATH (needed by ${users.map((p) => p.stage.name).join(', ')}): ${installHint(tool, users)}`);
    }
  }
  for (const plan of plans) {
    for (const s of plan.secretEnv) {
      problems.push(`stage ${plan.stage.name} needs ${s.name} (in the cluster it comes from Secret ${s.secret}, key ${s.key}): export ${s.name}=... before a local run`);
    }
  }
  return problems;
}
