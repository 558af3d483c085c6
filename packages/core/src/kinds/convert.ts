import { z } from 'zod';
import { count, MAX_TEXT, stageCommon, text } from './schema.ts';
import { convertInputSources } from '../dsl.ts';
import { didYouMean } from '../issues.ts';
import { rowFieldIssues } from '../rules/rows.ts';
import { CLUSTER_INPUTS, datasetDeliveryIssues } from '../delivery.ts';
import { workDirOf } from '../artifacts/protocol.ts';
import { plannerBase, resolvedStage } from './common.ts';
import type { StageKindModule } from './types.ts';

/** Defaults of the converter that the DSL documents. */
export const CONVERT_DEFAULTS = { seed: 42, split: { validation: 0.02, test: 0.1 } } as const;

export const convert: StageKindModule<'convert'> = {
  kind: 'convert',
  produces: 'dataset',
  configFormat: 'json',
  options: z.strictObject({
    ...stageCommon,
    sources: z.array(text()).min(1),
    templateVars: z.record(z.string().max(200), z.string().max(MAX_TEXT)).optional(),
    seed: z.number().int().min(0).optional(),
    maxSamples: count().optional(),
    split: z.strictObject({ validation: z.number().min(0).optional(), test: z.number().min(0).optional() }).optional(),
    cutoffLen: count(),
    calibration: z.strictObject({ nsamples: count(), maxlen: count(), source: text().optional() }).optional(),
  }),
  dataSources: (stage) => convertInputSources(stage.spec.options),
  resolve(spec, env) {
    const o = spec.options;
    const path = `stages.${spec.name}`;
    const add = env.add;
    const sources = Array.isArray(o.sources) ? o.sources : [];
    if (!Array.isArray(o.sources) || o.sources.length === 0) {
      add({ code: 'convert.sources', path: `${path}.sources`, value: o.sources, message: 'names no dataset source', fix: "list the sources by name: sources: ['my-data'] (datasets/my-data/dataset.yaml)" });
    }
    const identities: Record<string, string> = {};
    // A calibration-only corpus (calibration.source not in sources) is read and shipped like a source.
    const inputSources = Array.isArray(o.sources) ? convertInputSources(o) : [];
    inputSources.forEach((source, i) => {
      const at = i < sources.length ? `${path}.sources[${i}]` : `${path}.calibration.source`;
      const loaded = typeof source === 'string' ? env.ctx.datasets[source] : undefined;
      identities[`dataset:${source}`] = loaded?.digest ?? 'missing';
      if (!loaded) {
        add({ code: 'dataset.missing', path: at, value: source, message: `no dataset source '${String(source)}' (expected datasets/${String(source)}/dataset.yaml)`, fix: (typeof source === 'string' ? didYouMean(source, Object.keys(env.ctx.datasets)) : undefined) ?? `create datasets/${String(source)}/dataset.yaml or remove the source` });
        return;
      }
      for (const issue of rowFieldIssues(String(source), loaded, at)) add(issue);
      for (const issue of datasetDeliveryIssues(loaded)) add(issue);
    });
    if (!Number.isInteger(o.cutoffLen) || o.cutoffLen <= 0) {
      add({ code: 'convert.cutoff', path: `${path}.cutoffLen`, value: o.cutoffLen, message: 'must be a positive integer number of tokens', fix: "use the SFT stage's cutoff_len" });
    }
    if (o.templateVars) {
      for (const [k, v] of Object.entries(o.templateVars)) {
        if (typeof v !== 'string' || v === '') add({ code: 'convert.template-var', path: `${path}.templateVars.${k}`, value: v, message: 'template variable must be a non-empty string', fix: `set ${k} to the value that replaces {{${k}}}` });
      }
    }
    const args: Record<string, unknown> = {
      pipeline: env.pipeline.name,
      sources: inputSources.map((name) => {
        const source = env.ctx.datasets[name];
        return {
          name,
          descriptor: source?.descriptor ?? {},
          files: (source?.files ?? []).map((f) => ({ path: f.path, sha256: f.sha256, size: f.size })),
        };
      }),
      templateVars: o.templateVars ?? {},
      seed: o.seed ?? CONVERT_DEFAULTS.seed,
      ...(o.maxSamples !== undefined ? { maxSamples: o.maxSamples } : {}),
      split: { validation: o.split?.validation ?? CONVERT_DEFAULTS.split.validation, test: o.split?.test ?? CONVERT_DEFAULTS.split.test },
      cutoffLen: o.cutoffLen,
      ...(o.calibration ? { calibration: o.calibration } : {}),
    };
    return resolvedStage(spec, { image: o.image ?? env.ctx.images.runtime, dependsOn: [], identities, args });
  },
  plannerInput(stage, env) {
    const sources = convertInputSources(stage.spec.options).map((n) => env.ctx.datasets[n]);
    const rows = sources.every((s) => s?.stats) ? sources.reduce((sum, s) => sum + s!.stats!.rows, 0) : undefined;
    const bytes = sources.reduce((sum, s) => sum + (s?.files.reduce((b, f) => b + f.size, 0) ?? 0), 0);
    return { ...plannerBase(stage), kind: 'convert', ...(rows !== undefined ? { rows } : {}), bytes };
  },
  config(stage) {
    return { ...stage.args };
  },
  command(_stage, paths, configFile) {
    // The converter only writes its work folder; the stage wrapper publishes it, once.
    return { mode: 'rename', argv: ['tunepipe', 'convert', '--config', configFile, '--inputs', CLUSTER_INPUTS.root, '--work', workDirOf(paths.self)] };
  },
};
