import type { CompileContext } from './context.ts';
import { resolveContext, type ResolvedContext } from './context.ts';
import { convertInputSources, modelSourceOf, type BaseModelOptions, type Pipeline, type SecretRef, type StageSpec } from './dsl.ts';
import { canonicalJson } from './hash.ts';
import { architectureDifferences, architectureFromConfig, modelArchitecture, parseObjectStoreUri } from './model/source.ts';
import type { ArtifactHandle } from './handles.ts';
import { didYouMean, isError, type Issue } from './issues.ts';
import { plannerIssues, planStages } from './plan.ts';
import { checkGate } from './gate.ts';
import { DNS_LABEL_MAX, isDnsLabel, toDnsLabel } from './names.ts';
import { LLAMAFACTORY_ARGS, LLAMAFACTORY_TEMPLATES } from './reference/llamafactory-args.gen.ts';
import { VLLM_SERVE_FLAGS } from './reference/vllm-serve-flags.gen.ts';
import { PINS } from './reference/pins.gen.ts';
import { DERIVED_VLLM_FLAGS, vllmFlagName } from './vllm.ts';

/** Characters a Job name spends on `-<hash8>` after `<pipeline>-<stage>`. */
const HASH_SUFFIX = 9;
const MUTABLE_REVISIONS = new Set(['main', 'master', 'head', 'latest', 'dev', 'develop']);
const SECRET_LIKE_KEY = /(token|api[-_]?key|password|secret)/i;
/** ConfigMaps are capped at 1 MiB by the API server; leave room for metadata. */
export const DATASET_CONFIGMAP_BUDGET = 900 * 1024;

/** Keys the compiler derives from handles; a user-set value would point a stage at the wrong artifact. */
const DERIVED_KEYS: Record<string, readonly string[]> = {
  sft: ['stage', 'do_train', 'model_name_or_path', 'adapter_name_or_path', 'template', 'dataset_dir', 'dataset', 'eval_dataset', 'output_dir', 'overwrite_output_dir', 'resume_from_checkpoint'],
  merge: ['model_name_or_path', 'adapter_name_or_path', 'export_dir', 'finetuning_type', 'export_quantization_bit'],
  quantize: ['model_name_or_path', 'export_dir', 'export_quantization_dataset'],
  evaluate: ['stage', 'do_predict', 'do_train', 'predict_with_generate', 'model_name_or_path', 'adapter_name_or_path', 'dataset_dir', 'eval_dataset', 'dataset', 'output_dir'],
};

/**
 * Every problem with a pipeline that would otherwise surface inside a (GPU) pod, all at once.
 * Pure: reads nothing but its arguments.
 */
export function check(pipeline: Pipeline, context: CompileContext = {}): Issue[] {
  const ctx = resolveContext(context);
  const issues = structuralIssues(pipeline, ctx);
  // The planner reasons about sizes, so it only runs on a structurally sound pipeline.
  if (!issues.some(isError)) issues.push(...plannerIssues(planStages(pipeline, ctx)));
  return issues;
}

