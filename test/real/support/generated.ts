import { gzipSync } from 'node:zlib';
// What the example pipelines hand to the real tools, read from the objects tunepipe compiles (the
// same objects `npm run synth` writes to pipelines/*/dist): the LLaMA-Factory config each Job's
// `llamafactory-cli <command> /config/<file>.yaml` reads from its ConfigMap, and the argv of each
// vLLM Deployment's `vllm serve`.
import { posix } from 'node:path';
import type { CompileContext, CompiledPipeline, KubeObject } from '@tunepipe/core';
import { discoverPipelines } from '../../../packages/workspace/src/repo.ts';
import { synthPipeline } from '../../../packages/workspace/src/synth.ts';
import { repoRoot } from './python.ts';

export interface LlamaFactoryConfig {
  readonly pipeline: string;
  /** The Job's stage (tunepipe.dev/stage). */
  readonly stage: string;
  readonly stageKind: string;
  readonly command: 'train' | 'export';
  readonly file: string;
  readonly yaml: string;
  /** The other files of the config's folder (a DeepSpeed config the YAML names by path), by name. */
  readonly siblings: Readonly<Record<string, string>>;
}

export interface VllmServeArgs {
  readonly pipeline: string;
  readonly object: string;
  /** Everything after `vllm serve`. */
  readonly argv: readonly string[];
}

interface Container {
  name: string;
  command?: string[];
  args?: string[];
  volumeMounts?: { name: string; mountPath: string }[];
}
interface PodSpec {
  containers: Container[];
  /** A gated evaluate runs LLaMA-Factory in an init container, then the gate. */
  initContainers?: Container[];
  volumes?: { name: string; configMap?: { name: string } }[];
}

function podSpec(o: KubeObject): PodSpec | undefined {
  return (o as { spec?: { template?: { spec?: PodSpec } } }).spec?.template?.spec;
}

export async function compiledExamples(): Promise<{ name: string; compiled: CompiledPipeline }[]> {
  const out = [];
  for (const name of discoverPipelines(repoRoot)) out.push({ name, compiled: (await synthPipeline(repoRoot, name)).compiled });
  return out;
}

export function llamaFactoryConfigs(name: string, compiled: CompiledPipeline): LlamaFactoryConfig[] {
  const configMaps = new Map(compiled.objects.filter((o) => o.kind === 'ConfigMap').map((o) => [o.metadata?.name ?? '', (o as { data?: Record<string, string> }).data ?? {}]));
  const out: LlamaFactoryConfig[] = [];
  for (const job of compiled.objects.filter((o) => o.kind === 'Job')) {
    const spec = podSpec(job);
    for (const c of [...(spec?.initContainers ?? []), ...(spec?.containers ?? [])]) {
      const argv = [...(c.command ?? []), ...(c.args ?? [])];
      const at = argv.indexOf('llamafactory-cli');
      if (at < 0) continue;
      const command = argv[at + 1];
      const file = argv[at + 2] ?? '';
      if (command !== 'train' && command !== 'export') throw new Error(`${job.metadata?.name}: llamafactory-cli ${command} is not a command these tests know`);
      const mount = c.volumeMounts?.find((m) => m.mountPath === posix.dirname(file));
      const cm = spec?.volumes?.find((v) => v.name === mount?.name)?.configMap?.name;
      const data = cm === undefined ? undefined : configMaps.get(cm);
      const yaml = data?.[posix.basename(file)];
      if (yaml === undefined) throw new Error(`${job.metadata?.name}: ${file} is in no ConfigMap the Job mounts`);
      const siblings = Object.fromEntries(Object.entries(data ?? {}).filter(([key]) => key !== posix.basename(file) && key.endsWith('.json')));
      const labels = job.metadata?.labels ?? {};
      out.push({ pipeline: name, stage: labels['tunepipe.dev/stage'] ?? '?', stageKind: labels['tunepipe.dev/stage-kind'] ?? '?', command, file, yaml, siblings });
    }
  }
  return out;
}

export function vllmServeArgs(name: string, compiled: CompiledPipeline): VllmServeArgs[] {
  const out: VllmServeArgs[] = [];
  for (const o of compiled.objects.filter((x) => x.kind === 'Deployment')) {
    for (const c of podSpec(o)?.containers ?? []) {
      const argv = [...(c.command ?? []), ...(c.args ?? [])];
      const at = argv.findIndex((a, i) => a === 'vllm' && argv[i + 1] === 'serve');
      if (at >= 0) out.push({ pipeline: name, object: `${o.kind}/${o.metadata?.name}`, argv: argv.slice(at + 2) });
    }
  }
  return out;
}

/** A one-row `identity` dataset, enough for check() to judge a hand-written pipeline's settings. */
export const identityDatasets: NonNullable<CompileContext['datasets']> = {
  identity: {
    name: 'identity',
    digest: '1'.repeat(64),
    descriptor: { format: 'alpaca', files: ['identity.json'] },
    // One real row: check() reads the rows of ConfigMap-delivered files (a file with none is an error).
    files: [{ path: 'identity.json', sha256: 'e'.repeat(64), size: 1234, gzipBase64: gzipSync(JSON.stringify([{ instruction: 'Who are you?', input: '', output: 'I am {{name}}.' }])).toString('base64') }],
  },
};
