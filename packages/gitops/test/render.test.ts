import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse, parseAllDocuments } from 'yaml';
import { LuaFactory } from 'wasmoon';
import { Application } from '@kubernetes-models/argo-cd/argoproj.io/v1alpha1';
import { Kustomization } from '@kubernetes-models/flux-cd/kustomize.toolkit.fluxcd.io/v1';
import { GitRepository } from '@kubernetes-models/flux-cd/source.toolkit.fluxcd.io/v1';
import { renderManifests, type CompiledPipeline, type KubeObject } from '@tunepipe/core';
import {
  ARGOCD_JOB_HEALTH_LUA,
  fluxGitUrl,
  fluxRef,
  fluxTimeoutSeconds,
  GitopsError,
  goDuration,
  renderArgoCd,
  renderFlux,
  generatedHeader,
  renderGitops,
  renderPlain,
  stageDepths,
  type GitopsFile,
} from '../src/index.ts';
import { diamondSource, fixtureCompile, seedSource } from './fixtures.ts';

const SOURCE = { repoUrl: 'https://github.com/acme/ml-pipelines.git', revision: 'main', path: 'pipelines/demo/dist' };

type Doc = Record<string, any>;

function file(files: readonly GitopsFile[], path: string): Doc {
  const found = files.find((f) => f.path === path);
  assert.ok(found, `${path} is rendered (have: ${files.map((f) => f.path).join(', ')})`);
  return parse(found.content) as Doc;
}

/** Independent of stageDepths: the longest path from a source stage, by repeated relaxation. */
function longestPaths(compiled: CompiledPipeline): Map<string, number> {
  const depth = new Map(compiled.stages.map((s) => [s.name, 0]));
  for (let round = 0; round < compiled.stages.length; round++) {
    for (const s of compiled.stages) for (const d of s.dependsOn) depth.set(s.name, Math.max(depth.get(s.name)!, depth.get(d)! + 1));
  }
  return depth;
}

function argoObjects(files: readonly GitopsFile[]): Doc[] {
  const kustomization = file(files, 'app/kustomization.yaml');
  return (kustomization['resources'] as string[]).map((r) => file(files, `app/${r}`));
}

for (const [label, source] of [['seed', seedSource()], ['diamond', diamondSource()]] as const) {
  test(`Argo CD: sync waves are the depth of each stage in the ${label} graph`, () => {
    const compiled = fixtureCompile(source);
    const files = renderArgoCd(compiled, SOURCE);
    const expected = longestPaths(compiled);
    const objects = argoObjects(files);
    assert.equal(objects.length, compiled.objects.length, 'every object is listed in app/kustomization.yaml');
    for (const object of objects) {
      const stage = object['metadata']['labels']['tunepipe.dev/stage'] as string;
      assert.equal(object['metadata']['annotations']['argocd.argoproj.io/sync-wave'], String(expected.get(stage)), `${object['kind']} ${object['metadata']['name']}`);
    }
    // Each stage's wave is after every upstream stage's wave: Argo CD waits for them to be healthy first.
    const waves = stageDepths(compiled);
    for (const stage of compiled.stages) for (const dep of stage.dependsOn) assert.ok(waves.get(stage.name)! > waves.get(dep)!);
  });

  test(`Flux: Kustomization dependsOn is the ${label} stage graph`, () => {
    const compiled = fixtureCompile(source);
    const files = renderFlux(compiled, SOURCE);
    const entry = file(files, 'flux/kustomization.yaml')['resources'] as string[];
    const kustomizations = entry.map((r) => file(files, `flux/${r}`)).filter((d) => d['kind'] === 'Kustomization');
    assert.equal(kustomizations.length, compiled.stages.length);
    for (const stage of compiled.stages) {
      const k = kustomizations.find((d) => d['metadata']['name'] === `${compiled.pipeline}-${stage.name}`);
      assert.ok(k, `Kustomization of ${stage.name}`);
      const deps = ((k['spec']['dependsOn'] ?? []) as { name: string }[]).map((d) => d.name).sort();
      assert.deepEqual(deps, stage.dependsOn.map((d) => `${compiled.pipeline}-${d}`).sort());
      assert.equal(k['spec']['wait'], true);
      assert.equal(k['spec']['timeout'], goDuration(fluxTimeoutSeconds(stage.expectedSeconds)));
      // The Kustomization's path holds exactly the stage's objects.
      const dir = (k['spec']['path'] as string).replace(`./${SOURCE.path}/`, '');
      const names = (file(files, `${dir}/kustomization.yaml`)['resources'] as string[]).map((r) => file(files, `${dir}/${r}`)['metadata']['name']);
      assert.deepEqual(names, stage.objects.map((o) => o.metadata!.name));
    }
  });
}

