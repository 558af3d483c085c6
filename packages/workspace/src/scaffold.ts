// `tunepipe new`: a pipeline folder (and optionally a dataset folder) a new user edits, written so
// that the repo stays whole: the folder is a workspace package the lockfile knows, so `npm ci` and
// `npm test` pass right after.
import { existsSync, lstatSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { catalogueModel, DNS_LABEL_MAX, didYouMean, isDnsLabel, toDnsLabel, type Issue } from '@tunepipe/core';
import { WorkspaceError } from './errors.ts';
import { discoverPipelines } from './repo.ts';

/** The scaffolded pipeline's base model. */
export interface ScaffoldModel {
  readonly hub: 'huggingface' | 'modelscope';
  readonly id: string;
  /** A commit, or the hub's default branch, which the pipeline marks for pinning (check() warns). */
  readonly revision: string;
  /** LLaMA-Factory template; undefined when tunepipe does not know the model (the pipeline carries a TODO). */
  readonly template: string | undefined;
  /** In the model catalogue: `baseModel` finds its architecture by id. */
  readonly catalogued: boolean;
  /** Context length, when known: the served `maxModelLen` stays within it. */
  readonly contextLength?: number;
  /** Gated on Hugging Face: the fetch needs a hub token. */
  readonly gated?: boolean;
}

export interface ScaffoldRequest {
  readonly name: string;
  /** The base model (see scaffoldModel); without one the template uses the default and a copy keeps its own. */
  readonly model?: ScaffoldModel;
  /** Copy this pipeline of the repo instead of writing the template. */
  readonly from?: string;
  /** Train on this dataset source; a new one gets `datasets/<name>/` with a descriptor to fill in. */
  readonly dataset?: string;
}

export interface ScaffoldFile {
  /** Relative to the repo root. */
  readonly path: string;
  readonly content: string;
}

export interface ScaffoldPlan {
  readonly files: readonly ScaffoldFile[];
  /** The dataset source the pipeline trains on, and whether this scaffold creates it. */
  readonly dataset: { readonly name: string; readonly created: boolean } | undefined;
}

/** Revisions this repository has pinned (the qwen-support example's); any other model starts on its branch. */
const PINNED_REVISIONS: Readonly<Record<string, string>> = {
  'qwen/qwen2.5-7b-instruct': 'a09a35458c702b33eeacc393d103063234e8bc28',
};

/** Ungated, Apache-2.0, its revision pinned: the template compiles without a hub token or an edit. */
export const DEFAULT_SCAFFOLD_MODEL_ID = 'Qwen/Qwen2.5-7B-Instruct';

/**
 * The base model for a hub id: a catalogue model (on the hub whose id was given), or for any other
 * id a Hugging Face model whose architecture and template check() asks for.
 */
export function scaffoldModel(id: string = DEFAULT_SCAFFOLD_MODEL_ID): ScaffoldModel {
  const known = catalogueModel(id);
  const onHf = known ? [known.huggingface, ...(known.aliases ?? [])].some((k) => k.toLowerCase() === id.toLowerCase()) : true;
  const hub = onHf ? 'huggingface' : 'modelscope';
  const revision = PINNED_REVISIONS[id.toLowerCase()] ?? (hub === 'modelscope' ? 'master' : 'main');
  if (!known) return { hub, id, revision, template: undefined, catalogued: false };
  return { hub, id, revision, template: known.template, catalogued: true, contextLength: known.contextLength, gated: hub === 'huggingface' && known.license.gated };
}

/** Not a LLaMA-Factory template: check() stops on it and lists the registered ones. */
const UNKNOWN_TEMPLATE = 'TODO';

/** The stage names of the template, for the Job-name length rule. */
const TEMPLATE_STAGES = ['fetch-model', 'convert', 'sft', 'merge', 'eval-base', 'eval-adapter', 'serve'];
/** `-<hash8>` after `<pipeline>-<stage>` in a Job name. */
const JOB_HASH_SUFFIX = 9;
/** Example source a template without `--dataset` trains on until the user names their own. */
const STARTER_SOURCE = 'fintech';

/** Every problem with the request at once: name, clashes, the example to copy, the dataset. */
export function scaffoldIssues(root: string, request: ScaffoldRequest, exampleStages?: readonly string[]): Issue[] {
  const issues: Issue[] = [];
  const { name } = request;
  const pipelines = discoverPipelines(root);
  if (!isDnsLabel(name)) {
    issues.push({ code: 'new.name', path: 'name', value: name, message: 'a pipeline name is a DNS-1123 label: lower-case letters, digits and -, starting and ending with a letter or digit', fix: `use '${toDnsLabel(name) || 'my-pipeline'}'` });
  } else {
    const stages = exampleStages ?? TEMPLATE_STAGES;
    const longest = Math.max(...stages.map((s) => s.length));
    const limit = DNS_LABEL_MAX - JOB_HASH_SUFFIX - 1 - longest;
    if (name.length > limit) {
      issues.push({ code: 'new.name', path: 'name', value: name, message: `is ${name.length} characters; Job names <pipeline>-<stage>-<hash8> allow ${limit} for the pipeline (its longest stage name has ${longest})`, fix: `shorten it by ${name.length - limit} characters` });
    }
  }
  if (existsSync(join(root, 'pipelines', name))) {
    issues.push({ code: 'new.exists', path: `pipelines/${name}`, value: name, message: 'already exists; tunepipe new never overwrites a folder', fix: `pick another name, or edit pipelines/${name}/pipeline.ts` });
  }
  if (request.from !== undefined && !pipelines.includes(request.from)) {
    issues.push({ code: 'new.from', path: '--from', value: request.from, message: 'is not a pipeline of this repository', fix: didYouMean(request.from, pipelines) ?? (pipelines.length > 0 ? `one of: ${pipelines.join(', ')}` : 'there are no pipelines to start from; leave --from out') });
  }
  if (request.from !== undefined && request.dataset !== undefined) {
    issues.push({ code: 'new.from-dataset', path: '--dataset', value: request.dataset, message: `--from copies '${request.from}' with its own sources and calibration settings, which a new dataset would not fit`, fix: `leave --from out to start from the template on your dataset, or copy '${request.from}' and list your source in its convert stage` });
  }
  if (request.dataset !== undefined && existsSync(join(root, 'datasets', request.dataset)) && !existsSync(join(root, 'datasets', request.dataset, 'dataset.yaml'))) {
    issues.push({ code: 'new.dataset', path: `datasets/${request.dataset}`, value: request.dataset, message: 'is a folder without a dataset.yaml: neither a source to use nor one tunepipe new may write into', fix: `add datasets/${request.dataset}/dataset.yaml (fields in README.md, "Datasets"), or pick another --dataset name` });
  }
  if (request.dataset !== undefined && !isDnsLabel(request.dataset)) {
    issues.push({ code: 'new.dataset', path: '--dataset', value: request.dataset, message: 'a dataset source name is a DNS-1123 label (it names ConfigMaps and LLaMA-Factory datasets)', fix: `use '${toDnsLabel(request.dataset) || 'my-data'}'` });
  }
  if (request.from === undefined && request.dataset === undefined && !existsSync(join(root, 'datasets', STARTER_SOURCE, 'dataset.yaml'))) {
    issues.push({ code: 'new.dataset', path: '--dataset', message: `without --dataset the template trains on the example source '${STARTER_SOURCE}', which this repository does not have`, fix: `pass --dataset <name>: tunepipe new ${name} --dataset ${name}` });
  }
  return issues;
}

/** The files of a new pipeline (and dataset), without touching the disk. */
export function planScaffold(root: string, request: ScaffoldRequest): ScaffoldPlan {
  const { name } = request;
  const files: ScaffoldFile[] = [];
  let dependencies: Record<string, string> = { '@tunepipe/core': '*' };
  let dataset: ScaffoldPlan['dataset'];
  if (request.from !== undefined) {
    const from = request.from;
    const source = readFileSync(join(root, 'pipelines', from, 'pipeline.ts'), 'utf8');
    files.push({ path: `pipelines/${name}/pipeline.ts`, content: copyPipeline(source, from, name, request.model) });
    const example = JSON.parse(readFileSync(join(root, 'pipelines', from, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
    dependencies = example.dependencies ?? dependencies;
  } else {
    const source = request.dataset ?? STARTER_SOURCE;
    const created = request.dataset !== undefined && !existsSync(join(root, 'datasets', source));
    files.push({ path: `pipelines/${name}/pipeline.ts`, content: templatePipeline(name, request.model ?? scaffoldModel(), source, request.dataset === undefined) });
    if (created) files.push(...datasetFiles(source));
    dataset = { name: source, created };
  }
  // The examples' package.json, key for key: a workspace package turbo runs synth/plan/up in.
  const pkg = {
    name: packageName(name),
    version: '0.1.0',
    private: true,
    type: 'module',
    exports: { '.': './pipeline.ts' },
    scripts: { typecheck: 'tsc -p tsconfig.json', synth: `tunepipe synth ${name}`, plan: `tunepipe plan ${name}`, up: `tunepipe run ${name}` },
    dependencies,
  };
  files.push({ path: `pipelines/${name}/package.json`, content: formatPackageJson(pkg) });
  files.push({ path: `pipelines/${name}/tsconfig.json`, content: '{ "extends": "../../tsconfig.base.json", "include": ["pipeline.ts"] }\n' });
  return { files, dataset };
}

export function packageName(pipeline: string): string {
  return `@tunepipe/pipeline-${pipeline}`;
}

/** The examples' package.json layout: one line per small object, as they are committed. */
function formatPackageJson(pkg: Record<string, unknown>): string {
  const lines = Object.entries(pkg).map(([key, value]) => {
    if (key === 'scripts' && value && typeof value === 'object') {
      const inner = Object.entries(value).map(([k, v]) => `    ${JSON.stringify(k)}: ${JSON.stringify(v)}`);
      return `  "scripts": {\n${inner.join(',\n')}\n  }`;
    }
    const compact = JSON.stringify(value).replace(/^\{(.*)\}$/, '{ $1 }').replace(/":/g, '": ').replace(/,"/g, ', "');
    return `  ${JSON.stringify(key)}: ${typeof value === 'object' ? compact : JSON.stringify(value)}`;
  });
  return `{\n${lines.join(',\n')}\n}\n`;
}

/** Writes the planned files; refuses to overwrite any (the caller checked, but a race is not a reason to lose work). */
export function writeScaffold(root: string, plan: ScaffoldPlan): void {
  for (const file of plan.files) {
    const path = join(root, file.path);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, file.content, { flag: 'wx' });
  }
}

interface LockPackage {
  name?: string;
  version?: string;
  resolved?: string;
  link?: boolean;
  dependencies?: Record<string, string>;
  [key: string]: unknown;
}

/**
 * Adds the new workspace package to package-lock.json as npm itself records a workspace (the
 * folder entry and its `node_modules` link), so `npm ci` accepts the lockfile without a network
 * round trip; and links it into node_modules, as `npm install` would, so it resolves at once.
 * Returns false when there is no lockfile to update.
 */
export function registerWorkspacePackage(root: string, pipeline: string): boolean {
  const lockPath = join(root, 'package-lock.json');
  if (!existsSync(lockPath)) return false;
  const text = readFileSync(lockPath, 'utf8');
  const lock = JSON.parse(text) as { packages?: Record<string, LockPackage> };
  const pkg = JSON.parse(readFileSync(join(root, 'pipelines', pipeline, 'package.json'), 'utf8')) as { name: string; version: string; dependencies?: Record<string, string> };
  const folder = `pipelines/${pipeline}`;
  const link = `node_modules/${pkg.name}`;
  const entries: [string, LockPackage][] = [
    [folder, { name: pkg.name, version: pkg.version, ...(pkg.dependencies ? { dependencies: pkg.dependencies } : {}) }],
    [link, { resolved: folder, link: true }],
  ];
  const packages = lock.packages ?? {};
  const merged: Record<string, LockPackage> = {};
  // npm keeps `packages` sorted by path (the root "" first); insert in place, move nothing else.
  const pending = [...entries].sort(([a], [b]) => a.localeCompare(b, 'en'));
  for (const [key, value] of Object.entries(packages)) {
    while (pending.length > 0 && key !== '' && pending[0]![0].localeCompare(key, 'en') < 0) {
      const [k, v] = pending.shift()!;
      merged[k] = v;
    }
    if (!entries.some(([k]) => k === key)) merged[key] = value;
  }
  for (const [k, v] of pending) merged[k] = v;
  const indent = /^\{\n( +)"/.exec(text)?.[1]?.length ?? 2;
  writeFileSync(lockPath, `${JSON.stringify({ ...lock, packages: merged }, null, indent)}\n`);

  const linkPath = join(root, link);
  if (existsSync(join(root, 'node_modules')) && !existsOrDangling(linkPath)) {
    mkdirSync(dirname(linkPath), { recursive: true });
    symlinkSync(relative(dirname(linkPath), join(root, folder)), linkPath, 'dir');
  }
  return true;
}

function existsOrDangling(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Throws every problem of the request at once. */
export function assertScaffoldable(root: string, request: ScaffoldRequest, exampleStages?: readonly string[]): void {
  const issues = scaffoldIssues(root, request, exampleStages);
  if (issues.length > 0) throw new WorkspaceError(`cannot create pipeline '${request.name}'`, issues);
}

// ---------------------------------------------------------------------------------------------
// The files' contents.

const q = (s: string): string => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

function baseModelLines(model: ScaffoldModel, indent: string): string[] {
  const lines: string[] = [`hub: ${q(model.hub)},`, `id: ${q(model.id)},`];
  if (!/^[0-9a-f]{40}$/.test(model.revision)) lines.push("// A branch (check() warns): pin the commit you audited, from the model page's history.");
  lines.push(`revision: ${q(model.revision)},`);
  if (model.template === undefined) lines.push("// TODO: the LLaMA-Factory template the model was trained with (its model card, LLaMA-Factory's README).");
  lines.push(`template: ${q(model.template ?? UNKNOWN_TEMPLATE)},`);
  if (!model.catalogued) {
    lines.push(`// TODO: ${model.id} is not in tunepipe's model catalogue; check() asks for its architecture:`);
    lines.push("// architecture: fromConfigJson(<its config.json>), imported from '@tunepipe/core'.");
  }
  if (model.gated) {
    lines.push('// Gated on Hugging Face: the fetch reads a token of an account that accepted the terms.');
    lines.push('token: { secretName: PLATFORM_SECRETS.hubTokens.secretName, key: PLATFORM_SECRETS.hubTokens.huggingface },');
  }
  return lines.map((l) => `${indent}${l}`);
}

function coreImports(model: ScaffoldModel, extra: readonly string[]): string {
  const names = new Set<string>(['definePipeline', ...extra]);
  if (model.gated) names.add('PLATFORM_SECRETS');
  return `import { ${[...names].join(', ')} } from '@tunepipe/core';`;
}

function templatePipeline(name: string, model: ScaffoldModel, source: string, starter: boolean): string {
  const maxModelLen = Math.min(model.contextLength ?? 4096, 4096);
  const sourceComment = starter
    ? [
        `    // The example source '${source}' until you name yours: \`tunepipe new --dataset <name>\``,
        '    // scaffolds datasets/<name>/ (or write datasets/<name>/dataset.yaml yourself) and list it here.',
      ]
    : [`    // datasets/${source}/dataset.yaml describes the data; list more sources to train on them together.`];
  return [
    coreImports(model, ['PLATFORM_SECRETS']),
    '',
    `/** Written by \`tunepipe new\`; \`tunepipe plan ${name}\` shows what it needs, \`tunepipe synth ${name}\` writes dist/. */`,
    'const CUTOFF_LEN = 1024;',
    '',
    `export default definePipeline({ name: ${q(name)}, description: ${q(`LoRA fine-tuning of ${model.id} on ${source}`)} }, (p) => {`,
    '  const base = p.baseModel({',
    ...baseModelLines(model, '    '),
    '  });',
    '',
    '  const data = p.convert({',
    ...sourceComment,
    `    sources: [${q(source)}],`,
    '    cutoffLen: CUTOFF_LEN,',
    '    split: { validation: 0.1, test: 0.1 },',
    '  });',
    '',
    '  // LLaMA-Factory keys under their own names; `tunepipe plan` sizes the GPU from them.',
    '  const adapter = p.sft({',
    '    model: base,',
    '    train: data.train,',
    '    eval: data.validation,',
    '    args: {',
    '      cutoff_len: CUTOFF_LEN,',
    '      learning_rate: 1e-4,',
    '      num_train_epochs: 3,',
    '      per_device_train_batch_size: 2,',
    '      gradient_accumulation_steps: 8,',
    "      lr_scheduler_type: 'cosine',",
    '      logging_steps: 10,',
    '      // A checkpoint per quarter of the run: a preempted pod repeats at most a quarter.',
    '      save_steps: 0.25,',
    '      bf16: true,',
    "      report_to: 'none',",
    '      lora_rank: 8,',
    '      lora_alpha: 16,',
    '      lora_dropout: 0.05,',
    "      lora_target: 'all',",
    '    },',
    '  });',
    '',
    "  const merged = p.merge({ adapter, args: { export_size: 4, export_device: 'cpu' } });",
    '  // To serve a GPTQ model instead: calibration on convert (rows longer than maxlen), then',
    '  // p.quantize({ model: merged, calibration: data.calibration, args: { export_quantization_bit: 4 } }).',
    '',
    "  const baseline = p.evaluate({ name: 'eval-base', model: base, data: data.test });",
    '  // The gate blocks serving: raise it once you know what your data scores.',
    "  const report = p.evaluate({ name: 'eval-adapter', model: adapter, data: data.test, baseline, gate: { rougeL: { minOverBaseline: 0 } } });",
    '',
    `  p.serve({ model: merged, requires: [report], maxModelLen: ${maxModelLen}, apiKey: PLATFORM_SECRETS.vllmApiKey });`,
    '});',
    '',
  ].join('\n');
}

/**
 * An example pipeline under a new name: the name and every string literal equal to it (a served
 * model name, say) change; with a model, the `p.baseModel({ … })` options are replaced.
 */
function copyPipeline(source: string, from: string, name: string, model: ScaffoldModel | undefined): string {
  let out = source.replace(new RegExp(`(['"\`])${escapeRegExp(from)}\\1`, 'g'), (_m, quote: string) => `${quote}${name}${quote}`);
  if (model) out = replaceBaseModel(out, model);
  return out;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Replaces the argument of the first `p.baseModel(…)` and adds the imports the new options need. */
function replaceBaseModel(source: string, model: ScaffoldModel): string {
  const call = source.indexOf('.baseModel(');
  if (call < 0) return source;
  const open = call + '.baseModel('.length;
  let depth = 1;
  let i = open;
  let quote: string | undefined;
  for (; i < source.length && depth > 0; i++) {
    const c = source[i]!;
    if (quote) {
      if (c === '\\') i++;
      else if (c === quote) quote = undefined;
      continue;
    }
    if (c === "'" || c === '"' || c === '`') quote = c;
    else if (c === '(') depth++;
    else if (c === ')') depth--;
  }
  const lineStart = source.lastIndexOf('\n', call) + 1;
  const indent = /^\s*/.exec(source.slice(lineStart))![0];
  const options = `{\n${baseModelLines(model, `${indent}  `).join('\n')}\n${indent}}`;
  let out = `${source.slice(0, open)}${options}${source.slice(i - 1)}`;
  // Names the old options needed (an architecture constant) go; PLATFORM_SECRETS comes for a token.
  return out.replace(/import \{([^}]*)\} from '@tunepipe\/core';/, (statement, names: string) => {
    const body = out.replace(statement, '');
    const kept = names.split(',').map((n) => n.trim()).filter((n) => n !== '' && new RegExp(`\\b${n}\\b`).test(body));
    if (model.gated && !kept.includes('PLATFORM_SECRETS')) kept.push('PLATFORM_SECRETS');
    return `import { ${kept.join(', ')} } from '@tunepipe/core';`;
  });
}

/** A dataset source to fill in: the descriptor, every field explained, and a few rows showing the format. */
function datasetFiles(source: string): ScaffoldFile[] {
  const descriptor = `# The descriptor of the dataset source '${source}', written by \`tunepipe new\`. The convert stage
# reads it with every file it lists; each field is explained below (and in one table in README.md, "Datasets").

# Required. How the files are read: alpaca (instruction/input/output rows), sharegpt (conversations:
# from/value or OpenAI role/content turns), csv or tsv (with \`columns\`), or text (calibration corpora).
format: alpaca

# Required. The data's license: an SPDX id (CC-BY-4.0) or a short statement ("proprietary, internal use").
license: TODO - name the license of your data

# What the data is and where it came from (shown to whoever reads the repository).
description: >
  Example rows written by tunepipe new to show the format; replace them with your own data.

# Required, at least one. Paths relative to this folder: .json (an array) or .jsonl for alpaca and
# sharegpt, .csv/.tsv, .txt or .jsonl for text; each may be gzipped (.gz). Files over ConfigMap size
# are fetched by the convert Job instead: { path, url: https://… | s3://… | hf://datasets/… | ms://datasets/…, sha256 }.
files:
  - data.jsonl

# Optional. Fill {{name}}-style placeholders in the rows from the pipeline's convert templateVars.
# placeholders: true

# Optional. Field names in your rows when they differ from the format's own:
#   alpaca: instruction, input, output, system, history; sharegpt: messages, system, tools;
#   csv/tsv (required there): instruction, output, input, system → your header names; text: text.
# columns:
#   instruction: question
#   output: answer

# Optional, text only: how a .txt file splits into documents: blank-line (default), line or file.
# separator: blank-line

# Optional. Anything else a reader should know: how the data was collected, what was removed.
# notes: >
#   …
`;
  const rows = [
    ['What does an Alpaca row hold?', 'An instruction, an optional input and the output the model should learn to give.'],
    ['Where do I put the question in an Alpaca row?', 'In the instruction field.'],
    ['Where does extra context for the question go?', 'In the input field; leave it empty when there is none.'],
    ['Which field holds the answer?', 'The output field: the text the model is trained to produce.'],
    ['How many rows does a useful dataset need?', 'Hundreds at least; a few thousand varied rows are a common start for a LoRA fine-tune.'],
    ['What happens to a row with no output?', 'The converter puts it in quarantine.jsonl with its line number and the reason.'],
    ['What happens to exact duplicate rows?', 'The converter keeps the first and quarantines the others.'],
    ['How are the splits chosen?', 'By a seeded hash of each row, so editing one row moves no other row between splits.'],
    ['What does a row longer than cutoff_len do?', 'It is quarantined: it would be truncated during training.'],
    ['Can rows carry a system prompt?', 'Yes, in a system field; map another field name to it with columns.'],
    ['Can the data be in a CSV file?', 'Yes: declare format csv and map the header names with columns.'],
    ['How do I replace these rows?', 'Write your own rows to data.jsonl, one JSON object per line, and set the license in dataset.yaml.'],
  ];
  const data = rows.map(([instruction, output]) => JSON.stringify({ instruction, input: '', output })).join('\n');
  return [
    { path: `datasets/${source}/dataset.yaml`, content: descriptor },
    { path: `datasets/${source}/data.jsonl`, content: `${data}\n` },
  ];
}
