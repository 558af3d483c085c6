import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import {
  CONFIGMAP_BUDGET_BYTES,
  CLUSTER_INPUTS,
  ConvertError,
  datasetDeliveryIssues,
  deliveryPlan,
  loadDatasetSources,
} from '../src/index.ts';
import { alpacaYaml, cleanup, jsonl, tempRepo } from './helpers.ts';

const repoRoot = resolve(fileURLToPath(new URL('../../..', import.meta.url)));

test('the example datasets load, digest and fit the ConfigMap route', async () => {
  const sources = await loadDatasetSources(repoRoot, ['identity', 'fintech', 'support-sharegpt']);
  assert.deepEqual(sources.map((s) => s.name), ['identity', 'fintech', 'support-sharegpt']);
  for (const s of sources) {
    assert.match(s.digest, /^[0-9a-f]{64}$/);
    assert.deepEqual(datasetDeliveryIssues(s), [], s.name);
    for (const f of s.files) {
      assert.ok(f.gzipBase64 && f.gzipBase64.length <= CONFIGMAP_BUDGET_BYTES);
      assert.equal(gunzipSync(Buffer.from(f.gzipBase64, 'base64')).length, f.size);
    }
  }
  assert.equal(sources[2]!.files.length, 2);
});

test('digests: stable, and any change to a row or the descriptor changes the source digest', async () => {
  const rows = [{ instruction: 'a', output: 'b' }, { instruction: 'c', output: 'd' }];
  const root = await tempRepo({ 'datasets/x/dataset.yaml': alpacaYaml('x.jsonl'), 'datasets/x/x.jsonl': jsonl(rows) });
  try {
    const [first] = await loadDatasetSources(root, ['x']);
    const [again] = await loadDatasetSources(root, ['x']);
    assert.equal(first!.digest, again!.digest);
    assert.equal(first!.files[0]!.gzipBase64, again!.files[0]!.gzipBase64, 'gzip output is deterministic');
    await writeFile(join(root, 'datasets/x/x.jsonl'), jsonl([rows[0], { instruction: 'c', output: 'd!' }]));
    const [edited] = await loadDatasetSources(root, ['x']);
    assert.notEqual(edited!.digest, first!.digest);
    await writeFile(join(root, 'datasets/x/x.jsonl'), jsonl(rows));
    await writeFile(join(root, 'datasets/x/dataset.yaml'), alpacaYaml('x.jsonl', 'placeholders: false\n'));
    const [redescribed] = await loadDatasetSources(root, ['x']);
    assert.notEqual(redescribed!.digest, first!.digest);
    assert.equal(redescribed!.files[0]!.sha256, first!.files[0]!.sha256);
  } finally {
    await cleanup(root);
  }
});

test('unknown datasets, bad descriptors and missing files are all reported together', async () => {
  const root = await tempRepo({
    'datasets/fintech/dataset.yaml': alpacaYaml('a.jsonl'),
    'datasets/fintech/a.jsonl': jsonl([{ instruction: 'a', output: 'b' }]),
    'datasets/broken/dataset.yaml': 'format: alpaca\nfiles: [gone.jsonl]\nlicense: MIT\n',
    'datasets/typo/dataset.yaml': 'format: alpaca\nfile: [a.jsonl]\nlicense: MIT\n',
  });
  try {
    await assert.rejects(loadDatasetSources(root, ['fintec', 'broken', 'typo', 'fintech']), (e: unknown) => {
      assert.ok(e instanceof ConvertError);
      const byCode = new Map(e.issues.map((i) => [i.code, i]));
      assert.equal(byCode.get('dataset.unknown')?.fix, "did you mean 'fintech'?");
      assert.equal(byCode.get('dataset.file-missing')?.path, 'datasets/broken/gone.jsonl');
      assert.ok(e.issues.some((i) => i.path.startsWith('datasets/typo/dataset.yaml:2') && i.fix === "did you mean 'files'?"));
      return true;
    });
  } finally {
    await cleanup(root);
  }
});

