import { z } from 'zod';
import { count, handle, MAX_TEXT, stageCommon, text } from './schema.ts';
import { VLLM_DEFAULT_PORT } from '../defaults.ts';
import { modelArchitecture, requireArchitecture } from '../model/source.ts';
import { readServeArgs } from '../planner/serve.ts';
import { didYouMean, type Issue } from '../issues.ts';
import { VLLM_SERVE_FLAGS } from '../reference/vllm-serve-flags.gen.ts';
import { vllmValueIssues } from '../rules/vllm.ts';
import { DERIVED_VLLM_FLAGS, flagArgv, vllmFlagName } from '../vllm.ts';
import { checkDatasetEntries, checkInput, checkSecretRef, plannerBase, resolvedStage, stagesOf } from './common.ts';
import type { ArtifactHandle } from '../handles.ts';
import type { ResolveEnv, ResolvedStage, StageKindModule } from './types.ts';

const TENSOR_PARALLEL = '--tensor-parallel-size';
const SECRET_LIKE_FLAG = /(token|api[-_]?key|password|secret)/i;

/** A Deployment is not retried like a Job: serve takes no backoffLimit. */
const { backoffLimit: _retries, ...serveCommon } = stageCommon;

/** The typed serve options and the flags they set. */
const TYPED_FLAGS = [
  ['maxModelLen', '--max-model-len'],
  ['gpuMemoryUtilization', '--gpu-memory-utilization'],
  ['maxNumSeqs', '--max-num-seqs'],
] as const;

