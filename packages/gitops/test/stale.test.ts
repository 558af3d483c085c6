import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkStale, distPath, formatStaleReport, GitopsError, renderFlux, underDir, writeFiles } from '../src/index.ts';
import { fixtureCompile, seedSource } from './fixtures.ts';

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'tunepipe-gitops-stale-'));
}

const SOURCE = { repoUrl: 'https://github.com/acme/ml.git', revision: 'main', path: distPath('demo') };

test('writeFiles makes a folder hold exactly the rendered files, subfolders included', () => {
  const root = tempDir();
  const dir = join(root, 'dist');
  try {
    assert.throws(() => writeFiles(root, [{ path: 'a.yaml', content: '' }]), /is not a dist\/ folder/, 'never deletes outside a dist folder');
    const first = writeFiles(dir, [
      { path: 'a.yaml', content: 'a: 1\n' },
      { path: 'stages/old/b.yaml', content: 'b: 1\n' },
      { path: 'stages/keep/c.yaml', content: 'c: 1\n' },
    ]);
    assert.deepEqual(first.written, ['a.yaml', 'stages/keep/c.yaml', 'stages/old/b.yaml']);
    const second = writeFiles(dir, [
      { path: 'a.yaml', content: 'a: 2\n' },
      { path: 'stages/keep/c.yaml', content: 'c: 1\n' },
    ]);
    assert.deepEqual(second, { written: ['a.yaml'], unchanged: ['stages/keep/c.yaml'], deleted: ['stages/old/b.yaml'] });
    assert.equal(existsSync(join(dir, 'stages/old')), false, 'emptied folders go too');
    assert.equal(readFileSync(join(dir, 'a.yaml'), 'utf8'), 'a: 2\n');
    assert.throws(() => writeFiles(dir, [{ path: '../escape.yaml', content: '' }]), GitopsError);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('checkStale names every changed, missing and extra file under pipelines/<name>/dist', () => {
  const root = tempDir();
  try {
    const expected = underDir(distPath('demo'), renderFlux(fixtureCompile(seedSource()), SOURCE));
    writeFiles(join(root, distPath('demo')), renderFlux(fixtureCompile(seedSource()), SOURCE));
    assert.deepEqual(checkStale(root, expected), { ok: true, changed: [], missing: [], extra: [] });
    assert.equal(formatStaleReport(checkStale(root, expected)), '');

    const changed = expected.find((f) => f.path.endsWith('flux/kustomization-sft.yaml'))!.path;
    const missing = expected.find((f) => f.path.endsWith('flux/gitrepository.yaml'))!.path;
    writeFileSync(join(root, changed), 'edited by hand\n');
    rmSync(join(root, missing));
    writeFileSync(join(root, distPath('demo'), 'stages/sft/999-job-demo-sft-deadbeef.yaml'), 'kind: Job\n');
    mkdirSync(join(root, distPath('gone')), { recursive: true });
    writeFileSync(join(root, distPath('gone'), 'kustomization.yaml'), 'resources: []\n');
    // Files outside dist folders are not the check's business.
    writeFileSync(join(root, 'README.md'), '# repo\n');

    const report = checkStale(root, expected);
    assert.deepEqual(report, {
      ok: false,
      changed: [changed],
      missing: [missing],
      extra: ['pipelines/demo/dist/stages/sft/999-job-demo-sft-deadbeef.yaml', 'pipelines/gone/dist/kustomization.yaml'],
    });
    const text = formatStaleReport(report);
    assert.match(text, /^committed manifests are stale: 1 changed, 1 missing, 2 extra$/m);
    assert.match(text, /^ {2}changed {2}pipelines\/demo\/dist\/flux\/kustomization-sft\.yaml$/m);
    assert.match(text, /^ {2}missing {2}pipelines\/demo\/dist\/flux\/gitrepository\.yaml$/m);
    assert.match(text, /^ {2}extra {4}pipelines\/gone\/dist\/kustomization\.yaml$/m);
    assert.match(text, /synth/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('checkStale ignores CRLF line endings from a Windows checkout', () => {
  const root = tempDir();
  try {
    const expected = [{ path: 'pipelines/demo/dist/a.yaml', content: 'a: 1\nb: 2\n' }];
    mkdirSync(join(root, 'pipelines/demo/dist'), { recursive: true });
    writeFileSync(join(root, 'pipelines/demo/dist/a.yaml'), 'a: 1\r\nb: 2\r\n');
    assert.equal(checkStale(root, expected).ok, true);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