test('files over the ConfigMap budget are a delivery issue with the fix, never truncated', async () => {
  // Random bytes do not compress: about 1 MiB raw stays over 900 KiB after gzip+base64.
  const big = randomBytes(800 * 1024).toString('hex').match(/.{1,200}/g)!.map((h) => JSON.stringify({ instruction: h.slice(0, 50), output: h })).join('\n');
  const root = await tempRepo({
    'datasets/big/dataset.yaml': alpacaYaml('big.jsonl'),
    'datasets/big/big.jsonl': big,
  });
  try {
    const [source] = await loadDatasetSources(root, ['big']);
    assert.equal(source!.files[0]!.gzipBase64, undefined);
    const issues = datasetDeliveryIssues(source!);
    assert.equal(issues.length, 1);
    const issue = issues[0]!;
    assert.equal(issue.path, 'datasets/big/big.jsonl');
    assert.equal(issue.code, 'dataset.delivery-too-large');
    assert.match(issue.message, /MiB is too large to ship inside the manifests/);
    assert.match(issue.fix ?? '', new RegExp(`s3://<bucket>/tunepipe/datasets/sha256/${source!.files[0]!.sha256}`));
    assert.match(issue.fix ?? '', /url: .*sha256: [0-9a-f]{64}/);
    assert.deepEqual(deliveryPlan(source!).configMap.items, []);
  } finally {
    await cleanup(root);
  }
});

test('a source whose files fit one by one but not together is reported, with the file to move', () => {
  const f = (path: string, kb: number) => ({ path, sha256: path[0]!.repeat(64), size: kb * 4096, gzipBase64: 'x'.repeat(kb * 1024) });
  const source = { name: 'two', descriptor: { files: ['a.jsonl', 'b.jsonl'] }, files: [f('a.jsonl', 500), f('b.jsonl', 450)] };
  const issues = datasetDeliveryIssues(source);
  assert.equal(issues.length, 1);
  assert.equal(issues[0]!.path, 'datasets/two');
  assert.match(issues[0]!.message, /its 2 local files compress to 950 KiB of base64 together, over the 900 KiB/);
  assert.match(issues[0]!.fix ?? '', /move the largest file \(a\.jsonl\) to the remote route/);
  // Declaring the big one remote makes the rest fit.
  const fixed = { ...source, descriptor: { files: [{ path: 'a.jsonl', url: 's3://bucket/a.jsonl' }, 'b.jsonl'] } };
  assert.deepEqual(datasetDeliveryIssues(fixed), []);
});

test('delivery plan: local files as items of the source ConfigMap, remote files as fetch commands', () => {
  const sha = 'e'.repeat(64);
  const plan = deliveryPlan({
    name: 'mix',
    descriptor: { files: ['small.jsonl', { path: 'big.jsonl', url: 'hf://datasets/org/set@abc123/train.jsonl' }, 'more.json'] },
    files: [
      { path: 'small.jsonl', sha256: 'f'.repeat(64), size: 10, gzipBase64: 'H4sIAAAAAAAAA8tIzcnJBwCGphA2BQAAAA==' },
      { path: 'big.jsonl', sha256: sha, size: 10_000_000 },
      { path: 'more.json', sha256: 'd'.repeat(64), size: 10, gzipBase64: 'QUJD' },
    ],
  });
  assert.deepEqual(plan.configMap, {
    mountPath: '/inputs/mix',
    base64Bytes: 40,
    items: [
      { file: 'small.jsonl', sha256: 'f'.repeat(64), key: 'f0.gz', path: 'small.jsonl.gz', gzipBase64: 'H4sIAAAAAAAAA8tIzcnJBwCGphA2BQAAAA==' },
      { file: 'more.json', sha256: 'd'.repeat(64), key: 'f1.gz', path: 'more.json.gz', gzipBase64: 'QUJD' },
    ],
  });
  assert.deepEqual(plan.remote, [
    {
      file: 'big.jsonl',
      url: 'hf://datasets/org/set@abc123/train.jsonl',
      sha256: sha,
      fetchArgs: ['tunepipe-fetch-file', '--url', 'hf://datasets/org/set@abc123/train.jsonl', '--sha256', sha, '--dest', `${CLUSTER_INPUTS.remote}/mix/big.jsonl`],
    },
  ]);
});