export const serve: StageKindModule<'serve'> = {
  kind: 'serve',
  produces: 'endpoint',
  configFormat: 'json',
  options: z.strictObject({
    ...serveCommon,
    model: handle(),
    servedModelName: text().optional(),
    maxModelLen: count().optional(),
    gpuMemoryUtilization: z.number().optional(),
    maxNumSeqs: count().optional(),
    apiKey: z.strictObject({ secretName: text(), key: text() }).optional(),
    replicas: z.number().int().min(0).max(1000).optional(),
    port: z.number().int().min(1).max(65535).optional(),
    requires: z.array(handle()).optional(),
    verify: z
      .strictObject({ expectName: text(), data: handle().optional(), identityPrompts: z.array(text()).optional(), limit: count().optional() })
      .optional(),
    args: z.record(z.string().max(200), z.union([z.string().max(MAX_TEXT), z.number(), z.boolean(), z.array(z.string().max(MAX_TEXT))])).optional(),
  }),
  resolve(spec, env) {
    const o = spec.options;
    const path = `stages.${spec.name}`;
    const add = env.add;
    const servable = checkInput(o.model, `${path}.model`, ['merged-model', 'quantized-model', 'adapter'], env, { code: 'serve.input', message: 'vLLM serves a merged, quantized or fully fine-tuned model from the artifacts volume', fix: 'serve the output of merge or quantize' }) && servableAdapter(o.model, `${path}.model`, env);
    const requires = Array.isArray(o.requires) ? o.requires : [];
    const requiredOk = requires.map((r, i) => {
      const ok = checkInput(r, `${path}.requires[${i}]`, ['eval-report'], env);
      const required = ok ? env.resolved.get(r.stage) : undefined;
      if (required?.kind === 'evaluate' && (required as ResolvedStage<'evaluate'>).spec.options.gate === undefined) {
        add({ code: 'serve.ungated', path: `${path}.requires[${i}]`, value: r.stage, message: `evaluate '${r.stage}' has no gate, so requiring it only waits for it to finish`, fix: 'give it a gate, e.g. gate: { bleu4: { min: 20 } }', severity: 'warning' });
      }
      return ok;
    });
    const verifyData = o.verify?.data;
    const verifyDataOk = verifyData !== undefined && checkInput(verifyData, `${path}.verify.data`, ['dataset'], env);

    // The one order of vLLM flags: the derived ones, the typed options, the tensor-parallel slot
    // (filled from the planner's GPU count when it is above 1), then `args` by name.
    const flags: Record<string, unknown> = {
      '--served-model-name': o.servedModelName ?? env.pipeline.name,
      '--port': o.port ?? VLLM_DEFAULT_PORT,
    };
    const argPaths: Record<string, string> = {};
    if (o.servedModelName !== undefined) argPaths['--served-model-name'] = `${path}.servedModelName`;
    if (o.port !== undefined) argPaths['--port'] = `${path}.port`;
    for (const [option, flag] of TYPED_FLAGS) {
      if (o[option] === undefined) continue;
      flags[flag] = o[option];
      argPaths[flag] = `${path}.${option}`;
    }
    flags[TENSOR_PARALLEL] = undefined;
    for (const key of Object.keys(o.args ?? {}).sort()) {
      const value = o.args![key];
      const at = `${path}.args.${key}`;
      if (value === undefined) continue;
      const flag = vllmFlagName(key);
      if (DERIVED_VLLM_FLAGS.has(flag)) {
        const secret = flag === '--api-key';
        add({ code: secret ? 'secret.literal' : 'vllm.derived', path: at, value: secret ? '<redacted>' : value, message: secret ? 'an API key written as a literal ends up in the Deployment, Git and Pulumi state' : `${flag} is set by tunepipe from the serve options`, fix: secret ? 'use apiKey: { secretName, key } (passed as VLLM_API_KEY from the Secret)' : `use the typed serve option instead of args.${key}` });
        continue;
      }
      if (argPaths[flag] !== undefined) {
        add({ code: 'args.conflict', path: at, value, message: `${flag} is also set at ${argPaths[flag]} (${JSON.stringify(flags[flag])}); a flag has one value`, fix: 'keep it in one place (the typed option when there is one)' });
        continue;
      }
      flags[flag] = value;
      argPaths[flag] = at;
    }
    const stage = resolvedStage(spec, {
      image: o.image ?? env.ctx.images.vllm,
      dependsOn: stagesOf([servable ? o.model : undefined, ...requires.filter((_, i) => requiredOk[i]), verifyDataOk ? verifyData : undefined]),
      args: flags,
      argPaths,
    });
    checkFlags(stage, add);
    // Values of every flag, typed options included: numbers that are numbers, ranges vLLM checks at
    // start (the context through any spelling of --max-model-len, the allowed --max-lora-rank values).
    const contextTokens = servable ? modelArchitecture(o.model.base, env.ctx)?.maxPositionEmbeddings : undefined;
    const known = Object.fromEntries(Object.entries(flags).filter(([flag, value]) => value !== undefined && Object.hasOwn(VLLM_SERVE_FLAGS, flag)));
    for (const issue of vllmValueIssues(known, contextTokens !== undefined ? { contextTokens } : {}, (flag) => argPaths[flag] ?? `${path}.args.${flag}`)) add(issue);
    if (o.servedModelName !== undefined && (typeof o.servedModelName !== 'string' || o.servedModelName.trim() === '')) {
      add({ code: 'serve.name', path: `${path}.servedModelName`, value: o.servedModelName, message: 'served model name is empty', fix: 'remove it (defaults to the pipeline name)' });
    }
    if (o.apiKey) checkSecretRef(o.apiKey, `${path}.apiKey`, add);
    if (o.verify) {
      if (typeof o.verify.expectName !== 'string' || o.verify.expectName.trim() === '') {
        add({ code: 'serve.verify', path: `${path}.verify.expectName`, value: o.verify.expectName, message: 'the post-deploy check needs the name the identity answers must contain', fix: 'set it to the identity name the data teaches, e.g. templateVars.name' });
      }
      if (verifyData && verifyDataOk) {
        checkDatasetEntries(verifyData, `${path}.verify.data`, env);
        if (verifyData.split !== 'test') add({ code: 'serve.verify', path: `${path}.verify.data`, value: verifyData.split, message: `scores the served model on the ${verifyData.split} split`, fix: "wire convert's `test` output, the split the evaluate stages score" });
      }
    }
    return stage;
  },
  plannerInput(stage, env) {
    const o = stage.spec.options;
    const gpus = stage.resources.gpus ?? 1;
    return {
      ...plannerBase(stage),
      kind: 'serve',
      architecture: requireArchitecture(o.model.base, env.ctx),
      weights: o.model.kind === 'quantized-model' ? { format: 'gptq', bits: o.model.bits } : { format: 'dense' },
      args: readServeArgs(servedFlags(stage, gpus)),
      replicas: o.replicas ?? 1,
    };
  },
  config(stage, paths, env) {
    const o = stage.spec.options;
    return {
      model: paths.of(o.model.stage),
      waitFor: [o.model.stage, ...(o.requires ?? []).map((r) => r.stage)].map((s) => paths.marker(s)),
      args: flagArgv(Object.entries(servedFlags(stage, env.gpus))),
      ...(o.verify?.data ? { verifyData: { dir: paths.of(o.verify.data.stage), entries: [...o.verify.data.entries] } } : {}),
      ...(o.verify ? { verify: { expectName: o.verify.expectName, ...(o.verify.identityPrompts ? { identityPrompts: o.verify.identityPrompts } : {}), ...(o.verify.limit !== undefined ? { limit: o.verify.limit } : {}) } } : {}),
    };
  },
};

