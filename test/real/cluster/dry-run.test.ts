// Server-side dry-run (`?dryRun=All`, field manager tunepipe) of every object `tunepipe synth`
// emits, in every output flavour (plain, Argo CD, Flux), against a real kube-apiserver with
// Kueue's webhooks and the Argo CD and Flux CRDs installed: validation, defaulting, admission
// webhooks and Pod Security warnings by the real thing, not by a schema copy.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { startCluster, type KubeObject, type LocalCluster } from '../support/cluster.ts';
import { tools } from '../support/tools.ts';
import { repoRoot } from './cli.ts';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

let cluster: LocalCluster;
const FLAVORS = ['plain', 'argocd', 'flux'] as const;
const counts: Record<string, number> = {};

function readYaml(file: string): Json[] {
  return parseAllDocuments(readFileSync(file, 'utf8'))
    .map((d) => d.toJS() as Json)
    .filter((d) => d && typeof d === 'object');
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

/**
 * A copy of the repository's pipelines and config in a temp folder (datasets and node_modules
 * linked), so `synth --gitops <flavor>` writes its dist/ there and never touches the work tree.
 */
function synthInto(flavor: (typeof FLAVORS)[number]): { dir: string; files: string[] } {
  const dir = mkdtempSync(join(tmpdir(), `tunepipe-synth-${flavor}-`));
  writeFileSync(join(dir, 'package.json'), readFileSync(join(repoRoot, 'package.json')));
  const config = JSON.parse(readFileSync(join(repoRoot, 'tunepipe.json'), 'utf8')) as Json;
  writeFileSync(join(dir, 'tunepipe.json'), JSON.stringify({ ...config, gitops: { ...config['gitops'], flavor } }, null, 2));
  for (const link of ['node_modules', 'datasets', 'packages']) symlinkSync(join(repoRoot, link), join(dir, link));
  mkdirSync(join(dir, 'pipelines'));
  for (const name of readdirSync(join(repoRoot, 'pipelines'))) {
    cpSync(join(repoRoot, 'pipelines', name), join(dir, 'pipelines', name), { recursive: true, filter: (src) => !src.includes(`${name}/dist`) });
  }
  const r = spawnSync(process.execPath, [join(repoRoot, 'packages', 'cli', 'bin', 'tunepipe.mjs'), 'synth', '--gitops', flavor], { cwd: dir, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
  assert.equal(r.status, 0, `synth --gitops ${flavor}: ${r.stdout}${r.stderr}`);
  const files = readdirSync(join(dir, 'pipelines')).flatMap((name) => filesUnder(join(dir, 'pipelines', name, 'dist')));
  return { dir, files };
}

before(async () => {
  cluster = await startCluster({ gpuNodes: [], cpuNodes: 1 });
  const crds = [...tools<{ argoCdCrds: string[] }>('controlplane').argoCdCrds, ...tools<{ crds: string[] }>('flux').crds].flatMap(readYaml);
  for (const crd of crds) await cluster.api.apply(crd);
  for (const crd of crds) {
    await cluster.waitFor(`CRD ${crd['metadata'].name} established`, async () => {
      const live = await cluster.api.get('apiextensions.k8s.io/v1', 'CustomResourceDefinition', crd['metadata'].name);
      return live?.status?.conditions?.some((c: Json) => c['type'] === 'Established' && c['status'] === 'True');
    });
  }
  cluster.api.resetDiscovery();
  const namespace = (JSON.parse(readFileSync(join(repoRoot, 'tunepipe.json'), 'utf8')) as Json)['namespace'] ?? 'tunepipe';
  // The workload namespace as infra/cluster makes it (restricted), and the controllers' namespaces.
  await cluster.createTunepipeNamespace(namespace, { gpuTypes: ['l4', 't4', 'a100-80gb'] });
  for (const ns of ['argocd', 'flux-system']) await cluster.api.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
});

after(async () => {
  await cluster?.stop();
});

for (const flavor of FLAVORS) {
  test(`synth --gitops ${flavor}: every emitted object passes a server-side dry-run, with no Pod Security warning`, async () => {
    const { dir, files } = synthInto(flavor);
    try {
      const problems: string[] = [];
      let admitted = 0;
      for (const file of files.filter((f) => /\.ya?ml$/.test(f))) {
        for (const object of readYaml(file)) {
          // kustomization.yaml files are read by kustomize (Flux, Argo CD, kubectl -k), never applied.
          if (object['apiVersion'] === 'kustomize.config.k8s.io/v1beta1') continue;
          const where = `${relative(dir, file)}: ${object['kind']}/${object['metadata']?.name}`;
          const warnings: string[] = [];
          try {
            const result = await cluster.api.apply(object as KubeObject, { dryRun: true, fieldManager: 'tunepipe', warnings });
            assert.equal(result.metadata.name, object['metadata'].name);
            admitted += 1;
          } catch (error) {
            problems.push(`${where}: ${(error as Error).message}`);
          }
          for (const w of warnings) {
            problems.push(`${where}: warning ${w}`);
          }
        }
      }
      assert.deepEqual(problems, [], `${flavor}: objects the API server rejected or warned about`);
      assert.ok(admitted > 0);
      counts[flavor] = admitted;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('objects admitted by dry-run, per flavour', () => {
  for (const flavor of FLAVORS) assert.ok(counts[flavor], `${flavor} ran`);
  const total = FLAVORS.reduce((n, f) => n + counts[f]!, 0);
  process.stdout.write(`# server-side dry-run admitted ${total} objects: ${FLAVORS.map((f) => `${f} ${counts[f]}`).join(', ')}\n`);
});
