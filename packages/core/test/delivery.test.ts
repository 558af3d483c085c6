// Dataset delivery as the compiler builds it: routes, budgets, the objects and the /inputs layout.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gunzipSync } from 'node:zlib';
import type { DatasetSourceInput } from '../src/context.ts';
import {
  CLUSTER_INPUTS,
  CONFIGMAP_BUDGET_BYTES,
  DATASET_CREDENTIALS_SECRET,
  datasetDelivery,
  datasetDeliveryIssues,
  deliveredPath,
  deliveryPlan,
  fetchedPath,
  type DatasetDeliveryInput,
} from '../src/delivery.ts';

const sha = (c: string) => c.repeat(64);
/** gzip of `hello`, base64. */
const HELLO_GZ = 'H4sIAAAAAAAAA8tIzcnJBwCGphA2BQAAAA==';

function source(name: string, files: DatasetSourceInput['files'], digest = sha('9')): DatasetSourceInput {
  return { name, digest, descriptor: {}, files };
}

function input(datasets: Record<string, DatasetSourceInput>, sources = Object.keys(datasets)): DatasetDeliveryInput {
  return {
    pipeline: 'p',
    sources,
    datasets,
    namespace: 'ns',
    labels: { 'tunepipe.dev/stage': 'convert', 'app.kubernetes.io/component': 'convert' },
    fetchImage: 'fetch:1',
    hubToken: { secretName: 'hub', key: 'token' },
  };
}

test('the /inputs layout the converter reads is the one the objects mount', () => {
  assert.equal(CLUSTER_INPUTS.root, '/inputs');
  assert.equal(`${CLUSTER_INPUTS.root}/${deliveredPath('d', 'a.jsonl')}`, `${CLUSTER_INPUTS.local('d')}/a.jsonl.gz`);
  assert.equal(`${CLUSTER_INPUTS.root}/${fetchedPath('d', 'big.jsonl')}`, `${CLUSTER_INPUTS.remote}/d/big.jsonl`);
});

test('delivery plan: local files as items of the source ConfigMap, remote files as fetch commands', () => {
  const plan = deliveryPlan(
    source('mix', [
      { path: 'small.jsonl', sha256: sha('f'), size: 10, gzipBase64: HELLO_GZ },
      { path: 'big.jsonl', sha256: sha('e'), size: 10_000_000, url: 'hf://datasets/org/set@abc123/train.jsonl' },
      { path: 'more.json', sha256: sha('d'), size: 10, gzipBase64: 'QUJD' },
    ]),
  );
  assert.deepEqual(plan.configMap, {
    mountPath: '/inputs/mix',
    base64Bytes: HELLO_GZ.length + 4,
    items: [
      { file: 'small.jsonl', sha256: sha('f'), key: 'f0.gz', path: 'small.jsonl.gz', gzipBase64: HELLO_GZ },
      { file: 'more.json', sha256: sha('d'), key: 'f1.gz', path: 'more.json.gz', gzipBase64: 'QUJD' },
    ],
  });
  assert.deepEqual(plan.remote, [
    {
      file: 'big.jsonl',
      url: 'hf://datasets/org/set@abc123/train.jsonl',
      sha256: sha('e'),
      fetchArgs: ['tunepipe-fetch-file', '--url', 'hf://datasets/org/set@abc123/train.jsonl', '--sha256', sha('e'), '--dest', '/inputs/.remote/mix/big.jsonl'],
    },
  ]);
});

test('datasetDelivery: one content-named ConfigMap per source, mounted where the converter looks, with its files for a local runner', () => {
  const d = datasetDelivery(input({ id: source('id', [{ path: 'a b.jsonl', sha256: sha('a'), size: 5, gzipBase64: HELLO_GZ }], sha('7')) }));
  assert.equal(d.fetch, undefined);
  assert.deepEqual(d.scratch, []);
  assert.equal(d.maps.length, 1);
  const map = d.maps[0]!;
  assert.equal(map.metadata?.name, `p-data-id-${'7'.repeat(8)}`);
  assert.equal(map.metadata?.namespace, 'ns');
  assert.equal(map.metadata?.labels?.['app.kubernetes.io/component'], 'dataset');
  assert.equal(map.metadata?.labels?.['tunepipe.dev/stage'], 'convert');
  assert.equal(map.metadata?.annotations?.['argocd.argoproj.io/sync-options'], 'ServerSideApply=true', 'applied server-side');
  assert.equal(map.immutable, true);
  assert.deepEqual(map.binaryData, { 'f0.gz': HELLO_GZ });
  assert.deepEqual(d.volumes, [{ name: 'data-id', configMap: { name: map.metadata?.name, items: [{ key: 'f0.gz', path: 'a b.jsonl.gz' }] } }]);
  assert.deepEqual(d.mounts, [{ name: 'data-id', mountPath: '/inputs/id', readOnly: true }]);
  assert.deepEqual(d.files, [{ path: `${CLUSTER_INPUTS.root}/${deliveredPath('id', 'a b.jsonl')}`, base64: HELLO_GZ }]);
  assert.equal(gunzipSync(Buffer.from(d.files[0]!.base64!, 'base64')).toString(), 'hello');
});