/**
 * An sft handle is served only when that stage trained every weight: its folder is then a whole
 * model. The producer's resolved args decide, as for merge (finetuning_type may come via extraArgs).
 */
function servableAdapter(model: ArtifactHandle, path: string, env: ResolveEnv): boolean {
  if (model.kind !== 'adapter') return true;
  if (env.resolved.get(model.stage)?.args['finetuning_type'] === 'full') return true;
  env.add({ code: 'serve.input', path, value: `adapter from sft '${model.stage}'`, message: `sft '${model.stage}' trains a LoRA adapter, which vLLM serves only merged into its base`, fix: `merge it first (p.merge({ adapter })) and serve the merged model, or train with finetuning_type: 'full'` });
  env.blocked();
  return false;
}

/** The flags vLLM is started with on `gpus` GPUs (tensor parallel across them). */
export function servedFlags(stage: ResolvedStage<'serve'>, gpus: number): Record<string, unknown> {
  const flags: Record<string, unknown> = {};
  for (const [flag, value] of Object.entries(stage.args)) {
    if (flag === TENSOR_PARALLEL) {
      if (gpus > 1) flags[flag] = gpus;
    } else if (value !== undefined) {
      flags[flag] = value;
    }
  }
  return flags;
}

/** The port vLLM listens on. */
export function servedPort(stage: ResolvedStage<'serve'>): number {
  return stage.args['--port'] as number;
}

function checkFlags(stage: ResolvedStage<'serve'>, add: (i: Issue) => void): void {
  const known = Object.keys(VLLM_SERVE_FLAGS);
  for (const [flag, value] of Object.entries(stage.args)) {
    const at = stage.argPaths[flag];
    if (value === undefined || at === undefined || !at.includes('.args.')) continue;
    const spec = Object.hasOwn(VLLM_SERVE_FLAGS, flag) ? VLLM_SERVE_FLAGS[flag] : undefined;
    if (!spec) {
      add({ code: 'vllm.unknown', path: at, value, message: `vllm serve has no flag ${flag}`, fix: didYouMean(flag, known) ?? 'remove it' });
      continue;
    }
    if (SECRET_LIKE_FLAG.test(flag) && typeof value === 'string') {
      add({ code: 'secret.literal', path: at, value: '<redacted>', message: 'a secret written as a literal ends up in the Deployment, Git and Pulumi state', fix: 'read it from a Secret' });
      continue;
    }
    if (flag === '--quantization' && typeof value === 'string' && value.startsWith('gptq')) {
      add({ code: 'vllm.quantization', path: at, value, message: "vLLM detects GPTQ from the model's config; forcing 'gptq' disables the faster Marlin kernels", fix: 'remove quantization' });
      continue;
    }
    // `values` are the ones vLLM's parser lets through but its engine checks at start-up.
    const allowed = spec.choices ?? spec.values;
    if (allowed && typeof value === 'string' && !allowed.includes(value)) {
      add({ code: 'vllm.choice', path: at, value, message: `is not one of ${allowed.join(', ')}`, fix: didYouMean(value, allowed.map(String)) ?? `use one of ${allowed.join(', ')}` });
    }
  }
}
