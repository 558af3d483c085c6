import type { ModelArchitecture } from './architecture.ts';
import type { ModelHub } from '../handles.ts';
import { CheckError, type Issue } from '../issues.ts';
import { catalogueModel } from './catalogue.ts';
import { COUNTABLE_MODEL_TYPES, parameterCountOf } from './parameters.ts';

/**
 * Where a base model's files come from, and what pins them. The stage hashes cover `identity`
 * only: moving a local folder or renaming a bucket's alias re-runs nothing, new weights re-run all.
 */
export type ModelSource =
  | { readonly kind: 'hub'; readonly hub: ModelHub; readonly id: string; readonly revision: string }
  /** A folder on the machine that compiles; `digest` is its content digest (declared, or computed by the CLI). */
  | { readonly kind: 'local'; readonly path: string; readonly digest?: string }
  /** A folder already on the artifacts volume, relative to its root; `version` is declared by the user. */
  | { readonly kind: 'artifacts'; readonly path: string; readonly version: string }
  /** `s3://bucket/prefix` or `gs://bucket/prefix`; `version` is declared by the user. */
  | { readonly kind: 'object-store'; readonly uri: string; readonly version: string };

export type ModelSourceKind = ModelSource['kind'];

/** Upload folder on the artifacts volume for a local model with this content digest (see `tunepipe fetch-model`). */
export function uploadFolder(digest: string): string {
  return `uploads/sha256-${digest}`;
}

/** Object stores a base model can be fetched from by the fetch-model Job. */
export const OBJECT_STORE_SCHEMES = ['s3', 'gs'] as const;

/** `s3://bucket/prefix/` → its parts, or undefined when it is not one of OBJECT_STORE_SCHEMES. */
export function parseObjectStoreUri(uri: string): { scheme: (typeof OBJECT_STORE_SCHEMES)[number]; bucket: string; prefix: string } | undefined {
  const m = /^(s3|gs):\/\/([a-z0-9][a-z0-9._-]{1,220}[a-z0-9])(?:\/(.*))?$/.exec(uri);
  if (!m) return undefined;
  return { scheme: m[1] as 's3' | 'gs', bucket: m[2]!, prefix: (m[3] ?? '').replace(/\/+$/, '') };
}

/**
 * A local model folder as loaded by the CLI (the compiler reads no files): its content digest and,
 * when readable, its config.json and the exact parameter count from its safetensors headers.
 */
export interface LocalModelInput {
  /** The declared path, as written in the pipeline (the key of `CompileContext.models`). */
  readonly path: string;
  /** Whether the folder exists on this machine; without it only a declared digest and architecture can stand in. */
  readonly found: boolean;
  /**
   * sha256 of the folder's SHA256SUMS text (`<sha256>  <relative path>` per file, C-sorted, dot
   * files left out): the same digest `tunepipe fetch-model` verifies in the cluster.
   */
  readonly digest?: string;
  readonly files?: number;
  readonly bytes?: number;
  /** config.json, parsed; `configError` when it is missing or not JSON. */
  readonly config?: Readonly<Record<string, unknown>>;
  readonly configError?: string;
  /** Exact parameter count from the safetensors headers, when the weights are safetensors. */
  readonly parameterCount?: number;
  readonly hasWeights?: boolean;
  readonly hasTokenizer?: boolean;
}

/** A field config.json lacks or has in the wrong type, for a check() issue. */
export interface ConfigProblem {
  readonly field: string;
  readonly message: string;
}

function positiveInt(config: Readonly<Record<string, unknown>>, field: string, problems: ConfigProblem[], fallback?: number): number {
  const value = config[field] ?? fallback;
  if (typeof value === 'number' && Number.isInteger(value) && value > 0) return value;
  problems.push({ field, message: value === undefined ? 'is missing' : `is ${JSON.stringify(value)}, not a positive integer` });
  return 0;
}

const DTYPES = new Set(['bfloat16', 'float16', 'float32']);

/**
 * `tie_word_embeddings` where config.json leaves it out: the default of the transformers config
 * class (Gemma's classes tie, Llama, Mistral, Qwen2/3 and Phi-3 do not). Gemma checkpoints rely on it.
 */
const TIED_BY_DEFAULT: ReadonlySet<string> = new Set(['gemma', 'gemma2', 'gemma3_text']);

/**
 * The architecture facts of a Hugging Face `config.json` (what the planner and checks need), so a
 * user with a local model never types them. `parameterCount` is the exact count from the weights'
 * headers; without it the count is derived from the tensor layout of the known decoder families.
 */