test('datasetDelivery: remote files are downloaded by one fetch init container into an emptyDir', () => {
  const url = "s3://bucket/it's.jsonl";
  const d = datasetDelivery(
    input({
      a: source('a', [{ path: 'x.jsonl', sha256: sha('1'), size: 9e9, url }]),
      b: source('b', [
        { path: 'y.jsonl', sha256: sha('2'), size: 9e9, url: 'https://example.org/y.jsonl' },
        { path: 'small.jsonl', sha256: sha('3'), size: 5, gzipBase64: HELLO_GZ },
      ]),
    }),
  );
  assert.deepEqual(d.maps.map((m) => m.metadata?.name), [`p-data-b-${'9'.repeat(8)}`], 'only sources with local files get a ConfigMap');
  assert.deepEqual(d.scratch, ['/inputs/.remote']);
  assert.deepEqual(d.volumes.at(-1), { name: 'remote-inputs', emptyDir: {} });
  assert.deepEqual(d.mounts.at(-1), { name: 'remote-inputs', mountPath: '/inputs/.remote' });
  const fetch = d.fetch!;
  assert.equal(fetch.name, 'fetch-inputs');
  assert.equal(fetch.image, 'fetch:1');
  assert.deepEqual(fetch.command, ['/bin/sh', '-c']);
  assert.equal(
    fetch.args![0],
    [
      'set -e',
      `tunepipe-fetch-file --url 's3://bucket/it'\\''s.jsonl' --sha256 ${sha('1')} --dest /inputs/.remote/a/x.jsonl`,
      `tunepipe-fetch-file --url https://example.org/y.jsonl --sha256 ${sha('2')} --dest /inputs/.remote/b/y.jsonl`,
    ].join('\n'),
  );
  assert.deepEqual(fetch.env?.[0], { name: 'HF_TOKEN', valueFrom: { secretKeyRef: { name: 'hub', key: 'token' } } });
  assert.deepEqual(fetch.envFrom, [{ secretRef: { name: DATASET_CREDENTIALS_SECRET, optional: true } }]);
  assert.equal(fetch.securityContext?.allowPrivilegeEscalation, false);
  assert.deepEqual(fetch.volumeMounts?.map((m) => m.mountPath), ['/inputs/.remote', '/tmp']);
});

test('datasetDelivery: nothing for a stage without sources, and missing sources are left to check()', () => {
  assert.deepEqual(datasetDelivery(input({ a: source('a', [{ path: 'x', sha256: sha('1'), size: 1, gzipBase64: 'QUJD' }]) }, [])), { maps: [], volumes: [], mounts: [], files: [], scratch: [] });
  assert.deepEqual(datasetDelivery(input({}, ['gone'])), { maps: [], volumes: [], mounts: [], files: [], scratch: [] });
});

test('a file without ConfigMap content and without a URL is an issue with the fix, never truncated', () => {
  const big = { path: 'big.jsonl', sha256: sha('b'), size: 3 * 1024 * 1024 };
  const issues = datasetDeliveryIssues(source('big', [big]));
  assert.equal(issues.length, 1);
  const issue = issues[0]!;
  assert.equal(issue.code, 'dataset.too-large');
  assert.equal(issue.path, 'datasets/big/big.jsonl');
  assert.match(issue.message, /3\.0 MiB is too large to ship inside the manifests/);
  assert.match(issue.fix ?? '', new RegExp(`s3://<bucket>/tunepipe/datasets/sha256/${sha('b')}`));
  assert.match(issue.fix ?? '', /url: .*sha256: [0-9a-f]{64}/);
  assert.deepEqual(deliveryPlan(source('big', [big])).configMap.items, []);
  assert.deepEqual(datasetDeliveryIssues(source('big', [{ ...big, url: 's3://bucket/big.jsonl' }])), [], 'declared remote: delivered by download');
});

test('a file whose gzip alone is over the budget is reported', () => {
  const issues = datasetDeliveryIssues(source('one', [{ path: 'a.jsonl', sha256: sha('a'), size: 4e6, gzipBase64: 'x'.repeat(CONFIGMAP_BUDGET_BYTES + 1) }]));
  assert.deepEqual(issues.map((i) => [i.code, i.path]), [['dataset.too-large', 'datasets/one/a.jsonl']]);
  assert.match(issues[0]!.message, /compresses to 901 KiB of base64, over the 900 KiB a ConfigMap may carry/);
});

test('a source whose files fit one by one but not together is reported, with the file to move', () => {
  const f = (path: string, kb: number) => ({ path, sha256: path[0]!.repeat(64), size: kb * 4096, gzipBase64: 'x'.repeat(kb * 1024) });
  const two = source('two', [f('a.jsonl', 500), f('b.jsonl', 450)]);
  const issues = datasetDeliveryIssues(two);
  assert.equal(issues.length, 1);
  assert.equal(issues[0]!.path, 'datasets/two');
  assert.match(issues[0]!.message, /its 2 local files compress to 950 KiB of base64 together, over the 900 KiB/);
  assert.match(issues[0]!.fix ?? '', /move the largest file \(a\.jsonl\) to the remote route/);
  // Declaring the big one remote makes the rest fit.
  const fixed = source('two', [{ ...f('a.jsonl', 500), url: 's3://bucket/a.jsonl' }, f('b.jsonl', 450)]);
  assert.deepEqual(datasetDeliveryIssues(fixed), []);
});
