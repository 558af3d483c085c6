// The DSL, fuzzed as a hostile user (or a JSON/YAML generator) would: one valid pipeline, then values
// of the wrong type, NaN, arrays, undefined, very long or unicode names and shell metacharacters put
// anywhere in its options. Whatever comes in, check() answers with Issues and compile() either
// refuses (CheckError) or emits objects the Kubernetes API accepts.
import fc from 'fast-check';
import { Job } from 'kubernetes-models/batch/v1';
import { ConfigMap, Service } from 'kubernetes-models/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { check, CheckError, compile, definePipeline, LLAMA3_8B, type CompileContext, type KubeObject, type Pipeline } from '@tunepipe/core';

type Options = Record<string, unknown>;
/** A pipeline as data: the options of each stage call, wired by stage index. */
interface Blueprint {
  name: unknown;
  stages: { method: string; options: Options }[];
}

export function validBlueprint(): Blueprint {
  return {
    name: 'fuzz',
    stages: [
      { method: 'baseModel', options: { hub: 'huggingface', id: 'meta-llama/Meta-Llama-3-8B-Instruct', revision: '8afb486c1db24fe5011ec46dfbe5b5dccdb575c2', template: 'llama3', architecture: LLAMA3_8B } },
      { method: 'convert', options: { sources: ['identity'], cutoffLen: 1024, templateVars: { name: 'Ada' }, calibration: { nsamples: 128, maxlen: 1024 } } },
      { method: 'sft', options: { args: { cutoff_len: 1024, save_steps: 0.25, bf16: true, lora_rank: 8 }, extraArgs: { warmup_steps: 10 }, resources: { gpus: 1 } } },
      { method: 'merge', options: { args: { export_size: 4 } } },
      { method: 'quantize', options: { args: { export_quantization_bit: 4 } } },
      { method: 'evaluate', options: { gate: { bleu4: { min: 10 } } } },
      { method: 'serve', options: { maxModelLen: 4096, port: 8000, args: { 'max-num-seqs': 64 }, verify: { expectName: 'Ada' } } },
    ],
  };
}

/** Builds the pipeline; handles are wired the way the examples wire them unless a mutation replaced them. */
export function build(bp: Blueprint): Pipeline {
  return definePipeline({ name: bp.name as string }, (p) => {
    const call = (i: number, wiring: Options) => {
      const { method, options } = bp.stages[i]!;
      const merged = options && typeof options === 'object' && !Array.isArray(options) ? { ...wiring, ...options } : options;
      return (p as unknown as Record<string, (o: unknown) => unknown>)[method]!(merged);
    };
    const base = call(0, {}) as never;
    const data = call(1, {}) as { train: never; test: never; calibration: never; validation: never } | undefined;
    const adapter = call(2, { model: base, train: data?.train }) as never;
    const merged = call(3, { adapter }) as never;
    const quantized = call(4, { model: merged, calibration: data?.calibration }) as never;
    const report = call(5, { model: adapter, data: data?.test }) as never;
    call(6, { model: quantized, requires: [report], verify: { expectName: 'Ada', data: data?.test } });
  });
}

const hostileValue = fc.oneof(
  fc.constantFrom(undefined, null, true, false, 0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, -Number.POSITIVE_INFINITY, 2 ** 53, ''),
  fc.constantFrom('x'.repeat(70), 'y'.repeat(100_000), '名前🚀', 'Straße', '$(touch /tmp/tunepipe-pwned)', '`id`', "a'; rm -rf / #", '../../etc/passwd', 'a\nb', '\u0000', 'hf_' + 'aB3'.repeat(12)),
  fc.constantFrom([], ['a'], [1, 2], {}, { kind: 'adapter' }, { kind: 'dataset', stage: 'convert', split: 'train', entries: ['nope'] }),
  fc.string(),
  fc.integer(),
  fc.double(),
);
/** Values a careful user might write: they keep a share of the runs compiling, so the objects are checked too. */
const plausible = fc.constantFrom('fintech', 'Ada Lovelace', 'qwen', 2, 4, 16, 64, 0.5, 1e-4, true, false, ['identity']);
const hostile = fc.oneof({ weight: 3, arbitrary: hostileValue }, { weight: 2, arbitrary: plausible });

