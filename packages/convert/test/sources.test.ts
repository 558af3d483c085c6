import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { CONFIGMAP_BUDGET_BYTES } from '@tunepipe/core';
import { datasetDeliveryIssues } from '@tunepipe/core';
import { ConvertError, loadDatasetSources } from '../src/index.ts';
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

test('a file over the ConfigMap budget is loaded without gzip content and reported, never truncated', async () => {
  // Random bytes do not compress: about 1 MiB raw stays over 900 KiB after gzip+base64.
  const big = randomBytes(800 * 1024).toString('hex').match(/.{1,200}/g)!.map((h) => JSON.stringify({ instruction: h.slice(0, 50), output: h })).join('\n');
  const root = await tempRepo({
    'datasets/big/dataset.yaml': alpacaYaml('big.jsonl'),
    'datasets/big/big.jsonl': big,
  });
  try {
    const [source] = await loadDatasetSources(root, ['big']);
    assert.equal(source!.files[0]!.gzipBase64, undefined);
    assert.deepEqual(datasetDeliveryIssues(source!).map((i) => [i.code, i.path]), [['dataset.too-large', 'datasets/big/big.jsonl']]);
  } finally {
    await cleanup(root);
  }
});

test('remote files are loaded with their pinned digest and URL, and read nothing locally', async () => {
  const sha = 'e'.repeat(64);
  const root = await tempRepo({
    'datasets/mix/dataset.yaml': `format: alpaca\nfiles:\n  - small.jsonl\n  - { path: big.jsonl, url: 'hf://datasets/org/set@abc123/train.jsonl', sha256: ${sha}, size: 10000000 }\nlicense: MIT\n`,
    'datasets/mix/small.jsonl': jsonl([{ instruction: 'a', output: 'b' }]),
  });
  try {
    const [source] = await loadDatasetSources(root, ['mix']);
    assert.deepEqual(source!.files[1], { path: 'big.jsonl', sha256: sha, size: 10_000_000, url: 'hf://datasets/org/set@abc123/train.jsonl' });
    assert.equal(source!.files[0]!.url, undefined);
    assert.deepEqual(datasetDeliveryIssues(source!), []);
  } finally {
    await cleanup(root);
  }
});