export function architectureFromConfig(
  config: Readonly<Record<string, unknown>>,
  parameterCount: number | undefined,
): { architecture?: ModelArchitecture; problems: ConfigProblem[] } {
  const problems: ConfigProblem[] = [];
  const textConfig = config['text_config'];
  if (config['hidden_size'] === undefined && textConfig !== null && typeof textConfig === 'object') {
    return { problems: [{ field: 'text_config', message: "belongs to a multimodal checkpoint: tunepipe reads the config.json of a text decoder (hidden_size at the top level), and a vision tower's weights would be left out of the count" }] };
  }
  const modelType = config['model_type'];
  if (typeof modelType !== 'string' || modelType === '') problems.push({ field: 'model_type', message: 'is missing' });
  const hiddenSize = positiveInt(config, 'hidden_size', problems);
  const numAttentionHeads = positiveInt(config, 'num_attention_heads', problems);
  const tied = config['tie_word_embeddings'];
  const architecture = {
    modelType: typeof modelType === 'string' ? modelType : '',
    parameterCount: 0,
    hiddenSize,
    intermediateSize: positiveInt(config, 'intermediate_size', problems),
    numHiddenLayers: positiveInt(config, 'num_hidden_layers', problems),
    numAttentionHeads,
    numKeyValueHeads: positiveInt(config, 'num_key_value_heads', problems, numAttentionHeads || undefined),
    headDim: positiveInt(config, 'head_dim', problems, numAttentionHeads > 0 && hiddenSize % numAttentionHeads === 0 ? hiddenSize / numAttentionHeads : undefined),
    vocabSize: positiveInt(config, 'vocab_size', problems),
    maxPositionEmbeddings: positiveInt(config, 'max_position_embeddings', problems),
    tieWordEmbeddings: typeof tied === 'boolean' ? tied : TIED_BY_DEFAULT.has(typeof modelType === 'string' ? modelType : ''),
    torchDtype: 'bfloat16' as ModelArchitecture['torchDtype'],
  };
  // transformers ≥ 4.56 writes `dtype`; older releases `torch_dtype`.
  const dtype = config['dtype'] ?? config['torch_dtype'];
  if (dtype === undefined) architecture.torchDtype = 'float32';
  else if (typeof dtype === 'string' && DTYPES.has(dtype)) architecture.torchDtype = dtype as ModelArchitecture['torchDtype'];
  else problems.push({ field: 'torch_dtype', message: `is ${JSON.stringify(dtype)}, not one of bfloat16, float16, float32` });
  if (problems.length > 0) return { problems };
  const count = parameterCount ?? parameterCountOf(architecture);
  if (count === undefined) {
    return { problems: [{ field: 'model_type', message: `is '${architecture.modelType}': without safetensors weights the parameter count is derived from the tensor layout, which tunepipe knows for ${[...COUNTABLE_MODEL_TYPES].join(', ')} only` }] };
  }
  return { architecture: { ...architecture, parameterCount: count }, problems };
}

/**
 * A model's architecture from its published config.json, for a pipeline that declares it:
 * `architecture: fromConfigJson(JSON.parse(readFileSync('config.json', 'utf8')))`. Pass the exact
 * `parameterCount` (from the safetensors headers) for a family tunepipe cannot count. Throws a
 * CheckError listing every field that is missing or of the wrong type.
 */
export function fromConfigJson(config: unknown, options: { readonly parameterCount?: number } = {}): ModelArchitecture {
  const fail = (issues: Issue[]) => new CheckError('config.json', issues);
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    throw fail([{ code: 'model.config', path: 'config.json', value: config === null ? 'null' : Array.isArray(config) ? 'an array' : typeof config, message: 'is not a JSON object', fix: "pass the parsed config.json of the model: JSON.parse(readFileSync('<model>/config.json', 'utf8'))" }]);
  }
  const read = architectureFromConfig(config as Record<string, unknown>, options.parameterCount);
  if (read.architecture) return read.architecture;
  throw fail(
    read.problems.map((p) => ({
      code: 'model.config',
      path: `config.json.${p.field}`,
      message: `${p.field} ${p.message}; the planner and checks need it`,
      fix: p.field === 'model_type' && read.problems.length === 1 ? 'pass { parameterCount } (the total from the safetensors headers) with the config' : `fix ${p.field}, or write the architecture out as a ModelArchitecture`,
    })),
  );
}

/** The fields where two architectures differ (a declared one against config.json). */
export function architectureDifferences(a: ModelArchitecture, b: ModelArchitecture): (keyof ModelArchitecture)[] {
  return (Object.keys(a) as (keyof ModelArchitecture)[]).filter((k) => a[k] !== b[k]);
}

/** What resolving a base model needs from the compile context. */
interface ModelContext {
  readonly models: Readonly<Record<string, LocalModelInput>>;
}

/** The local folder's loaded facts for a local source, if the CLI loaded it. */
export function localModelInput(source: ModelSource, ctx: ModelContext): LocalModelInput | undefined {
  return source.kind === 'local' ? ctx.models[source.path] : undefined;
}

/** A local model's content digest: the one computed from the folder, else the declared one. */
export function localModelDigest(source: ModelSource, ctx: ModelContext): string | undefined {
  if (source.kind !== 'local') return undefined;
  return localModelInput(source, ctx)?.digest ?? source.digest;
}

/**
 * A base model's architecture: as declared, else the catalogue's for a hub model it lists, else
 * read from its local folder's config.json. Undefined only when none is available (check() reports
 * `model.architecture-unknown` or `model.config` then).
 */
export function modelArchitecture(model: { readonly source: ModelSource; readonly architecture?: ModelArchitecture }, ctx: ModelContext): ModelArchitecture | undefined {
  if (model.architecture) return model.architecture;
  if (model.source.kind === 'hub') return catalogueModel(model.source.id, model.source.hub)?.architecture;
  const local = localModelInput(model.source, ctx);
  if (!local?.config) return undefined;
  return architectureFromConfig(local.config, local.parameterCount).architecture;
}

/** `modelArchitecture` for code that runs only on a pipeline check() passed (planner, compiler). */
export function requireArchitecture(model: { readonly source: ModelSource; readonly architecture?: ModelArchitecture; readonly stage: string }, ctx: ModelContext): ModelArchitecture {
  const arch = modelArchitecture(model, ctx);
  if (!arch) throw new Error(`internal: base model of stage ${model.stage} has no architecture; check() should have reported it`);
  return arch;
}