/** Every place a value can be put: [stage index, path of keys inside its options] (stage -1 is the pipeline name). */
function places(bp: Blueprint): [number, string[]][] {
  const out: [number, string[]][] = [[-1, []]];
  bp.stages.forEach((stage, i) => {
    out.push([i, []]);
    const walk = (value: unknown, path: string[]) => {
      if (value && typeof value === 'object' && !Array.isArray(value)) {
        for (const [k, v] of Object.entries(value)) {
          out.push([i, [...path, k]]);
          walk(v, [...path, k]);
        }
      }
    };
    walk(stage.options, []);
    // Keys a stage reads that the valid blueprint leaves out.
    for (const key of ['name', 'image', 'backoffLimit', 'model', 'train', 'adapter', 'data', 'sources', 'args', 'extraArgs']) out.push([i, [key]]);
  });
  return out;
}

function mutate(bp: Blueprint, place: [number, string[]], value: unknown): Blueprint {
  // The architecture object is shared, not copied: structuredClone would turn it into a plain copy anyway.
  const next: Blueprint = { name: bp.name, stages: bp.stages.map((s) => ({ ...s, options: copy(s.options) })) };
  const [stage, path] = place;
  if (stage === -1) {
    next.name = value;
    return next;
  }
  if (path.length === 0) {
    next.stages[stage]!.options = value as Options;
    return next;
  }
  const target = next.stages[stage]!;
  if (!target.options || typeof target.options !== 'object' || Array.isArray(target.options)) target.options = {};
  let at: Options = target.options;
  for (const key of path.slice(0, -1)) {
    if (!at[key] || typeof at[key] !== 'object' || Array.isArray(at[key])) at[key] = {};
    at = at[key] as Options;
  }
  at[path.at(-1)!] = value;
  return next;
}

function copy(value: unknown): Options {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return value as Options;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, v && typeof v === 'object' && !Array.isArray(v) ? copy(v) : v]));
}

const VALIDATORS: Record<string, (o: KubeObject) => void> = {
  ConfigMap: (o) => new ConfigMap(o as never).validate(),
  Service: (o) => new Service(o as never).validate(),
  Job: (o) => new Job(o as never).validate(),
  Deployment: (o) => new Deployment(o as never).validate(),
};

export interface FuzzResult {
  readonly runs: number;
  readonly mutations: number;
  readonly refused: number;
  readonly accepted: number;
}

/** Runs the DSL fuzzer; throws (with fast-check's counterexample) on the first crash or invalid object. */
export function fuzzDsl(context: CompileContext, runs: number, seed?: number): FuzzResult {
  const base = validBlueprint();
  const all = places(base);
  let mutations = 0;
  let refused = 0;
  let accepted = 0;
  const mutation = fc.tuple(fc.constantFrom(...all), hostile);
  fc.assert(
    fc.property(fc.array(mutation, { minLength: 1, maxLength: 3 }), (changes) => {
      let bp = base;
      for (const [place, value] of changes) bp = mutate(bp, place, value);
      mutations += changes.length;
      let pipeline: Pipeline;
      try {
        pipeline = build(bp);
      } catch (error) {
        // A user's own wiring code may throw on a value it got back (e.g. destructuring a non-object);
        // that is their code, not ours: the DSL methods themselves must not.
        if (error instanceof TypeError && !String(error.stack).includes('/packages/core/')) return;
        throw error;
      }
      check(pipeline, context);
      try {
        const compiled = compile(pipeline, context);
        accepted++;
        for (const object of compiled.objects) VALIDATORS[object.kind ?? '']!(object);
      } catch (error) {
        if (!(error instanceof CheckError)) throw error;
        refused++;
      }
    }),
    { numRuns: runs, ...(seed !== undefined ? { seed } : {}) },
  );
  return { runs, mutations, refused, accepted };
}