test('Argo CD: protected objects, the Application and its schema', () => {
  const compiled = fixtureCompile(seedSource());
  const files = renderArgoCd(compiled, { ...SOURCE, path: './pipelines/demo/dist/' });
  for (const object of argoObjects(files)) {
    const annotations = object['metadata']['annotations'] as Record<string, string>;
    const batch = object['metadata']['labels']['tunepipe.dev/stage'] !== 'serve';
    const expected = batch ? (object['kind'] === 'Job' ? 'Prune=false,Delete=false,Force=true' : 'Prune=false,Delete=false') : undefined;
    assert.equal(annotations['argocd.argoproj.io/sync-options'], expected, object['metadata']['name']);
    assert.equal(annotations['argocd.argoproj.io/compare-options'], batch ? 'IgnoreExtraneous' : undefined);
  }
  const app = file(files, 'argocd/application.yaml');
  new Application(app as never).validate();
  assert.deepEqual(app['spec']['source'], { repoURL: SOURCE.repoUrl, targetRevision: 'main', path: 'pipelines/demo/dist/app' });
  assert.equal(app['spec']['destination']['namespace'], 'ml');
  assert.deepEqual(app['spec']['syncPolicy']['automated'], { prune: true, selfHeal: true });
  // The real API server warns on a finalizer name without a path (found by the dry-run in test:real).
  assert.deepEqual(app['metadata']['finalizers'], ['resources-finalizer.argocd.argoproj.io/foreground']);
  assert.deepEqual(app['spec']['ignoreDifferences'], [{ group: 'batch', kind: 'Job', jsonPointers: ['/spec/suspend'] }]);
  assert.ok((app['spec']['syncPolicy']['syncOptions'] as string[]).includes('RespectIgnoreDifferences=true'));
  // Compiled objects are not changed by rendering.
  assert.equal(compiled.objects[0]!.metadata!.annotations, undefined);

  const settings = file(files, 'argocd/argocd-cm.tunepipe.yaml');
  assert.equal(settings['metadata']['name'], 'argocd-cm');
  assert.equal(settings['data']['resource.customizations.health.batch_Job'], ARGOCD_JOB_HEALTH_LUA);
  assert.equal(renderArgoCd(compiled, SOURCE).find((f) => f.path.endsWith('argocd-cm.tunepipe.yaml'))!.content.startsWith('# '), true);
});

test('Flux: GitRepository and Kustomizations validate against the Flux schemas; protected objects', () => {
  const compiled = fixtureCompile(seedSource());
  const files = renderFlux(compiled, { ...SOURCE, repoUrl: 'git@github.com:acme/ml-pipelines.git', secretName: 'git-credentials' });
  for (const f of files.filter((x) => x.path.startsWith('flux/') && x.path !== 'flux/kustomization.yaml')) {
    const doc = parse(f.content) as Doc;
    if (doc['kind'] === 'GitRepository') new GitRepository(doc as never).validate();
    else new Kustomization(doc as never).validate();
  }
  const repo = file(files, 'flux/gitrepository.yaml');
  assert.deepEqual(repo['spec'], { interval: '1m', url: 'ssh://git@github.com/acme/ml-pipelines.git', ref: { branch: 'main' }, secretRef: { name: 'git-credentials' } });
  const sft = file(files, 'flux/kustomization-sft.yaml');
  assert.deepEqual(sft['spec']['sourceRef'], { kind: 'GitRepository', name: 'tunepipe-demo' });
  assert.equal(sft['spec']['path'], './pipelines/demo/dist/stages/sft');
  assert.equal(sft['spec']['prune'], true);
  // 1530 s × 1.5 + 600 s = 2895 s → 49 minutes.
  assert.equal(sft['spec']['timeout'], '49m');
  const job = file(files, files.find((f) => f.path.startsWith('stages/sft/') && f.path.includes('/job-'))!.path);
  assert.equal(job['metadata']['annotations']['kustomize.toolkit.fluxcd.io/prune'], 'Disabled');
  // A changed pod template under an unchanged name is re-created instead of failing as immutable.
  assert.equal(job['metadata']['annotations']['kustomize.toolkit.fluxcd.io/force'], 'enabled');
  const config = file(files, files.find((f) => f.path.startsWith('stages/sft/') && f.path.includes('/configmap-'))!.path);
  assert.equal(config['metadata']['annotations']['kustomize.toolkit.fluxcd.io/force'], undefined, 'only Jobs are re-created');
  const deployment = file(files, files.find((f) => f.path.startsWith('stages/serve/') && f.path.includes('/deployment-'))!.path);
  assert.equal(deployment['metadata']['annotations'], undefined, 'serve objects are pruned normally');
});