/** Every problem but the planner's (which needs a sound pipeline to size). */
export function structuralIssues(pipeline: Pipeline, ctx: ResolvedContext): Issue[] {
  const issues: Issue[] = [];
  const add = (issue: Issue) => issues.push(issue);

  if (!isDnsLabel(pipeline.name)) {
    add({ code: 'name.dns', path: 'pipeline.name', value: pipeline.name, message: 'is not a DNS-1123 label (lower-case letters, digits and -, at most 63)', fix: `use '${toDnsLabel(pipeline.name)}'` });
  }

  const seen = new Map<string, StageSpec>();
  for (const stage of pipeline.stages) {
    const path = `stages.${stage.name}`;
    if (!isDnsLabel(stage.name)) {
      add({ code: 'name.dns', path: `${path}.name`, value: stage.name, message: 'stage name is not a DNS-1123 label', fix: `use '${toDnsLabel(stage.name)}'` });
    }
    if (seen.has(stage.name)) {
      add({ code: 'stage.duplicate', path: `${path}.name`, value: stage.name, message: `two stages are named '${stage.name}'`, fix: `give the second ${stage.kind} stage its own name: { name: '${stage.name}-2', … }` });
    }
    seen.set(stage.name, stage);
    const verifySuffix = stage.kind === 'serve' && stage.options.verify ? '-verify'.length : 0;
    const jobNameLength = pipeline.name.length + 1 + stage.name.length + verifySuffix + HASH_SUFFIX;
    if (jobNameLength > DNS_LABEL_MAX) {
      add({ code: 'name.length', path: `${path}.name`, value: `${pipeline.name}-${stage.name}${verifySuffix ? '-verify' : ''}-<hash8>`, message: `Job name would be ${jobNameLength} characters; Kubernetes allows ${DNS_LABEL_MAX}`, fix: `shorten the pipeline or stage name by ${jobNameLength - DNS_LABEL_MAX} characters` });
    }
    if ('image' in stage.options && stage.options.image !== undefined) checkImage(stage.options.image, `${path}.image`, add);
  }

  const wired = (handle: ArtifactHandle, path: string) => checkWiring(handle, path, seen, add);

  for (const stage of pipeline.stages) {
    const path = `stages.${stage.name}`;
    switch (stage.kind) {
      case 'fetch-model': {
        const o = stage.options;
        checkTemplate(o.template, `${path}.template`, add);
        checkModelSource(o, path, ctx, add);
        break;
      }
      case 'convert': {
        const o = stage.options;
        // A calibration-only corpus (calibration.source not in sources) is read and shipped like a source.
        convertInputSources(o).forEach((source, i) => {
          const at = i < o.sources.length ? `${path}.sources[${i}]` : `${path}.calibration.source`;
          const loaded = ctx.datasets[source];
          if (!loaded) {
            add({ code: 'dataset.missing', path: at, value: source, message: `no dataset source '${source}' (expected datasets/${source}/dataset.yaml)`, fix: didYouMean(source, Object.keys(ctx.datasets)) ?? `create datasets/${source}/dataset.yaml or remove the source` });
            return;
          }
          for (const f of loaded.files) {
            if (f.url === undefined && f.gzipBase64 === undefined) {
              add({ code: 'dataset.undeliverable', path: at, value: `${source}/${f.path}`, message: 'the file has neither ConfigMap content nor a download URL, so the convert Job would not find it', fix: `declare a url (https://, s3://, hf://, ms://) for ${f.path} in datasets/${source}/dataset.yaml` });
            }
          }
          const bytes = loaded.files.reduce((sum, f) => sum + (f.url === undefined ? (f.gzipBase64?.length ?? 0) : 0), 0);
          if (bytes > DATASET_CONFIGMAP_BUDGET) {
            add({ code: 'dataset.too-large', path: at, value: `${source}: ${(bytes / 1024).toFixed(0)} KiB compressed`, message: `does not fit in a ConfigMap (budget ${DATASET_CONFIGMAP_BUDGET / 1024} KiB after gzip+base64); it would be truncated or rejected by the API server`, fix: `declare a remote source (https://, s3:// or a hub id) in datasets/${source}/dataset.yaml so the convert Job fetches it in the cluster` });
          }
        });
        if (!Number.isInteger(o.cutoffLen) || o.cutoffLen <= 0) {
          add({ code: 'convert.cutoff', path: `${path}.cutoffLen`, value: o.cutoffLen, message: 'must be a positive integer number of tokens', fix: "use the SFT stage's cutoff_len" });
        }
        if (o.templateVars) {
          for (const [k, v] of Object.entries(o.templateVars)) {
            if (typeof v !== 'string' || v === '') add({ code: 'convert.template-var', path: `${path}.templateVars.${k}`, value: v, message: 'template variable must be a non-empty string', fix: `set ${k} to the value that replaces {{${k}}}` });
          }
        }
        break;
      }
      case 'sft': {
        const o = stage.options;
        wired(o.model, `${path}.model`);
        wired(o.train, `${path}.train`);
        if (o.eval) wired(o.eval, `${path}.eval`);
        const args = { ...(o.args ?? {}), ...(o.extraArgs ?? {}) } as Record<string, unknown>;
        checkLlamaFactoryArgs(args, `${path}.args`, 'train', add);
        checkDerived('sft', o.extraArgs, `${path}.extraArgs`, add);
        if (args['overwrite_output_dir'] === true) {
          add({ code: 'sft.overwrite', path: `${path}.args.overwrite_output_dir`, value: true, message: 'a restarted pod would throw away its checkpoints instead of resuming', fix: 'remove it; tunepipe keeps overwrite_output_dir: false' });
        }
        if (args['bf16'] === true && args['fp16'] === true) {
          add({ code: 'sft.precision', path: `${path}.args`, value: { bf16: true, fp16: true }, message: 'bf16 and fp16 are mutually exclusive', fix: 'keep bf16 on Ampere or newer GPUs, fp16 on T4/V100' });
        }
        if (o.eval) {
          const producer = seen.get(o.eval.stage);
          if (producer?.kind === 'convert' && producer.options.split?.validation === 0) {
            add({ code: 'sft.eval-empty', path: `${path}.eval`, value: 0, message: `convert '${producer.name}' holds out no validation rows, so evaluation during training would see an empty set`, fix: 'set split.validation on convert (e.g. 0.02) or remove eval' });
          }
        }
        if (o.train.split !== 'train') {
          add({ code: 'sft.split', path: `${path}.train`, value: o.train.split, message: `trains on the ${o.train.split} split`, fix: "wire convert's `train` output" });
        }
        const cutoff = typeof args['cutoff_len'] === 'number' ? args['cutoff_len'] : 2048;
        const context = modelArchitecture(o.model, ctx)?.maxPositionEmbeddings;
        if (context !== undefined && cutoff > context) {
          add({ code: 'sft.cutoff-context', path: `${path}.args.cutoff_len`, value: cutoff, message: `is longer than the model's context (${context} tokens)`, fix: `use at most ${context}` });
        }
        const convert = seen.get(o.train.stage);
        if (convert?.kind === 'convert' && convert.options.cutoffLen !== cutoff) {
          add({ code: 'sft.cutoff-mismatch', path: `${path}.args.cutoff_len`, value: cutoff, message: `convert '${convert.name}' filters rows at cutoffLen ${convert.options.cutoffLen}, training truncates at ${cutoff}`, fix: 'use the same value in both (a shared constant in pipeline.ts)' });
        }
        if (o.resources?.gpus !== undefined && (!Number.isInteger(o.resources.gpus) || o.resources.gpus < 1)) {
          add({ code: 'resources.gpus', path: `${path}.resources.gpus`, value: o.resources.gpus, message: 'training needs a whole number of GPUs, at least 1', fix: 'use 1, 2, 4 or 8' });
        }
        break;
      }
      case 'merge': {
        const o = stage.options;
        wired(o.adapter, `${path}.adapter`);
        if (o.adapter.kind !== 'adapter') {
          add({ code: 'merge.input', path: `${path}.adapter`, value: o.adapter.kind, message: 'merge takes the adapter an sft stage produced', fix: 'pass the value returned by p.sft(…)' });
          break;
        }
        const args = { ...(o.args ?? {}), ...(o.extraArgs ?? {}) } as Record<string, unknown>;
        checkLlamaFactoryArgs(args, `${path}.args`, 'export', add);
        checkExportArgs(args, `${path}.args`, add);
        checkDerived('merge', o.extraArgs, `${path}.extraArgs`, add);
        const template = typeof args['template'] === 'string' ? args['template'] : o.adapter.template;
        if (template !== o.adapter.template) {
          add({ code: 'merge.template-mismatch', path: `${path}.args.template`, value: template, message: `the adapter was trained with template '${o.adapter.template}'; merging with another one changes the prompt format the model learned`, fix: `remove template (tunepipe uses the adapter's) or set it to '${o.adapter.template}'` });
        }
        if (o.base && canonicalJson(o.base.source) !== canonicalJson(o.adapter.base.source)) {
          add({ code: 'merge.base-mismatch', path: `${path}.base`, value: `${o.base.id}@${o.base.revision}`, message: `the adapter was trained on ${o.adapter.base.id}@${o.adapter.base.revision}; LoRA weights only fit the base they were trained on`, fix: 'remove `base` (merge reads it from the adapter)' });
        }
        break;
      }
      case 'quantize': {
        const o = stage.options;
        wired(o.model, `${path}.model`);
        if ((o.model as ArtifactHandle).kind !== 'merged-model') {
          add({ code: 'quantize.input', path: `${path}.model`, value: (o.model as ArtifactHandle).kind, message: 'GPTQ quantizes a merged model only (LLaMA-Factory: "Please merge adapters before quantizing the model.")', fix: 'add a merge stage and quantize its output: p.quantize({ model: p.merge({ adapter }), … })' });
        }
        if (!o.calibration) {
          add({ code: 'quantize.calibration', path: `${path}.calibration`, message: 'GPTQ needs calibration data (export_quantization_dataset)', fix: "wire convert's `calibration` output and configure `calibration` on the convert stage" });
        } else {
          wired(o.calibration, `${path}.calibration`);
          const convert = seen.get(o.calibration.stage);
          if (o.calibration.split !== 'calibration') {
            add({ code: 'quantize.calibration', path: `${path}.calibration`, value: o.calibration.split, message: 'calibration must be text rows from the calibration split', fix: "wire convert's `calibration` output" });
          } else if (convert?.kind === 'convert') {
            const cal = convert.options.calibration;
            const maxlen = o.args?.export_quantization_maxlen ?? 1024;
            const nsamples = o.args?.export_quantization_nsamples ?? 128;
            if (!cal) {
              add({ code: 'quantize.calibration', path: `stages.${convert.name}.calibration`, message: `quantize '${stage.name}' needs calibration data but convert '${convert.name}' builds none`, fix: `add calibration: { nsamples: ${nsamples}, maxlen: ${maxlen} } to convert` });
            } else if (cal.maxlen < maxlen || cal.nsamples < nsamples) {
              add({ code: 'quantize.calibration-size', path: `stages.${convert.name}.calibration`, value: cal, message: `quantize draws ${nsamples} windows of ${maxlen} tokens; convert checks only for ${cal.nsamples} rows longer than ${cal.maxlen}`, fix: `set calibration to { nsamples: ${nsamples}, maxlen: ${maxlen} } (or more)` });
            }
          }
        }
        const args = { ...(o.args ?? {}), ...(o.extraArgs ?? {}) } as Record<string, unknown>;
        checkLlamaFactoryArgs(args, `${path}.args`, 'export', add);
        checkExportArgs(args, `${path}.args`, add);
        checkDerived('quantize', o.extraArgs, `${path}.extraArgs`, add);
        if (args['adapter_name_or_path'] !== undefined) {
          add({ code: 'quantize.adapter', path: `${path}.extraArgs.adapter_name_or_path`, value: args['adapter_name_or_path'], message: 'LLaMA-Factory refuses to quantize with an adapter attached ("Please merge adapters before quantizing the model.")', fix: 'remove it; quantize the merged model' });
        }
        const bits = args['export_quantization_bit'];
        if (![2, 3, 4, 8].includes(bits as number)) {
          add({ code: 'quantize.bits', path: `${path}.args.export_quantization_bit`, value: bits, message: 'GPTQ supports 2, 3, 4 or 8 bits', fix: 'use 4 (the usual choice) or 8' });
        }
        break;
      }
      case 'evaluate': {
        const o = stage.options;
        wired(o.model, `${path}.model`);
        wired(o.data, `${path}.data`);
        if (o.baseline) wired(o.baseline, `${path}.baseline`);
        if (o.data.split === 'train' || o.data.split === 'calibration') {
          add({ code: 'evaluate.split', path: `${path}.data`, value: o.data.split, message: `scores the model on its ${o.data.split} data: the numbers would say nothing about unseen inputs`, fix: "wire convert's `test` output" });
        }
        const args = { ...(o.args ?? {}), ...(o.extraArgs ?? {}) } as Record<string, unknown>;
        checkLlamaFactoryArgs(args, `${path}.args`, 'train', add);
        checkDerived('evaluate', o.extraArgs, `${path}.extraArgs`, add);
        for (const issue of checkGate(o.gate, { path: `${path}.gate`, hasBaseline: o.baseline !== undefined })) add(issue);
        if (o.baseline && seen.get(o.baseline.stage)?.kind !== 'evaluate') {
          add({ code: 'gate.baseline', path: `${path}.baseline`, value: o.baseline.stage, message: 'the baseline must be another evaluate stage (usually of the base model on the same test split)', fix: 'pass the value p.evaluate({ model: base, … }) returned' });
        }
        break;
      }
      case 'serve': {
        const o = stage.options;
        wired(o.model, `${path}.model`);
        for (const [i, r] of (o.requires ?? []).entries()) {
          wired(r, `${path}.requires[${i}]`);
          const required = seen.get(r.stage);
          if (required?.kind === 'evaluate' && !required.options.gate) {
            add({ code: 'serve.ungated', path: `${path}.requires[${i}]`, value: r.stage, message: `evaluate '${r.stage}' has no gate, so requiring it only waits for it to finish`, fix: 'give it a gate, e.g. gate: { bleu4: { min: 20 } }', severity: 'warning' });
          }
        }
        const kind = (o.model as ArtifactHandle).kind;
        if (kind !== 'merged-model' && kind !== 'quantized-model') {
          add({ code: 'serve.input', path: `${path}.model`, value: kind, message: 'vLLM serves a merged or quantized model from the artifacts volume', fix: 'serve the output of merge or quantize' });
          break;
        }
        checkVllm(o, path, add);
        const context = modelArchitecture(o.model.base, ctx)?.maxPositionEmbeddings ?? Number.POSITIVE_INFINITY;
        if (o.maxModelLen !== undefined && o.maxModelLen > context) {
          add({ code: 'serve.max-model-len', path: `${path}.maxModelLen`, value: o.maxModelLen, message: `is beyond the model's context of ${context} tokens; vLLM refuses to start`, fix: `use at most ${context}` });
        }
        if (o.gpuMemoryUtilization !== undefined && !(o.gpuMemoryUtilization > 0 && o.gpuMemoryUtilization <= 1)) {
          add({ code: 'serve.gpu-memory', path: `${path}.gpuMemoryUtilization`, value: o.gpuMemoryUtilization, message: 'must be a fraction in (0, 1]', fix: 'use 0.9 (vLLM default)' });
        }
        if (o.apiKey) checkSecretRef(o.apiKey, `${path}.apiKey`, add);
        if (o.verify) {
          if (typeof o.verify.expectName !== 'string' || o.verify.expectName.trim() === '') {
            add({ code: 'serve.verify', path: `${path}.verify.expectName`, value: o.verify.expectName, message: 'the post-deploy check needs the name the identity answers must contain', fix: "set it to the identity name the data teaches, e.g. templateVars.name" });
          }
          if (o.verify.data) {
            wired(o.verify.data, `${path}.verify.data`);
            if (o.verify.data.split !== 'test') add({ code: 'serve.verify', path: `${path}.verify.data`, value: o.verify.data.split, message: `scores the served model on the ${o.verify.data.split} split`, fix: "wire convert's `test` output, the split the evaluate stages score" });
          }
        }
        break;
      }
    }
  }
  return issues;
}

