// Regressions found by reconciling the Flux output with the real Flux controllers
// (test/real/gitops/flux.test.ts); each pins the fix in the fast suite.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse } from 'yaml';
import { fluxSourceIssues, GitopsError, renderFlux } from '../src/index.ts';
import { fixtureCompile, seedSource } from './fixtures.ts';

const SOURCE = { revision: 'main', path: 'pipelines/demo/dist' };
/** spec.url pattern of source-controller v1.9's GitRepository CRD (config/crd/bases). */
const FLUX_GIT_URL_PATTERN = /^(http|https|ssh):\/\/.*$/;

test('Flux output refuses git:// and file:// repo URLs, which the GitRepository CRD rejects on apply', () => {
  const compiled = fixtureCompile(seedSource());
  for (const repoUrl of ['git://git.example.com/acme/ml.git', 'file:///srv/git/ml.git']) {
    assert.throws(
      () => renderFlux(compiled, { ...SOURCE, repoUrl }),
      (e: unknown) =>
        e instanceof GitopsError &&
        e.issues.length === 1 &&
        e.issues[0]!.code === 'gitops.flux-url-scheme' &&
        e.issues[0]!.path === 'repoUrl' &&
        /https:\/\//.test(e.issues[0]!.fix ?? ''),
      repoUrl,
    );
  }
  // Every URL form the renderer accepts ends up matching the CRD's pattern.
  for (const repoUrl of ['https://github.com/acme/ml.git', 'http://127.0.0.1:8080/ml', 'ssh://git@host:2222/acme/ml.git', 'git@github.com:acme/ml.git']) {
    const files = renderFlux(compiled, { ...SOURCE, repoUrl });
    const repo = parse(files.find((f) => f.path === 'flux/gitrepository.yaml')!.content) as { spec: { url: string } };
    assert.match(repo.spec.url, FLUX_GIT_URL_PATTERN, repoUrl);
    assert.deepEqual(fluxSourceIssues(repoUrl), []);
  }
});

test('a URL that is not a Git URL at all is reported once, by the shared source check', () => {
  const compiled = fixtureCompile(seedSource());
  assert.throws(
    () => renderFlux(compiled, { ...SOURCE, repoUrl: 'not a url' }),
    (e: unknown) => e instanceof GitopsError && e.issues.map((i) => i.code).join() === 'gitops.repo-url',
  );
});