test('Flux helpers: durations, refs and URLs', () => {
  assert.equal(goDuration(60), '1m');
  assert.equal(goDuration(61), '2m');
  assert.equal(goDuration(3600), '1h');
  assert.equal(goDuration(5430), '1h31m');
  assert.equal(fluxTimeoutSeconds(0), 600);
  assert.equal(fluxTimeoutSeconds(7200), 11400);
  assert.deepEqual(fluxRef('main'), { branch: 'main' });
  assert.deepEqual(fluxRef('refs/heads/release/1'), { branch: 'release/1' });
  assert.deepEqual(fluxRef('refs/tags/v1.2.0'), { tag: 'v1.2.0' });
  assert.deepEqual(fluxRef('refs/pull/4/head'), { name: 'refs/pull/4/head' });
  assert.deepEqual(fluxRef('c4a54320a52ed5f88b7a2f84496903ea4ff07b45'), { commit: 'c4a54320a52ed5f88b7a2f84496903ea4ff07b45' });
  assert.equal(fluxGitUrl('git@github.com:acme/x.git'), 'ssh://git@github.com/acme/x.git');
  assert.equal(fluxGitUrl('https://github.com/acme/x.git'), 'https://github.com/acme/x.git');
  assert.equal(fluxGitUrl('ssh://git@host:2222/acme/x.git'), 'ssh://git@host:2222/acme/x.git');
});

test('plain output is core renderManifests behind the same checks, each file headed as generated', () => {
  const compiled = fixtureCompile(seedSource());
  const header = `# generated by tunepipe from pipelines/${compiled.pipeline}/pipeline.ts — do not edit; run \`tunepipe synth ${compiled.pipeline}\`\n`;
  assert.equal(generatedHeader(compiled.pipeline), header);
  const expected = renderManifests(compiled).map((f) => ({ path: f.path, content: `${header}${f.content}` }));
  assert.deepEqual(renderPlain(compiled), expected);
  assert.deepEqual(renderGitops(compiled, { flavor: 'plain' }), expected);
  for (const flavor of ['argocd', 'flux'] as const) {
    const files = renderGitops(compiled, { flavor, repoUrl: 'https://github.com/acme/ml.git', revision: 'main', path: `pipelines/${compiled.pipeline}/dist` });
    for (const file of files.filter((f) => f.path.endsWith('.yaml'))) {
      assert.ok(file.content.startsWith(header), `${flavor} ${file.path}`);
      assert.equal(file.content.split(header).length, 2, `${flavor} ${file.path}: one header`);
    }
  }
});

function withJobSpec(compiled: CompiledPipeline, stages: readonly string[], extra: Record<string, unknown>): CompiledPipeline {
  const patch = (o: KubeObject): KubeObject => (o.kind === 'Job' ? ({ ...o, spec: { ...o.spec, ...extra } } as KubeObject) : o);
  const changed = compiled.stages.map((s) => (stages.includes(s.name) ? { ...s, objects: s.objects.map(patch) } : s));
  return { ...compiled, stages: changed, objects: changed.flatMap((s) => s.objects) };
}

test('a Job with ttlSecondsAfterFinished or a committed suspend fails every flavor, naming each Job', () => {
  const compiled = withJobSpec(fixtureCompile(seedSource()), ['convert', 'sft'], { ttlSecondsAfterFinished: 600 });
  for (const options of [{ flavor: 'plain' }, { flavor: 'argocd', ...SOURCE }, { flavor: 'flux', ...SOURCE }] as const) {
    assert.throws(
      () => renderGitops(compiled, options),
      (error: unknown) => {
        assert.ok(error instanceof GitopsError);
        assert.deepEqual(error.issues.map((i) => i.code), ['gitops.job-ttl', 'gitops.job-ttl']);
        assert.match(error.issues[0]!.path, /stages\[1\]\(convert\)\.objects\[1\]\.spec\.ttlSecondsAfterFinished$/);
        assert.match(error.issues[1]!.message, /^Job demo-sft-[0-9a-f]{8} is deleted after it finishes$/);
        assert.match(error.issues[0]!.fix!, /re-create/);
        return true;
      },
    );
  }
  const suspended = withJobSpec(fixtureCompile(seedSource()), ['quantize'], { suspend: true });
  assert.throws(() => renderPlain(suspended), (e: unknown) => e instanceof GitopsError && e.issues[0]!.code === 'gitops.job-suspend');
});