const MODEL_SOURCE_KEYS = ['hub', 'path', 'artifacts', 'uri'] as const;
const SHA256_HEX = /^[0-9a-f]{64}$/;

/** Where a base model comes from, and whether what pins its content is there. */
function checkModelSource(o: BaseModelOptions, path: string, ctx: ResolvedContext, add: (i: Issue) => void): void {
  const raw = o as unknown as Record<string, unknown>;
  const given = MODEL_SOURCE_KEYS.filter((k) => raw[k] !== undefined);
  if (given.length !== 1) {
    add({ code: 'model.source', path, ...(given.length > 0 ? { value: given } : {}), message: given.length === 0 ? 'names no model' : `names ${given.length} model sources (${given.join(', ')}); a base model comes from exactly one`, fix: 'keep one of { hub, id, revision }, { path }, { artifacts, version } or { uri, version }' });
    return;
  }
  const source = modelSourceOf(o);
  switch (source.kind) {
    case 'hub': {
      const revision = typeof source.revision === 'string' ? source.revision.trim() : '';
      if (MUTABLE_REVISIONS.has(revision.toLowerCase()) || revision === '') {
        add({ code: 'model.revision', path: `${path}.revision`, value: source.revision, message: 'is a branch, not a pinned revision: the same pipeline could fetch different weights tomorrow and its stage hashes would not notice', fix: 'pin a commit hash (or an immutable tag) of the model repository', severity: revision === '' ? 'error' : 'warning' });
      }
      if (source.hub !== 'huggingface' && source.hub !== 'modelscope') {
        add({ code: 'model.hub', path: `${path}.hub`, value: source.hub, message: 'unknown model hub', fix: "use 'huggingface' or 'modelscope'" });
      }
      if (typeof source.id !== 'string' || source.id.trim() === '') add({ code: 'model.id', path: `${path}.id`, value: source.id, message: 'names no repository on the hub', fix: "the repository id, e.g. 'meta-llama/Meta-Llama-3-8B-Instruct'" });
      const token = (o as { token?: SecretRef }).token;
      if (token) checkSecretRef(token, `${path}.token`, add);
      break;
    }
    case 'local': {
      const local = ctx.models[source.path];
      if (source.digest !== undefined && !SHA256_HEX.test(source.digest)) {
        add({ code: 'model.digest', path: `${path}.digest`, value: source.digest, message: 'is not a sha256 (64 lower-case hex digits)', fix: 'remove it (tunepipe computes it from the folder) or paste the digest `tunepipe plan` prints' });
      }
      if (!local?.found) {
        // Without the folder only a declared digest and architecture can name the model (CI).
        if (source.digest === undefined || !o.architecture) {
          add({ code: 'model.path', path: `${path}.path`, value: source.path, message: 'no model folder here (a relative path starts at the repository root)', fix: source.digest === undefined ? 'fix the path; to compile where the folder is absent (CI), declare its digest and architecture' : 'fix the path, or declare architecture too so it can be compiled without the folder' });
        }
        return;
      }
      if (source.digest !== undefined && local.digest !== undefined && source.digest !== local.digest) {
        add({ code: 'model.digest', path: `${path}.digest`, value: source.digest, message: `the folder's content digest is ${local.digest}: its files changed since the digest was declared`, fix: `set digest to '${local.digest}' if the new files are intended, else restore the folder` });
      }
      if (local.hasWeights === false) {
        add({ code: 'model.weights', path: `${path}.path`, value: source.path, message: 'the folder has no weights (*.safetensors or *.bin)', fix: "point path at the folder save_pretrained wrote (config.json next to model*.safetensors)" });
      }
      if (local.hasTokenizer === false) {
        add({ code: 'model.tokenizer', path: `${path}.path`, value: source.path, message: 'the folder has no tokenizer (tokenizer.json, tokenizer.model or tokenizer_config.json); LLaMA-Factory loads it from the model folder', fix: 'save the tokenizer into the folder (tokenizer.save_pretrained(folder))' });
      }
      if (!local.config) {
        if (!o.architecture) add({ code: 'model.config', path: `${path}.path`, value: `${source.path}/config.json`, message: `config.json ${local.configError ?? 'is missing'}, so the architecture cannot be read`, fix: "copy the model's config.json into the folder, or declare architecture" });
        return;
      }
      const read = architectureFromConfig(local.config, local.parameterCount);
      if (!o.architecture) {
        for (const p of read.problems) add({ code: 'model.config', path: `${path}.path`, value: `config.json: ${p.field}`, message: `${p.field} ${p.message}; the planner and checks need it`, fix: `fix ${p.field} in ${source.path}/config.json, or declare architecture` });
      } else if (read.architecture) {
        const differ = architectureDifferences(o.architecture, read.architecture);
        if (differ.length > 0) {
          add({ code: 'model.architecture', path: `${path}.architecture`, value: differ.map((k) => `${k}: declared ${String(o.architecture![k])}, config.json ${String(read.architecture![k])}`).join('; '), message: "the declared architecture is not the folder's", fix: 'remove architecture: tunepipe reads it from config.json' });
        }
      }
      break;
    }
    case 'artifacts': {
      const rel = source.path.replace(/^\/artifacts\//, '');
      if (rel.startsWith('/') || rel.trim() === '' || rel.split('/').includes('..') || !/^[\w.@+/-]+$/.test(rel)) {
        add({ code: 'model.artifacts', path: `${path}.artifacts`, value: source.path, message: 'is not a folder on the artifacts volume', fix: "a path relative to the volume's root, e.g. 'models/llama3-8b-instruct' (no '..', no absolute paths outside /artifacts)" });
      } else if (rel === 'uploads' || rel.startsWith('uploads/')) {
        add({ code: 'model.artifacts', path: `${path}.artifacts`, value: source.path, message: "uploads/ holds the local models tunepipe verifies by digest", fix: "use baseModel({ path }) for a local folder, or keep your models under another folder, e.g. 'models/'" });
      }
      checkModelVersion(source.version, 'artifacts', path, add);
      break;
    }
    case 'object-store': {
      if (!parseObjectStoreUri(source.uri)) {
        add({ code: 'model.uri', path: `${path}.uri`, value: source.uri, message: 'is not an object-store folder tunepipe can fetch', fix: "use s3://<bucket>/<prefix> or gs://<bucket>/<prefix> (the folder holding config.json and the weights)" });
      }
      checkModelVersion(source.version, 'object-store', path, add);
      const credentials = (o as { credentials?: { secretName: string } }).credentials;
      if (credentials) checkSecretRef({ secretName: credentials.secretName, key: 'credentials' }, `${path}.credentials`, add);
      break;
    }
  }
}

function checkModelVersion(version: unknown, kind: 'artifacts' | 'object-store', path: string, add: (i: Issue) => void): void {
  if (typeof version === 'string' && version.trim() !== '') return;
  add({
    code: 'model.version',
    path: `${path}.version`,
    ...(version !== undefined ? { value: version } : {}),
    message: 'is required: tunepipe cannot see the files at plan time, so the declared version is what tells the stages that the weights changed (without it they would keep results made from the old ones)',
    fix:
      kind === 'object-store'
        ? "declare the store's identity of the content: the S3 object version id or ETag (aws s3api head-object … --query ETag), or the GCS generation (gcloud storage objects describe … --format='value(generation)')"
        : 'declare what identifies the folder, e.g. the sha256 of its SHA256SUMS (sha256sum SHA256SUMS)',
  });
}

function checkImage(image: string, path: string, add: (i: Issue) => void): void {
  const lastSegment = image.split('/').pop() ?? '';
  const hasDigest = image.includes('@sha256:');
  const tag = lastSegment.includes(':') ? lastSegment.split(':').pop() : undefined;
  if (!hasDigest && (!tag || tag === 'latest')) {
    add({ code: 'image.unpinned', path, value: image, message: 'image is not pinned: a re-run could use different code than the stage hash says', fix: 'pin a version tag or a digest (image:1.2.3 or image@sha256:…)' });
  }
}

function checkTemplate(template: string, path: string, add: (i: Issue) => void): void {
  if (!LLAMAFACTORY_TEMPLATES.includes(template)) {
    add({ code: 'template.unknown', path, value: template, message: `LLaMA-Factory has no template '${template}' (it stops with "Template ${template} does not exist." after the pod starts)`, fix: didYouMean(template, LLAMAFACTORY_TEMPLATES) ?? 'use a registered template, e.g. llama3, qwen, chatml' });
  }
}

function checkSecretRef(ref: SecretRef, path: string, add: (i: Issue) => void): void {
  if (!isDnsLabel(ref.secretName) && !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(ref.secretName)) {
    add({ code: 'name.dns', path: `${path}.secretName`, value: ref.secretName, message: 'Secret name is not a DNS-1123 subdomain', fix: `use '${toDnsLabel(ref.secretName)}'` });
  }
  if (!/^[-._a-zA-Z0-9]+$/.test(ref.key)) {
    add({ code: 'secret.key', path: `${path}.key`, value: ref.key, message: 'is not a valid Secret key', fix: 'use letters, digits, -, _ and .' });
  }
}

function checkWiring(handle: ArtifactHandle, path: string, stages: ReadonlyMap<string, StageSpec>, add: (i: Issue) => void): void {
  if (!handle || typeof handle !== 'object' || typeof handle.stage !== 'string') {
    add({ code: 'wiring.missing', path, value: handle, message: 'expects an artifact handle returned by a stage of this pipeline', fix: 'pass the value a p.<stage>(…) call returned' });
    return;
  }
  if (!stages.has(handle.stage)) {
    add({ code: 'wiring.foreign', path, value: handle.stage, message: `refers to stage '${handle.stage}', which this pipeline does not have (or defines later)`, fix: 'use a handle produced by an earlier stage of this pipeline' });
  }
}

function checkDerived(kind: string, extra: Readonly<Record<string, unknown>> | undefined, path: string, add: (i: Issue) => void): void {
  for (const key of Object.keys(extra ?? {})) {
    if (DERIVED_KEYS[kind]?.includes(key)) {
      add({ code: 'args.derived', path: `${path}.${key}`, value: extra![key], message: `${key} is derived from the stage's handles; a hand-written value would point at the wrong artifact`, fix: `remove ${key}` });
    }
  }
}

function typeMatches(type: string, value: unknown): boolean {
  switch (type) {
    case 'bool':
      return typeof value === 'boolean';
    case 'int':
      return typeof value === 'number' && Number.isInteger(value);
    case 'float':
      return typeof value === 'number' && Number.isFinite(value);
    case 'str':
      return typeof value === 'string';
    case 'dict':
      return typeof value === 'object' && value !== null && !Array.isArray(value);
    default:
      return true;
  }
}

const TYPE_NAMES: Record<string, string> = { bool: 'true or false', int: 'an integer', float: 'a number', str: 'a string', dict: 'a mapping' };

function checkLlamaFactoryArgs(args: Record<string, unknown>, path: string, command: 'train' | 'export', add: (i: Issue) => void): void {
  for (const [key, value] of Object.entries(args)) {
    if (value === undefined) continue;
    const at = `${path}.${key}`;
    if (key === 'warmup_ratio' && typeof value === 'number') {
      // The pinned transformers takes a fraction of the steps and raises outside [0, 1] when the
      // arguments are parsed; transformers 5.0 deprecates the key (removal announced for 5.2).
      if (!(value >= 0 && value <= 1)) {
        add({ code: 'args.warmup-ratio', path: at, value, message: 'warmup_ratio is a fraction of the training steps; transformers stops with "warmup_ratio must lie in range [0,1]"', fix: 'use a value between 0 and 1, or warmup_steps (a step count)' });
        continue;
      }
      add({ code: 'args.warmup-ratio', path: at, value, message: `works with the pinned transformers ${PINS.python.transformers}, but transformers 5 deprecates warmup_ratio (removal announced for 5.2)`, fix: 'use warmup_steps (a step count) so the pipeline survives a transformers 5 image', severity: 'warning' });
    }
    const spec = LLAMAFACTORY_ARGS[key];
    if (!spec) {
      add({ code: 'args.unknown', path: at, value, message: `llamafactory-cli ${command} has no argument '${key}' ("Some keys are not used by the HfArgumentParser")`, fix: didYouMean(key, Object.keys(LLAMAFACTORY_ARGS)) ?? 'remove it' });
      continue;
    }
    if (command === 'train' && !spec.train) {
      add({ code: 'args.unknown', path: at, value, message: `'${key}' is accepted by llamafactory-cli export only; train stops with "Some keys are not used by the HfArgumentParser"`, fix: `remove ${key}` });
      continue;
    }
    if (command === 'export' && !spec.export) {
      add({ code: 'args.training-key', path: at, value, message: `'${key}' is a training argument; llamafactory-cli export accepts no training keys and fails on it`, fix: `remove ${key} from the export config` });
      continue;
    }
    if (SECRET_LIKE_KEY.test(key) && typeof value === 'string') {
      add({ code: 'secret.literal', path: at, value: '<redacted>', message: 'a secret written as a literal ends up in ConfigMaps, Git and Pulumi state', fix: 'remove it; give the base model a token SecretRef (fetch-model reads it from the Secret)' });
      continue;
    }
    if (!typeMatches(spec.type, value)) {
      add({ code: 'args.type', path: at, value, message: `must be ${TYPE_NAMES[spec.type] ?? spec.type} (${spec.pyType})`, fix: spec.default !== null ? `LLaMA-Factory's default is ${JSON.stringify(spec.default)}` : `give ${TYPE_NAMES[spec.type] ?? spec.type}` });
      continue;
    }
    if (key === 'export_device' && !spec.choices?.includes(value)) {
      add({ code: 'export.device', path: at, value, message: "export_device is 'cpu' or 'auto'; 'cuda' is not a value", fix: "use 'auto' to merge on the GPUs (device_map=auto) or 'cpu' to merge in host memory" });
      continue;
    }
    // A list value (report_to: [tensorboard, wandb]) is checked entry by entry.
    if (spec.choices && !(Array.isArray(value) ? value.length > 0 && value.every((v) => spec.choices!.includes(v)) : spec.choices.includes(value))) {
      const candidates = spec.choices.filter((c): c is string => typeof c === 'string');
      add({ code: 'args.choice', path: at, value, message: `is not one of ${spec.choices.map((c) => JSON.stringify(c)).join(', ')}`, fix: (typeof value === 'string' ? didYouMean(value, candidates) : undefined) ?? `use one of ${spec.choices.map((c) => JSON.stringify(c)).join(', ')}` });
    }
  }
}

function checkExportArgs(args: Record<string, unknown>, path: string, add: (i: Issue) => void): void {
  const size = args['export_size'];
  if (size !== undefined && !(typeof size === 'number' && Number.isInteger(size) && size >= 0)) {
    add({ code: 'export.size', path: `${path}.export_size`, value: size, message: 'export_size is the shard size in whole GB (it becomes max_shard_size="<n>GB"), not a shard count or a fraction', fix: 'use a positive integer, e.g. 4 or 5' });
  } else if (size === 0) {
    // save_pretrained puts every tensor larger than the limit in a shard of its own: at 0 GB, all of them.
    add({ code: 'export.size-zero', path: `${path}.export_size`, value: size, message: 'export_size 0 writes every tensor to a shard of its own (hundreds of files for an 8B model)', fix: 'use a positive integer, e.g. 4 or 5, unless one file per tensor is what you want', severity: 'warning' });
  }
  const template = args['template'];
  if (typeof template === 'string') checkTemplate(template, `${path}.template`, add);
}

function checkVllm(o: Extract<StageSpec, { kind: 'serve' }>['options'], path: string, add: (i: Issue) => void): void {
  const known = Object.keys(VLLM_SERVE_FLAGS);
  for (const [key, value] of Object.entries(o.args ?? {})) {
    const flag = vllmFlagName(key);
    const at = `${path}.args.${key}`;
    const spec = VLLM_SERVE_FLAGS[flag];
    if (!spec) {
      add({ code: 'vllm.unknown', path: at, value, message: `vllm serve has no flag ${flag}`, fix: didYouMean(flag, known) ?? 'remove it' });
      continue;
    }
    if (DERIVED_VLLM_FLAGS.has(flag)) {
      const secret = flag === '--api-key';
      add({ code: secret ? 'secret.literal' : 'vllm.derived', path: at, value: secret ? '<redacted>' : value, message: secret ? 'an API key written as a literal ends up in the Deployment, Git and Pulumi state' : `${flag} is set by tunepipe from the serve options`, fix: secret ? 'use apiKey: { secretName, key } (passed as VLLM_API_KEY from the Secret)' : `use the typed serve option instead of args.${key}` });
      continue;
    }
    if (SECRET_LIKE_KEY.test(flag) && typeof value === 'string') {
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
  if (o.servedModelName !== undefined && o.servedModelName.trim() === '') {
    add({ code: 'serve.name', path: `${path}.servedModelName`, value: o.servedModelName, message: 'served model name is empty', fix: 'remove it (defaults to the pipeline name)' });
  }
}
