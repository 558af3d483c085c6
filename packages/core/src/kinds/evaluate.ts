import { z } from 'zod';
import { handle } from './schema.ts';
import { checkGate, gateRules } from '../gate.ts';
import { canonicalJson } from '../hash.ts';
import { checkInput, offlineEnv } from './common.ts';
import { generationConfig, generationOptions, generationPlannerInput, resolveGeneration } from './generation.ts';
import type { StageKindModule } from './types.ts';

/** Scores a model on a held-out split (BLEU-4, ROUGE as LLaMA-Factory computes them), optionally gated. */
export const evaluate: StageKindModule<'evaluate'> = {
  kind: 'evaluate',
  produces: 'eval-report',
  configFormat: 'yaml',
  options: z.strictObject({ ...generationOptions, gate: z.unknown().optional(), baseline: handle().optional() }),
  toolEnv: offlineEnv,
  resolve(spec, env) {
    const o = spec.options;
    const path = `stages.${spec.name}`;
    const add = env.add;
    const baseline = o.baseline !== undefined && checkInput(o.baseline, `${path}.baseline`, ['eval-report'], env);
    if (o.baseline && baseline && env.resolved.get(o.baseline.stage)?.kind !== 'evaluate') {
      add({ code: 'gate.baseline', path: `${path}.baseline`, value: o.baseline.stage, message: 'the baseline must be another evaluate stage (usually of the base model on the same test split)', fix: 'pass the value p.evaluate({ model: base, … }) returned' });
    }
    for (const issue of checkGate(o.gate, { path: `${path}.gate`, hasBaseline: o.baseline !== undefined })) add(issue);
    const stage = resolveGeneration(spec, env, {
      dependsOn: o.baseline && baseline ? [o.baseline.stage] : [],
      ...(o.gate !== undefined ? { identities: { gate: canonicalJson(gateRules(o.gate)) } } : {}),
    });
    const split = (o.data as { split?: unknown } | undefined)?.split;
    if (split === 'train' || split === 'calibration') {
      add({ code: 'evaluate.split', path: `${path}.data`, value: split, message: `scores the model on its ${split} data: the numbers would say nothing about unseen inputs`, fix: "wire convert's `test` output" });
    }
    return stage;
  },
  plannerInput: generationPlannerInput,
  config: generationConfig,
  command(_stage, _paths, configFile) {
    return { mode: 'rename', argv: ['llamafactory-cli', 'train', configFile] };
  },
  gate(stage, paths) {
    const o = stage.spec.options;
    if (o.gate === undefined) return undefined;
    return { rules: gateRules(o.gate), baselineResults: o.baseline ? `${paths.of(o.baseline.stage)}/predict_results.json` : null };
  },
};