test('bad repository options are reported, every problem at once', () => {
  const compiled = fixtureCompile(seedSource());
  assert.throws(
    () => renderArgoCd(compiled, { repoUrl: 'not a url', revision: '', path: '../elsewhere' }),
    (e: unknown) => e instanceof GitopsError && e.issues.map((i) => i.path).join() === 'repoUrl,revision,path',
  );
  assert.throws(
    () => renderFlux(compiled, { ...SOURCE, interval: 'ten minutes' }),
    (e: unknown) => e instanceof GitopsError && e.issues.map((i) => i.code).join() === 'gitops.interval',
  );
});

test('output is deterministic and apiVersion, kind and metadata lead every document', () => {
  const compiled = fixtureCompile(seedSource());
  for (const render of [() => renderArgoCd(compiled, SOURCE), () => renderFlux(compiled, SOURCE)]) {
    const first = render();
    assert.deepEqual(render(), first);
    for (const f of first) {
      for (const doc of parseAllDocuments(f.content)) {
        const keys = Object.keys(doc.toJS() as object);
        if (keys.includes('metadata')) assert.deepEqual(keys.slice(0, 3), ['apiVersion', 'kind', 'metadata'], f.path);
        else assert.deepEqual(keys.slice(0, 2), ['apiVersion', 'kind'], f.path);
      }
    }
  }
});

// The health check runs in a real Lua VM (wasmoon, Lua 5.4; the script keeps to Lua 5.1 like Argo CD's).
async function health(job: Doc): Promise<{ status: string; message: string }> {
  const lua = await new LuaFactory().createEngine();
  try {
    lua.global.set('obj', job);
    return (await lua.doString(ARGOCD_JOB_HEALTH_LUA)) as { status: string; message: string };
  } finally {
    lua.global.close();
  }
}

test('Argo CD Job health: only a completed Job is Healthy; queued and resumed Jobs hold their wave', async () => {
  const queued = { metadata: { labels: { 'kueue.x-k8s.io/queue-name': 'gpu-queue' } }, spec: { suspend: true }, status: { conditions: [{ type: 'Suspended', status: 'True', reason: 'JobSuspended' }] } };
  assert.deepEqual(await health(queued), { status: 'Progressing', message: 'waiting for Kueue to admit the Job (LocalQueue gpu-queue)' });
  // What Argo CD's built-in check calls Healthy: Kueue resumed the Job and it is still running.
  const resumed = { metadata: { labels: {} }, spec: { suspend: false }, status: { active: 1, conditions: [{ type: 'Suspended', status: 'False', reason: 'JobResumed' }] } };
  assert.deepEqual(await health(resumed), { status: 'Progressing', message: 'Job running (1 active)' });
  const fresh = { metadata: {}, spec: {} };
  assert.equal((await health(fresh)).status, 'Progressing');
  const complete = { metadata: {}, spec: {}, status: { conditions: [{ type: 'Suspended', status: 'False' }, { type: 'Complete', status: 'True', message: 'Reached expected number of succeeded pods' }] } };
  assert.deepEqual(await health(complete), { status: 'Healthy', message: 'Reached expected number of succeeded pods' });
  const failed = { metadata: {}, spec: {}, status: { conditions: [{ type: 'Failed', status: 'True', message: 'Job has reached the specified backoff limit' }] } };
  assert.deepEqual(await health(failed), { status: 'Degraded', message: 'Job has reached the specified backoff limit' });
  const suspendedByHand = { metadata: {}, spec: { suspend: true } };
  assert.deepEqual(await health(suspendedByHand), { status: 'Progressing', message: 'Job is suspended' });
});

test('a repository URL with credentials is refused, and the token is not echoed', () => {
  const compiled = fixtureCompile(seedSource());
  assert.throws(
    () => renderGitops(compiled, { flavor: 'argocd', repoUrl: 'https://x-access-token:ghs_secret123@github.com/acme/ml.git', revision: 'main', path: 'pipelines/demo/dist' }),
    (error: unknown) => error instanceof GitopsError && /carries credentials/.test(error.message) && !error.message.includes('ghs_secret123'),
  );
});
